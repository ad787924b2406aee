"""Configuration: the frozen dataclasses every stage reads.

Loading and validation of the YAML file live in `load_config` (below); the
dataclasses are the contract between the stages.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path


class RefKind(enum.Enum):
    BRANCH = "branch"
    TAG = "tag"
    SEMVER = "semver"
    COMMIT = "commit"


class HistoryPolicy(enum.Enum):
    FOLLOW = "follow"
    REFUSE = "refuse"


@dataclass(frozen=True)
class SecretRef:
    """A secret read at use time from a file or an environment variable, never inline."""

    file: Path | None = None
    env: str | None = None


@dataclass(frozen=True)
class SignatureSettings:
    """Require the commit at the ref to be signed by a trusted key."""

    gpg_keyring: Path | None = None  # OpenPGP public keys (armored or binary)
    ssh_allowed_signers: Path | None = None  # `ssh-keygen -Y verify` allowed_signers file


@dataclass(frozen=True)
class SourceSettings:
    """Where a target's declared state comes from."""

    repo: str
    ref_kind: RefKind
    ref: str
    path: str = "."
    ssh_key: Path | None = None
    ssh_passphrase: SecretRef | None = None
    known_hosts: Path | None = None
    username: str | None = None
    password: SecretRef | None = None
    timeout_seconds: float = 60.0
    max_file_bytes: int = 4 * 1024 * 1024
    history: HistoryPolicy = HistoryPolicy.FOLLOW
    signature: SignatureSettings | None = None


@dataclass(frozen=True)
class IgnoreRule:
    """Fields (JSON pointers) gitopsd neither declares nor compares on matching objects."""

    kind: str
    pointers: tuple[str, ...]
    group: str | None = None  # None: any group
    name: str | None = None  # None: any name
    namespace: str | None = None  # None: any namespace


class ConflictPolicy(enum.Enum):
    FORCE = "force"  # Git wins; the manager that lost the field is recorded
    ERROR = "error"


@dataclass(frozen=True)
class ClusterSettings:
    """How to reach a target's cluster."""

    kubeconfig: Path | None = None  # None: the in-cluster service account
    context: str | None = None
    qps: float = 50.0
    burst: int = 100
    concurrency: int = 8


@dataclass(frozen=True)
class TargetSettings:
    """One target: a path in a repository, reconciled into one cluster."""

    name: str
    source: SourceSettings
    cluster: ClusterSettings
    namespace: str = "default"
    prune: bool = True
    allow_empty: bool = False
    recreate: bool = False
    conflicts: ConflictPolicy = ConflictPolicy.FORCE
    ignore: tuple[IgnoreRule, ...] = ()
    inventory_namespace: str = "gitopsd-system"
    interval_seconds: float | None = None  # None: the global interval


@dataclass(frozen=True)
class HttpSettings:
    address: str = "127.0.0.1"
    port: int = 9100


@dataclass(frozen=True)
class WebhookSettings:
    secret: SecretRef


@dataclass(frozen=True)
class Config:
    """The whole configuration file."""

    path: Path
    state_dir: Path
    interval_seconds: float = 60.0
    targets: tuple[TargetSettings, ...] = ()
    http: HttpSettings | None = None
    webhook: WebhookSettings | None = None
    log_level: str = "info"
    extra: dict[str, str] = field(default_factory=dict)

    def target(self, name: str) -> TargetSettings:
        """The target called `name`; KeyError when there is none."""
        for target in self.targets:
            if target.name == name:
                return target
        raise KeyError(name)
