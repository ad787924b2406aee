"""Configuration: the frozen dataclasses every stage reads, and `load_config`.

The dataclasses are the contract between the stages. The generic part of
reading YAML (key paths, suggestions, durations) lives in `gitopsd.configread`.
"""

from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitopsd.configread import Section, file_problem, read_document
from gitopsd.decryptconfig import DECRYPTION_KEYS, DecryptionSettings, read_decryption
from gitopsd.dependencies import check_graph
from gitopsd.errors import ConfigError
from gitopsd.haconfig import HaSettings, read_ha
from gitopsd.model import IgnoreRule
from gitopsd.netconfig import NETWORK_KEYS, NetworkSettings, read_network
from gitopsd.notifyconfig import SinkSettings, read_sinks
from gitopsd.refs import normalize_path, ref_problem
from gitopsd.renderconfig import RENDER_KEYS, RenderSettings, read_render
from gitopsd.watchconfig import WATCH_KEYS, WatchSettings, read_watch


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
    """A secret read at use time from a file or an environment variable, never inline.

    The one reader of every secret (webhook, Git password, SSH passphrase); callers that
    need another family translate its ConfigError at the call site.
    """

    file: Path | None = None
    env: str | None = None

    def read(self) -> str:
        """The secret's value, trailing newline stripped; ConfigError if it cannot be read."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise ConfigError(f"environment variable {self.env} is not set")
            return value.rstrip("\r\n")
        if self.file is None:
            raise ConfigError("secret reference names neither a file nor a variable")
        try:
            return self.file.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read secret file {self.file}: {file_problem(exc)}") from exc


class VerifyMode(enum.Enum):
    """What must carry the signature: the commit, the annotated tag, or both (Flux's
    `HEAD`, `Tag`, `TagAndHEAD`)."""

    COMMIT = "commit"
    TAG = "tag"
    BOTH = "both"


@dataclass(frozen=True)
class SignatureSettings:
    """Require the commit at the ref (or its tag, see `mode`) to be signed by a trusted key."""

    gpg_keyring: Path | None = None  # OpenPGP public keys (armored or binary)
    ssh_allowed_signers: Path | None = None  # `ssh-keygen -Y verify` allowed_signers file
    mode: VerifyMode = VerifyMode.COMMIT


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
    max_revision_bytes: int = 64 * 1024 * 1024  # all the manifests read at one commit
    history: HistoryPolicy = HistoryPolicy.FOLLOW
    signature: SignatureSettings | None = None
    network: NetworkSettings = field(default_factory=NetworkSettings)  # CA file, proxy


class ConflictPolicy(enum.Enum):
    FORCE = "force"  # Git wins; the manager that lost the field is recorded
    ERROR = "error"


@dataclass(frozen=True)
class ClusterSettings:
    """How to reach a target's cluster."""

    kubeconfig: Path | None = None  # None: the in-cluster service account
    context: str | None = None
    qps: float = 500.0
    burst: int = 1000
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
    adopt: bool = True  # take over objects that exist but were not created by gitopsd
    prune_adopted: bool = False  # delete, rather than release, adopted objects Git drops
    recreate: bool = False
    conflicts: ConflictPolicy = ConflictPolicy.FORCE
    ignore: tuple[IgnoreRule, ...] = ()
    inventory_namespace: str = "gitopsd-system"
    interval_seconds: float | None = None  # None: the global interval
    wait: bool = False  # after the writes, wait for every declared object to be healthy
    health_timeout_seconds: float = 300.0  # how long `wait` waits before `progressing`
    depends_on: tuple[str, ...] = ()  # targets whose last pass must have ended ready first
    render: RenderSettings = field(default_factory=RenderSettings)  # kustomize, helm, plain
    decryption: DecryptionSettings | None = None  # SOPS-encrypted files (gitopsd.sops)
    watch: WatchSettings = field(default_factory=WatchSettings)  # event-driven passes


