"""Secret stand-ins are keyed per installation: a change still shows, a guess cannot be
checked offline (issue 11)."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from gitopsd.errors import StateError
from gitopsd.normalize import redact_secret
from gitopsd.standin import KEY_FILE, installation_key, stand_in, use_installation_key


def test_the_same_value_differs_between_installations_and_a_change_shows(
    tmp_path: Path,
) -> None:
    one, two = installation_key(tmp_path / "one"), installation_key(tmp_path / "two")
    assert stand_in(b"hunter2", one) != stand_in(b"hunter2", two)
    assert stand_in(b"hunter2", one) == stand_in(b"hunter2", installation_key(tmp_path / "one"))
    assert stand_in(b"hunter2", one) != stand_in(b"hunter3", one)
    unsalted = hashlib.sha256(b"hunter2").hexdigest()[:8]
    assert unsalted not in stand_in(b"hunter2", one)


def test_the_key_file_is_private_and_kept(tmp_path: Path) -> None:
    key = installation_key(tmp_path)
    path = tmp_path / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) == 32 and installation_key(tmp_path) == key
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]  # no temporary left behind


def test_redaction_uses_the_loaded_installation_key(tmp_path: Path) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "stringData": {"password": "hunter2"}}
    use_installation_key(tmp_path / "one")
    first = redact_secret(secret)["stringData"]["password"]
    use_installation_key(tmp_path / "two")
    assert redact_secret(secret)["stringData"]["password"] != first
    assert first == stand_in(b"hunter2", installation_key(tmp_path / "one"))


def test_a_damaged_key_file_is_a_state_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_bytes(b"short")
    with pytest.raises(StateError) as refused:
        installation_key(tmp_path)
    assert KEY_FILE in str(refused.value) and "delete it" in str(refused.value)
