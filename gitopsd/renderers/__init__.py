"""Choose and run a target's renderer: plain YAML, `kustomize build` or `helm template`.

Plain YAML is rendered from the files the source stage read, as before. kustomize and
Helm need the repository as a directory: the source writes the commit out (checkout),
the tool runs on it under a deadline and an output cap, and its output goes through the
same validation as plain YAML. Any failure refuses the whole revision with one
RenderError naming the target, the renderer, the path and the tool's own error line.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from gitopsd.config import TargetSettings
from gitopsd.errors import RenderError
from gitopsd.model import DECRYPTED_ANNOTATION, DesiredObject, Manifest, Revision, SourceFile
from gitopsd.render import Namespaced, documents, render_documents, stream_documents
from gitopsd.renderconfig import RenderKind, RenderSettings
from gitopsd.renderers.charts import (
    chart_repository,
    chart_version,
    resolved_chart,
    unpack_chart,
)
from gitopsd.renderers.helm import (
    Capabilities,
    HelmInput,
    check_chart_links,
    check_dependencies,
    helm_argv,
    helm_env,
    values_paths,
    values_redactor,
    write_inline_values,
)
from gitopsd.renderers.kustomize import KUSTOMIZATION_FILES, KustomizeCheck, kustomize_argv
from gitopsd.renderers.quoting import quote_hints
from gitopsd.renderers.run import ToolCall, base_env, identity, replacing, run_tool
from gitopsd.renderers.substitute import Variables, read_variables, substitute_marking
from gitopsd.sops import Decrypted, decrypt_files, decrypt_tree, mark_decrypted, private_base

# Writes the repository at the revision into a directory; returns the symlinks left out.
Checkout = Callable[[Path], frozenset[str]]

__all__ = [
    "Capabilities",
    "RenderJob",
    "Rendered",
    "capabilities_digest",
    "capabilities_of",
    "choose",
    "fingerprint",
    "job_for",
    "render_target",
    "resolved_chart",
    "with_chart_cache",
]


@dataclass(frozen=True)
class RenderJob:
    """Everything one render of one target needs, I/O handed in as callables."""

    target: TargetSettings
    files: Sequence[SourceFile]  # the manifests under `path` (the plain renderer's input)
    namespaced: Namespaced
    checkout: Checkout | None = None  # None: the source cannot write a checkout
    capabilities: Callable[[], Capabilities] | None = None


def job_for(
    target: TargetSettings,
    files: Sequence[SourceFile],
    namespaced: Namespaced,
    source: object,
    adapter: object,
    revision: Revision,
) -> RenderJob:
    """A RenderJob whose checkout and capabilities come from the source and the adapter,
    when they offer them (`checkout`, `capabilities`; test doubles may not)."""
    write = getattr(source, "checkout", None)

    def checkout(directory: Path) -> frozenset[str]:
        assert write is not None
        result: frozenset[str] = write(revision, directory)
        return result

    return RenderJob(
        target,
        files,
        namespaced,
        checkout=checkout if write is not None else None,
        capabilities=capabilities_of(adapter),
    )


def capabilities_of(adapter: object) -> Callable[[], Capabilities] | None:
    """The adapter's discovery as Helm's capabilities, when it offers it (`capabilities`)."""
    discover = getattr(adapter, "capabilities", None)
    if discover is None:
        return None

    def capabilities() -> Capabilities:
        version, api_versions = discover()
        return Capabilities(str(version), tuple(api_versions))

    return capabilities


def capabilities_digest(capabilities: Capabilities) -> str:
    """A digest of the kube version and API versions: what a cached Helm render depends on."""
    inputs = [capabilities.kube_version, sorted(capabilities.api_versions)]
    return hashlib.sha256(json.dumps(inputs).encode()).hexdigest()


@dataclass(frozen=True)
class Rendered:
    """A render's objects, and the digest of the capabilities it read (Helm only)."""

    objects: tuple[DesiredObject, ...]
    capabilities: str | None = None


def with_chart_cache(target: TargetSettings, directory: Path) -> TargetSettings:
    """`target` with chart repository downloads kept in `directory` (the state directory's)."""
    return replace(target, render=replace(target.render, chart_cache=directory))


