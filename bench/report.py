"""The table printed at the end of a run, and the targets of issue 6 checked against it."""

from __future__ import annotations

from typing import Any

from bench.audit import WRITE_VERBS

RSS_TARGET_MIB = 150


def _verbs(requests: dict[str, float] | None) -> str:
    if not requests:
        return "-"
    return " ".join(f"{verb}:{count:g}" for verb, count in requests.items() if count)


def _cpu(measure: dict[str, Any], key: str = "median_cpu_seconds") -> str:
    return f"{measure[key]:.2f}" if key in measure else "-"


def table(scenarios: list[dict[str, Any]]) -> str:
    head = (
        "| # | scenario | gitopsd s | peer | peer s | ratio g/p | gitopsd requests "
        "| peer requests | gitopsd peak RSS MiB | CPU s gitopsd / peer "
        "| server CPU s gitopsd / peer |"
    )
    lines = [head, "|" + "---|" * 11]
    for s in scenarios:
        g = s["gitopsd"]
        rss = f"{max(g['peak_rss_mib']):.0f}" if g.get("peak_rss_mib") else "n/a"
        for i, peer in enumerate(s["peers"]):
            first = i == 0
            lines.append(
                f"| {s['scenario'] if first else ''} | {s['title'] if first else ''} "
                f"| {g['median_seconds']:.3f} | {peer['tool']} | {peer['median_seconds']:.3f} "
                f"| {peer['ratio_gitopsd_over_peer']:.3f} "
                f"| {_verbs(g.get('requests_median')) if first else ''} "
                f"| {_verbs(peer.get('requests_median'))} | {rss if first else ''} "
                f"| {_cpu(g)} / {_cpu(peer)} "
                f"| {_cpu(g, 'median_server_cpu_seconds')} / "
                f"{_cpu(peer, 'median_server_cpu_seconds')} |"
            )
        for variant in s.get("variants", []):
            peer = s["peers"][0]
            vrss = f"{max(variant['peak_rss_mib']):.0f}"
            lines.append(
                f"| {s['scenario']}b | {variant['tool']} | {variant['median_seconds']:.3f} "
                f"| {peer['tool']} | {peer['median_seconds']:.3f} "
                f"| {variant['ratio_over_first_peer']:.3f} "
                f"| {_verbs(variant.get('requests_median'))} | | {vrss} "
                f"| {_cpu(variant)} / {_cpu(peer)} "
                f"| {_cpu(variant, 'median_server_cpu_seconds')} / "
                f"{_cpu(peer, 'median_server_cpu_seconds')} |"
            )
    return "\n".join(lines)


def targets(scenarios: list[dict[str, Any]], rtt_ms: float = 0.0) -> list[tuple[str, bool, str]]:
    """(target, met, evidence) for each target of the issues that this run measured."""
    by = {s["scenario"]: s for s in scenarios}
    found: list[tuple[str, bool, str]] = []
    if rtt_ms:
        found.extend(_rtt_targets(by, rtt_ms))
    if 2 in by:
        g = by[2]["gitopsd"]
        writes = sum(n for v, n in g["requests_median"].items() if v in WRITE_VERBS)
        found.append(("2: zero writes", writes == 0, f"{writes:g} writes (median)"))
        lists = g["lists_by_resource_last_run"]
        per_kind: dict[str, int] = {}
        for where, count in lists.items():  # "core/configmaps in ns" counts as configmaps
            per_kind[where.split(" ")[0]] = per_kind.get(where.split(" ")[0], 0) + count
        worst = max(per_kind.values(), default=0)
        found.append(("2: at most one list per kind", worst <= 1, f"lists {lists}"))
        ratio = by[2]["peers"][0]["ratio_gitopsd_over_peer"]
        found.append(("2: >= 10x faster than kubectl diff", ratio <= 0.1, f"ratio {ratio:.3f}"))
    if 1 in by:
        ratio = by[1]["peers"][0]["ratio_gitopsd_over_peer"]
        found.append(
            ("1: faster than kubectl apply --server-side", ratio < 1, f"ratio {ratio:.3f}")
        )
    if 3 in by:
        g = by[3]["gitopsd"]
        writes = sum(n for v, n in g["requests_median"].items() if v in WRITE_VERBS)
        found.append(("3: exactly one write", writes == 1, f"{writes:g} writes (median)"))
    peaks = [
        max(m["peak_rss_mib"])
        for s in scenarios
        for m in (s["gitopsd"], *s.get("variants", []))
        if m.get("peak_rss_mib")
    ]
    if peaks:
        peak = max(peaks)
        found.append(
            (f"peak RSS < {RSS_TARGET_MIB} MiB", peak < RSS_TARGET_MIB, f"max {peak:.0f} MiB")
        )
    for s in scenarios:
        for m in (s["gitopsd"], *s.get("variants", []), *s["peers"]):
            if m["failed_checks"]:
                found.append(
                    (
                        f"{s['scenario']}: outcome of {m['tool']}",
                        False,
                        "; ".join(m["failed_checks"]),
                    )
                )
    return found


def _rtt_targets(by: dict[int, dict[str, Any]], rtt_ms: float) -> list[tuple[str, bool, str]]:
    """Issue 19's targets with a round trip: 3x faster cold, 10x faster unchanged/drifted."""
    wanted = {1: 1 / 3, 2: 0.1, 3: 0.1}
    found = []
    for number, limit in wanted.items():
        if number not in by:
            continue
        for peer in by[number]["peers"]:
            ratio = peer["ratio_gitopsd_over_peer"]
            found.append(
                (
                    f"{number} at RTT {rtt_ms:g} ms: {1 / limit:.0f}x faster than {peer['tool']}",
                    ratio <= limit,
                    f"ratio {ratio:.3f}",
                )
            )
    return found


def targets_text(found: list[tuple[str, bool, str]]) -> str:
    return "\n".join(f"- [{'met' if ok else 'MISSED'}] {name}: {why}" for name, ok, why in found)