@dataclass(frozen=True)
class HttpSettings:
    address: str = "127.0.0.1"
    port: int = 9100
    ready_requires_healthy: bool = False  # /readyz fails while a target's workload is not up


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
    notify: tuple[SinkSettings, ...] = ()  # notification sinks (gitopsd.notifyconfig)
    log_level: str = "info"
    backoff_max_seconds: float = 300.0  # cap of the delay between retries of a failing target
    stop_timeout_seconds: float = 30.0  # how long SIGTERM waits for a pass in progress
    ha: HaSettings | None = None  # several replicas sharing the targets through Leases
    journal_retention_seconds: float = 30 * 86400.0  # older journal rows are deleted

    def target(self, name: str) -> TargetSettings:
        """The target called `name`; KeyError when there is none."""
        for target in self.targets:
            if target.name == name:
                return target
        raise KeyError(name)


# Key tables stay packed (fmt: skip): one key per line would fill a screen for nothing.
_TOP_KEYS = {
    "state_dir", "interval", "log_level", "backoff_max", "stop_timeout", "http", "webhook",
    "targets", "notify", "ha", "journal_retention",
}  # fmt: skip
_REF_KEYS = ("branch", "tag", "semver", "commit")
# Key tables stay packed (fmt: skip): one key per line would fill a screen for nothing.
_TARGET_KEYS = {
    "name", "repo", *_REF_KEYS, "path", "kubeconfig", "context", "namespace", "prune",
    "allow_empty", "recreate", "conflicts", "ignore", "inventory_namespace", "qps", "burst",
    "concurrency", "interval", "ssh_key", "ssh_passphrase_file", "ssh_passphrase_env",
    "known_hosts", "username", "password_file", "password_env", "timeout", "max_file_size",
    "max_revision_size", "history", "verify", "adopt", "prune_adopted", "wait", "depends_on",
    "health_timeout", *RENDER_KEYS, *DECRYPTION_KEYS, *WATCH_KEYS,
    *NETWORK_KEYS,
}  # fmt: skip
# Keys people reach for when they mean to write a secret inline: refused with a pointer.
_INLINE_SECRETS = {"password": "password", "token": "password", "ssh_passphrase": "ssh_passphrase"}
_IGNORE_KEYS = {"kind", "group", "name", "namespace", "pointers"}
_LOG_LEVELS = ("debug", "info", "warning", "error")
# The longest wait for a pass at SIGTERM (stop_timeout) or for a silent remote (timeout);
# the other durations are at most configread.MAX_DURATION_SECONDS (7d).
_MAX_WAIT = 3600.0
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@]*:[^/@]*@", re.IGNORECASE)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def load_config(path: Path) -> Config:
    """Read and validate the YAML file at `path`; every ConfigError names the file and key."""
    path = path.expanduser().resolve()
    top = Section(read_document(path), file=path, where="", keys=_TOP_KEYS)
    log_level = (top.text("log_level", "info") or "info").lower()
    if log_level not in _LOG_LEVELS:
        raise top.error(f"must be one of {', '.join(_LOG_LEVELS)}", key="log_level")
    http = _http(top)
    webhook = _webhook(top)
    if webhook is not None and http is None:
        raise top.error("needs the http listener: add an http section", key="webhook")
    targets = tuple(_target(path, where, item) for where, item in top.items("targets"))
    if not targets:
        raise top.error("at least one target is required", key="targets")
    _refuse_duplicates(top, targets)
    check_graph(str(path), [(t.name, t.depends_on) for t in targets])
    return Config(
        path=path,
        state_dir=_state_dir(top),
        interval_seconds=top.duration("interval", 60.0) or 60.0,
        targets=targets,
        http=http,
        webhook=webhook,
        notify=read_sinks(top, {t.name for t in targets}, _secret),
        log_level=log_level,
        backoff_max_seconds=top.duration("backoff_max", 300.0) or 300.0,
        stop_timeout_seconds=top.duration("stop_timeout", 30.0, maximum=_MAX_WAIT) or 30.0,
        ha=read_ha(top),
        journal_retention_seconds=top.duration(
            "journal_retention", 30 * 86400.0, maximum=3650 * 86400.0
        )
        or 30 * 86400.0,
    )


