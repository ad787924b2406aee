"""The sync webhook as each forge sends it, against the daemon's real listener: gitopsd's own
header, GitHub/Gitea's body signature, and GitLab's token header (issue 11)."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from tests.daemon.test_daemon import SECRET, Start, start  # noqa: F401 - the fixture

PUSH = json.dumps({"object_kind": "push", "ref": "refs/heads/main"}).encode()


def _signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("headers", "accepted"),
    [
        ({"X-Gitopsd-Secret": SECRET}, True),
        ({"X-Hub-Signature-256": _signature(SECRET, PUSH)}, True),
        ({"X-Gitlab-Token": SECRET, "X-Gitlab-Event": "Push Hook"}, True),
        ({"X-Gitlab-Token": "not-the-secret", "X-Gitlab-Event": "Push Hook"}, False),
        ({"X-Gitlab-Token": SECRET[:-1]}, False),
        ({"X-Hub-Signature-256": _signature("not-the-secret", PUSH)}, False),
    ],
    ids=["gitopsd", "github", "gitlab", "gitlab-wrong", "gitlab-prefix", "github-wrong"],
)
def test_each_forge_authenticates_its_own_way(
    start: Start,  # noqa: F811 - the imported fixture
    headers: dict[str, str],
    accepted: bool,
) -> None:
    running = start("web")
    status = running.post("/hooks/sync?target=web", headers, PUSH)
    assert status == (202 if accepted else 401)
    if accepted:
        assert running.script.wait_calls("web", 2, timeout=5)
    else:
        assert running.script.calls["web"] == 1
