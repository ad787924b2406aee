"""What `gitopsd diff` shows: a preview pass as text, markdown or JSON.

Pure: takes PassResults (plus what only a preview knows: where the revision was read,
why its signature would be refused, which objects the server could not validate) and
returns strings. Secret values never reach here: diffs are redacted when they are made
(diff.object_diff_text), and field changes are named by path, never by value.

- text: the unified diffs, like `kubectl diff`.
- markdown: a pull-request comment. A summary table per target, then one collapsible
  section per object; at most COMMENT_LIMIT characters (GitHub refuses longer comments),
  the summaries always kept and the diffs cut with a note, each code fence longer than
  any run of backticks in what it holds, so no content can close it early.
- json: for tools, schema version 1 (SCHEMA_VERSION; a field's meaning never changes
  within a version, new fields may be added):

    {"version": 1, "targets": [{
       "target": str, "source": "git" | "path",
       "revision": {"commit": str, "ref": str, "message": str} | null,
       "outcome": "in_sync" | "would_change" | "failed",
       "error": str | null,        # why the daemon would refuse the revision (one line)
       "refusal": str | null,      # why its signature would be refused on merge
       "summary": {"create": int, "update": int, "recreate": int, "prune": int,
                   "release": int, "unchanged": int, "kept": int},
       "objects": [{"action": "create" | "update" | "recreate" | "prune" | "release",
                    "group": str, "kind": str, "namespace": str, "name": str,
                    "reason": str, "fields": [str], "diff": str, "note": str | null}]}]}
"""

from __future__ import annotations

import enum
import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gitopsd.model import Action, ResourceKey, Revision, StepKind
from gitopsd.passresult import PassOutcome, PassResult, failure_line

SCHEMA_VERSION = 1
COMMENT_LIMIT = 65_536  # characters in one GitHub issue or pull-request comment
_NOTE_ROOM = 300  # kept free for the note that says what was left out


class Change(enum.Enum):
    """What the pass would do to one object."""

    CREATE = "create"
    UPDATE = "update"
    RECREATE = "recreate"
    PRUNE = "prune"
    RELEASE = "release"


_CHANGES = {
    StepKind.CREATE: Change.CREATE,
    StepKind.APPLY: Change.UPDATE,
    StepKind.RECREATE: Change.RECREATE,
    StepKind.DELETE: Change.PRUNE,
    StepKind.RELEASE: Change.RELEASE,
}
# Summary columns: always the first four, the others when they occur.
_ALWAYS = ("create", "update", "prune", "unchanged")
_COUNTS = ("create", "update", "recreate", "prune", "release", "unchanged", "kept")


@dataclass(frozen=True)
class ObjectChange:
    """One object the pass would write, with its redacted diff and changed field paths."""

    key: ResourceKey
    change: Change
    diff: str
    fields: tuple[str, ...] = ()
    reason: str = ""
    note: str = ""


@dataclass(frozen=True)
class TargetPreview:
    """One target's preview: the objects that would change, or why it would be refused."""

    target: str
    origin: str  # "git" or "path"
    revision: Revision | None
    objects: tuple[ObjectChange, ...] = ()
    unchanged: int = 0
    kept: int = 0
    error: str | None = None
    refusal: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(_COUNTS, 0)
        for obj in self.objects:
            counts[obj.change.value] += 1
        counts["unchanged"], counts["kept"] = self.unchanged, self.kept
        return counts

    @property
    def outcome(self) -> PassOutcome:
        if self.error is not None:
            return PassOutcome.FAILED
        return PassOutcome.WOULD_CHANGE if self.objects else PassOutcome.IN_SYNC


