"""gitopsd as a user installs it, for the measured runs: a virtual environment holding
`pip install .` of this checkout (runtime dependencies only, bytecode compiled).

A development install (`pip install -e '.[test]'`) costs each `gitopsd` process about
0.45 s more CPU on these machines, a third of a no-change pass at N = 1,000: with
PYTHONDONTWRITEBYTECODE set, every gitopsd module is compiled again at each start,
and the test extras bring `rich`, which structlog imports whenever it is present.
Neither is how the Dockerfile or the README install gitopsd. `--dev-install`
measures the development install instead.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.support.tools import cache_root

ROOT = Path(__file__).resolve().parents[1]
_DONE = "installed-from"


def gitopsd_command(dev_install: bool, log: Callable[[str], None] = print) -> str:
    """The `gitopsd` executable to measure: the development one on PATH, or the
    runtime environment for this checkout's sources (built once, then cached)."""
    if dev_install:
        found = shutil.which("gitopsd")
        assert found, "the gitopsd command is not installed (pip install -e .)"
        return found
    venv = cache_root() / "bench-runtime" / _source_digest()
    binary = venv / "bin" / "gitopsd"
    if (venv / _DONE).exists():
        return str(binary)
    # Scripts in a venv name its interpreter by absolute path, so it is built in place;
    # the marker written last says it is complete.
    for old in venv.parent.glob("*"):  # environments of earlier sources
        shutil.rmtree(old, ignore_errors=True)
    log(f"installing gitopsd with its runtime dependencies into {venv}")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--disable-pip-version-check", str(ROOT)], check=True)
    (venv / _DONE).write_text(f"{ROOT}\n")
    return str(binary)


def _source_digest() -> str:
    """A digest of what `pip install .` would install: the package and its metadata."""
    digest = hashlib.sha256()
    files = sorted([ROOT / "pyproject.toml", *(ROOT / "gitopsd").rglob("*.py")])
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]
