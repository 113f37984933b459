"""The console script's root: version, help, and the exit-code contract."""

from __future__ import annotations

import pytest

from clearcube import BadInputError, ClearcubeError, __version__
from clearcube.pipeline import cli


def test_version_prints_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"clearcube {__version__}"


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "usage: clearcube" in capsys.readouterr().out


def test_unknown_flag_exits_2() -> None:
    assert cli.main(["--no-such-flag"]) == 2


@pytest.mark.parametrize(
    ("error", "code"),
    [(BadInputError("bbox is inverted; pass W S E N"), 2), (ClearcubeError("tile 3 failed"), 1)],
)
def test_errors_map_to_exit_codes(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: ClearcubeError,
    code: int,
) -> None:
    """BadInputError -> 2, any other ClearcubeError -> 1, each with its one-line message on stderr."""
    parser = cli.build_parser()

    def fail(_args: object) -> int:
        raise error

    sub = next(a for a in parser._actions if a.dest == "command")
    probe = sub.add_parser("probe")  # type: ignore[attr-defined]
    probe.set_defaults(func=fail)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    assert cli.main(["probe"]) == code
    err = capsys.readouterr().err.strip()
    assert str(error) in err
    assert len(err.splitlines()) == 1
