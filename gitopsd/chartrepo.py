"""Charts from a Helm chart repository (`helm.chart` + `helm.repo` + `helm.version`).

The index is kept in the state directory with its ETag and Last-Modified, so an
unchanged repository costs one conditional request per pass (304, no body). A chart
archive is fetched once per resolved version, checked against the index's sha256
digest before it is stored, and re-used afterwards (checked again against the index on
every use, so a replaced file is fetched anew). Credentials: `username` with
`password_file`/`password_env`, sent as Basic auth, never logged or shown.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gitopsd import semver
from gitopsd.errors import RemoteUnreachableError, RenderError, SourceError
from gitopsd.renderconfig import HelmSettings

_MAX_INDEX = 64 * 1024 * 1024
_MAX_ARCHIVE = 64 * 1024 * 1024
_SLUG = re.compile(r"[^A-Za-z0-9._-]+")
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class ResolvedChart:
    """One chart version, its verified archive on disk."""

    name: str
    version: str
    digest: str
    archive: Path


class ChartRepository:
    """One target's chart repository, cached under `directory` (in the state directory)."""

    def __init__(self, directory: Path, settings: HelmSettings, target: str, timeout: float):
        assert settings.repo is not None and settings.chart is not None
        self.settings = settings
        self.repo = settings.repo.rstrip("/") + "/"
        self.where = f"target {target}: chart {settings.chart} from {_shown(self.repo)}"
        self.directory = directory / _SLUG.sub("_", self.repo.split("://", 1)[-1]).strip("_")
        self.timeout = timeout
        self.requests = 0  # HTTP requests made, for tests and benchmarks

    def resolve(self) -> ResolvedChart:
        """The highest version matching `helm.version` (any when unset), its archive verified."""
        version, entry = self.resolve_version()
        return self._archive(version, entry)

    def resolve_version(self) -> tuple[str, dict[str, Any]]:
        """The version `helm.version` selects and its index entry; one conditional request."""
        entries = self._index().get("entries") or {}
        versions = entries.get(self.settings.chart) if isinstance(entries, dict) else None
        if not isinstance(versions, list) or not versions:
            raise RenderError(f"{self.where}: the repository's index has no chart of that name")
        by_version = {str(v.get("version")): v for v in versions if isinstance(v, dict)}
        wanted = self.settings.version or ">=0.0.0"
        try:
            chosen = semver.highest_match(wanted, by_version)
        except semver.RangeError as exc:
            raise RenderError(f"{self.where}: helm.version {wanted!r}: {exc}") from exc
        if chosen is None:
            raise RenderError(
                f"{self.where}: no version matches {wanted!r} "
                f"(the index has {', '.join(sorted(by_version)[-5:])})"
            )
        return chosen, by_version[chosen]

    # --- the index --------------------------------------------------------------------

    def _index(self) -> dict[str, Any]:
        cached, meta_file = self.directory / "index.yaml", self.directory / "index.json"
        meta = _read_json(meta_file) if cached.is_file() else {}
        headers = {}
        if meta.get("etag"):
            headers["If-None-Match"] = meta["etag"]
        if meta.get("last_modified"):
            headers["If-Modified-Since"] = meta["last_modified"]
        url = urllib.parse.urljoin(self.repo, "index.yaml")
        status, body, response_headers = self._get(url, headers, _MAX_INDEX)
        if status == 304:
            body = cached.read_bytes()
        else:
            _write(cached, body)
            _write(
                meta_file,
                json.dumps(
                    {
                        "etag": response_headers.get("ETag"),
                        "last_modified": response_headers.get("Last-Modified"),
                    }
                ).encode(),
            )
        try:
            data = yaml.load(body, Loader=_Loader)
        except yaml.YAMLError as exc:
            raise RenderError(f"{self.where}: index.yaml is not valid YAML") from exc
        if not isinstance(data, dict):
            raise RenderError(f"{self.where}: index.yaml is not a mapping")
        return data

    # --- archives ---------------------------------------------------------------------

    def _archive(self, version: str, entry: dict[str, Any]) -> ResolvedChart:
        digest = str(entry.get("digest") or "")
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise RenderError(
                f"{self.where}: version {version} has no sha256 digest in the index; "
                "refusing an archive that cannot be verified"
            )
        name = self.settings.chart or ""
        path = self.directory / f"{_SLUG.sub('_', name)}-{_SLUG.sub('_', version)}.tgz"
        if path.is_file() and _sha256(path.read_bytes()) == digest:
            return ResolvedChart(name, version, digest, path)
        urls = entry.get("urls")
        if not isinstance(urls, list) or not urls or not isinstance(urls[0], str):
            raise RenderError(f"{self.where}: version {version} has no download URL")
        url = urllib.parse.urljoin(self.repo, urls[0])
        _, body, _ = self._get(url, {}, _MAX_ARCHIVE)
        if _sha256(body) != digest:
            raise RenderError(
                f"{self.where}: the archive of version {version} does not match the index's "
                "digest; not used"
            )
        _write(path, body)
        return ResolvedChart(name, version, digest, path)

    # --- HTTP -------------------------------------------------------------------------

    def _get(
        self, url: str, headers: dict[str, str], limit: int
    ) -> tuple[int, bytes, dict[str, str]]:
        request = urllib.request.Request(url, headers={**headers, **self._auth()})
        self.requests += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read(limit + 1)
                if len(body) > limit:
                    raise RenderError(f"{self.where}: {_shown(url)} is larger than {limit} bytes")
                return response.status, body, dict(response.headers)
        except urllib.error.HTTPError as exc:
            exc.close()  # it holds the response's socket
            if exc.code == 304:
                return 304, b"", {}
            if exc.code in (401, 403):
                raise SourceError(
                    f"{self.where}: {_shown(url)} answered {exc.code}: check helm.username and "
                    "helm.password_file/password_env"
                ) from None
            raise RemoteUnreachableError(
                f"{self.where}: {_shown(url)} answered HTTP {exc.code}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RemoteUnreachableError(
                f"{self.where}: cannot reach {_shown(url)}: {reason}"
            ) from None

    def _auth(self) -> dict[str, str]:
        if self.settings.username is None:
            return {}
        password = _password(self.settings, self.where)
        token = base64.b64encode(f"{self.settings.username}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}


def _password(settings: HelmSettings, where: str) -> str:
    if settings.password_env is not None:
        value = os.environ.get(settings.password_env)
        if value is None:
            raise SourceError(f"{where}: helm.password_env {settings.password_env} is not set")
        return value
    if settings.password_file is not None:
        try:
            return settings.password_file.read_text().strip()
        except OSError as exc:
            raise SourceError(
                f"{where}: helm.password_file {settings.password_file}: "
                f"{exc.strerror or type(exc).__name__}"
            ) from None
    return ""


def _shown(url: str) -> str:
    """The URL without any user:password part."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
