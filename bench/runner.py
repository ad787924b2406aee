"""Run one measured command: wall time, own CPU and peak RSS (from wait4), the API
server's CPU meanwhile (from /proc), API requests from the audit log."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.audit import AuditLog, lists_by_resource


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_mib: float
    returncode: int
    requests: dict[str, int]
    lists_by_resource: dict[str, int] = field(default_factory=dict)
    output: str = ""
    cpu_seconds: float = 0.0  # the command's own user + system time
    server_cpu_seconds: float = 0.0  # kube-apiserver + etcd meanwhile


class CommandFailed(RuntimeError):
    pass


def run_command(
    argv: Sequence[str],
    audit: AuditLog,
    *,
    env: Mapping[str, str] | None = None,
    ok: Sequence[int] = (0,),
    cwd: Path | None = None,
    server_cpu: Callable[[], float] = lambda: 0.0,
) -> Run:
    """Run `argv` to completion; its own CPU and peak RSS come from wait4 on its pid."""
    start = audit.offset()
    server_before = server_cpu()
    with tempfile.TemporaryFile() as out:
        began = time.perf_counter()
        process = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - began
        server_seconds = server_cpu() - server_before
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        output = out.read().decode(errors="replace")
    requests = audit.counts(start)
    lists = lists_by_resource(audit.path, start)
    if process.returncode not in ok:
        tail = "\n".join(output.strip().splitlines()[-15:])
        raise CommandFailed(f"{' '.join(argv[:4])}... exited {process.returncode}:\n{tail}")
    own = usage.ru_utime + usage.ru_stime
    return Run(
        seconds,
        usage.ru_maxrss / 1024,
        process.returncode,
        requests,
        lists,
        output,
        cpu_seconds=own,
        server_cpu_seconds=server_seconds,
    )


def run_inprocess(function: Callable[[], object]) -> float:
    began = time.perf_counter()
    function()
    return time.perf_counter() - began
