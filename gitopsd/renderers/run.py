"""Run a renderer tool (kustomize, helm) with a deadline and an output cap.

A chart can loop in a template and a kustomization can grow without bound, so a tool
is killed (its whole process group) when it runs longer than `render_timeout` or
writes more than the output cap. Its environment is a minimal one: the daemon's own
variables (tokens, passwords) are not handed to a tool that does not need them.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gitopsd.errors import RenderError

_STDERR_KEEP = 64 * 1024
_CHUNK = 256 * 1024
_LINE_MAX = 300


@dataclass(frozen=True)
class ToolCall:
    """One invocation: what to run, where, and the words that name it in an error."""

    argv: tuple[str, ...]
    cwd: Path
    describe: str  # e.g. "target web: kustomize render of overlays/prod"
    timeout_seconds: float
    max_output_bytes: int
    env: Mapping[str, str] | None = None
    setting: str = ""  # the key that names the tool ("tools.helm"), for the fix
    redact: Callable[[str], str] | None = None  # applied to the tool's error line


def resolve(command: str) -> str | None:
    """The executable `command` names: a path as is, a bare name found on PATH."""
    if "/" in command:
        return command if os.access(command, os.X_OK) and Path(command).is_file() else None
    return shutil.which(command)


def identity(command: str | None) -> str:
    """What changes when the tool is replaced (path, size, mtime), without running it."""
    found = resolve(command) if command else None
    if found is None:
        return f"{command}:absent"
    try:
        info = os.stat(found)
    except OSError:
        return f"{command}:absent"
    return f"{os.path.realpath(found)}:{info.st_size}:{info.st_mtime_ns}"


def base_env(home: Path) -> dict[str, str]:
    """PATH, a private HOME and locale: what a renderer needs and nothing secret."""
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TMPDIR": str(home),
    }


def run_tool(call: ToolCall) -> bytes:
    """The tool's standard output; a RenderError naming the call and the tool's error line."""
    try:
        process = subprocess.Popen(
            call.argv,
            cwd=call.cwd,
            env=dict(call.env) if call.env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # one process group, killed whole
        )
    except OSError as exc:
        fix = f"install {Path(call.argv[0]).name} (docs/rendering.md, 'What to install')"
        if call.setting:
            fix += f" or set `{call.setting}` to its path"
        raise RenderError(
            f"{call.describe}: cannot run {call.argv[0]}: {exc.strerror or exc}; {fix}"
        ) from exc
    try:
        out, err, problem = _collect(process, call)
    finally:
        _kill(process)
    if problem is not None:
        raise RenderError(f"{call.describe}: {problem}; nothing was applied or pruned")
    if process.returncode != 0:
        raise RenderError(f"{call.describe}: {error_line(err, process.returncode, call.redact)}")
    return out


def _collect(process: subprocess.Popen[bytes], call: ToolCall) -> tuple[bytes, bytes, str | None]:
    assert process.stdout is not None and process.stderr is not None
    deadline = time.monotonic() + call.timeout_seconds
    out, err = bytearray(), bytearray()
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ, out)
        selector.register(process.stderr, selectors.EVENT_READ, err)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return b"", b"", f"killed after render_timeout ({call.timeout_seconds:g}s)"
            for key, _ in selector.select(remaining):
                chunk = os.read(key.fd, _CHUNK)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                key.data.extend(chunk)
                if len(out) > call.max_output_bytes:
                    return (
                        b"",
                        b"",
                        (f"killed: output above render_max_output ({call.max_output_bytes} bytes)"),
                    )
                if len(err) > _STDERR_KEEP:
                    del err[: len(err) - _STDERR_KEEP]
    try:
        process.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return b"", b"", f"killed after render_timeout ({call.timeout_seconds:g}s)"
    return bytes(out), bytes(err), None


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def replacing(values: Iterable[str], stand_in: str) -> Callable[[str], str]:
    """A redactor for an error line: each of `values` replaced by `stand_in`, the longest
    first (a value inside a longer one)."""
    ordered = sorted(set(values), key=len, reverse=True)

    def redact(line: str) -> str:
        for value in ordered:
            line = line.replace(value, stand_in)
        return line

    return redact


def error_line(stderr: bytes, returncode: int, redact: Callable[[str], str] | None = None) -> str:
    """The tool's own error, one line, trimmed: its last line starting `Error`, else its last;
    `redact` runs before the trim (a value cut in half would no longer match)."""
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    chosen = next((line for line in reversed(lines) if line.lower().startswith("error")), None)
    line = chosen or (lines[-1] if lines else f"exited with status {returncode}")
    line = " ".join(line.split())
    if redact is not None:
        line = redact(line)
    return line if len(line) <= _LINE_MAX else line[: _LINE_MAX - 3] + "..."
