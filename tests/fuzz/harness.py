"""The property every fuzz target checks, and the atheris entry point they share.

Property: each input ends in a GitopsdError with a one-line message, or in valid
objects (each target checks its own), within 1 s of CPU and 100 MB of Python
allocations. Anything else is a crash: atheris prints the traceback and writes
the input as an artifact, or, with GITOPSD_FUZZ_CRASH_DIR set, the harness saves
the first input of each distinct crash there and keeps going (long runs).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import tracemalloc
from collections.abc import Callable, Iterable
from pathlib import Path

import atheris

from gitopsd.errors import GitopsdError

MAX_CPU_SECONDS = 1.0
MAX_BYTES = 100 * 1024 * 1024
# Only a runaway allocation reaches this: it then ends as MemoryError (a crash) instead
# of swapping a shared machine before tracemalloc can report after the call.
ADDRESS_SPACE_BACKSTOP = 1024 * 1024 * 1024
MAX_LEN = 8192
PLAIN_ENV = "GITOPSD_FUZZ_PLAIN"

OneInput = Callable[[bytes], None]


class PropertyViolation(AssertionError):
    """The input broke the property without raising anything else."""


def check_message(error: GitopsdError) -> None:
    """A GitopsdError must carry a non-empty message on exactly one line."""
    message = str(error)
    # splitlines() breaks on \r, \v, \f, \x1c-\x1e, \x85, \u2028 and \u2029 as well as \n.
    if len(message.splitlines()) != 1:
        raise PropertyViolation(
            f"{type(error).__name__} message is not one line: {message!r}"
        ) from error


def instrumentation(include: list[str]) -> contextlib.AbstractContextManager[object]:
    """atheris' import instrumentation, or nothing when measuring an input plainly."""
    if os.environ.get(PLAIN_ENV):
        return contextlib.nullcontext()
    return atheris.instrument_imports(include=include)


def guarded(name: str, one_input: OneInput) -> OneInput:
    """`one_input` with the error, time and memory parts of the property checked around it."""

    def run(data: bytes) -> None:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        start = time.process_time()
        try:
            one_input(data)
        except GitopsdError as error:
            check_message(error)
        elapsed = time.process_time() - start
        peak = tracemalloc.get_traced_memory()[1] - before
        if elapsed > MAX_CPU_SECONDS:
            # Coverage instrumentation and tracemalloc slow pure-Python parsing many times
            # over: only an input that is slow without them breaks the property.
            plain = plain_cpu_seconds(name, data)
            if plain > MAX_CPU_SECONDS:
                raise PropertyViolation(
                    f"input took {plain:.2f} s of CPU uninstrumented (limit {MAX_CPU_SECONDS})"
                )
        if peak > MAX_BYTES:
            raise PropertyViolation(f"input allocated {peak / 2**20:.0f} MiB (limit 100 MiB)")

    return run


def plain_cpu_seconds(name: str, data: bytes) -> float:
    """CPU seconds `data` takes in a fresh process without instrumentation or tracemalloc."""
    with tempfile.NamedTemporaryFile(prefix=f"gitopsd-fuzz-{name}-slow-") as file:
        file.write(data)
        file.flush()
        result = subprocess.run(
            [sys.executable, "-m", "tests.fuzz.measure", name, file.name],
            env={**os.environ, PLAIN_ENV: "1"},
            stdout=subprocess.PIPE,
            check=True,
            timeout=600,
        )
    return float(result.stdout.split()[-1])


def collecting(run: OneInput, crash_dir: Path, name: str) -> OneInput:
    """`run` that saves the first input of each distinct crash under `crash_dir`, then goes on."""
    seen: set[str] = set()

    def collect(data: bytes) -> None:
        try:
            run(data)
        except Exception as error:
            signature = _signature(error)
            if signature in seen:
                return
            seen.add(signature)
            digest = hashlib.sha1(data).hexdigest()[:12]
            crash_dir.mkdir(parents=True, exist_ok=True)
            (crash_dir / f"{name}-{digest}").write_bytes(data)
            text = "".join(traceback.format_exception(error))
            (crash_dir / f"{name}-{digest}.txt").write_text(f"{signature}\n\n{text}")
            print(f"CRASH {name}-{digest}: {signature}", file=sys.stderr, flush=True)

    return collect


def _signature(error: BaseException) -> str:
    """Exception types down the cause chain and the raising line: one per distinct crash."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    chain = [type(error).__name__]
    cause = error.__cause__ or error.__context__
    while cause is not None and len(chain) < 4:
        chain.append(type(cause).__name__)
        cause = cause.__cause__ or cause.__context__
    return f"{' <- '.join(chain)} at {where}"


def main(name: str, one_input: OneInput, seeds: Callable[[], Iterable[bytes]]) -> None:
    """Fuzz `one_input` with libFuzzer's arguments from argv; seeds are added as a corpus."""
    args = list(sys.argv)
    seed_dir = _seed_dir(name, list(seeds()))
    inputs = [a for a in args[1:] if not a.startswith("-")]
    if not any(Path(a).is_file() for a in inputs):
        # libFuzzer saves new inputs in the first folder: never the shared seed folder.
        if not inputs:
            args.append(tempfile.mkdtemp(prefix=f"gitopsd-fuzz-{name}-corpus-"))
        args.append(str(seed_dir))
    if not any(a.startswith("-max_len=") for a in args):
        args.append(f"-max_len={MAX_LEN}")
    dictionary = Path(__file__).with_name(f"{name}.dict")
    if dictionary.is_file() and not any(a.startswith("-dict=") for a in args):
        args.append(f"-dict={dictionary}")
    run = guarded(name, one_input)
    crash_dir = os.environ.get("GITOPSD_FUZZ_CRASH_DIR")
    if crash_dir:
        run = collecting(run, Path(crash_dir), name)
    tracemalloc.start()
    _limit_address_space()
    atheris.Setup(args, run)
    atheris.Fuzz()


def _seed_dir(name: str, seeds: list[bytes]) -> Path:
    """A folder holding `seeds`, named by their digest: concurrent runs share it, never clear it."""
    digest = hashlib.sha1(b"".join(hashlib.sha1(s).digest() for s in seeds)).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"gitopsd-fuzz-seeds-{name}-{digest}"
    if not folder.is_dir():
        partial = Path(tempfile.mkdtemp(prefix=f"{folder.name}-"))
        for seed in seeds:
            (partial / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
        try:
            partial.rename(folder)
        except OSError:  # another run renamed its copy first; identical content
            shutil.rmtree(partial)
    return folder


def _limit_address_space() -> None:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[0])
    limit = pages * resource.getpagesize() + ADDRESS_SPACE_BACKSTOP
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