def choose(settings: RenderSettings, files: Sequence[SourceFile]) -> RenderKind:
    """The renderer `auto` means for these files: kustomize, Helm, else plain YAML."""
    if settings.kind is not RenderKind.AUTO:
        return settings.kind
    if settings.helm.chart is not None:
        return RenderKind.HELM
    names = {file.path for file in files}
    if names & set(KUSTOMIZATION_FILES):
        return RenderKind.KUSTOMIZE
    if "Chart.yaml" in names:
        return RenderKind.HELM
    return RenderKind.PLAIN


def fingerprint(target: TargetSettings) -> str:
    """A digest of what a render reads besides the commit: settings, tools, variables.

    Tools are identified by their file (path, size, mtime), so a cached render is
    re-used without running anything, and replacing a tool renders again.
    """
    settings = target.render
    inputs = {
        "settings": json.dumps(asdict(settings), sort_keys=True, default=str),
        "kustomize": identity(kustomize_argv(settings.kustomize_tool, Path("."))[0]),
        "helm": identity(settings.helm_tool or "helm"),
        "variables": read_variables(settings, target.name).digest() if settings.substitutes else "",
        # A new chart version matching helm.version renders again (one conditional request).
        "chart": chart_version(target) if settings.helm.chart is not None else "",
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def render_target(job: RenderJob) -> tuple[DesiredObject, ...]:
    """The target's objects at this revision, whichever renderer it uses."""
    return render_recording(job).objects


def render_recording(job: RenderJob) -> Rendered:
    """As `render_target`, with the digest of the capabilities a Helm render read: a
    chart branching on `.Capabilities` renders otherwise once a CRD is served."""
    read: list[str] = []
    discover = job.capabilities
    if discover is not None:

        def capabilities() -> Capabilities:
            found = discover()
            read.append(capabilities_digest(found))
            return found

        job = replace(job, capabilities=capabilities)
    objects = _render(job)
    return Rendered(objects, read[0] if read else None)


def _render(job: RenderJob) -> tuple[DesiredObject, ...]:
    settings = job.target.render
    kind = choose(settings, job.files)
    variables = read_variables(settings, job.target.name) if settings.substitutes else None
    namespace = job.target.namespace
    if kind is RenderKind.PLAIN:
        decrypted = decrypt_files(job.files, job.target.decryption, job.target.name)
        found = list(documents(decrypted.files, mark_unquoted=variables is not None))
    else:
        if kind is RenderKind.HELM:
            namespace = settings.helm.namespace or namespace
        found, decrypted = _tool_documents(job, kind, mark_unquoted=variables is not None)
    if variables is not None:
        named = kind is not RenderKind.PLAIN  # tool output's `where` names the object already
        found = [
            (w, o, _substituted(m, variables, w if named else f"{w} ({_identity(m)})"))
            for w, o, m in found
        ]
    objects = render_documents(
        found, default_namespace=namespace, target=job.target.name, namespaced=job.namespaced
    )
    # Objects holding decrypted values are shown only as stand-ins (gitopsd.sops).
    return mark_decrypted(objects, decrypted, generated=kind is not RenderKind.PLAIN)


def _substituted(manifest: Manifest, variables: Variables, where: str) -> Manifest:
    result, secret = substitute_marking(manifest, variables, where)
    if not secret or not isinstance(result.get("metadata"), dict):
        return result
    # Marked as SOPS marks what it decrypted: diffs, drift and the journal then show this
    # object's values only as stand-ins, and its render is never written to the cache.
    metadata = dict(result["metadata"])
    annotations = metadata.get("annotations")
    kept = annotations if isinstance(annotations, dict) else {}
    metadata["annotations"] = {**kept, DECRYPTED_ANNOTATION: "substitute"}
    return {**result, "metadata": metadata}


def describe(target: TargetSettings, kind: RenderKind) -> str:
    """`target web: kustomize render of overlays/prod`, the start of every render error."""
    return f"target {target.name}: {kind.value} render of {target.source.path}"


def _tool_documents(
    job: RenderJob, kind: RenderKind, *, mark_unquoted: bool = False
) -> tuple[list[tuple[str, str, Manifest]], Decrypted]:
    what = describe(job.target, kind)
    if job.checkout is None:
        raise RenderError(
            f"{what}: needs the whole repository, not only {job.target.source.path!r}; with "
            f"`diff --path`, give the target's folder inside a working copy of the repository "
            f"(a folder ending in {job.target.source.path!r})"
        )
    # Decrypted files live only in this 0700 folder, on a tmpfs when decrypting.
    base = private_base(job.target.decryption)
    work = Path(tempfile.mkdtemp(prefix="gitopsd-render-", dir=base))
    try:
        checkout = work / "repo"
        checkout.mkdir(mode=0o700)
        escaping = job.checkout(checkout)
        tree = decrypt_tree(checkout, job.target.decryption, job.target.name)
        home = work / "home"
        home.mkdir(mode=0o700)
        # A tool's error line may quote a decrypted value (a chart's `fail`, `required`).
        hide = _hiding(tree.decrypted.values)
        if kind is RenderKind.KUSTOMIZE:
            output = _kustomize(job, checkout, escaping, home, what, hide)
        else:
            output = _helm(job, checkout, escaping, home, what, hide)
        tree.check_output(output)
        label = f"{kind.value} output of {job.target.source.path}"
        output_file = SourceFile(label, output)
        # A document index in generated output means nothing to a reader: name the object.
        found = [
            (f"{w} ({_identity(m)})", f"{o} ({_identity(m)})", m)
            for w, o, m in stream_documents(output_file, mark_unquoted=mark_unquoted)
        ]
        if mark_unquoted and kind is RenderKind.KUSTOMIZE:
            # kustomize drops the quotes of `"${VAR}"`: the sources still show them.
            hints = quote_hints(checkout)
            found = [(w, o, hints.apply(m)) for w, o, m in found]
        return found, tree.decrypted
    finally:
        shutil.rmtree(work, ignore_errors=True)


_DECRYPTED_STAND_IN = "<a decrypted value>"


def _then(first: Callable[[str], str], second: Callable[[str], str]) -> Callable[[str], str]:
    return lambda line: second(first(line))


def _hiding(values: frozenset[str]) -> Callable[[str], str]:
    """Replaces each decrypted value (of 4 characters or more: a shorter one would garble
    the line more than it hides) by a stand-in."""
    return replacing((v for v in values if len(v) >= 4), _DECRYPTED_STAND_IN)


def _identity(manifest: Manifest) -> str:
    """`Deployment shop/web`, as far as the document says."""
    metadata = manifest.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    namespace, name = metadata.get("namespace"), metadata.get("name")
    where = f"{namespace}/" if isinstance(namespace, str) and namespace else ""
    return f"{manifest.get('kind')} {where}{name}"


def _kustomize(
    job: RenderJob,
    checkout: Path,
    escaping: frozenset[str],
    home: Path,
    what: str,
    hide: Callable[[str], str],
) -> bytes:
    settings = job.target.render
    path = job.target.source.path
    KustomizeCheck(checkout, what, allow_remote=settings.allow_remote, escaping=escaping).check(
        path
    )
    directory = checkout / path
    return run_tool(
        ToolCall(
            argv=kustomize_argv(settings.kustomize_tool, directory),
            cwd=directory,
            describe=what,
            timeout_seconds=settings.timeout_seconds,
            max_output_bytes=settings.max_output_bytes,
            env=base_env(home),
            setting="tools.kustomize",
            redact=hide,
        )
    )


def _helm(
    job: RenderJob,
    checkout: Path,
    escaping: frozenset[str],
    home: Path,
    what: str,
    hide: Callable[[str], str],
) -> bytes:
    settings = job.target.render
    helm = settings.helm
    if helm.chart is not None:
        chart = unpack_chart(chart_repository(job.target).resolve(), home / "chart", what)
    else:
        check_chart_links(job.target.source.path, escaping, what)
        chart = checkout / job.target.source.path
    if not (chart / "Chart.yaml").is_file():
        raise RenderError(f"{what}: no Chart.yaml at {job.target.source.path!r}")
    check_dependencies(chart, what)
    helm_input = HelmInput(
        chart=chart,
        checkout=checkout,
        target_path=job.target.source.path,
        release=helm.release or job.target.name,
        namespace=helm.namespace or job.target.namespace,
        settings=helm,
        escaping=escaping,
    )
    capabilities = job.capabilities() if job.capabilities is not None else None
    inline = write_inline_values(helm, home)
    argv = helm_argv(settings.helm_tool or "helm", helm_input, capabilities, inline, what)
    return run_tool(
        ToolCall(
            argv=argv,
            cwd=checkout,
            describe=what,
            timeout_seconds=settings.timeout_seconds,
            max_output_bytes=settings.max_output_bytes,
            env={**base_env(home), **helm_env(home)},
            setting="tools.helm",
            redact=_then(values_redactor(values_paths(helm_input, what)), hide),
        )
    )
