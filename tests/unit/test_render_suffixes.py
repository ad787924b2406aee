"""Manifest suffixes are matched whatever their case, and choose the parser the same way."""

from __future__ import annotations

from gitopsd.model import SourceFile
from gitopsd.render import render

CONFIGMAP_JSON = (
    b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "scale": 1e3}'
)


def test_upper_case_json_is_parsed_as_json() -> None:
    for path in ("a.json", "a.JSON"):
        (obj,) = render(
            [SourceFile(path, CONFIGMAP_JSON)],
            default_namespace="default",
            target="t",
            namespaced=lambda _v, _k: True,
        )
        # JSON reads 1e3 as a number; YAML 1.1 (the wrong parser) as the string "1e3".
        assert obj.manifest["scale"] == 1000.0


def test_upper_case_yaml_is_a_manifest() -> None:
    text = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: y}\n"
    objects = render(
        [SourceFile("b.YAML", text), SourceFile("c.Yml", text.replace(b"y}", b"z}"))],
        default_namespace="default",
        target="t",
        namespaced=lambda _v, _k: True,
    )
    assert sorted(obj.key.name for obj in objects) == ["y", "z"]
