"""`gitopsd diff`: what a revision would change in the live cluster, without changing it.

First every target's revision is read: from a local directory (`--path`), or fetched into
the mirror (`--ref`, or the configured ref) under the state-directory lock, in a scratch
state directory when a running gitopsd holds the lock. The lock is then released, and
each target gets a daemon's dry-run pass over that revision, with previews, through an
adapter that only reads and dry-runs (readonly.py): same render, normalisation, ignore
rules, server-side dry-runs and prune plan, while nothing is journaled, no inventory
saved, no render cached and no revision marked applied.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import structlog

from gitopsd.config import Config, TargetSettings
from gitopsd.errors import GitopsdError, LockError
from gitopsd.lock import StateLock
from gitopsd.passresult import PassResult
from gitopsd.preview import TargetPreview, target_preview
from gitopsd.runner import preview_pass
from gitopsd.source.git import GitSource
from gitopsd.source.local import read_directory
from gitopsd.source.snapshot import Origin, Snapshot
from gitopsd.standin import use_installation_key

log = structlog.get_logger("gitopsd.diff")

_WORKERS = 4
_T = TypeVar("_T")
_R = TypeVar("_R")


def previews(
    config: Config,
    targets: Sequence[TargetSettings],
    *,
    ref: str | None = None,
    path: Path | None = None,
    wait: bool = False,
) -> list[TargetPreview]:
    """One preview per target, in order: of `path` (one target), of `ref`, or of the
    configured ref when neither is given."""
    if path is not None:
        if len(targets) != 1:
            raise ValueError("a directory is the source of one target")
        target = targets[0]
        with contextlib.suppress(GitopsdError):  # stand-ins as the journal and --ref show them
            use_installation_key(config.state_dir)
        snapshots = [_read(lambda: read_directory(target.name, path, target.source))]
    else:
        with _state_dir(config, wait=wait) as state_dir:

            def fetch(target: TargetSettings) -> Snapshot | GitopsdError:
                return _read(lambda: GitSource(target.name, target.source, state_dir).snapshot(ref))

            snapshots = _each(targets, fetch)
    origin = Origin.PATH if path is not None else Origin.GIT
    return _each(list(zip(targets, snapshots, strict=True)), lambda pair: _preview(*pair, origin))


def _read(read: Callable[[], Snapshot]) -> Snapshot | GitopsdError:
    """The snapshot, or the error that names why it could not be read (a failed target)."""
    try:
        return read()
    except GitopsdError as error:
        return error


def _preview(
    target: TargetSettings, snapshot: Snapshot | GitopsdError, origin: Origin
) -> TargetPreview:
    if isinstance(snapshot, GitopsdError):
        return target_preview(PassResult.failed(target.name, snapshot, time.time()), origin.value)
    result, unvalidated = preview_pass(target, snapshot)
    return target_preview(
        result, snapshot.origin.value, refusal=snapshot.refusal, notes=unvalidated
    )


def _each(items: Sequence[_T], work: Callable[[_T], _R]) -> list[_R]:
    """`work` on every item, a few at a time (fetches and passes wait on the network)."""
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        return list(pool.map(work, items))


@contextlib.contextmanager
def _state_dir(config: Config, *, wait: bool) -> Iterator[Path]:
    """The state directory, locked; a scratch one while another gitopsd holds it."""
    with StateLock(config.state_dir) as lock:
        try:
            lock.acquire(wait=wait)
            use_installation_key(config.state_dir)  # stand-ins as the journal shows them
        except LockError as exc:
            with contextlib.suppress(GitopsdError):  # another user's daemon: a process key
                use_installation_key(config.state_dir)
            with tempfile.TemporaryDirectory(prefix="gitopsd-diff-") as scratch:
                log.info("using_scratch_state_dir", reason=str(exc), state_dir=scratch)
                yield Path(scratch)
            return
        yield config.state_dir
    log.info("state_lock_released", state_dir=str(config.state_dir), reason="revisions read")
