"""The `notify:` section: what valid sinks become, and how wrong ones are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitopsd.config import SecretRef, load_config
from gitopsd.errors import ConfigError
from gitopsd.notifications import EMITTED, EventType, Forge
from gitopsd.notifyconfig import SinkType

HEAD = """\
state_dir: state
targets:
  - {name: web, repo: https://git.example/org/infra.git, branch: main}
  - {name: api, repo: https://git.example/org/api.git, branch: main}
notify:
"""


def load(tmp_path: Path, sinks: str) -> object:
    path = tmp_path / "gitopsd.yaml"
    path.write_text(HEAD + sinks)
    return load_config(path)


def refused(tmp_path: Path, sinks: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, sinks)
    return str(caught.value)


def test_every_kind_of_sink(tmp_path: Path) -> None:
    config: object = load(
        tmp_path,
        """\
  - {type: webhook, url: "https://hooks.example/gitopsd", secret_file: hook-secret,
     events: [pass_failed], targets: [api], timeout: 2s, max_attempts: 3, queue_size: 10,
     dedupe_window: 1m, max_per_minute: 6, status_url: "https://ops.example/gitopsd"}
  - {type: slack, url_env: SLACK_URL}
  - {name: ops, type: webhook, url: "https://hooks.example/ops", events: [drift_fight, lease_lost]}
  - {name: gh, type: commit_status, forge: github, token_file: token}
  - {name: lab, type: commit_status, forge: gitlab, token_env: LAB, repository: grp/sub/infra}
  - {name: tea, type: commit_status, forge: forgejo, api_url: "https://tea.example/api/v1/",
     token_env: TEA}
""",
    )
    webhook, slack, ops, github, gitlab, forgejo = config.notify  # type: ignore[attr-defined]
    assert (webhook.name, webhook.type, webhook.url) == (
        "webhook",
        SinkType.WEBHOOK,
        "https://hooks.example/gitopsd",
    )
    assert webhook.secret == SecretRef(file=tmp_path / "hook-secret")
    assert webhook.events == {EventType.PASS_FAILED} and webhook.targets == {"api"}
    assert (webhook.timeout_seconds, webhook.max_attempts, webhook.queue_size) == (2.0, 3, 10)
    assert (webhook.dedupe_window_seconds, webhook.max_per_minute) == (60.0, 6)
    assert slack.url is None and slack.url_ref == SecretRef(env="SLACK_URL")
    assert slack.events == EMITTED and slack.targets == frozenset()
    assert EventType.DRIFT_FIGHT in EMITTED and EventType.LEASE_LOST in EMITTED
    assert ops.events == {EventType.DRIFT_FIGHT, EventType.LEASE_LOST}
    assert (github.forge, github.api_url) == (Forge.GITHUB, "https://api.github.com")
    assert github.token == SecretRef(file=tmp_path / "token") and github.repository is None
    assert (gitlab.api_url, gitlab.repository) == ("https://gitlab.com/api/v4", "grp/sub/infra")
    assert forgejo.api_url == "https://tea.example/api/v1"


@pytest.mark.parametrize(
    ("sink", "message"),
    [
        ("{url: https://h.example/}", "notify[0].type: is required"),
        ("{type: email, url: https://h.example/}", "must be one of webhook, slack, commit_status"),
        ("{type: webhook}", "a webhook sink needs url, url_file or url_env"),
        ("{type: webhook, url: ftp://h.example/x}", "notify[0].url: must be an http"),
        (
            "{type: slack, url: https://hooks.slack.example/T/B/x}",
            "a Slack webhook URL carries its token: give it in url_file or url_env",
        ),
        ("{type: webhook, url: https://h.example/, secret: x}", "never written inline"),
        (
            "{type: webhook, url: https://h.example/, url_file: u}",
            "give url, url_file or url_env, only one",
        ),
        ("{type: webhook, url: https://h.example/, forge: github}", "does not apply to a webhook"),
        ("{type: slack, url_env: U, events: [drift]}", "'drift' is not an event"),
        ("{type: slack, url_env: U, targets: [wbe]}", "no target named 'wbe'"),
        ("{type: slack, url_env: U, max_per_minute: 0}", "at least 1"),
        ("{type: commit_status, token_env: T}", "notify[0].forge: is required"),
        ("{type: commit_status, forge: gitea, token_env: T}", "gitea has no public default"),
        ("{type: commit_status, forge: github}", "needs token_file or token_env"),
        ("{type: commit_status, forge: github, token: abc}", "never written inline"),
        (
            "{type: commit_status, forge: github, token_env: T, repository: a/b/c}",
            "'a/b/c' is not owner/name",
        ),
        (
            "{type: commit_status, forge: github, token_env: T, events: [pass_failed]}",
            "follows every pass: remove events",
        ),
    ],
)
def test_a_wrong_sink_is_refused_naming_the_key(tmp_path: Path, sink: str, message: str) -> None:
    assert message in refused(tmp_path, f"  - {sink}\n")


def test_two_sinks_of_one_name_are_refused(tmp_path: Path) -> None:
    text = refused(tmp_path, "  - {type: slack, url_env: A}\n  - {type: slack, url_env: B}\n")
    assert "notify[1].name: two sinks are called 'slack'" in text


def test_a_token_in_an_inline_url_is_never_quoted_in_an_error(tmp_path: Path) -> None:
    text = refused(tmp_path, "  - {type: slack, url: https://hooks.slack.example/T0/B0/tok3n}\n")
    assert "tok3n" not in text
