"""The `decryption:` section of a target, and `tools.sops`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gitopsd.config import load_config
from gitopsd.decryptconfig import DecryptionProvider, DecryptionSettings
from gitopsd.errors import ConfigError

TARGET = "  - name: app\n    repo: https://git.example.com/infra.git\n    branch: main\n"


def _load(tmp_path: Path, extra: str) -> DecryptionSettings | None:
    path = tmp_path / "gitopsd.yaml"
    path.write_text(f"state_dir: state\ntargets:\n{TARGET}{extra}")
    return load_config(path).targets[0].decryption


def test_keys_are_paths_from_the_config_folder_and_sops_defaults_to_path(tmp_path: Path) -> None:
    assert _load(tmp_path, "") is None
    settings = _load(
        tmp_path, "    decryption: {provider: sops, age_key_file: keys/age.key, gpg_keyring: /k}\n"
    )
    assert settings == DecryptionSettings(
        provider=DecryptionProvider.SOPS,
        age_key_file=tmp_path / "keys" / "age.key",
        gpg_keyring=Path("/k"),
        sops_tool="sops",
    )


def test_tools_sops_names_a_file_or_a_command(tmp_path: Path) -> None:
    extra = "    decryption: {age_key_file: a.key}\n    tools: {sops: bin/sops, helm: helm}\n"
    settings = _load(tmp_path, extra)
    assert settings is not None and settings.sops_tool == str(tmp_path / "bin" / "sops")
    extra = "    decryption: {age_key_file: a.key}\n    tools: {sops: sops-3.13}\n"
    settings = _load(tmp_path, extra)
    assert settings is not None and settings.sops_tool == "sops-3.13"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "    decryption: {provider: sops}\n",
            "targets[0].decryption: needs age_key_file or gpg_keyring (or both)",
        ),
        (
            "    decryption: {provider: kms, age_key_file: a}\n",
            "targets[0].decryption.provider: must be one of sops, not 'kms'",
        ),
        (
            "    decryption: {age_key: AGE-SECRET-KEY-1X}\n",
            "targets[0].decryption.age_key: unknown key",
        ),
        ("    tools: {sopz: x}\n", "targets[0].tools.sopz: unknown key"),
    ],
)
def test_mistakes_name_the_key(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        _load(tmp_path, extra)
