"""Talking to a remote through pygit2: credentials, host key checks, timeouts, and the
translation of libgit2's errors into our SourceError family at the call site.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import CredentialType

from gitopsd.config import SecretRef, SourceSettings
from gitopsd.errors import (
    AuthenticationError,
    ConfigError,
    RemoteUnreachableError,
    SourceError,
    StateError,
)
from gitopsd.source.network import proxy_for, trust, warn_insecure
from gitopsd.source.redact import redact_text, redact_url, strip_credentials

_AUTH_WORDS = ("authenticat", "401", "403", "credential", "permission denied", "publickey")
_HOSTKEY_WORDS = ("host key", "hostkey", "certificate")
_TIMEOUT_WORDS = ("timed out", "timeout")
_SSH_URL = re.compile(
    r"^(?:ssh://(?:[^@/]+@)?(?P<host>\[[^\]]+\]|[^:/]+)(?::(?P<port>\d+))?"
    r"|(?:[^@/:]+@)?(?P<scp>[^:/]+):(?!//))"
)


@dataclass(frozen=True)
class Endpoint:
    """One target's remote, with what a network operation needs to reach it."""

    target: str
    settings: SourceSettings
    ssh_home: Path | None = None  # a home whose .ssh/known_hosts is the target's

    @property
    def url(self) -> str:
        return self.settings.repo

    @property
    def label(self) -> str:
        return f"target {self.target}, remote {redact_url(self.url)}"

    def error(
        self, cls: type[SourceError], what: str, *, retryable: bool | None = None
    ) -> SourceError:
        """An error of `cls` whose one-line message names the target and the redacted remote."""
        line = " ".join(redact_text(what).split())
        return cls(f"{self.label}: {line}", retryable=retryable)


def ssh_host_port(url: str) -> tuple[str, int] | None:
    """Host and port of an ssh:// or scp-like URL; None for other transports."""
    match = _SSH_URL.match(url)
    if not match or url.startswith(("/", "file:", "http:", "https:")):
        return None
    host = (match["host"] or match["scp"]).strip("[]")
    return host, int(match["port"] or 22)


@dataclass
class Transfer:
    """What one fetch downloaded, from libgit2's transfer progress."""

    received_objects: int = 0
    received_bytes: int = 0


class _Callbacks(pygit2.RemoteCallbacks):
    """Answers libgit2's credential and host-key questions for one endpoint."""

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.transfer = Transfer()
        self._asked: dict[CredentialType, int] = {}

    def credentials(
        self, url: str, username_from_url: str | None, allowed_types: CredentialType
    ) -> pygit2.Username | pygit2.UserPass | pygit2.Keypair:
        settings, ep = self.endpoint.settings, self.endpoint
        user = username_from_url or settings.username or "git"
        for kind in (
            CredentialType.SSH_KEY,
            CredentialType.USERPASS_PLAINTEXT,
            CredentialType.USERNAME,
        ):
            if kind not in allowed_types:
                continue
            # libgit2 asks again each time the server refuses: a second ask means refusal.
            self._asked[kind] = self._asked.get(kind, 0) + 1
            if self._asked[kind] > 1:
                raise ep.error(AuthenticationError, "the remote refused the credentials")
            if kind is CredentialType.SSH_KEY and settings.ssh_key is not None:
                return self._keypair(user)
            if kind is CredentialType.USERPASS_PLAINTEXT and settings.password is not None:
                password = self._secret(settings.password, "password")
                return pygit2.UserPass(settings.username or username_from_url or "", password)
            if kind is CredentialType.USERNAME:
                return pygit2.Username(user)
        if strip_credentials(ep.url) != ep.url:  # libgit2 tried the URL's own first
            raise ep.error(AuthenticationError, "the remote refused the credentials in the URL")
        raise ep.error(AuthenticationError, "the remote asks for credentials; none are configured")

    def _keypair(self, user: str) -> pygit2.Keypair:
        key = self.endpoint.settings.ssh_key
        assert key is not None
        public = Path(f"{key}.pub")
        passphrase = self._secret(self.endpoint.settings.ssh_passphrase, "ssh passphrase")
        return pygit2.Keypair(user, public if public.exists() else None, key, passphrase)

    def _secret(self, ref: SecretRef | None, what: str) -> str:
        """The secret read at use time; a failure names this target and remote."""
        if ref is None:
            return ""
        try:
            return ref.read()
        except ConfigError as exc:
            raise self.endpoint.error(AuthenticationError, f"{what}: {exc}") from exc

    def certificate_check(self, certificate: None, valid: bool, host: bytes) -> bool:
        if valid:
            return True
        name = host.decode(errors="replace")
        address = ssh_host_port(self.endpoint.url)
        if address is None:
            if self.endpoint.settings.network.insecure_skip_tls_verify:
                return True  # the opt-in was logged when the session began
            raise self.endpoint.error(AuthenticationError, untrusted_certificate(name))
        known = self.endpoint.settings.known_hosts or "~/.ssh/known_hosts"
        prints = ", ".join(host_key_fingerprints(*address)) or "fingerprint unavailable"
        raise self.endpoint.error(
            AuthenticationError,
            f"host key of {name}:{address[1]} ({prints}) is unknown or changed; not in {known}",
        )

    def transfer_progress(self, stats: pygit2.remotes.TransferProgress) -> None:
        self.transfer.received_objects = stats.received_objects
        self.transfer.received_bytes = stats.received_bytes


