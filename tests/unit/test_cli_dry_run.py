"""`--dry-run` without `--once` is refused: as a daemon it would print nothing (issue 11)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitopsd import cli


def test_dry_run_without_once_is_a_usage_error_saying_what_to_run(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--dry-run", "--config", str(config_file)]) == cli.EXIT_USAGE
    error = capsys.readouterr().err
    assert error == (
        "gitopsd: --dry-run needs --once (`gitopsd --once --dry-run`); to preview a change "
        "continuously use `gitopsd diff`\n"
    )