def target_preview(
    result: PassResult,
    origin: str,
    *,
    refusal: str | None = None,
    notes: Mapping[ResourceKey, str] | None = None,
) -> TargetPreview:
    """The preview of one dry-run pass; a failed pass shows only why it failed."""
    revision = result.revision
    refused = failure_line(result.target, refusal) if refusal else None
    if result.error is not None:
        error = failure_line(result.target, result.error)
        return TargetPreview(result.target, origin, revision, error=error, refusal=refused)
    diffs = {preview.key: preview.diff_text for preview in result.previews}
    steps = result.plan.steps if result.plan is not None else ()
    objects = tuple(
        ObjectChange(
            key=step.key,
            change=_CHANGES[step.kind],
            diff=diffs.get(step.key, ""),
            fields=step.drift.field_paths if step.drift is not None else (),
            reason=step.reason,
            note=(notes or {}).get(step.key, ""),
        )
        for step in steps
    )
    entries = result.changes.entries
    confirmed = sum(1 for e in entries if e.action is Action.UNCHANGED)
    in_sync = len(result.plan.unchanged) if result.plan is not None else 0
    kept = sum(1 for e in entries if e.action is Action.KEPT)
    return TargetPreview(
        result.target, origin, revision, objects, in_sync + confirmed, kept, refusal=refused
    )


OUTPUTS = ("text", "markdown", "json")


def formatted(previews: Sequence[TargetPreview], output: str) -> str:
    """The previews in one of OUTPUTS."""
    if output == "markdown":
        return as_markdown(previews)
    return as_json(previews) if output == "json" else as_text(previews)


# --- text -------------------------------------------------------------------------------


def as_text(previews: Iterable[TargetPreview]) -> str:
    """The unified diffs, preceded by a line for each refusal and unvalidated object."""
    out: list[str] = []
    for preview in previews:
        if preview.refusal:
            out.append(f"WOULD BE REFUSED ON MERGE: {preview.refusal}\n")
        for obj in preview.objects:
            if obj.note:
                out.append(f"NOTE: {obj.key}: {obj.note}\n")
            if obj.diff:
                out.append(obj.diff if obj.diff.endswith("\n") else obj.diff + "\n")
    return "".join(out)


# --- json -------------------------------------------------------------------------------


def as_json(previews: Iterable[TargetPreview]) -> str:
    """The schema of the module docstring, version SCHEMA_VERSION."""
    document = {"version": SCHEMA_VERSION, "targets": [_json_target(p) for p in previews]}
    return json.dumps(document, indent=2) + "\n"


def _json_target(preview: TargetPreview) -> dict[str, Any]:
    revision = preview.revision
    return {
        "target": preview.target,
        "source": preview.origin,
        "revision": None
        if revision is None
        else {"commit": revision.commit, "ref": revision.ref, "message": revision.message},
        "outcome": preview.outcome.value,
        "error": preview.error,
        "refusal": preview.refusal,
        "summary": preview.counts,
        "objects": [
            {
                "action": obj.change.value,
                **obj.key.as_dict(),
                "reason": obj.reason,
                "fields": list(obj.fields),
                "diff": obj.diff,
                "note": obj.note or None,
            }
            for obj in preview.objects
        ],
    }


# --- markdown ---------------------------------------------------------------------------


def as_markdown(previews: Sequence[TargetPreview], limit: int = COMMENT_LIMIT) -> str:
    """A pull-request comment of at most `limit` characters (see the module docstring)."""
    heads = [_head(preview) for preview in previews]
    budget = limit - sum(len(head) for head in heads) - _NOTE_ROOM
    bodies: list[str] = []
    left_out, cut = 0, False
    for preview in previews:
        sections: list[str] = []
        for obj in preview.objects:
            section = "" if cut else _section(obj)
            if not cut and len(section) > budget:
                cut = True  # this one is cut to fit; every later one is left out, in order
                section = _section(obj, room=budget)
            if not section:
                left_out += 1
                continue
            sections.append(section)
            budget -= len(section)
        bodies.append("".join(sections))
    text = "".join(head + body for head, body in zip(heads, bodies, strict=True))
    if left_out:
        text += (
            f"_{left_out:,} more object(s) not shown: the comment would exceed {limit:,} "
            "characters. `gitopsd diff` in the job's log shows every diff._\n"
        )
    return text if len(text) <= limit else _cut_at_line(text, limit)


