"""Report tables in the layout of the SeqDMs paper (Tables 1–3), as Markdown, CSV and JSON.

Every table row is the mean over samples of the per-image metrics of one method within one
group (:func:`clearcube.model.metrics.average_metrics`: NaN splits and infinite PSNRs skipped,
``exact`` counts the latter). The paper's column name NRMSE is kept for the RMSE on [0, 1] data.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from clearcube.model.evaluation.runner import SampleResult
from clearcube.model.metrics import average_metrics

#: Cloud-coverage bins of the paper's Table 3: 0–10 %, 10–20 %, …, 90–100 %.
COVERAGE_BINS: tuple[str, ...] = tuple(f"{10 * i}-{10 * (i + 1)}%" for i in range(10))

#: (Markdown header, metric key, decimals) of the Table-1 columns.
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("NRMSE(All) ↓", "rmse_all", 4),
    ("NRMSE(Cloudy) ↓", "rmse_cloudy", 4),
    ("NRMSE(Clear) ↓", "rmse_clear", 4),
    ("PSNR ↑", "psnr", 2),
    ("SSIM ↑", "ssim", 3),
    ("SAM (°) ↓", "sam_deg", 2),
    ("SAM (rad) ↓", "sam_rad", 3),
)

CSV_FIELDS = (
    "table",
    "method",
    "length",
    "coverage_bin",
    "target_in_inputs",
    "source",
    "n",
    "n_exact",
    *(key for _, key, _ in COLUMNS),
)


def coverage_bin(coverage: float) -> str:
    """The Table-3 bin label of a cloud coverage in [0, 1] (100 % falls in the last bin)."""
    return COVERAGE_BINS[min(math.floor(coverage * 10 + 1e-9), 9)]


def _group(
    results: Sequence[SampleResult], table: str, key: Callable[[SampleResult], dict[str, Any]]
) -> list[dict[str, Any]]:
    groups: dict[tuple[Any, ...], list[SampleResult]] = {}
    for r in results:
        k = key(r)
        groups.setdefault((*k.values(), r.method), []).append(r)
    methods = list(dict.fromkeys(r.method for r in results))
    rows = []
    for _, members in sorted(groups.items(), key=lambda kv: (kv[0][:-1], methods.index(kv[0][-1]))):
        first = members[0]
        avg = average_metrics(m.metrics for m in members)
        row: dict[str, Any] = {"table": table, "method": first.method, **key(first)}
        row.update({"n": int(avg.pop("n")), "n_exact": int(avg.pop("n_exact")), **avg})
        rows.append(row)
    return rows


def summarize(results: Sequence[SampleResult]) -> dict[str, list[dict[str, Any]]]:
    """All report tables.

    ``table1`` (the shortest L), ``by_length`` (Table 2), ``by_coverage`` (Table 3),
    ``target_in_inputs`` (with / without the target date among the inputs), ``by_source`` and
    ``all`` (every sample).
    """
    if not results:
        return {}
    shortest = min(r.length for r in results)
    return {
        "table1": _group(
            [r for r in results if r.length == shortest], "table1", lambda r: {"length": r.length}
        ),
        "by_length": _group(results, "by_length", lambda r: {"length": r.length}),
        "by_coverage": _group(
            results,
            "by_coverage",
            lambda r: {"coverage_bin": coverage_bin(r.cloud_coverage), "length": r.length},
        ),
        "target_in_inputs": _group(
            results, "target_in_inputs", lambda r: {"target_in_inputs": r.target_in_inputs}
        ),
        "by_source": _group(results, "by_source", lambda r: {"source": r.source}),
        "all": _group(results, "all", lambda r: {}),
    }


def _fmt(value: Any, decimals: int) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.{decimals}f}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]], keys: Sequence[str] = ()) -> str:
    """A Markdown table: the grouping ``keys``, Method, the Table-1 columns, n and exact."""
    header = [*keys, "Method", *(h for h, _, _ in COLUMNS), "n", "exact"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [str(row[k]) for k in keys] + [row["method"]]
        cells += [_fmt(row[key], d) for _, key, d in COLUMNS] + [str(row["n"]), str(row["n_exact"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def counts(results: Sequence[SampleResult]) -> dict[str, Any]:
    """How many samples there are, by length, by source, and with the target among the inputs."""
    first = {r.sample: r for r in results}.values()
    by_length: dict[int, int] = {}
    by_source: dict[str, int] = {}
    for r in first:
        by_length[r.length] = by_length.get(r.length, 0) + 1
        by_source[r.source] = by_source.get(r.source, 0) + 1
    return {
        "samples": len(first),
        "target_in_inputs": sum(r.target_in_inputs for r in first),
        "by_length": dict(sorted(by_length.items())),
        "by_source": dict(sorted(by_source.items())),
    }


def render_markdown(results: Sequence[SampleResult], *, title: str, intro: str = "") -> str:
    """The whole report as Markdown."""
    tables = summarize(results)
    c = counts(results)
    shortest = min(r.length for r in results)
    parts = [f"# {title}", ""]
    if intro:
        parts += [intro.strip(), ""]
    parts += [
        f"{c['samples']} samples ({', '.join(f'L={k}: {v}' for k, v in c['by_length'].items())}; "
        f"{', '.join(f'{k}: {v}' for k, v in c['by_source'].items())}); "
        f"{c['target_in_inputs']} have the target date among their inputs.",
        "",
        f"## Table 1: all methods, L = {shortest}",
        "",
        markdown_table(tables["table1"]),
        "",
        "## Table 2: by input sequence length L",
        "",
        markdown_table(tables["by_length"], ["length"]),
        "",
        "## With and without the target date among the inputs (all L)",
        "",
        markdown_table(tables["target_in_inputs"], ["target_in_inputs"]),
        "",
        "## By source (all L)",
        "",
        markdown_table(tables["by_source"], ["source"]),
        "",
        "## Table 3: by cloud coverage (mean cloudy fraction of the inputs) and L",
        "",
        markdown_table(tables["by_coverage"], ["coverage_bin", "length"]),
        "",
    ]
    return "\n".join(parts)


def write_report(
    results: Sequence[SampleResult],
    out_dir: str | os.PathLike[str],
    *,
    title: str = "clearcube evaluation",
    intro: str = "",
    config: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``report.md``, ``summary.csv``, ``summary.json`` and ``samples.csv`` to ``out_dir``.

    Returns:
        File kind -> path.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = summarize(results)
    paths = {
        "markdown": out / "report.md",
        "csv": out / "summary.csv",
        "json": out / "summary.json",
        "samples": out / "samples.csv",
    }
    paths["markdown"].write_text(
        render_markdown(results, title=title, intro=intro), encoding="utf-8"
    )
    with paths["csv"].open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, restval="")
        writer.writeheader()
        for rows in tables.values():
            writer.writerows(rows)
    with paths["samples"].open("w", newline="", encoding="utf-8") as f:
        sample_rows = [r.as_row() for r in results]
        writer = csv.DictWriter(f, fieldnames=list(sample_rows[0]) if sample_rows else ["sample"])
        writer.writeheader()
        writer.writerows(sample_rows)
    payload = {"config": config or {}, "counts": counts(results), "tables": tables}
    paths["json"].write_text(json.dumps(_json_safe(payload), indent=2), encoding="utf-8")
    return paths


def _json_safe(value: Any) -> Any:
    """Replace NaN / ±inf (invalid JSON) by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value
