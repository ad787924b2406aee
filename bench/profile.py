"""Where gitopsd's time goes: pyinstrument over one `gitopsd --once` per case.

pyinstrument is not a dependency of gitopsd: `pip install pyinstrument` first.
It samples the main thread; time in the write pool shows as the main thread
waiting in `apply._Stages._map`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bench.env import BenchEnv
from bench.scenarios import Scenarios


def profile(env: BenchEnv, runner: Scenarios, out: Path, log: Callable[[str], None]) -> None:
    """Profile an unchanged run (scenario 2: the process, then the pass alone), then the
    pass of a cold sync (scenario 1)."""
    if shutil.which("pyinstrument") is None:
        log("pyinstrument is not installed: pip install pyinstrument")
        return
    out.mkdir(parents=True, exist_ok=True)
    n = env.gitopsd_workload.objects
    steady = runner._steady()
    _one(env, steady, out / f"n{n}-s2-unchanged-process.txt", log)
    _pass(env, steady, out / f"n{n}-s2-unchanged-pass.txt", log)
    env.reset(env.gitopsd_workload)
    back = env.gitopsd_workload.restore()  # scenario 5 leaves 10% removed
    if back:
        env.commit(back, "restore for profiling")
    cold = env.root / "gitopsd-state" / "profile-cold"
    _pass(env, cold, out / f"n{n}-s1-cold-pass.txt", log)


def _pass(env: BenchEnv, state: Path, target: Path, log: Callable[[str], None]) -> None:
    argv = [sys.executable, "-m", "bench.profile_pass", str(env.gitopsd_config(state)), str(target)]
    result = subprocess.run(
        argv, env=env.env, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1]
    )
    if result.returncode != 0:
        print(result.stderr[-2000:], file=sys.stderr)
        return
    log(f"profile written to {target}")


def _one(env: BenchEnv, state: Path, target: Path, log: Callable[[str], None]) -> None:
    session = target.with_suffix(".pyisession")
    argv = ["pyinstrument", "-r", "pyisession", "-o", str(session), *env.gitopsd_argv(state)]
    result = subprocess.run(argv, env=env.env, capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stderr[-2000:], file=sys.stderr)
        return
    # The session file can be rendered again later: pyinstrument --load FILE -r html
    subprocess.run(
        ["pyinstrument", "--load", str(session), "-r", "text", "-o", str(target)], check=False
    )
    log(f"profile written to {target}")
