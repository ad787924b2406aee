"""Measure one input of a fuzz target without coverage instrumentation: its CPU seconds.

`python3 -m tests.fuzz.measure TARGET FILE`, with GITOPSD_FUZZ_PLAIN=1 so the target
module imports the code under test uninstrumented; the harness calls it for slow inputs.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import time
from pathlib import Path


def main() -> None:
    target, path = sys.argv[1], Path(sys.argv[2])
    one_input = importlib.import_module(f"tests.fuzz.fuzz_{target}").one_input
    data = path.read_bytes()
    start = time.process_time()
    # The instrumented run has judged how the input ends; only its time is asked for here.
    with contextlib.suppress(Exception):
        one_input(data)
    print(f"{time.process_time() - start:.3f}")


if __name__ == "__main__":
    main()
