"""The Git source stage: resolve a target's ref to a commit, cheaply and safely.

Each remote has a bare mirror under the state directory. A fetch first asks the remote
where the ref points (like `git ls-remote`) and downloads only when that commit is not
already in the mirror, so an unchanged remote costs one round-trip and no objects.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pygit2
import structlog

from gitopsd import semver
from gitopsd.config import HistoryPolicy, RefKind, SourceSettings, VerifyMode
from gitopsd.errors import (
    AuthenticationError,
    ConfigError,
    HistoryRewrittenError,
    MirrorDamagedError,
    RefNotFoundError,
    SignatureError,
    SourceError,
)
from gitopsd.model import Revision, SourceFile
from gitopsd.refs import normalize_path, ref_problem
from gitopsd.source.export import export_tree
from gitopsd.source.mirror import Mirror, slug, writing
from gitopsd.source.redact import redact_url
from gitopsd.source.snapshot import Snapshot
from gitopsd.source.transport import Endpoint, Session, Transfer, ssh_host_port
from gitopsd.source.tree import ErrorFactory, TreeReader
from gitopsd.source.verify import Untrusted, tag_signature, verify_signature

_HEX = re.compile(r"^[0-9a-f]{7,64}$")
_FULL_HEX = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
ALL_REFS = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
_BRANCHES_AND_TAGS = ("refs/heads/", "refs/tags/")
T = TypeVar("T")


class GitSource:
    """One target's view of its Git remote: fetch, verify, read the declared tree."""

    def __init__(
        self,
        target_name: str,
        settings: SourceSettings,
        state_dir: Path,
        *,
        last_applied: str | None = None,
    ) -> None:
        self.target = target_name
        self.settings = settings
        self.state_dir = state_dir
        self._base = self._validate()
        self._state_file = state_dir / "source" / f"{slug(target_name)}.json"
        self._last_applied = last_applied or self._load_last_applied()
        self._verified: set[str] = set()
        self.endpoint = Endpoint(target_name, settings, self._ssh_home())
        self.last_transfer: Transfer | None = None  # None: the last fetch downloaded nothing
        # (previous, new) when the last fetch found the ref rewritten, until a new commit is
        # applied; set at every such fetch, while the warning is logged once per pair.
        self.history_rewrite: tuple[str, str] | None = None
        self._logged_rewrite: tuple[str, str] | None = None
        self.log = structlog.get_logger("gitopsd.source").bind(
            target=target_name, remote=redact_url(settings.repo)
        )
        self._mirror = Mirror(state_dir, settings.repo, self.log)

    # --- public surface -------------------------------------------------------------------

    def fetch(self) -> Revision:
        """Resolve the ref, fetch only if it moved, check history policy and signature.

        A damaged mirror is discarded and fetched afresh once (see `_recovering`).
        """
        revision = self._recovering(self._fetch, self._fetch)
        transfer = self.last_transfer or Transfer()
        self.log.info(
            "source_fetched",
            revision=revision.commit,
            ref=revision.ref,
            fetched=self.last_transfer is not None,
            objects=transfer.received_objects,
            bytes=transfer.received_bytes,
        )
        return revision

    def read_tree(self, revision: Revision) -> tuple[SourceFile, ...]:
        """The YAML/JSON files under `path` at `revision`, relative to `path`, sorted."""

        def refilled() -> tuple[SourceFile, ...]:
            self._refill()
            return self._read_tree(revision)

        return self._recovering(lambda: self._read_tree(revision), refilled)

    def checkout(self, revision: Revision, directory: Path) -> frozenset[str]:
        """Write the whole repository at `revision` into `directory`, for kustomize and Helm;
        the paths of symlinks left out because they lead outside it (source/export.py)."""
        with self._mirror.held():
            repo = self._open_mirror()
        with self._mirror.reading(f"writing out the tree of {revision.short}"):
            root = repo[revision.commit].peel(pygit2.Commit).tree
            return export_tree(
                repo,
                root,
                directory,
                max_total=self.settings.max_revision_bytes,
                error=self._tree_error(revision),
            )

    def mark_applied(self, revision: Revision) -> None:
        """Remember `revision` as applied, so a later force-push can be recognised."""
        self._last_applied = revision.commit
        with writing(self._state_file):
            self._state_file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self._state_file.parent, prefix=".applied-")
            try:
                with os.fdopen(fd, "w") as out:
                    json.dump({"last_applied": revision.commit, "ref": revision.ref}, out)
                os.replace(tmp, self._state_file)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    @property
    def last_applied(self) -> str | None:
        return self._last_applied

    def snapshot(self, ref: str | None = None) -> Snapshot:
        """The declared files at `ref` (a ref name, branch, tag or commit; None: the
        configured ref, with every policy enforced), for a preview.

        Another ref is fetched with no destination (FETCH_HEAD only), so the mirror's refs
        and the applied marker stay as the daemon left them; a commit the signature policy
        refuses is still read, and `refusal` says why the daemon would refuse it.
        """
        if ref is None:
            revision = self.fetch()
            return Snapshot(revision, self.read_tree(revision), checkout=self.checkout)

        def attempt() -> Snapshot:
            revision, refusal = self._fetch_other(ref)
            return Snapshot(
                revision, self._read_tree(revision), refusal=refusal, checkout=self.checkout
            )

        return self._recovering(attempt, attempt)

    # --- one attempt, and the repair of a damaged mirror ----------------------------------

    def _recovering(self, attempt: Callable[[], T], again: Callable[[], T]) -> T:
        """`attempt`; on a damaged mirror, discard it and run `again` into a fresh one, once.

        Damage that survives a fresh fetch is not retried: retrying would not mend it.
        """
        try:
            return attempt()
        except MirrorDamagedError as damage:
            self.log.warning("mirror_damaged", path=str(self._mirror.path), error=str(damage))
        self._mirror.discard()
        try:
            return again()
        except MirrorDamagedError as damage:
            raise self.endpoint.error(
                MirrorDamagedError,
                f"{damage}, even after fetching it afresh: delete {self._mirror.path} "
                "(the next pass fetches it again) and check the disk",
                retryable=False,
            ) from damage

    def _fetch(self) -> Revision:
        with self._mirror.held():
            repo = self._open_mirror()
            session = Session(self.endpoint, repo)
            ref_name, commit = self._resolve(session, repo)
            tag = self._tag_to_verify(session, repo, ref_name)
        self.last_transfer = session.transfers[-1] if session.transfers else None
        self._check_history(repo, commit)
        self._verify(commit, tag)
        with self._mirror.reading(f"reading commit {commit.id}"):
            return Revision(
                str(commit.id), ref_name, commit.message.split("\n", 1)[0], commit.author.name
            )

    def _fetch_other(self, ref: str) -> tuple[Revision, str | None]:
        with self._mirror.held():
            repo = self._open_mirror()
            session = Session(self.endpoint, repo)
            name, commit = self._resolve_other(session, repo, ref)
        self.last_transfer = session.transfers[-1] if session.transfers else None
        settings = self.settings.signature
        # With verify.mode tag, a tag is what gets applied: a previewed commit is not refused.
        tag_only = settings is not None and settings.mode is VerifyMode.TAG
        refusal = None if tag_only else self._signature_refusal(commit)
        with self._mirror.reading(f"reading commit {commit.id}"):
            revision = Revision(
                str(commit.id), name, commit.message.split("\n", 1)[0], commit.author.name
            )
        self.log.info("source_previewed", revision=revision.commit, ref=name, refused=bool(refusal))
        return revision, None if refusal is None else str(refusal)

    def _refill(self) -> None:
        """Fetch the ref into a fresh mirror, with no policy checks: they passed already."""
        with self._mirror.held():
            repo = self._open_mirror()
            self._resolve(Session(self.endpoint, repo), repo)

    def _read_tree(self, revision: Revision) -> tuple[SourceFile, ...]:
        with self._mirror.held():
            repo = self._open_mirror()
        with self._mirror.reading(f"reading the tree of {revision.short}"):
            obj = repo.get(revision.commit)
            if obj is None:
                raise KeyError(revision.commit)
            root = obj.peel(pygit2.Commit).tree
            return TreeReader(
                repo,
                root,
                self._base,
                self.settings.max_file_bytes,
                self._tree_error(revision),
                max_total=self.settings.max_revision_bytes,
            ).read()

    # --- resolving ------------------------------------------------------------------------

    def _resolve(self, session: Session, repo: pygit2.Repository) -> tuple[str, pygit2.Commit]:
        if self.settings.ref_kind is RefKind.COMMIT:
            return self.settings.ref, self._pinned_commit(session, repo)
        heads = session.list_heads()
        name = self._ref_name(heads)
        # Annotated tags are advertised twice; the peeled `^{}` entry is the commit itself.
        wanted = heads.get(f"{name}^{{}}") or heads[name]
        with self._mirror.reading(f"looking up {name}"):
            present = wanted in repo
        if not present:
            session.fetch([f"+{name}:{name}"])
        with self._mirror.reading(f"reading {name}"):
            return name, repo[wanted].peel(pygit2.Commit)

    def _ref_name(self, heads: dict[str, str]) -> str:
        kind, ref = self.settings.ref_kind, self.settings.ref
        if kind is RefKind.SEMVER:
            tags = [
                n.removeprefix("refs/tags/")
                for n in heads
                if n.startswith("refs/tags/") and not n.endswith("^{}")
            ]
            best = semver.highest_match(ref, tags)
            if best is None:
                raise self.endpoint.error(RefNotFoundError, f"no tag matches semver {ref!r}")
            return f"refs/tags/{best}"
        name = f"refs/heads/{ref}" if kind is RefKind.BRANCH else f"refs/tags/{ref}"
        if name not in heads:
            raise self.endpoint.error(RefNotFoundError, f"{kind.value} {ref!r} not found")
        return name

    def _pinned_commit(self, session: Session, repo: pygit2.Repository) -> pygit2.Commit:
        found = self._lookup(repo, self.settings.ref)
        if found is None:
            session.fetch(ALL_REFS)  # a bare commit id cannot be asked for by name
            found = self._lookup(repo, self.settings.ref)
        if found is None:
            raise self.endpoint.error(RefNotFoundError, f"commit {self.settings.ref} not found")
        return found

    def _resolve_other(
        self, session: Session, repo: pygit2.Repository, ref: str
    ) -> tuple[str, pygit2.Commit]:
        """`ref` as git would read it: a full ref name, a tag, a branch, or a commit id."""
        heads = session.list_heads()
        # git's order (gitrevisions(7)): as given (`HEAD`, `refs/pull/42/head`), tag, branch.
        candidates = (
            [ref] if ref.startswith("refs/") else [ref, f"refs/tags/{ref}", f"refs/heads/{ref}"]
        )
        name = next((n for n in candidates if n in heads), None)
        if name is not None:
            wanted = heads.get(f"{name}^{{}}") or heads[name]
            with self._mirror.reading(f"looking up {name}"):
                present = wanted in repo
            if not present:
                session.fetch([name])  # no destination: no ref of the mirror moves
            with self._mirror.reading(f"reading {name}"):
                return name, repo[wanted].peel(pygit2.Commit)
        found = self._lookup(repo, ref) if _HEX.match(ref) else None
        branches = [n for n in heads if n.startswith(_BRANCHES_AND_TAGS) and "^" not in n]
        if found is None and _HEX.match(ref) and branches:
            # libgit2 cannot ask for an object by id: fetch what may hold it, into FETCH_HEAD.
            session.fetch(branches)
            found = self._lookup(repo, ref)
        if found is None:
            raise self.endpoint.error(
                RefNotFoundError,
                f"ref {ref!r} not found: no such ref, tag or branch, nor a commit on one "
                "(name the ref that holds it, e.g. refs/pull/42/head)",
            )
        return ref, found

    @staticmethod
    def _lookup(repo: pygit2.Repository, commit_id: str) -> pygit2.Commit | None:
        try:
            return repo.revparse_single(commit_id).peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError):
            return None

    # --- policies -------------------------------------------------------------------------

    def _check_history(self, repo: pygit2.Repository, commit: pygit2.Commit) -> None:
        previous, new = self._last_applied, str(commit.id)
        self.history_rewrite = None
        if previous is None or previous == new:
            return
        # A missing previous commit after a complete fetch cannot be an ancestor of the new one.
        with self._mirror.reading(f"checking that {new[:12]} descends from {previous[:12]}"):
            if previous in repo and repo.descendant_of(commit.id, pygit2.Oid(hex=previous)):
                return
        self.history_rewrite = (previous, new)
        policy = self.settings.history
        if self._logged_rewrite != self.history_rewrite:
            self._logged_rewrite = self.history_rewrite
            self.log.warning(
                "history_rewritten", revision=new, previous=previous, policy=policy.value
            )
        if policy is HistoryPolicy.REFUSE:
            raise self.endpoint.error(
                HistoryRewrittenError,
                f"history rewritten: {new[:12]} does not descend from applied {previous[:12]}",
                retryable=False,
            )

    def _verify(self, commit: pygit2.Commit, tag: tuple[str, str, bytes | None] | None) -> None:
        settings = self.settings.signature
        checks_commit = settings is None or settings.mode is not VerifyMode.TAG
        refusal = self._signature_refusal(commit) if checks_commit else None
        if refusal is None and tag is not None:
            refusal = self._tag_refusal(*tag)
        if refusal is not None:
            raise refusal

    def _tag_to_verify(
        self, session: Session, repo: pygit2.Repository, name: str
    ) -> tuple[str, str, bytes | None] | None:
        """(tag name, object id, raw tag object or None when lightweight) when the policy
        checks the tag's own signature (verify.mode tag or both)."""
        settings = self.settings.signature
        if settings is None or settings.mode is VerifyMode.COMMIT:
            return None
        tag_id = session.heads.get(name, "")
        with self._mirror.reading(f"looking up {name}"):
            present = tag_id in repo
        if not present:
            session.fetch([f"+{name}:{name}"])
        with self._mirror.reading(f"reading {name}"):
            kind, raw = repo.odb.read(tag_id)
        return name, tag_id, raw if kind == pygit2.enums.ObjectType.TAG else None

    def _tag_refusal(self, name: str, tag_id: str, raw: bytes | None) -> SourceError | None:
        """The SignatureError the policy refuses tag `name` with, or None when it passes."""
        settings = self.settings.signature
        # A lightweight tag's id is its commit's: keyed apart from verified commits.
        if settings is None or f"tag:{tag_id}" in self._verified:
            return None
        short = name.removeprefix("refs/tags/")
        try:
            if raw is None:
                raise Untrusted("it is a lightweight tag, which carries no signature")
            signature, payload = tag_signature(raw)
            signer = verify_signature(signature, payload, settings, self.state_dir, "tag")
        except Untrusted as exc:
            self.log.warning("signature_refused", tag=short, reason=str(exc))
            refusal = self.endpoint.error(SignatureError, f"tag {short}: {exc}")
            refusal.__cause__ = exc
            return refusal
        self._verified.add(f"tag:{tag_id}")
        self.log.info("signature_verified", tag=short, signer=signer)
        return None

    def _signature_refusal(self, commit: pygit2.Commit) -> SourceError | None:
        """The SignatureError the policy refuses `commit` with, or None when it passes."""
        settings, commit_id = self.settings.signature, str(commit.id)
        if settings is None or commit_id in self._verified:
            return None
        with self._mirror.reading(f"reading the signature of {commit_id[:12]}"):
            signature, payload = commit.gpg_signature
        try:
            signer = verify_signature(signature, payload, settings, self.state_dir)
        except Untrusted as exc:
            self.log.warning("signature_refused", revision=commit_id, reason=str(exc))
            refusal = self.endpoint.error(SignatureError, f"commit {commit_id[:12]}: {exc}")
            refusal.__cause__ = exc
            return refusal
        self._verified.add(commit_id)
        self.log.info("signature_verified", revision=commit_id, signer=signer)
        return None

    # --- setup ----------------------------------------------------------------------------

    def _validate(self) -> str:
        """The same checks as the configuration loader, for settings built some other way."""
        kind, ref = self.settings.ref_kind, self.settings.ref.strip()
        problem = None
        if not ref:
            problem = f"{kind.value} ref is empty"
        elif kind is RefKind.COMMIT:
            # An abbreviated id is accepted here; the configuration file wants it in full.
            if not _HEX.match(ref):
                problem = f"commit {ref!r} is not a hexadecimal commit id"
        else:
            reason = ref_problem(kind.value, ref)
            problem = f"{kind.value} {ref!r} {reason}" if reason else None
        try:
            base = normalize_path(self.settings.path)
        except ValueError:
            problem = f"path {self.settings.path!r} leaves the repository"
        if problem:
            raise ConfigError(f"target {self.target}: {problem}")
        return base

    def _ssh_home(self) -> Path | None:
        """A home whose .ssh/known_hosts is the target's, when it names one."""
        if self.settings.known_hosts is None or ssh_host_port(self.settings.repo) is None:
            return None
        return self.state_dir / "ssh" / slug(self.target)

    def _install_known_hosts(self) -> None:
        home = self.endpoint.ssh_home
        if home is None or self.settings.known_hosts is None:
            return
        try:
            data = self.settings.known_hosts.read_bytes()
        except OSError as exc:
            raise self.endpoint.error(
                AuthenticationError, f"cannot read known_hosts {self.settings.known_hosts}"
            ) from exc
        with writing(home):
            (home / ".ssh").mkdir(parents=True, exist_ok=True)
            (home / ".ssh" / "known_hosts").write_bytes(data)

    def _open_mirror(self) -> pygit2.Repository:
        """Open the mirror, making it first if need be; the caller holds `Mirror.held`."""
        self._install_known_hosts()
        return self._mirror.open()

    def _load_last_applied(self) -> str | None:
        try:
            data = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return None
        value = data.get("last_applied") if isinstance(data, dict) else None
        return value if isinstance(value, str) and _FULL_HEX.match(value) else None

    def _tree_error(self, revision: Revision) -> ErrorFactory:
        def make(cls: type[SourceError], what: str) -> SourceError:
            return self.endpoint.error(cls, f"at {revision.short}: {what}")

        return make
