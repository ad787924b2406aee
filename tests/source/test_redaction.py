"""No credential reaches a log line, an error message, or a file in the state directory."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import structlog

from gitopsd.config import SecretRef
from gitopsd.errors import SourceError
from gitopsd.source import redact_url
from tests.source.conftest import MANIFESTS, MakeSource
from tests.support.git_remotes import BareRemote, GitHttpServer


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:s3cret@git.example/org/repo.git", "https://***@git.example/org/repo.git"),
        ("https://ghp_TOKEN@git.example/org/repo.git", "https://***@git.example/org/repo.git"),
        ("http://u:p@127.0.0.1:8080/r.git", "http://***@127.0.0.1:8080/r.git"),
        ("ssh://git:pw@git.example:2222/r.git", "ssh://git:***@git.example:2222/r.git"),
        ("ssh://git@git.example/r.git", "ssh://git@git.example/r.git"),
        ("git@git.example:org/repo.git", "git@git.example:org/repo.git"),
        (
            "https://git.example/r.git?access_token=abc",
            "https://git.example/r.git?access_token=***",
        ),
        ("/srv/git/r.git", "/srv/git/r.git"),
        ("file:///srv/git/r.git", "file:///srv/git/r.git"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def _state_text(state_dir: Path) -> str:
    chunks = []
    for path in state_dir.rglob("*"):
        if path.is_file() and path.stat().st_size < 1_000_000:
            chunks.append(path.read_bytes().decode("latin-1"))
        chunks.append(str(path))
    return "\n".join(chunks)


def test_no_secret_in_logs_errors_or_state(
    bare_remote: BareRemote,
    make_source: MakeSource,
    git_http_server: GitHttpServer,
    http_password: str,
    state_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bare_remote.commit(MANIFESTS)
    user = git_http_server.username
    plain = git_http_server.url(bare_remote)
    inline = git_http_server.url(bare_remote, credentials=f"{user}:{http_password}")
    wrong_token = "tok-WRONG-0123456789"
    (tmp_path / "pw").write_text(http_password)
    monkeypatch.setenv("GITOPSD_TOKEN", http_password)
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    with structlog.testing.capture_logs() as events:
        attempts = [
            make_source(plain, username=user, password=SecretRef(file=tmp_path / "pw")),
            make_source(plain, username=user, password=SecretRef(env="GITOPSD_TOKEN")),
            make_source(inline, target="inline"),
            make_source(
                git_http_server.url(bare_remote, credentials=f"{user}:{wrong_token}"),
                target="inline-wrong",
            ),
            make_source(
                plain.replace(bare_remote.bare.name, "missing.git"),
                username=user,
                password=SecretRef(file=tmp_path / "pw"),
            ),
        ]
        for source in attempts:
            try:
                revision = source.fetch()
                source.read_tree(revision)
                source.mark_applied(revision)
            except SourceError as exc:
                texts += [str(exc), repr(exc), str(exc.__cause__), repr(exc.__cause__)]
    out = capsys.readouterr()
    everything = "\n".join(
        [*texts, *map(str, events), caplog.text, out.out, out.err, _state_text(state_dir)]
    )
    assert any("refused the credentials" in t for t in texts)  # the failures did happen
    assert sum(e["event"] == "source_fetched" for e in events) == 3
    assert http_password not in everything
    assert wrong_token not in everything
