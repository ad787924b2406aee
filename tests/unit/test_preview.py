"""The preview formats on plain data: counts, text, JSON schema, markdown fences and limits."""

from __future__ import annotations

import base64
import json
import re

import pytest

from gitopsd.diff import object_diff_text
from gitopsd.errors import ReconcileError
from gitopsd.model import (
    Action,
    ChangeSet,
    ChangeSetEntry,
    DesiredObject,
    DriftReport,
    FieldChange,
    Plan,
    PlanStep,
    ResourceKey,
    Revision,
    StepKind,
)
from gitopsd.passresult import ObjectPreview, PassOutcome, PassResult
from gitopsd.preview import (
    COMMENT_LIMIT,
    Change,
    ObjectChange,
    TargetPreview,
    as_json,
    as_markdown,
    as_text,
    target_preview,
)

REVISION = Revision("0123456789abcdef0123456789abcdef01234567", "refs/heads/feature", "review me")
APP = ResourceKey("", "ConfigMap", "ns", "app")
WEB = ResourceKey("apps", "Deployment", "ns", "web")
SVC = ResourceKey("", "Service", "ns", "web")
SAME = ResourceKey("", "ConfigMap", "ns", "same")
KEPT = ResourceKey("", "ConfigMap", "ns", "kept")


def desired(key: ResourceKey) -> DesiredObject:
    return DesiredObject(key, {"apiVersion": "v1", "kind": key.kind}, "x.yaml#0")


def pass_result(error: Exception | None = None) -> PassResult:
    drift = DriftReport(APP, False, (FieldChange("data.color", "green", "blue"),))
    plan = Plan(
        steps=(
            PlanStep(StepKind.APPLY, APP, desired(APP), drift, "drift"),
            PlanStep(StepKind.CREATE, WEB, desired(WEB), DriftReport(WEB, True), "missing"),
            PlanStep(StepKind.DELETE, SVC, None, reason="not declared"),
        ),
        unchanged=(SAME,),
    )
    entries = (ChangeSetEntry(KEPT, Action.KEPT), ChangeSetEntry(SAME, Action.UNCHANGED))
    return PassResult(
        target="app",
        outcome=PassOutcome.FAILED if error else PassOutcome.WOULD_CHANGE,
        revision=REVISION,
        changes=ChangeSet(entries),
        plan=plan,
        error=error,  # type: ignore[arg-type]
        started_at=0.0,
        duration_seconds=0.0,
        previews=tuple(
            ObjectPreview(k, f"--- live/{k}\n+++ desired/{k}\n-a\n+b\n") for k in (APP, WEB, SVC)
        ),
    )


def test_a_pass_becomes_one_change_per_step_with_counts_fields_and_notes() -> None:
    preview = target_preview(pass_result(), "git", notes={WEB: "not validated"})
    assert [(o.key, o.change, o.fields, o.note) for o in preview.objects] == [
        (APP, Change.UPDATE, ("data.color",), ""),
        (WEB, Change.CREATE, (), "not validated"),
        (SVC, Change.PRUNE, (), ""),
    ]
    assert preview.counts == {
        "create": 1,
        "update": 1,
        "recreate": 0,
        "prune": 1,
        "release": 0,
        "unchanged": 2,
        "kept": 1,
    }
    assert preview.outcome is PassOutcome.WOULD_CHANGE


def test_a_failed_pass_shows_only_why() -> None:
    failed = target_preview(pass_result(ReconcileError("target app: revision refused: bad")), "git")
    assert failed.objects == () and failed.outcome is PassOutcome.FAILED
    assert failed.error == "target app: revision refused: bad"


def test_text_is_the_diffs_with_a_refusal_line_first() -> None:
    preview = target_preview(pass_result(), "git", refusal="commit 0123: not signed")
    text = as_text([preview])
    assert text.startswith("WOULD BE REFUSED ON MERGE: target app: commit 0123: not signed\n")
    assert text.count("--- live/") == 3


def test_json_follows_the_documented_schema() -> None:
    document = json.loads(as_json([target_preview(pass_result(), "git")]))
    assert document["version"] == 1
    (target,) = document["targets"]
    assert set(target) == {
        "target",
        "source",
        "revision",
        "outcome",
        "error",
        "refusal",
        "summary",
        "objects",
    }
    assert target["revision"] == {
        "commit": REVISION.commit,
        "ref": REVISION.ref,
        "message": "review me",
    }
    assert target["objects"][0] == {
        "action": "update",
        "group": "",
        "kind": "ConfigMap",
        "namespace": "ns",
        "name": "app",
        "reason": "drift",
        "fields": ["data.color"],
        "diff": target["objects"][0]["diff"],
        "note": None,
    }
    assert [o["action"] for o in target["objects"]] == ["update", "create", "prune"]


