"""Remember what a commit rendered to, across processes.

Rendering 1,000 manifests costs about 0.3 s of YAML construction, more than the
rest of a pass in which nothing changed; a cron job running `--once` against an
unchanged commit pays it every time. The rendered objects depend only on the
commit and the target's render settings, so they are stored under a key made
of both, one file per target, in the state directory next to the Git mirror
that already holds the same content (so the file is as private as the mirror).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gitopsd import __version__
from gitopsd.config import TargetSettings
from gitopsd.errors import StateError
from gitopsd.model import DesiredObject, ResourceKey
from gitopsd.normalize import is_decrypted
from gitopsd.renderers import Rendered, fingerprint

_FORMAT = 2


def cache_key(target: TargetSettings, commit: str) -> str:
    """A digest of everything render reads besides the files (ignore rules apply later)."""
    inputs = {
        "format": _FORMAT,
        "gitopsd": __version__,  # render rules may change with the version
        "commit": commit,
        "target": target.name,
        "namespace": target.namespace,
        "path": target.source.path,
        "max_file_bytes": target.source.max_file_bytes,
        "max_revision_bytes": target.source.max_revision_bytes,
        # Namespaced or not comes from this cluster's discovery.
        "cluster": [str(target.cluster.kubeconfig), target.cluster.context],
        # kustomize/Helm settings, the tools' files and the substituted variables.
        "render": fingerprint(target),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


class RenderCache:
    """The last render of one target, on disk."""

    def __init__(self, directory: Path, target: str) -> None:
        self._file = directory / f"{target}.json"

    def get(
        self, key: str, capabilities: Callable[[], str] | None = None
    ) -> tuple[DesiredObject, ...] | None:
        """The objects stored under `key`, or None (absent, another key, unreadable)."""
        found = self.lookup(key, capabilities)
        return None if found is None else found.objects

    def lookup(self, key: str, capabilities: Callable[[], str] | None = None) -> Rendered | None:
        """The render stored under `key`; None also when it is a Helm render that read other
        capabilities than the cluster's now (`capabilities` gives their digest)."""
        try:
            stored = json.loads(self._file.read_bytes())
            if stored.get("key") != key:
                return None
            objects = tuple(_object(item) for item in stored["objects"])
            read = stored.get("capabilities")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # a cache is only ever an optimisation: render again
        if read is not None and (capabilities is None or capabilities() != read):
            return None  # a CRD came or went, or the cluster was upgraded: render again
        return Rendered(objects, read if isinstance(read, str) else None)

    def put(
        self, key: str, objects: Sequence[DesiredObject], capabilities: str | None = None
    ) -> None:
        """Replace the stored render atomically; readable by the owner only.

        A StateError when it cannot be written: the disk or mount that refuses the cache
        also refuses the journal and the mirrors, so it is reported here, by path.
        """
        if any(is_decrypted(obj.manifest) for obj in objects):
            return  # decrypted values never reach the disk: such a render is not kept
        payload = {
            "key": key,
            "objects": [_item(obj) for obj in objects],
            "capabilities": capabilities,  # a Helm render's: see lookup
        }
        try:
            self._file.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=self._file.parent, prefix=".render-")
        except OSError as exc:
            raise StateError(self._file, exc.strerror or str(exc)) from exc
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(payload, out, separators=(",", ":"))
            os.replace(temporary, self._file)
        except BaseException as exc:
            Path(temporary).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise StateError(self._file, exc.strerror or str(exc)) from exc
            raise


def _item(obj: DesiredObject) -> dict[str, Any]:
    key = obj.key
    return {
        "key": [key.group, key.kind, key.namespace, key.name],
        "manifest": obj.manifest,
        "origin": obj.origin,
    }


def _object(item: dict[str, Any]) -> DesiredObject:
    return DesiredObject(ResourceKey(*item["key"]), item["manifest"], item["origin"])
