"""`depends_on` between targets: the graph checked at load, and whether a dependency is ready.

Pure. A target's pass runs only when each dependency's last pass applied its revision
and ended healthy (converged or in sync, for a dependency that does not wait); otherwise
the pass is skipped as WAITING with one line saying which dependency and why, and runs
again when that dependency becomes ready (the daemon and `--once` carry this out).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from gitopsd.errors import ConfigError
from gitopsd.passresult import PassOutcome, PassResult, one_line

# What a dependency's last pass must have ended with for its dependents to run.
READY = frozenset({PassOutcome.HEALTHY, PassOutcome.CONVERGED, PassOutcome.IN_SYNC})


def check_graph(file: str, edges: Sequence[tuple[str, Sequence[str]]]) -> None:
    """ConfigError naming the key when a target depends on an unknown one, or on a cycle.

    `edges` is (target, its depends_on) in configuration order."""
    names = [name for name, _ in edges]
    known = set(names)
    for index, (_, needs) in enumerate(edges):
        for need in needs:
            if need not in known:
                raise ConfigError(
                    f"{file}: targets[{index}].depends_on: no target is called {need!r} "
                    f"(targets: {', '.join(names)})"
                )
    cycle = find_cycle(dict(edges))
    if cycle:
        index = names.index(cycle[0])
        raise ConfigError(
            f"{file}: targets[{index}].depends_on: dependency cycle {' -> '.join(cycle)}; "
            "remove one of these dependencies"
        )


def find_cycle(edges: Mapping[str, Sequence[str]]) -> list[str]:
    """One cycle as the names along it, first name repeated at the end; [] when none."""
    done: set[str] = set()
    for start in edges:
        path: list[str] = []
        on_path: set[str] = set()
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            name, position = stack.pop()
            if position == 0:
                if name in on_path:
                    return [*path[path.index(name) :], name]
                if name in done:
                    continue
                path.append(name)
                on_path.add(name)
            needs = edges.get(name, ())
            if position < len(needs):
                stack.append((name, position + 1))
                stack.append((needs[position], 0))
            else:
                done.add(name)
                on_path.discard(path.pop())
    return []


def blocked(
    needs: Sequence[str],
    last: Mapping[str, PassResult | None],
    running: Collection[str] = (),
) -> str | None:
    """Why a target depending on `needs` may not run now ('waiting for target db: ...'), or
    None when every dependency is ready. `last` is each target's last finished pass;
    `running` the targets with a pass in progress (their revision may be changing)."""
    for need in needs:
        why = _not_ready(last.get(need), need in running)
        if why:
            return f"waiting for target {need}: {why}"
    return None


def _not_ready(result: PassResult | None, running: bool) -> str:
    if running:
        return "pass in progress"
    if result is None:
        return "no pass yet"
    outcome = result.outcome
    if outcome in READY:
        return ""
    if outcome is PassOutcome.WAITING:
        return result.waiting_for
    if outcome is PassOutcome.FAILED:
        return f"failed, {one_line(result.error or 'failed')}"
    worst = result.unhealthy
    if worst:
        first = worst[0]
        return f"{outcome.value}, {first.health.reason} ({first.key})"
    return str(outcome.value)


def dependents(name: str, edges: Mapping[str, Sequence[str]]) -> list[str]:
    """The targets that depend on `name` directly."""
    return [target for target, needs in edges.items() if name in needs]