def _state_dir(top: Section) -> Path:
    """The state directory, refused here when a file stands where it or a parent must be.

    Found later, at the lock, it would read as a state-directory failure (exit 1) with no
    key named, though it is a configuration mistake.
    """
    path = top.path("state_dir") or Path("/var/lib/gitopsd")
    try:
        existing = next(p for p in (path, *path.parents) if p.exists())
    except (OSError, StopIteration):  # unreadable: the lock will say what is wrong
        return path
    if not existing.is_dir():
        where = "" if existing == path else f" ({existing} is not a directory)"
        raise top.error(f"{path} is not a directory{where}", key="state_dir")
    return path


def _http(top: Section) -> HttpSettings | None:
    node = top.section("http", {"address", "port", "ready_requires_healthy"})
    if node is None:
        return None
    port = node.integer("port", 9100)
    if port > 65535:
        raise node.error("must be at most 65535", key="port")
    return HttpSettings(
        address=node.text("address", "127.0.0.1") or "127.0.0.1",
        port=port,
        ready_requires_healthy=node.flag("ready_requires_healthy", False),
    )


def _webhook(top: Section) -> WebhookSettings | None:
    node = top.section("webhook", {"secret_file", "secret_env", "secret"})
    if node is None:
        return None
    secret = _secret(node, "secret")
    if secret is None:
        raise node.error("needs secret_file or secret_env")
    return WebhookSettings(secret=secret)


def _secret(node: Section, stem: str) -> SecretRef | None:
    """The `<stem>_file` or `<stem>_env` reference; an inline `<stem>` is refused."""
    if node.has(stem):
        raise node.error(
            f"secrets are never written inline: use {stem}_file or {stem}_env", key=stem
        )
    file, env = node.path(f"{stem}_file"), node.text(f"{stem}_env")
    if env is not None and not _ENV_NAME.fullmatch(env):
        raise node.error("must be a variable name: letters, digits and _", key=f"{stem}_env")
    if file is not None and env is not None:
        raise node.error(f"give {stem}_file or {stem}_env, not both", key=f"{stem}_env")
    return SecretRef(file=file, env=env) if file is not None or env is not None else None


def _target(file: Path, where: str, item: Any) -> TargetSettings:
    keys = _TARGET_KEYS | set(_INLINE_SECRETS)
    node = Section(item, file=file, where=where, keys=keys)
    for key, stem in _INLINE_SECRETS.items():
        if node.has(key):
            raise node.error(
                f"secrets are never written inline: use {stem}_file or {stem}_env", key=key
            )
    name = node.required_text("name")
    if not _DNS_LABEL.fullmatch(name):
        raise node.error("must be lower-case letters, digits and '-', at most 63", key="name")
    for key in ("namespace", "inventory_namespace"):
        value = node.text(key)
        if value is not None and not _DNS_LABEL.fullmatch(value):
            raise node.error(f"{value!r} is not a valid namespace name", key=key)
    return TargetSettings(
        name=name,
        source=_source(node, name),
        cluster=ClusterSettings(
            kubeconfig=node.path("kubeconfig"),
            context=node.text("context"),
            qps=node.number("qps", 500.0),
            burst=node.integer("burst", 1000),
            concurrency=node.integer("concurrency", 8),
        ),
        namespace=node.text("namespace", "default") or "default",
        prune=node.flag("prune", True),
        allow_empty=node.flag("allow_empty", False),
        adopt=node.flag("adopt", True),
        prune_adopted=node.flag("prune_adopted", False),
        recreate=node.flag("recreate", False),
        conflicts=node.choice("conflicts", ConflictPolicy, ConflictPolicy.FORCE),
        ignore=tuple(_ignore_rule(file, w, rule) for w, rule in node.items("ignore")),
        inventory_namespace=node.text("inventory_namespace", "gitopsd-system") or "",
        interval_seconds=node.duration("interval", None),
        wait=node.flag("wait", False),
        health_timeout_seconds=node.duration("health_timeout", 300.0, maximum=_MAX_WAIT) or 300.0,
        depends_on=node.strings("depends_on"),
        render=read_render(node),
        decryption=read_decryption(node),
        watch=read_watch(node),
    )


