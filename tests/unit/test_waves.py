"""Sync waves: the annotation's value, and how waves and tiers order the stages of a pass."""

from __future__ import annotations

from typing import Any

import pytest

from gitopsd.errors import RenderError
from gitopsd.model import PlanStep, StepKind
from gitopsd.waves import WAVE_ANNOTATION, declared_in, stages, wave_of, waves_of
from tests.unit._data import desired, key_of


def manifest(kind: str, name: str, namespace: str = "", wave: Any = None) -> dict[str, Any]:
    api_version = {"Deployment": "apps/v1", "Job": "batch/v1"}.get(kind, "v1")
    if kind == "CustomResourceDefinition":
        api_version = "apiextensions.k8s.io/v1"
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    if wave is not None:
        metadata["annotations"] = {WAVE_ANNOTATION: wave}
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata}


def create(m: dict[str, Any]) -> PlanStep:
    return PlanStep(StepKind.CREATE, key_of(m), desired(m))


def delete(m: dict[str, Any]) -> PlanStep:
    return PlanStep(StepKind.DELETE, key_of(m), None)


@pytest.mark.parametrize(
    ("value", "wave"), [(None, 0), ("-1", -1), ("0", 0), ("5", 5), ("+2", 2), (" 3 ", 3)]
)
def test_wave_of_reads_the_annotation(value: Any, wave: int) -> None:
    assert wave_of(manifest("Job", "migrate", "shop", value)) == wave


@pytest.mark.parametrize("value", ["first", "1.5", "", "1e3", "9999999999", 1, True])
def test_a_wave_that_is_no_integer_is_refused_naming_the_document(value: Any) -> None:
    objects = [desired(manifest("Job", "migrate", "shop", value), origin="db/migrate.yaml#2")]
    with pytest.raises(RenderError) as refused:
        waves_of(objects)
    text = str(refused.value)
    assert text.startswith("db/migrate.yaml#2: annotation gitopsd.io/wave: ")
    assert repr(value) in text and 'gitopsd.io/wave: "-1"' in text


def test_without_annotations_the_stages_are_the_tiers_as_before() -> None:
    ns, role, cm = (
        manifest("Namespace", "shop"),
        manifest("ClusterRole", "reader"),
        manifest("ConfigMap", "c", "shop"),
    )
    old = manifest("ConfigMap", "old", "shop")
    steps = [create(ns), create(role), create(cm), delete(old)]
    result = stages(steps, waves_of([desired(ns), desired(role), desired(cm)]))
    assert [[s.key.name for s in stage.steps] for stage in result] == [
        ["shop"],
        ["reader"],
        ["c"],
        ["old"],
        [],
        [],
    ]
    assert [stage.gate_after for stage in result] == [None] * 6
    assert result[0].definitions and not any(stage.definitions for stage in result[1:])


def test_waves_go_lowest_first_each_by_tier_with_a_gate_between_them() -> None:
    job = manifest("Job", "migrate", "shop", "-1")
    web = manifest("Deployment", "web", "shop")
    role = manifest("ClusterRole", "late", wave="2")
    objects = [desired(m) for m in (job, web, role)]
    result = stages([create(web), create(role), create(job)], waves_of(objects))
    names = [[s.key.name for s in stage.steps] for stage in result]
    assert names == [[], [], ["migrate"], [], ["web"], ["late"], [], [], [], []]
    assert [stage.gate_after for stage in result[:7]] == [None, None, -1, None, 0, None, None]


def test_namespaces_and_crds_come_first_whatever_their_wave() -> None:
    ns = manifest("Namespace", "shop", wave="5")
    crd = manifest("CustomResourceDefinition", "widgets.example.com", wave="3")
    job = manifest("Job", "migrate", "shop", "-1")
    objects = [desired(m) for m in (ns, crd, job)]
    result = stages([create(job), create(crd), create(ns)], waves_of(objects))
    assert {s.key.name for s in result[0].steps} == {"shop", "widgets.example.com"}
    assert [s.key.name for s in result[2].steps] == ["migrate"]


def test_a_wave_with_nothing_to_write_is_still_gated_before_a_later_one() -> None:
    job = manifest("Job", "migrate", "shop", "-1")
    web = manifest("Deployment", "web", "shop")
    result = stages([create(web)], waves_of([desired(job), desired(web)]))
    assert [stage.gate_after for stage in result[1:5]] == [None, -1, None, None]


def test_the_last_wave_is_gated_only_by_the_end_of_the_pass() -> None:
    job = manifest("Job", "migrate", "shop", "-1")
    web = manifest("Deployment", "web", "shop")
    result = stages([create(job)], waves_of([desired(job), desired(web)]))
    assert [stage.gate_after for stage in result] == [None] * len(result)


def test_deletions_wait_behind_every_wave() -> None:
    job = manifest("Job", "migrate", "shop", "-1")
    web = manifest("Deployment", "web", "shop")
    old = manifest("ConfigMap", "old", "shop")
    result = stages([create(job), delete(old)], waves_of([desired(job), desired(web)]))
    gated = [i for i, stage in enumerate(result) if stage.gate_after == -1]
    deleting = [
        i for i, stage in enumerate(result) if any(s.key.name == "old" for s in stage.steps)
    ]
    assert gated and deleting and gated[0] < deleting[0]


def test_declared_in_picks_one_wave() -> None:
    job = desired(manifest("Job", "migrate", "shop", "-1"))
    web = desired(manifest("Deployment", "web", "shop"))
    waves = waves_of([job, web])
    assert declared_in([job, web], waves, -1) == (job,)
    assert declared_in([job, web], waves, 0) == (web,)
