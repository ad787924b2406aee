"""Helpers to build value objects from plain manifests and to read YAML test tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gitopsd.model import DesiredObject, LiveObject, Manifest, ResourceKey, group_of

TESTDATA = Path(__file__).parent / "testdata"


def cases(name: str) -> list[Any]:
    """The cases of a table under testdata/, as pytest params named by their `name`."""
    import pytest

    table = yaml.safe_load((TESTDATA / name).read_text())
    return [pytest.param(case, id=case["name"]) for case in table]


def key_of(manifest: Manifest) -> ResourceKey:
    metadata = manifest["metadata"]
    return ResourceKey(
        group_of(manifest["apiVersion"]),
        manifest["kind"],
        metadata.get("namespace", ""),
        metadata["name"],
    )


def desired(manifest: Manifest, origin: str = "test.yaml#1") -> DesiredObject:
    return DesiredObject(key_of(manifest), manifest, origin)


def live(manifest: Manifest) -> LiveObject:
    return LiveObject(key_of(manifest), manifest)