def _source(node: Section, name: str) -> SourceSettings:
    repo = node.required_text("repo")
    if _URL_PASSWORD.match(repo):
        raise node.error("must not carry a password: use password_file or password_env", key="repo")
    ref_kind, ref = _ref(node, name)
    path = _repo_path(node)
    password = _secret(node, "password")
    username = node.text("username")
    if password is not None and username is None:
        raise node.error("password_file or password_env needs a username", key="username")
    passphrase = _secret(node, "ssh_passphrase")
    ssh_key = node.path("ssh_key")
    if passphrase is not None and ssh_key is None:
        raise node.error("an ssh passphrase needs ssh_key", key="ssh_key")
    return SourceSettings(
        repo=_local_repo(node, repo),
        ref_kind=ref_kind,
        ref=ref,
        path=path,
        ssh_key=ssh_key,
        ssh_passphrase=passphrase,
        known_hosts=node.path("known_hosts"),
        username=username,
        password=password,
        timeout_seconds=node.duration("timeout", 60.0, maximum=_MAX_WAIT) or 60.0,
        max_file_bytes=node.size("max_file_size", 4 * 1024 * 1024),
        max_revision_bytes=node.size("max_revision_size", 64 * 1024 * 1024),
        history=node.choice("history", HistoryPolicy, HistoryPolicy.FOLLOW),
        signature=_signature(node),
        network=read_network(node),
    )


def _ref(node: Section, name: str) -> tuple[RefKind, str]:
    """The one ref of a target, checked as git would (an unquoted `tag: 1.10` is refused)."""
    refs = [key for key in _REF_KEYS if node.has(key)]
    if len(refs) != 1:
        found = f"; found {' and '.join(refs)}" if refs else ""
        raise node.error(f"target {name!r} needs exactly one of {', '.join(_REF_KEYS)}{found}")
    ref = node.string(refs[0]) or ""
    problem = ref_problem(refs[0], ref)
    if problem:
        raise node.error(f"{ref!r} {problem}", key=refs[0])
    return RefKind(refs[0]), ref


def _repo_path(node: Section) -> str:
    path = node.string("path", ".") or "."
    try:
        normalize_path(path)
    except ValueError:
        raise node.error(
            f"{path!r} is not a folder inside the repository: give it relative to the "
            "repository root, without '..', like deploy/prod",
            key="path",
        ) from None
    return path


def _local_repo(node: Section, repo: str) -> str:
    """A relative local path is taken from the config file's folder; URLs stay as they are."""
    if "://" in repo or re.match(r"^[^/]+:", repo) or Path(repo).is_absolute():
        return repo
    return str((node.file.parent / repo).resolve())


def _signature(node: Section) -> SignatureSettings | None:
    verify = node.section("verify", {"gpg_keyring", "ssh_allowed_signers", "mode"})
    if verify is None:
        return None
    settings = SignatureSettings(
        gpg_keyring=verify.path("gpg_keyring"),
        ssh_allowed_signers=verify.path("ssh_allowed_signers"),
        mode=verify.choice("mode", VerifyMode, VerifyMode.COMMIT),
    )
    if (settings.gpg_keyring is None) == (settings.ssh_allowed_signers is None):
        raise verify.error("needs exactly one of gpg_keyring, ssh_allowed_signers")
    if settings.mode is not VerifyMode.COMMIT and not node.has("tag") and not node.has("semver"):
        raise verify.error(f"{settings.mode.value} needs a tag: or semver: ref", key="mode")
    return settings


def _ignore_rule(file: Path, where: str, item: Any) -> IgnoreRule:
    node = Section(item, file=file, where=where, keys=_IGNORE_KEYS)
    pointers = node.strings("pointers")
    if not pointers:
        raise node.error("needs at least one JSON pointer", key="pointers")
    for pointer in pointers:
        if not pointer.startswith("/"):
            raise node.error(
                f"{pointer!r} is not a JSON pointer (like /spec/replicas)", key="pointers"
            )
    return IgnoreRule(
        kind=node.required_text("kind"),
        pointers=pointers,
        group=node.text("group"),
        name=node.text("name"),
        namespace=node.text("namespace"),
    )


def _refuse_duplicates(top: Section, targets: tuple[TargetSettings, ...]) -> None:
    seen: set[str] = set()
    for index, target in enumerate(targets):
        if target.name in seen:
            raise ConfigError(f"{top.file}: targets[{index}].name: {target.name!r} is used twice")
        seen.add(target.name)
