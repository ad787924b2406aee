"""Reading limits of a revision: its total size is checked from object headers, before reading."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gitopsd.errors import UnsafeTreeError
from gitopsd.source import GitSource
from tests.source.conftest import MANIFESTS, MakeSource
from tests.support.git_remotes import BareRemote, GitHttpServer, Symlink


def _configmap(name: str, size: int) -> str:
    head = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata:\n  blob: "
    return head + "x" * (size - len(head) - 1) + "\n"


def test_revision_above_max_revision_size_is_refused_naming_target_revision_and_limit(
    bare_remote: BareRemote,
    http_source: Callable[..., GitSource],
    git_http_server: GitHttpServer,
) -> None:
    files = {f"deploy/big-{i}.yaml": _configmap(f"big-{i}", 3000) for i in range(4)}
    bare_remote.commit({**MANIFESTS, **files})
    source = http_source(bare_remote, max_file_bytes=4096, max_revision_bytes=10_000)
    revision = source.fetch()

    with pytest.raises(UnsafeTreeError) as caught:
        source.read_tree(revision)

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"target web, remote {git_http_server.url(bare_remote)}: ")
    assert f"at {revision.short}: " in message
    assert "above max_revision_size (10000 bytes)" in message
    assert "raise max_revision_size" in message  # the fix
    assert not caught.value.retryable


def test_only_files_that_would_be_read_count(
    bare_remote: BareRemote, make_source: MakeSource
) -> None:
    bare_remote.commit(
        {
            **MANIFESTS,
            "deploy/notes.md": "n" * 20_000,  # not a manifest: never read
            "other/big.yaml": _configmap("other", 20_000),  # outside the path
            "deploy/fits.yaml": _configmap("fits", 9_000),
        }
    )
    total = sum(len(v) for k, v in MANIFESTS.items() if k.startswith("deploy/") and "." in k)
    total -= len(MANIFESTS["deploy/README.md"])
    source = make_source(bare_remote.file_url, max_revision_bytes=total + 9_000)
    paths = [f.path for f in source.read_tree(source.fetch())]
    assert paths == ["app.yaml", "data.json", "extra/more.yml", "fits.yaml"]

    tighter = make_source(bare_remote.file_url, max_revision_bytes=total + 8_999)
    with pytest.raises(UnsafeTreeError, match=r"above max_revision_size \(\d+ bytes\)"):
        tighter.read_tree(tighter.fetch())


def test_a_symlinked_manifest_counts_each_time_it_is_read(
    bare_remote: BareRemote, make_source: MakeSource
) -> None:
    bare_remote.commit(
        {"deploy/a.yaml": _configmap("a", 6_000), "deploy/b.yaml": Symlink("a.yaml")}
    )
    source = make_source(bare_remote.file_url, max_revision_bytes=10_000)
    with pytest.raises(UnsafeTreeError, match=r"total 12000 bytes, above max_revision_size"):
        source.read_tree(source.fetch())
