"""One reconcile pass in the main thread under pyinstrument, without interpreter start-up.

`gitopsd --once` runs its pass in a worker thread, which pyinstrument (main thread
only) does not sample; this builds the same TargetRunner the CLI builds and runs
the pass here. Writes still go through the adapter's pool, shown as waiting.
Usage: python -m bench.profile_pass CONFIG OUT.txt
"""

from __future__ import annotations

import sys
from pathlib import Path

from pyinstrument import Profiler

from gitopsd import logs
from gitopsd.config import load_config
from gitopsd.journal import Journal
from gitopsd.runner import TargetRunner


def main(config_path: str, out: str) -> None:
    logs.setup_logging("warning")
    config = load_config(Path(config_path))
    journal = Journal.open(config.state_dir)
    runner = TargetRunner(config, config.targets[0], journal)
    profiler = Profiler(interval=0.001)
    profiler.start()
    result = runner.run_pass()
    profiler.stop()
    runner.close()
    journal.close()
    text = profiler.output_text(unicode=True, color=False)
    Path(out).write_text(f"outcome {result.outcome.value}, requests {result.requests}\n{text}")
    if profiler.last_session is not None:
        profiler.last_session.save(str(Path(out).with_suffix(".pyisession")))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
