"""Every code block of README.md, docs/*.md and deploy/README.md runs here, or says why not.

A fenced block with a language is code. A ``python`` block runs (blocks of one file in order, in
one namespace, in a scratch folder, so a later block may use what an earlier one wrote) with the
substitutions :data:`SHRINK` lists: the small test box and tiny settings, nothing else. Each
substitution must match the block's text exactly, so a changed example fails here until this
file follows. A ``bash`` block carries a marker on the line above it::

    <!-- docs-test: flags (why it is not run) -->   each ``clearcube`` command's flags must exist
    <!-- docs-test: skip (why) -->                  not checked (e.g. the set-up commands)

Blocks without a language are text (diagrams, listings).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from region_fixtures import PERIOD, REGION

from clearcube.pipeline.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "deploy" / "README.md"]
DEMO_CHECKPOINT = ROOT / "model" / "checkpoints" / "demo.pt"

BLOCK = re.compile(
    r"(?:<!--\s*docs-test:\s*(?P<mark>\w+)(?P<why>[^>]*)-->\s*\n)?^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```",
    re.S | re.M,
)

#: file name -> [(documented text, what the test runs instead)]: sizes only.
SHRINK: dict[str, list[tuple[str, str]]] = {
    "README.md": [
        ("(10.05, 45.03, 10.16, 45.10)", repr(REGION)),
        # three dates, one of them clear: fit needs a clear target date
        ('start="2024-05-01", end="2024-07-31"', 'start="2024-06-15", end="2024-07-15"'),
        ("steps=10, samples=2, tile=256, overlap=32", "steps=2, samples=2, tile=64, overlap=16"),
        ('"model/checkpoints/demo.pt"', repr(str(DEMO_CHECKPOINT))),
        ("steps=400)", "steps=2, patch_size=32, held_out=0.35, eval_samples=2, eval_steps=2)"),
        (
            'sampler="pdmsr", steps=2, samples=2,',
            'sampler="pdmsr", steps=2, samples=2, tile=64, overlap=16,',
        ),
    ],
    "API.md": [
        ("(10.05, 45.03, 10.16, 45.10)", repr(REGION)),
        ('start="2024-05-01", end="2024-07-31"', f'start="{PERIOD[0]}", end="{PERIOD[1]}"'),
        ("steps=10, tile=256, overlap=32", "steps=2, tile=64, overlap=16"),
    ],
}


def blocks(path: Path) -> list[dict[str, Any]]:
    """The fenced code blocks of ``path``: language, marker, body, line."""
    text = path.read_text()
    return [
        {
            "lang": m["lang"],
            "mark": m["mark"],
            "why": (m["why"] or "").strip(),
            "body": m["body"],
            "line": text.count("\n", 0, m.start("body")) + 1,
        }
        for m in BLOCK.finditer(text)
    ]


def _ids(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_every_code_block_is_run_or_marked() -> None:
    for path in DOCS:
        for block in blocks(path):
            where = f"{path.name}:{block['line']}"
            if not block["lang"]:
                continue  # text
            if block["lang"] == "python":
                assert block["mark"] in (None, "skip"), where
                continue
            assert block["lang"] in ("bash", "sh", "console"), f"{where}: unknown block language"
            assert block["mark"] in ("flags", "skip"), (
                f"{where}: a shell block needs <!-- docs-test: flags|skip (why) --> above it"
            )
        for block in blocks(path):
            if block["mark"] == "skip":
                assert re.fullmatch(r"\(.{10,}\)", block["why"]), (
                    f"{path.name}:{block['line']}: a skipped block says why, in parentheses"
                )


def _commands(body: str) -> list[list[str]]:
    """The ``clearcube ...`` command lines of a shell block (continuations joined)."""
    joined = re.sub(r"\\\n\s*", " ", body)
    out = []
    for line in joined.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("clearcube "):
            out.append(shlex.split(line)[1:])
    return out


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                for deeper, subsub in _subparsers(sub).items():
                    found[f"{name} {deeper}"] = subsub
    return found


@pytest.mark.parametrize("path", DOCS, ids=_ids)
def test_documented_commands_use_flags_the_cli_has(path: Path) -> None:
    commands = _subparsers(build_parser())
    for block in blocks(path):
        if block["mark"] != "flags":
            continue
        lines = _commands(block["body"])
        assert lines, f"{path.name}:{block['line']}: a flags block without clearcube commands"
        for argv in lines:
            two = " ".join(argv[:2])
            name = two if two in commands else argv[0]
            assert name in commands, f"{path.name}:{block['line']}: no command {name!r}"
            known = {opt for action in commands[name]._actions for opt in action.option_strings}
            used = {a.split("=", 1)[0] for a in re.findall(r"--[a-z0-9-]+", " ".join(argv))}
            assert used <= known, (
                f"{path.name}:{block['line']}: clearcube {name} has no {sorted(used - known)}"
            )


def _python_blocks(path: Path) -> list[str]:
    sources = []
    for block in blocks(path):
        if block["lang"] == "python" and block["mark"] != "skip":
            sources.append(block["body"])
    return sources


@pytest.mark.parametrize("path", [p for p in DOCS if _python_blocks(p)], ids=_ids)
def test_python_blocks_run(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    shrink = SHRINK.get(path.name, [])
    sources = _python_blocks(path)
    text = "\n".join(sources)
    for documented, _ in shrink:
        assert documented in text, f"{path.name} no longer shows {documented!r}; update SHRINK"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for i, source in enumerate(sources):
        for documented, small in shrink:
            source = source.replace(documented, small)
        code = compile(source, f"{path.name} python block {i + 1}", "exec")
        exec(code, namespace)
    printed = capsys.readouterr().out
    assert printed.strip(), f"{path.name}: the examples printed nothing"
    if path.name == "README.md":
        result = namespace["result"]
        assert result.cog_path.is_file() and result.uncertainty_path.is_file()
        assert namespace["fitted"].rmse_before > 0
        assert namespace["fast"].uncertainty_path.is_file()  # the consistency student's run
