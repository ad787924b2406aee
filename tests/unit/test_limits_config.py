"""The max_revision_size target setting: its default, its size syntax, its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitopsd.config import load_config
from gitopsd.errors import ConfigError


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "gitopsd.yaml"
    path.write_text(f"targets:\n  - {{name: app, repo: /srv/repo.git, branch: main{extra}}}\n")
    return path


def test_max_revision_size_defaults_to_64_mib(tmp_path: Path) -> None:
    (target,) = load_config(_config(tmp_path)).targets
    assert target.source.max_revision_bytes == 64 * 1024 * 1024


def test_max_revision_size_takes_the_size_syntax(tmp_path: Path) -> None:
    (target,) = load_config(_config(tmp_path, ", max_revision_size: 512KiB")).targets
    assert target.source.max_revision_bytes == 512 * 1024


def test_max_revision_size_that_is_not_a_size_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"targets\[0\]\.max_revision_size: not a size"):
        load_config(_config(tmp_path, ", max_revision_size: lots"))
