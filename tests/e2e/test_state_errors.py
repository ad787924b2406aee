"""A state directory gitopsd cannot use: exit 1 with one line naming the path and the fix.

Real conditions, made with real mounts (the suite runs as root, so file modes stop
nothing): a read-only bind mount, a full tmpfs, a journal that is not SQLite.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.e2e.conftest import Gitopsd, configmap
from tests.support.mounts import fill, read_only, small_tmpfs


def failure_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The `gitopsd: ...` lines of stderr; no traceback allowed."""
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("gitopsd: ")]


def synced_once(gitopsd: Gitopsd) -> None:
    ns = gitopsd.namespace
    gitopsd.remote.commit({"manifests/app.yaml": configmap("app", ns, color="blue")})
    gitopsd.write_config()
    first = gitopsd.run("--once")
    assert first.returncode == 0, first.stderr
    # A new commit: the next pass fetches, renders and marks it applied again.
    gitopsd.remote.commit({"manifests/app.yaml": configmap("app", ns, color="green")})


@pytest.mark.parametrize(
    ("folder", "culprit"),
    [
        ("", "gitopsd.lock"),  # the whole state directory: the lock file
        ("mirrors", "mirrors"),  # fetching the new commit
        ("render", "render"),  # the render cache
        ("source", "source"),  # remembering the applied commit
    ],
)
def test_read_only_state_directory_exits_1_naming_the_path(
    gitopsd: Gitopsd, folder: str, culprit: str
) -> None:
    synced_once(gitopsd)
    with read_only(gitopsd.state_dir / folder):
        result = gitopsd.run("--once")
    assert result.returncode == 1, result.stderr
    (line,) = failure_lines(result)
    assert f"state directory: {gitopsd.state_dir / culprit}" in line
    assert "the file system is read-only: make state_dir writable" in line


def test_journal_that_is_not_sqlite_exits_1_naming_it(gitopsd: Gitopsd) -> None:
    synced_once(gitopsd)
    journal = gitopsd.state_dir / "journal.sqlite"
    for leftover in gitopsd.state_dir.glob("journal.sqlite-*"):
        leftover.unlink()
    journal.write_bytes(b"this is not a database\n" * 400)
    for args in (["--once"], ["history"]):
        result = gitopsd.run(*args)
        assert result.returncode == 1, result.stderr
        (line,) = failure_lines(result)
        assert f"state directory: {journal}: file is not a database" in line
        assert "move the file aside" in line


def test_full_disk_exits_1_then_recovers_when_space_is_freed(gitopsd: Gitopsd) -> None:
    ns = gitopsd.namespace
    with small_tmpfs(gitopsd.state_dir, size="4m"):
        synced_once(gitopsd)
        # Random text, as a pack compresses repeated bytes to nothing.
        blob = os.urandom(150_000).hex()
        gitopsd.remote.commit({"manifests/big.yaml": configmap("big", ns, blob=blob)})
        fill(gitopsd.state_dir)
        result = gitopsd.run("--once")
        assert result.returncode == 1, result.stderr
        lines = failure_lines(result)
        assert lines and all(f"state directory: {gitopsd.state_dir}" in line for line in lines)
        assert "the disk is full: free space on it" in lines[0]
        (gitopsd.state_dir / "filler").unlink()
        again = gitopsd.run("--once")
        assert again.returncode == 0, again.stderr
