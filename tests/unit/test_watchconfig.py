"""A target's `watch` and `watch_debounce` keys (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitopsd.config import load_config
from gitopsd.errors import ConfigError
from gitopsd.watchconfig import WatchSettings


def _load(tmp_path: Path, keys: str) -> WatchSettings:
    path = tmp_path / "gitopsd.yaml"
    target = "{name: web, repo: https://git.example.com/infra.git, branch: main" + keys + "}"
    path.write_text(f"state_dir: state\ntargets:\n  - {target}\n")
    return load_config(path).targets[0].watch


def test_watching_is_on_with_a_100ms_debounce_by_default(tmp_path: Path) -> None:
    assert _load(tmp_path, "") == WatchSettings(enabled=True, debounce_seconds=0.1)


def test_watching_off_and_a_longer_debounce(tmp_path: Path) -> None:
    settings = _load(tmp_path, ", watch: false, watch_debounce: 250ms")
    assert settings == WatchSettings(enabled=False, debounce_seconds=0.25)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (", watch: yes-please", "targets[0].watch: must be true or false"),
        (", watch_debounce: 0s", "targets[0].watch_debounce: must be longer than zero"),
        (", watch_debounce: 2m", "targets[0].watch_debounce: must be at most"),
        (", watch_debounce: soon", "targets[0].watch_debounce"),
    ],
)
def test_refused_naming_the_key(tmp_path: Path, keys: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        _load(tmp_path, keys)
