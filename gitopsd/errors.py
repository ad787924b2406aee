"""The exception hierarchy: one root, one family per pipeline stage.

`retryable` tells the daemon whether to back off and try again (the remote or
the cluster may come back) or to wait for a change in Git or configuration.
"""

from __future__ import annotations


class GitopsdError(Exception):
    """Root of every error gitopsd raises on purpose."""

    retryable: bool = False

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


class RenderError(GitopsdError):
    """A declared file or document is not a valid Kubernetes object."""


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


class ReconcileError(GitopsdError):
    """A reconcile pass could not complete."""


class OwnershipError(ReconcileError):
    """An object is declared by two targets."""


class InventoryError(ReconcileError):
    """The stored inventory cannot be read; pruning from it would be guesswork."""


class LockError(GitopsdError):
    """Another gitopsd holds the lock on the state directory."""
