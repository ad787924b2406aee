"""`depends_on`: the graph refused at load (unknown names, cycles) and the readiness rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitopsd.config import load_config
from gitopsd.dependencies import blocked, check_graph, dependents, find_cycle
from gitopsd.errors import ConfigError, RemoteUnreachableError
from gitopsd.health import Health, ObjectHealth
from gitopsd.model import ChangeSet, ResourceKey, Revision
from gitopsd.passresult import ObjectStatus, PassOutcome, PassResult

DB = ResourceKey("apps", "Deployment", "prod", "db")


def result(outcome: PassOutcome, **fields: object) -> PassResult:
    revision = Revision("a" * 40, "refs/heads/main")
    base = PassResult("db", outcome, revision, ChangeSet(), None, None, 0.0, 1.0)
    return PassResult(**{**base.__dict__, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("edges", "cycle"),
    [
        ({"app": ["db"], "db": []}, []),
        ({"app": ["app"]}, ["app", "app"]),
        ({"app": ["db"], "db": ["app"]}, ["app", "db", "app"]),
        ({"a": ["b", "c"], "b": ["c"], "c": ["d"], "d": ["b"]}, ["b", "c", "d", "b"]),
        ({"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}, []),  # a diamond is no cycle
    ],
)
def test_find_cycle(edges: dict[str, list[str]], cycle: list[str]) -> None:
    assert find_cycle(edges) == cycle


def test_a_long_chain_is_no_cycle_and_needs_no_recursion() -> None:
    edges = {f"t{i}": [f"t{i + 1}"] for i in range(5000)}
    assert find_cycle(edges) == []


def test_a_cycle_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError) as refused:
        check_graph("/etc/g.yaml", [("web", []), ("app", ["db"]), ("db", ["app"])])
    assert str(refused.value) == (
        "/etc/g.yaml: targets[1].depends_on: dependency cycle app -> db -> app; "
        "remove one of these dependencies"
    )


def test_an_unknown_dependency_is_refused_naming_the_targets() -> None:
    with pytest.raises(ConfigError) as refused:
        check_graph("/etc/g.yaml", [("db", []), ("app", ["bd"])])
    assert str(refused.value) == (
        "/etc/g.yaml: targets[1].depends_on: no target is called 'bd' (targets: db, app)"
    )


def test_load_config_refuses_a_cycle(tmp_path: Path) -> None:
    path = tmp_path / "gitopsd.yaml"
    repo = "repo: https://git.example.com/i.git, branch: main"
    path.write_text(
        "state_dir: state\ntargets:\n"
        f"  - {{name: db, {repo}, depends_on: [app]}}\n"
        f"  - {{name: app, {repo}, depends_on: [db]}}\n"
    )
    with pytest.raises(ConfigError, match=r"targets\[0\].depends_on: dependency cycle db -> app"):
        load_config(path)
    path.write_text(
        "state_dir: state\ntargets:\n"
        f"  - {{name: db, {repo}, wait: true}}\n"
        f"  - {{name: app, {repo}, depends_on: [db]}}\n"
    )
    assert load_config(path).target("app").depends_on == ("db",)


@pytest.mark.parametrize(
    "outcome", [PassOutcome.HEALTHY, PassOutcome.CONVERGED, PassOutcome.IN_SYNC]
)
def test_a_dependency_that_ended_ready_lets_the_pass_run(outcome: PassOutcome) -> None:
    assert blocked(["db"], {"db": result(outcome)}) is None


def test_a_progressing_dependency_holds_the_pass_back_saying_why() -> None:
    slow = ObjectStatus(DB, ObjectHealth(Health.IN_PROGRESS, "1/3 replicas available"))
    last = {"db": result(PassOutcome.PROGRESSING, health=(slow,))}
    assert blocked(["db"], last) == (
        "waiting for target db: progressing, 1/3 replicas available (Deployment.apps prod/db)"
    )


@pytest.mark.parametrize(
    ("last", "running", "why"),
    [
        ({}, (), "waiting for target db: no pass yet"),
        ({"db": result(PassOutcome.HEALTHY)}, ("db",), "waiting for target db: pass in progress"),
        ({"db": result(PassOutcome.DEGRADED)}, (), "waiting for target db: degraded"),
        (
            {"db": result(PassOutcome.FAILED, error=RemoteUnreachableError("remote r:\n down"))},
            (),
            "waiting for target db: failed, remote r: down",
        ),
        (
            {"db": PassResult.waiting("db", "waiting for target base: no pass yet", 0.0)},
            (),
            "waiting for target db: waiting for target base: no pass yet",
        ),
        ({"db": result(PassOutcome.WOULD_CHANGE)}, (), "waiting for target db: would_change"),
    ],
)
def test_a_dependency_not_ready(
    last: dict[str, PassResult], running: tuple[str, ...], why: str
) -> None:
    assert blocked(["db"], last, running) == why


def test_the_first_dependency_not_ready_is_named() -> None:
    last = {"db": result(PassOutcome.HEALTHY), "cache": result(PassOutcome.DEGRADED)}
    assert blocked(["db", "cache"], last) == "waiting for target cache: degraded"


def test_dependents() -> None:
    edges = {"db": [], "app": ["db"], "worker": ["db", "app"], "web": []}
    assert dependents("db", edges) == ["app", "worker"]
    assert dependents("web", edges) == []
