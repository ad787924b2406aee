"""A target's `decryption:` section: SOPS, with age identities and OpenPGP keys from files.

Kept apart from config.py, like renderconfig.py: config.py only calls `read_decryption`.
Key material is named by path and read by `sops` itself at use time, never copied
into the configuration.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from gitopsd.configread import Section

DECRYPTION_KEYS = frozenset({"decryption"})
_KEYS = {"provider", "age_key_file", "gpg_keyring"}


class DecryptionProvider(enum.Enum):
    SOPS = "sops"


@dataclass(frozen=True)
class DecryptionSettings:
    """How a target decrypts the SOPS-encrypted files of its revisions."""

    provider: DecryptionProvider = DecryptionProvider.SOPS
    age_key_file: Path | None = None  # one or more age identities, one a line
    gpg_keyring: Path | None = None  # a GnuPG home folder, or a file of exported secret keys
    sops_tool: str = "sops"  # `tools.sops`: a name looked up on PATH, or a file


def read_decryption(node: Section) -> DecryptionSettings | None:
    """The `decryption:` section of one target section, or None when it has none."""
    section = node.section("decryption", _KEYS)
    if section is None:
        return None
    settings = DecryptionSettings(
        provider=section.choice("provider", DecryptionProvider, DecryptionProvider.SOPS),
        age_key_file=section.path("age_key_file"),
        gpg_keyring=section.path("gpg_keyring"),
        sops_tool=_sops_tool(node),
    )
    if settings.age_key_file is None and settings.gpg_keyring is None:
        raise section.error("needs age_key_file or gpg_keyring (or both) to decrypt with")
    return settings


def _sops_tool(node: Section) -> str:
    tools = node.data.get("tools")
    if not isinstance(tools, dict) or tools.get("sops") is None:
        return "sops"
    # The `tools:` section's keys are checked where it is read (renderconfig.read_render).
    section = Section(
        {"sops": tools["sops"]}, file=node.file, where=f"{node.where}.tools", keys={"sops"}
    )
    value = section.required_text("sops")
    # A bare name is looked up on PATH; anything with a slash is a file.
    return str(section.path("sops")) if "/" in value or value.startswith("~") else value