def test_markdown_has_a_summary_table_and_a_section_per_object() -> None:
    markdown = as_markdown([target_preview(pass_result(), "git")])
    # The first four columns always; others (kept here) when they occur.
    table = "| create | update | prune | unchanged | kept |\n|---:|---:|---:|---:|---:|\n"
    assert table + "| 1 | 1 | 1 | 2 | 1 |\n" in markdown
    assert re.findall(r"<summary><b>(\w+)</b>", markdown) == ["update", "create", "prune"]
    assert "Revision `0123456789ab` from `refs/heads/feature`: review me" in markdown
    check_fences(markdown)


def test_markdown_of_a_refusal_and_of_a_failure() -> None:
    refused = target_preview(pass_result(), "git", refusal="commit 0123: signed by <mallory>")
    assert "> **Would be refused on merge:** target app: commit 0123: signed by \\<mallory\\>" in (
        as_markdown([refused])
    )
    failed = target_preview(pass_result(ReconcileError("target app: a|b *bad*")), "git")
    markdown = as_markdown([failed])
    assert "> **Refused, nothing would be applied:** target app: a\\|b \\*bad\\*" in markdown
    assert "<details>" not in markdown and "| create |" not in markdown


def test_a_fence_is_longer_than_any_backtick_run_in_the_diff() -> None:
    # A context line is indented by one space: a fence of three would end at ` ````.
    diff = "--- live/x\n+++ desired/x\n ```\n+  script: |\n+    ````` five\n"
    change = ObjectChange(APP, Change.UPDATE, diff)
    markdown = as_markdown([TargetPreview("app", "git", REVISION, (change,))])
    assert "\n``````diff\n" in markdown and "\n``````\n" in markdown
    check_fences(markdown)


def test_inline_code_holds_backticks() -> None:
    revision = Revision(REVISION.commit, "refs/heads/a`b", "")
    markdown = as_markdown([TargetPreview("app", "git", revision)])
    assert "from ``refs/heads/a`b``" in markdown


def big_preview(target: str, objects: int, lines: int) -> TargetPreview:
    changes = tuple(
        ObjectChange(
            ResourceKey("", "ConfigMap", "ns", f"cm-{i:03}"),
            Change.UPDATE,
            "".join(f"+  key-{n}: {'v' * 60} ```\n" for n in range(lines)),
        )
        for i in range(objects)
    )
    return TargetPreview(target, "git", REVISION, changes)


@pytest.mark.parametrize("limit", [2_000, 5_000, 9_999, 20_000, COMMENT_LIMIT])
def test_long_markdown_is_cut_under_the_limit_with_a_note_and_whole_fences(limit: int) -> None:
    previews = [big_preview("one", 30, 80), big_preview("two", 3, 5)]
    markdown = as_markdown(previews, limit=limit)
    assert len(markdown) <= limit
    check_fences(markdown)
    assert markdown.count("<details>") == markdown.count("</details>")
    assert "more object(s) not shown" in markdown
    # Every target's summary is kept, the second's too.
    assert "target `one`" in markdown and "target `two`" in markdown
    assert markdown.count("| 0 | 30 | 0 | 0 |") == 1 and markdown.count("| 0 | 3 | 0 | 0 |") == 1


def test_the_diff_that_overflows_is_cut_at_a_line_and_says_how_much() -> None:
    markdown = as_markdown([big_preview("one", 1, 2_000)], limit=20_000)
    assert len(markdown) <= 20_000
    cut = re.search(r"_Diff cut: ([\d,]+) more line\(s\)\._", markdown)
    assert cut is not None
    shown = markdown.count("+  key-")
    assert shown + int(cut[1].replace(",", "")) == 2_000
    check_fences(markdown)


def test_short_markdown_is_not_cut() -> None:
    markdown = as_markdown([big_preview("one", 2, 3)])
    assert "not shown" not in markdown and "cut" not in markdown.lower()


def test_secret_values_appear_in_no_format() -> None:
    value = "s3cr3t-value"
    live = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "ns"},
        "data": {"token": base64.b64encode(b"old-value").decode()},
    }
    want = {k: v for k, v in live.items() if k != "data"} | {"stringData": {"token": value}}
    key = ResourceKey("", "Secret", "ns", "creds")
    diff = object_diff_text(want, live, str(key))
    change = ObjectChange(key, Change.UPDATE, diff, ("data.token",))
    previews = [TargetPreview("app", "git", REVISION, (change,))]
    for text in (as_text(previews), as_markdown(previews), as_json(previews)):
        assert "<redacted hmac:" in text
        for secret in (value, "old-value"):
            assert secret not in text
            assert base64.b64encode(secret.encode()).decode() not in text


def check_fences(markdown: str) -> None:
    """Every code fence opened is closed by a fence at least as long, before the end."""
    opened = 0
    for line in markdown.splitlines():
        # CommonMark: a fence may be indented up to three spaces.
        run = re.match(r"^ {0,3}(`{3,})(.*)$", line)
        if run is None:
            continue
        if not opened:
            opened = len(run[1])
            assert "`" not in run[2], line  # an info string never holds a backtick
        elif len(run[1]) >= opened and not run[2].strip():
            opened = 0
    assert not opened, "a code fence is left open"
