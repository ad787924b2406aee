"""Where the daemon benchmarks (drift latency, HA, many targets) leave their figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def save_facts(name: str, facts: dict[str, Any]) -> Path:
    """Write `facts` to bench/results/<date>-<name>.json, print them; the file written."""
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{facts['date']}-{name}.json"
    text = json.dumps(facts, indent=2)
    out.write_text(text + "\n")
    print(text)
    return out