def host_key_fingerprints(host: str, port: int) -> list[str]:
    """SHA256 fingerprints of the keys `host` offers, read out-of-band for the error message.

    pygit2 hands certificate_check no key (its `certificate` is always None), so the
    refused key is read again with ssh-keyscan; it is shown, never trusted.
    """
    try:
        out = subprocess.run(
            ["ssh-keyscan", "-T", "5", "-p", str(port), host],
            capture_output=True,
            timeout=10,
            check=False,
            text=True,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    prints = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and not line.startswith("#"):
            digest = hashlib.sha256(base64.b64decode(parts[2])).digest()
            prints.append(f"{parts[1]} SHA256:{base64.b64encode(digest).decode().rstrip('=')}")
    return prints


_OWN_HOME = ""  # an SSH remote without known_hosts: the process's own home directory


@dataclass(frozen=True)
class _Needs:
    """The process-wide libgit2 settings one network operation depends on."""

    timeout_ms: int | None  # None: no socket (a local remote)
    home: str | None  # None: no SSH session; _OWN_HOME or a target's own home


def _needs(endpoint: Endpoint) -> _Needs:
    url = endpoint.url
    ssh = ssh_host_port(url) is not None
    if url.startswith(("/", "file:")) or ("://" not in url and not ssh):
        return _Needs(None, None)
    millis = max(1, int(endpoint.settings.timeout_seconds * 1000))
    if not ssh:
        return _Needs(millis, None)
    return _Needs(millis, str(endpoint.ssh_home) if endpoint.ssh_home else _OWN_HOME)


class _SettingsGate:
    """Lets network operations run side by side while they need the same process-wide settings.

    libgit2 reads its timeouts when it opens a socket, and the home directory (for
    .ssh/known_hosts) when an SSH session starts, at moments no callback marks; so an
    operation keeps the values it needs until it ends. Operations needing the same values
    (the usual case: one timeout for every target, HTTPS remotes) share them, and one
    slow remote delays no other. Only a different timeout, or an SSH remote with a
    different known_hosts, waits for the operations using the current value to end.
    This gate guards only these settings: targets sharing a mirror are kept apart by
    the mirror's own lock in source/git.py.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._timeout_ms: int | None = None
        self._timeout_users = 0
        self._home: str | None = None
        self._home_users = 0
        self._own_home: str | None = None

    @contextlib.contextmanager
    def hold(self, needs: _Needs) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: self._fits(needs))
            self._enter(needs)
        try:
            yield
        finally:
            with self._changed:
                self._leave(needs)
                self._changed.notify_all()

    def _fits(self, needs: _Needs) -> bool:
        same_timeout = needs.timeout_ms in (None, self._timeout_ms) or not self._timeout_users
        same_home = needs.home in (None, self._home) or not self._home_users
        return same_timeout and same_home

    def _enter(self, needs: _Needs) -> None:
        if needs.timeout_ms is not None:
            if needs.timeout_ms != self._timeout_ms:
                pygit2.settings.server_connect_timeout = needs.timeout_ms
                pygit2.settings.server_timeout = needs.timeout_ms
                self._timeout_ms = needs.timeout_ms
            self._timeout_users += 1
        if needs.home is not None:
            if not self._home_users:
                self._home = needs.home
                if needs.home != _OWN_HOME:
                    self._own_home = pygit2.settings.homedir
                    pygit2.settings.homedir = needs.home
            self._home_users += 1

    def _leave(self, needs: _Needs) -> None:
        if needs.timeout_ms is not None:
            self._timeout_users -= 1
        if needs.home is not None:
            self._home_users -= 1
            if not self._home_users:
                if self._home != _OWN_HOME:
                    # The getter says str | None; None restores libgit2's own default.
                    pygit2.settings.homedir = self._own_home  # type: ignore[assignment]
                self._home = None


_GATE = _SettingsGate()


def _process_settings(endpoint: Endpoint) -> contextlib.AbstractContextManager[None]:
    """Hold the process-wide timeouts and home directory this endpoint needs."""
    needs = _needs(endpoint)
    if needs == _Needs(None, None):
        return contextlib.nullcontext()
    return _GATE.hold(needs)


@contextlib.contextmanager
def translating(endpoint: Endpoint, action: str, mirror: str) -> Iterator[None]:
    """Turn the errors of one network call into SourceError subclasses, keeping __cause__.

    Only list_heads and fetch run under it: reading the mirror fails for other reasons
    (see source/git.py). A fetch also writes the mirror, and libgit2 names the local
    file when that fails (disk full, read-only): a StateError, not a remote failure.
    """
    try:
        yield
    except SourceError:
        raise
    except (pygit2.GitError, OSError) as exc:  # InvalidSpecError (a bad URL) is a GitError
        if mirror in str(exc):
            raise StateError(mirror, f"{action} failed: {exc}") from exc
        raise classify(endpoint, action, exc) from exc


def classify(endpoint: Endpoint, action: str, exc: Exception) -> SourceError:
    """The SourceError a libgit2 failure stands for, judged by its type and message."""
    text = str(exc).lower()
    what = f"{action} failed: {exc}"
    if isinstance(exc, pygit2.AuthError | pygit2.CertificateError) or any(
        word in text for word in _AUTH_WORDS + _HOSTKEY_WORDS
    ):
        return endpoint.error(AuthenticationError, what)
    if any(word in text for word in _TIMEOUT_WORDS):
        seconds = endpoint.settings.timeout_seconds
        return endpoint.error(RemoteUnreachableError, f"{what} (timeout {seconds:g}s)")
    return endpoint.error(RemoteUnreachableError, what)


class Session:
    """One conversation with the remote: list its refs, then fetch over the same connection.

    libgit2 reuses a connected remote for the fetch, which saves a second ref listing
    (and, over HTTP, a second authentication challenge) when the ref has moved.
    """

    def __init__(self, endpoint: Endpoint, repo: pygit2.Repository) -> None:
        self.endpoint = endpoint
        self.repo = repo
        self.transfers: list[Transfer] = []
        self.heads: dict[str, str] = {}  # as the last list_heads found them
        self._remote: pygit2.Remote | None = None
        self._mirror = repo.path.rstrip("/")
        self._proxy = _prepare_network(endpoint)

    def _connection(self) -> pygit2.Remote:
        if self._remote is None:
            self._remote = self.repo.remotes.create_anonymous(self.endpoint.url)
        return self._remote

    def list_heads(self) -> dict[str, str]:
        """Every ref the remote advertises (peeled tags as `name^{}`) -> object id."""
        callbacks = _Callbacks(self.endpoint)
        with (
            translating(self.endpoint, "listing refs", self._mirror),
            _process_settings(self.endpoint),
        ):
            heads = self._connection().list_heads(callbacks=callbacks, proxy=self._proxy)
        self.heads = {head.name: str(head.oid) for head in heads if head.name}
        return dict(self.heads)

    def fetch(self, refspecs: list[str]) -> Transfer:
        """Fetch `refspecs` into the mirror; return what was downloaded."""
        callbacks = _Callbacks(self.endpoint)
        with translating(self.endpoint, "fetch", self._mirror), _process_settings(self.endpoint):
            self._connection().fetch(refspecs, callbacks=callbacks, proxy=self._proxy)
        self.transfers.append(callbacks.transfer)
        return callbacks.transfer


def untrusted_certificate(host: str) -> str:
    return (
        f"TLS certificate of {host} is not trusted: its CA is neither in the system store nor "
        "in ca_file (set ca_file: to the PEM file of the CA that signed it)"
    )


def _prepare_network(endpoint: Endpoint) -> str | None:
    """Trust the target's CA file, log an opt-out of verification, and return the proxy."""
    network = endpoint.settings.network
    if network.ca_file is not None:
        trust(network.ca_file)
    if network.insecure_skip_tls_verify:
        warn_insecure(endpoint.target, redact_url(endpoint.url))
    try:
        return proxy_for(endpoint.url, network, os.environ)
    except ConfigError as exc:  # the proxy password could not be read
        raise endpoint.error(AuthenticationError, f"proxy password: {exc}") from exc
