"""The configuration loader: what a valid file becomes, and how a wrong one is refused."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from gitopsd.config import (
    ConflictPolicy,
    HistoryPolicy,
    RefKind,
    SecretRef,
    load_config,
)
from gitopsd.configread import parse_duration, parse_size
from gitopsd.errors import ConfigError

FULL = """
state_dir: state
interval: 2m
log_level: DEBUG
backoff_max: 10m
stop_timeout: 45s
http: {address: 0.0.0.0, port: 9200}
webhook: {secret_env: HOOK_SECRET}
targets:
  - name: web
    repo: ssh://git@git.example.com/org/infra.git
    branch: main
    path: clusters/prod/web
    kubeconfig: kube/config
    context: prod
    namespace: web
    prune: false
    allow_empty: true
    recreate: true
    conflicts: error
    inventory_namespace: ops
    qps: 20
    burst: 40
    concurrency: 2
    interval: 30s
    ssh_key: keys/id_ed25519
    ssh_passphrase_file: keys/passphrase
    known_hosts: keys/known_hosts
    timeout: 1m30s
    max_file_size: 512KiB
    history: refuse
    verify: {ssh_allowed_signers: keys/allowed_signers}
    ignore:
      - {kind: Deployment, group: apps, name: web, pointers: [/spec/replicas]}
  - name: tools
    repo: ../repos/tools
    semver: ">=1.2 <2"
    username: deploy
    password_env: TOOLS_TOKEN
"""

MINIMAL_TARGET = """
  - name: web
    repo: https://git.example.com/org/infra.git
    branch: main
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gitopsd.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_full_file_becomes_typed_settings(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL))
    assert config.state_dir == tmp_path / "state"
    assert (config.interval_seconds, config.backoff_max_seconds) == (120.0, 600.0)
    assert (config.stop_timeout_seconds, config.log_level) == (45.0, "debug")
    assert config.http is not None and (config.http.address, config.http.port) == ("0.0.0.0", 9200)
    assert config.webhook is not None and config.webhook.secret == SecretRef(env="HOOK_SECRET")
    web = config.target("web")
    assert (web.source.ref_kind, web.source.ref) == (RefKind.BRANCH, "main")
    assert web.source.path == "clusters/prod/web"
    assert web.cluster.kubeconfig == tmp_path / "kube" / "config"
    assert (web.cluster.context, web.cluster.qps, web.cluster.burst) == ("prod", 20.0, 40)
    assert (web.namespace, web.prune, web.allow_empty, web.recreate) == ("web", False, True, True)
    assert (web.conflicts, web.inventory_namespace) == (ConflictPolicy.ERROR, "ops")
    assert (web.interval_seconds, web.source.timeout_seconds) == (30.0, 90.0)
    assert web.source.ssh_passphrase == SecretRef(file=tmp_path / "keys" / "passphrase")
    assert web.source.max_file_bytes == 512 * 1024
    assert web.source.history is HistoryPolicy.REFUSE
    assert web.source.signature is not None
    assert web.source.signature.ssh_allowed_signers == tmp_path / "keys" / "allowed_signers"
    assert web.ignore[0].pointers == ("/spec/replicas",) and web.ignore[0].namespace is None
    tools = config.target("tools")
    assert tools.source.repo == str((tmp_path / ".." / "repos" / "tools").resolve())
    assert (tools.source.ref_kind, tools.source.ref) == (RefKind.SEMVER, ">=1.2 <2")
    assert tools.source.password == SecretRef(env="TOOLS_TOKEN")
    assert tools.interval_seconds is None and tools.prune is True


def test_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "targets:" + MINIMAL_TARGET))
    assert config.state_dir == Path("/var/lib/gitopsd")
    assert (config.interval_seconds, config.http, config.webhook) == (60.0, None, None)
    target = config.targets[0]
    assert target.source.repo == "https://git.example.com/org/infra.git"
    assert (target.source.path, target.namespace) == (".", "default")
    assert target.cluster.kubeconfig is None


CASES = yaml.safe_load((Path(__file__).parent / "testdata" / "config_errors.yaml").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["error"][:40] for c in CASES])
def test_invalid_file_gives_one_line_naming_file_and_key(
    tmp_path: Path, case: dict[str, str]
) -> None:
    path = write(tmp_path, case["config"])
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    error = str(caught.value)
    assert error.startswith(f"{path}: ")
    assert case["error"] in error
    assert "\n" not in error


@pytest.mark.parametrize(
    ("ref", "path"),
    [
        ("branch: release/1.x", "path: ./deploy/prod/"),
        ("branch: feature/add-web_2", "path: ."),
        ('tag: "1.10"', "path: deploy/../clusters"),
        ("tag: v1.2.3+build.7", "path: '2024'"),
        ('semver: "^1.4 || >=2"', "path: a/b/c"),
        (f"commit: {'ab' * 20}", "path: ./"),
    ],
)
def test_valid_refs_and_paths_are_kept_as_written(tmp_path: Path, ref: str, path: str) -> None:
    text = f"targets:\n  - name: web\n    repo: r\n    {ref}\n    {path}\n"
    source = load_config(write(tmp_path, text)).targets[0].source
    expected = yaml.safe_load(f"{ref}\n{path}")
    assert (source.ref, source.path) == (next(iter(expected.values())), expected["path"])


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_config(tmp_path / "absent.yaml")


