"""Fuzz target: the configuration loader, each input written as the configuration file.

Valid objects: a Config whose every number is finite and positive (durations, qps,
sizes), with at least one target, unique target names and a port that exists.
Run: python3 -m tests.fuzz.fuzz_config [libFuzzer flags] [corpus folders or files]
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path
from typing import Any

from tests.fuzz import harness

with harness.instrumentation(["gitopsd", "yaml"]):
    from gitopsd.config import Config, load_config
    from gitopsd.errors import GitopsdError
    from tests.fuzz import seeds

# The loader reads a path: one file, rewritten for every input. libFuzzer ends the process
# without running atexit, so the folder stays: set TMPDIR to keep it somewhere disposable.
CONFIG = Path(tempfile.mkdtemp(prefix="gitopsd-fuzz-config-")) / "gitopsd.yaml"


def one_input(data: bytes) -> None:
    CONFIG.write_bytes(data)
    try:
        config = load_config(CONFIG)
    except GitopsdError as error:
        harness.check_message(error)
        return
    check_config(config)


def check_config(config: Any) -> None:
    assert isinstance(config, Config), type(config)
    if not config.targets:
        raise harness.PropertyViolation("a configuration without targets was accepted")
    names = [target.name for target in config.targets]
    if len(set(names)) != len(names):
        raise harness.PropertyViolation(f"target names used twice were accepted: {names}")
    if config.http is not None and not 1 <= config.http.port <= 65535:
        raise harness.PropertyViolation(f"http.port {config.http.port} was accepted")
    for where, number in _numbers(config):
        if not math.isfinite(number) or number <= 0:
            raise harness.PropertyViolation(f"{where} = {number!r} was accepted")


def _numbers(root: Any) -> list[tuple[str, float]]:
    """(field path, value) of every int and float field in the dataclass tree."""
    found = []
    stack: list[tuple[str, Any]] = [("config", root)]
    while stack:
        where, value = stack.pop()
        if dataclasses.is_dataclass(value):
            for field in dataclasses.fields(value):
                stack.append((f"{where}.{field.name}", getattr(value, field.name)))
        elif isinstance(value, tuple):
            stack.extend((f"{where}[{i}]", item) for i, item in enumerate(value))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            found.append((where, value))
    return found


if __name__ == "__main__":
    harness.main("config", one_input, seeds.config_seeds)