def _head(preview: TargetPreview) -> str:
    lines = [f"### gitopsd diff: target {_code(preview.target)}", ""]
    revision = preview.revision
    if revision is not None and preview.origin == "path":
        lines += [f"Local directory {_code(revision.ref)}", ""]
    elif revision is not None:
        where = f" from {_code(revision.ref)}" if revision.ref else ""
        message = f": {_escape(revision.message)}" if revision.message else ""
        lines += [f"Revision {_code(revision.short)}{where}{message}", ""]
    if preview.refusal:
        lines += [f"> **Would be refused on merge:** {_escape(preview.refusal)}", ""]
    if preview.error:
        lines += [f"> **Refused, nothing would be applied:** {_escape(preview.error)}", ""]
        return "\n".join(lines) + "\n"
    counts = preview.counts
    columns = [c for c in _COUNTS if c in _ALWAYS or counts[c]]
    lines += [
        "| " + " | ".join(columns) + " |",
        "|" + "---:|" * len(columns),
        "| " + " | ".join(str(counts[c]) for c in columns) + " |",
        "",
    ]
    if not preview.objects:
        lines += ["No changes: the cluster matches this revision.", ""]
    return "\n".join(lines) + "\n"


def _section(obj: ObjectChange, room: int | None = None) -> str:
    """One object's collapsible section; with `room`, cut to fit it ('' if nothing fits)."""
    summary = f"<b>{obj.change.value}</b> <code>{html.escape(str(obj.key))}</code>"
    top = [f"<details><summary>{summary}</summary>", ""]
    if obj.fields:
        top += ["Fields: " + ", ".join(_code(path) for path in obj.fields), ""]
    if obj.note:
        top += [f"_{_escape(obj.note)}_", ""]
    lines = [line if line.endswith("\n") else line + "\n" for line in obj.diff.splitlines()]
    if not lines:
        text = "\n".join([*top, "_No field-level difference to show._", "", "</details>", "", ""])
        return text if room is None or len(text) <= room else ""
    fence = "`" * max(3, _longest_backticks(obj.diff) + 1)
    opening = "\n".join(top) + f"\n{fence}diff\n"
    closing = f"{fence}\n\n</details>\n\n"
    if room is None or len(opening) + sum(map(len, lines)) + len(closing) <= room:
        return opening + "".join(lines) + closing
    cut_closing = fence + "\n\n_Diff cut: {:,} more line(s)._\n\n</details>\n\n"
    size = len(opening) + len(cut_closing.format(len(lines)))  # the longest count it can say
    kept = 0
    while kept < len(lines) and size + len(lines[kept]) <= room:
        size += len(lines[kept])
        kept += 1
    if not kept:
        return ""
    return opening + "".join(lines[:kept]) + cut_closing.format(len(lines) - kept)


def _cut_at_line(text: str, limit: int) -> str:
    """`text` cut at a line end to fit `limit` with a note (only the summaries are left)."""
    note = "\n_Cut: the summaries alone exceed the comment size limit._\n"
    cut = text[: max(0, limit - len(note))]
    return cut[: cut.rfind("\n") + 1] + note


def _longest_backticks(text: str) -> int:
    return max((len(run) for run in re.findall(r"`+", text)), default=0)


def _code(text: str) -> str:
    """`text` as an inline code span that no backtick in it can end early."""
    text = " ".join(text.split())
    ticks = "`" * (_longest_backticks(text) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _escape(text: str) -> str:
    """Plain text for markdown: one line, the characters that start markup or HTML escaped."""
    return re.sub(r"([\\`*_\[\]<>|~&])", r"\\\1", " ".join(text.split()))
