"""Sync waves: the `gitopsd.io/wave` annotation orders the writes of one revision.

Pure. A migration Job in wave -1 must have run before the Deployment of wave 0 starts;
Argo CD users know this as sync waves. How waves combine with plan.tier_of: Namespaces
and CRDs (the DEFINITIONS tier) are written first, whatever their wave, because every
other object may need them to exist; then each wave in turn, lowest first, its
cluster-scoped objects before its namespaced ones (plan.order_key's rank within a
stage); deletions last, after every wave, in reverse tier order as before. A gate runs
between two waves (the pass waits there for health when the target sets `wait: true`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gitopsd.errors import RenderError
from gitopsd.model import DesiredObject, Manifest, PlanStep, ResourceKey
from gitopsd.plan import Tier, tier_of

WAVE_ANNOTATION = "gitopsd.io/wave"
DEFAULT_WAVE = 0
_INTEGER = re.compile(r"[+-]?[0-9]{1,9}")  # 9 digits: a wave number, not an overflow


@dataclass(frozen=True)
class Stage:
    """Writes made together (concurrently); `gate_after` is the wave that ends here when a
    later wave follows, so the pass checks it before going on."""

    steps: tuple[PlanStep, ...]
    definitions: bool = False  # Namespaces and CRDs: what the waves need to exist
    gate_after: int | None = None


def wave_of(manifest: Manifest, origin: str = "") -> int:
    """The object's wave (0 without the annotation); RenderError naming the document."""
    annotations = (manifest.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(WAVE_ANNOTATION) if isinstance(annotations, Mapping) else None
    if value is None:
        return DEFAULT_WAVE
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value.strip())
    where = f"{origin}: " if origin else ""
    raise RenderError(
        f"{where}annotation {WAVE_ANNOTATION}: {value!r} is not an integer; write a whole "
        f'number as a quoted string, e.g. {WAVE_ANNOTATION}: "-1"'
    )


def waves_of(declared: Sequence[DesiredObject]) -> dict[ResourceKey, int]:
    """Every declared object's wave; the first bad annotation raises RenderError."""
    return {obj.key: wave_of(obj.manifest, obj.origin) for obj in declared}


def stages(steps: Sequence[PlanStep], waves: Mapping[ResourceKey, int]) -> list[Stage]:
    """The writes in order: definitions, then per wave (every wave of `waves` and of the
    steps, lowest first) its cluster-scoped then namespaced writes, then the deletions of
    each tier in reverse. A step missing from `waves` is in the default wave."""
    writes = [s for s in steps if not s.kind.removes]
    deletions = [s for s in steps if s.kind.removes]
    definitions = tuple(s for s in writes if tier_of(s.key) is Tier.DEFINITIONS)
    rest = [s for s in writes if tier_of(s.key) is not Tier.DEFINITIONS]
    numbers = sorted({*waves.values(), *(waves.get(s.key, DEFAULT_WAVE) for s in rest)})
    numbers = numbers or [DEFAULT_WAVE]
    result = [Stage(definitions, definitions=True)]
    for index, wave in enumerate(numbers):
        in_wave = [s for s in rest if waves.get(s.key, DEFAULT_WAVE) == wave]
        later = any(waves.get(s.key, DEFAULT_WAVE) > wave for s in rest) or bool(deletions)
        last = index == len(numbers) - 1
        gate = wave if later and not last else None
        result.append(Stage(tuple(s for s in in_wave if tier_of(s.key) is Tier.CLUSTER)))
        result.append(
            Stage(tuple(s for s in in_wave if tier_of(s.key) is Tier.NAMESPACED), gate_after=gate)
        )
    result += [
        Stage(tuple(s for s in deletions if tier_of(s.key) is tier)) for tier in reversed(Tier)
    ]
    return result


def declared_in(
    declared: Sequence[DesiredObject], waves: Mapping[ResourceKey, int], wave: int
) -> tuple[DesiredObject, ...]:
    """The declared objects of one wave (the ones a gate after it waits for)."""
    return tuple(obj for obj in declared if waves.get(obj.key, DEFAULT_WAVE) == wave)
