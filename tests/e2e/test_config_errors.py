"""Configuration mistakes: one line naming the file and the key, with the right exit code.

Exit 2 for the configuration file itself (systemd does not restart it), exit 1 for a
target's cluster credentials (the other targets still run), exit 4 only for a lock
really held by another gitopsd (tests/e2e/test_once.py).
"""

from __future__ import annotations

import subprocess

import pytest

from tests.e2e.conftest import Gitopsd, configmap


def only_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("gitopsd: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def rewrite(gitopsd: Gitopsd, old: str, new: str) -> None:
    text = gitopsd.config_path.read_text()
    assert old in text
    gitopsd.config_path.write_text(text.replace(old, new))


@pytest.mark.parametrize(
    ("old", "new", "problem", "args"),
    [
        ("interval: 1h", "interval: .nan", "interval: must be longer than zero, not nan", []),
        ("interval: 1h", "interval: .inf", "interval: must be at most 7d, not inf", []),
        (
            "interval: 1h",
            "interval: 99999999999d",
            "interval: must be at most 7d, not 99999999999d",
            ["--once"],
        ),
        (
            "stop_timeout: 20s",
            "stop_timeout: .inf",
            "stop_timeout: must be at most 1h, not inf",
            ["--once"],
        ),
        (
            "timeout: '60s'",
            "timeout: .inf",
            "targets[0].timeout: must be at most 1h, not inf",
            ["--once"],
        ),
    ],
)
def test_durations_that_would_crash_a_timer_exit_2(
    gitopsd: Gitopsd, old: str, new: str, problem: str, args: list[str]
) -> None:
    gitopsd.remote.commit({"manifests/app.yaml": configmap("app", gitopsd.namespace, a="1")})
    gitopsd.write_config(gitopsd.target(timeout="60s"))
    rewrite(gitopsd, old, new)
    result = gitopsd.run(*args, timeout=60)
    assert result.returncode == 2, result.stderr
    assert only_line(result) == f"gitopsd: {gitopsd.config_path}: {problem}"


def test_a_configuration_that_is_not_utf8_exits_2(gitopsd: Gitopsd) -> None:
    gitopsd.write_config()
    with gitopsd.config_path.open("ab") as out:
        out.write("# r\xe9sum\xe9\n".encode("latin-1"))
    result = gitopsd.run("--once")
    assert result.returncode == 2, result.stderr
    line = only_line(result)
    assert line.startswith(f"gitopsd: {gitopsd.config_path}: cannot read configuration: ")
    assert "not UTF-8 text (byte 0xe9 at offset" in line


def test_a_state_dir_that_is_a_file_exits_2_naming_the_key(gitopsd: Gitopsd) -> None:
    gitopsd.state_dir.write_text("not a directory\n")
    gitopsd.write_config()
    result = gitopsd.run("--once")
    assert result.returncode == 2, result.stderr
    assert only_line(result) == (
        f"gitopsd: {gitopsd.config_path}: state_dir: {gitopsd.state_dir} is not a directory"
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"apiVersion: v1\nclusters: [\n", "not valid YAML (line 3)"),
        (b"\xff\xfe kubeconfig", "not UTF-8 text (byte 0xff at offset 0)"),
        (b"- a list\n- of things\n", "not the expected structure"),
    ],
)
def test_a_broken_kubeconfig_fails_its_target_with_exit_1(
    gitopsd: Gitopsd, content: bytes, problem: str
) -> None:
    gitopsd.remote.commit({"manifests/app.yaml": configmap("app", gitopsd.namespace, a="1")})
    kubeconfig = gitopsd.folder / "broken-kubeconfig"
    kubeconfig.write_bytes(content)
    gitopsd.write_config(gitopsd.target(kubeconfig=str(kubeconfig)))
    result = gitopsd.run("--once")
    assert result.returncode == 1, result.stderr
    line = only_line(result)
    assert line.startswith(
        f"gitopsd: target app: cannot load cluster credentials from {kubeconfig}: "
    )
    assert problem in line
