"""The exception hierarchy: one root, one family per pipeline stage.

`retryable` chooses the daemon's schedule after a failure: True (an outage: the
remote or the cluster may come back) retries with exponential backoff, after the
interval, then twice that, up to backoff_max, so a long outage is not hammered;
False (a bad commit or configuration) waits one plain interval for a change in
Git. A retryable failure may therefore wait longer than a non-retryable one.
"""

from __future__ import annotations


class GitopsdError(Exception):
    """Root of every error gitopsd raises on purpose."""

    retryable: bool = False  # decides backoff (see the module docstring), not whether to retry

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class ConfigError(GitopsdError):
    """The configuration file is missing, malformed or inconsistent."""


class SourceError(GitopsdError):
    """Fetching or reading the declared state from Git failed."""


class RemoteUnreachableError(SourceError):
    """The remote could not be reached, or did not answer in time."""

    retryable = True


class AuthenticationError(SourceError):
    """The remote refused the credentials, or its host key is not trusted."""


class RefNotFoundError(SourceError):
    """The branch, tag, semver range or commit matches nothing on the remote."""


class PathNotFoundError(SourceError):
    """The target's path does not exist at the resolved commit."""


class UnsafeTreeError(SourceError):
    """A file escapes the target's path, or is too large to read."""


class SignatureError(SourceError):
    """The commit is unsigned or signed by a key that is not trusted."""


class HistoryRewrittenError(SourceError):
    """The new commit does not descend from the last applied one, and policy refuses it."""


class MirrorDamagedError(SourceError):
    """The local mirror lacks an object or is corrupt; deleting it makes gitopsd fetch afresh."""


class RenderError(GitopsdError):
    """A declared file or document is not a valid Kubernetes object."""


class DecryptionError(RenderError):
    """A SOPS-encrypted file of the revision cannot be decrypted; the revision is refused."""


class ClusterError(GitopsdError):
    """The cluster refused or failed a request."""

    def __init__(
        self, message: str, *, status: int | None = None, retryable: bool | None = None
    ) -> None:
        super().__init__(message, retryable=retryable)
        self.status = status


class NotFoundError(ClusterError):
    """The object or kind does not exist on the server."""


class ConflictError(ClusterError):
    """Another field manager owns a field gitopsd tried to set."""


class ForbiddenError(ClusterError):
    """The credentials lack the permission for this request."""


class InvalidObjectError(ClusterError):
    """The API server rejected the object as invalid."""


class ImmutableFieldError(InvalidObjectError):
    """The change touches a field the API server does not allow to change."""


class UnavailableError(ClusterError):
    """The API server is unreachable, overloaded or failing (429, 5xx)."""

    retryable = True


class ClusterUnreachableError(UnavailableError):
    """The API server did not answer at all (refused, reset, timed out): every request would
    fail alike, so a pass stops at the first rather than trying each object in turn."""


class ReconcileError(GitopsdError):
    """A reconcile pass could not complete."""


class OwnershipError(ReconcileError):
    """An object is declared by two targets."""


class NotOwnerError(ReconcileError):
    """With `ha:`, this replica does not hold the target's Lease (or could not renew it in
    time): nothing is written; the holder reconciles the target."""


class InventoryError(ReconcileError):
    """The stored inventory cannot be read; pruning from it would be guesswork."""


class InventoryTooLarge(InventoryError):
    """The inventory would not fit where the adapter stores it; the target must be split."""


class LockError(GitopsdError):
    """Another gitopsd holds the lock on the state directory."""


class StateError(GitopsdError):
    """A file in the state directory cannot be read or written: disk full, read-only, permissions.

    Not retryable: the disk will not empty itself, so the target waits for its next interval.
    """

    def __init__(self, path: object, problem: str) -> None:
        text = " ".join(problem.split())
        super().__init__(f"state directory: {path}: {text}; {_state_fix(text)}")
        self.path = path


# The fix for a failure, by the words the OS (strerror), libgit2 or SQLite use for it.
_STATE_FIXES = (
    (("no space left", "disk is full", "quota"), "the disk is full: free space on it"),
    (
        ("read-only file system", "readonly database"),
        "the file system is read-only: make state_dir writable (systemd: ReadWritePaths=)",
    ),
    (
        ("permission denied", "operation not permitted", "unable to open database"),
        "check that the user running gitopsd owns state_dir and can write it",
    ),
    (
        ("not a database", "malformed"),
        "move the file aside (the history it held is lost); gitopsd starts a new one",
    ),
)


def _state_fix(problem: str) -> str:
    lowered = problem.lower()
    for words, fix in _STATE_FIXES:
        if any(word in lowered for word in words):
            return fix
    return "check the state directory's disk, mount and permissions"
