"""The local mirror's own failures, against a real remote over smart HTTP.

A damaged mirror is fetched afresh once (never reported as an unreachable remote),
a ref lock left by a killed gitopsd is removed, and a full or read-only state
directory is a StateError naming the path and the fix.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import structlog

from gitopsd.errors import MirrorDamagedError, StateError
from gitopsd.source import GitSource
from tests.source.conftest import MANIFESTS
from tests.support.git_remotes import BareRemote
from tests.support.mounts import fill, read_only, small_tmpfs

EXPECTED = ["app.yaml", "data.json", "extra/more.yml"]
HttpSource = Callable[..., GitSource]


def only_mirror(state_dir: Path) -> Path:
    (mirror,) = (state_dir / "mirrors").iterdir()
    return mirror


def corrupt_packs(mirror: Path) -> None:
    """Flip every byte of each pack's body, keeping its header and the index intact."""
    packs = list((mirror / "objects" / "pack").glob("*.pack"))
    assert packs
    for pack in packs:
        data = bytearray(pack.read_bytes())
        for index in range(12, len(data) - 20):
            data[index] ^= 0x55
        pack.chmod(0o644)
        pack.write_bytes(bytes(data))


def remove_objects(mirror: Path) -> None:
    objects = [p for p in (mirror / "objects").rglob("*") if p.is_file() and "info" not in p.parts]
    assert objects
    for path in objects:
        path.unlink()


def events(logs: list[dict[str, object]], name: str) -> list[dict[str, object]]:
    return [entry for entry in logs if entry["event"] == name]


def paths(source: GitSource) -> list[str]:
    return [f.path for f in source.read_tree(source.fetch())]


def test_corrupt_pack_is_fetched_afresh_once(
    bare_remote: BareRemote, http_source: HttpSource, state_dir: Path
) -> None:
    bare_remote.commit(MANIFESTS)
    assert paths(http_source(bare_remote)) == EXPECTED
    mirror = only_mirror(state_dir)
    corrupt_packs(mirror)
    with structlog.testing.capture_logs() as logs:
        assert paths(http_source(bare_remote)) == EXPECTED  # a new process, the same mirror
    (damaged,) = events(logs, "mirror_damaged")
    assert damaged["path"] == str(mirror)


def test_objects_lost_before_reading_the_tree_are_fetched_afresh(
    bare_remote: BareRemote, http_source: HttpSource, state_dir: Path
) -> None:
    bare_remote.commit(MANIFESTS)
    source = http_source(bare_remote)
    revision = source.fetch()
    remove_objects(only_mirror(state_dir))
    with structlog.testing.capture_logs() as logs:
        files = source.read_tree(revision)
    assert [f.path for f in files] == EXPECTED
    assert len(events(logs, "mirror_damaged")) == 1


def test_mirror_still_lacking_the_commit_after_a_fresh_fetch_is_not_retried(
    bare_remote: BareRemote, http_source: HttpSource, state_dir: Path
) -> None:
    first = bare_remote.commit(MANIFESTS)
    bare_remote.commit({"deploy/new.yaml": "kind: ConfigMap\n"})
    source = http_source(bare_remote)
    revision = source.fetch()
    remove_objects(only_mirror(state_dir))
    # The remote forgets the commit meanwhile, so a fresh mirror cannot hold it either.
    bare_remote.force_push({"deploy/other.yaml": "kind: ConfigMap\n"}, onto=first)
    with pytest.raises(MirrorDamagedError) as err:
        source.read_tree(revision)
    message = str(err.value)
    assert not err.value.retryable
    assert "\n" not in message and "unreachable" not in message
    assert f"delete {only_mirror(state_dir)}" in message


def test_stale_ref_lock_left_by_a_kill_is_removed_once(
    bare_remote: BareRemote, http_source: HttpSource, state_dir: Path
) -> None:
    bare_remote.commit(MANIFESTS)
    assert paths(http_source(bare_remote)) == EXPECTED
    lock = only_mirror(state_dir) / "refs" / "heads" / "main.lock"
    lock.write_text("0" * 40 + "\n")  # what a gitopsd killed mid-fetch leaves behind
    new = bare_remote.commit({"deploy/new.yaml": "kind: ConfigMap\n"})
    source = http_source(bare_remote)  # the next process, holding the state-directory lock
    with structlog.testing.capture_logs() as logs:
        assert source.fetch().commit == new
        bare_remote.commit({"deploy/newer.yaml": "kind: ConfigMap\n"})
        source.fetch()
    assert not lock.exists()
    (removed,) = events(logs, "stale_lock_removed")
    assert removed["path"] == str(lock)


def test_full_disk_while_fetching_is_a_state_error(
    bare_remote: BareRemote, http_source: HttpSource, state_dir: Path
) -> None:
    bare_remote.commit(MANIFESTS)
    with small_tmpfs(state_dir):
        source = http_source(bare_remote)
        revision = source.fetch()
        fill(state_dir)
        # Random text: a pack compresses repeated bytes to nothing.
        bare_remote.commit({"deploy/big.json": json.dumps({"x": os.urandom(200_000).hex()})})
        with pytest.raises(StateError) as err:
            source.fetch()
        message = str(err.value)
        assert str(only_mirror(state_dir)) in message and "the disk is full" in message
        assert not err.value.retryable
        with pytest.raises(StateError, match="the disk is full"):
            source.mark_applied(revision)


def test_read_only_state_directory_is_a_state_error(
    bare_remote: BareRemote, http_source: HttpSource, state_dir: Path
) -> None:
    bare_remote.commit(MANIFESTS)
    source = http_source(bare_remote)
    revision = source.fetch()
    bare_remote.commit({"deploy/new.yaml": "kind: ConfigMap\n"})
    with read_only(state_dir):
        with pytest.raises(StateError, match="the file system is read-only") as err:
            source.fetch()
        assert str(only_mirror(state_dir)) in str(err.value)
        with pytest.raises(StateError, match=r"source.*read-only"):
            source.mark_applied(revision)


def test_mirror_that_cannot_be_created_is_a_state_error(
    bare_remote: BareRemote, http_source: HttpSource, state_dir: Path
) -> None:
    bare_remote.commit(MANIFESTS)
    with read_only(state_dir), pytest.raises(StateError, match="read-only") as err:
        http_source(bare_remote).fetch()
    assert str(state_dir / "mirrors") in str(err.value)
