"""Fixtures shared by the CLI's unit tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """A configuration with two targets on one remote (never fetched by these tests)."""
    path = tmp_path / "gitopsd.yaml"
    path.write_text(
        textwrap.dedent(
            """
            state_dir: state
            targets:
              - {name: web, repo: https://git.example.com/infra.git, branch: main}
              - {name: api, repo: https://git.example.com/infra.git, tag: v1}
            """
        )
    )
    return path