def test_yaml_merge_keys_share_settings(tmp_path: Path) -> None:
    text = """
    targets:
      - &base {name: a, repo: https://h/r.git, branch: main, prune: false}
      - {<<: *base, name: b}
    """
    config = load_config(write(tmp_path, text))
    assert [t.prune for t in config.targets] == [False, False]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h", 3600), ("1h30m", 5400), ("250ms", 0.25), ("1.5s", 1.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5 m", "m5", "1y", "-1s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(("text", "size"), [("4MiB", 4 << 20), ("10KB", 10_000), ("7", 7)])
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_secret_ref_reads_file_or_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "s"
    secret_file.write_text("from-file\n")
    monkeypatch.setenv("GITOPSD_TEST_SECRET", "from-env")
    assert SecretRef(file=secret_file).read() == "from-file"
    assert SecretRef(env="GITOPSD_TEST_SECRET").read() == "from-env"
    with pytest.raises(ConfigError, match="GITOPSD_TEST_ABSENT is not set"):
        SecretRef(env="GITOPSD_TEST_ABSENT").read()
    with pytest.raises(ConfigError, match="cannot read secret file"):
        SecretRef(file=tmp_path / "absent").read()


def test_the_commented_example_is_a_valid_configuration() -> None:
    example = Path(__file__).parents[2] / "config" / "gitopsd.yaml"
    config = load_config(example)
    assert [t.name for t in config.targets] == ["web"]
    assert config.webhook is not None and config.http is not None


TARGET = "targets: [{name: web, repo: https://h/r.git, branch: main, %s}]\n"
PLAIN = TARGET % "prune: true"


BOUNDED = [
    ("interval: .nan\n" + PLAIN, "interval: must be longer than zero, not nan"),
    ("interval: .inf\n" + PLAIN, "interval: must be at most 7d, not inf"),
    ("interval: -.inf\n" + PLAIN, "interval: must be longer than zero"),
    ("interval: 99999999999d\n" + PLAIN, "interval: must be at most 7d"),
    ("interval: " + "9" * 400 + "s\n" + PLAIN, "interval: must be at most 7d"),
    ("backoff_max: 8d\n" + PLAIN, "backoff_max: must be at most 7d, not 8d"),
    ("stop_timeout: .inf\n" + PLAIN, "stop_timeout: must be at most 1h"),
    ("stop_timeout: 61m\n" + PLAIN, "stop_timeout: must be at most 1h"),
    (TARGET % "timeout: .inf", "targets[0].timeout: must be at most 1h, not inf"),
    (TARGET % "timeout: .nan", "targets[0].timeout: must be longer than zero, not nan"),
    (TARGET % "interval: 1000000d", "targets[0].interval: must be at most 7d"),
    (TARGET % "qps: .nan", "targets[0].qps: must be a finite number, not nan"),
    (TARGET % "qps: .inf", "targets[0].qps: must be a finite number, not inf"),
    (TARGET % "max_file_size: .inf", "targets[0].max_file_size: must be a finite size"),
    (TARGET % "max_file_size: .nan", "targets[0].max_file_size: must be a finite size"),
]


@pytest.mark.parametrize(("text", "problem"), BOUNDED, ids=[text[:24] for text, _ in BOUNDED])
def test_durations_and_numbers_are_finite_and_bounded(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: {problem}")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("interval: 7d", 7 * 86400.0), ("stop_timeout: 1h", 3600.0), ("backoff_max: 3600", 3600.0)],
)
def test_the_maximum_durations_themselves_are_accepted(
    tmp_path: Path, text: str, seconds: float
) -> None:
    config = load_config(write(tmp_path, f"{text}\n" + TARGET % "timeout: 1h"))
    key = text.split(":")[0]
    assert getattr(config, f"{key}_seconds") == seconds
    assert config.targets[0].source.timeout_seconds == 3600.0


def test_a_configuration_that_is_not_utf8_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "gitopsd.yaml"
    path.write_bytes(("# caf\xe9\n" + PLAIN).encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message == (f"{path}: cannot read configuration: not UTF-8 text (byte 0xe9 at offset 5)")


@pytest.mark.parametrize("under", ["", "/sub/state"])
def test_a_state_dir_that_is_a_file_names_the_key(tmp_path: Path, under: str) -> None:
    (tmp_path / "file").write_text("not a directory\n")
    path = write(tmp_path, f"state_dir: file{under}\n" + PLAIN)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: state_dir: {tmp_path / 'file'}{under} is not a directory")
    if under:
        assert f"({tmp_path / 'file'} is not a directory)" in message


def test_a_state_dir_yet_to_be_made_is_accepted(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "state_dir: a/b/c\n" + PLAIN))
    assert config.state_dir == tmp_path / "a" / "b" / "c"


def test_a_secret_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"p\xe4ss\n")
    with pytest.raises(ConfigError) as caught:
        SecretRef(file=secret).read()
    assert str(caught.value) == (
        f"cannot read secret file {secret}: not UTF-8 text (byte 0xe4 at offset 1)"
    )
