"""Fetches of different targets at the same time: one hung remote delays no other,
each SSH target is still checked against its own known_hosts, and targets sharing
a remote (and so its mirror) never fetch into it at the same moment.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gitopsd.config import SecretRef
from gitopsd.errors import AuthenticationError, RemoteUnreachableError
from gitopsd.model import Revision
from gitopsd.source import GitSource
from tests.source.conftest import MANIFESTS, MakeSource, SilentServer, branch_settings
from tests.support.git_remotes import BareRemote, GitHttpServer, SshServer, ssh_keygen

SLOW_TIMEOUT = 5.0
SHARING_TARGETS = 6
ROUNDS = 10


def test_hung_remote_does_not_delay_another_targets_fetch(
    bare_remote: BareRemote,
    make_source: MakeSource,
    http_source: Callable[..., GitSource],
    silent_server: SilentServer,
) -> None:
    commit = bare_remote.commit(MANIFESTS)
    hung = make_source(
        f"http://127.0.0.1:{silent_server.port}/repo.git",
        target="hung",
        timeout_seconds=SLOW_TIMEOUT,
    )
    # Over HTTP too, with the same timeout: it needs the very same process-wide settings.
    working = http_source(bare_remote, target="working", timeout_seconds=SLOW_TIMEOUT)
    finished: list[str] = []
    errors: list[Exception] = []

    def fetch_hung() -> None:
        try:
            hung.fetch()
        except RemoteUnreachableError as exc:
            errors.append(exc)
        finished.append("hung")

    thread = threading.Thread(target=fetch_hung)
    thread.start()
    try:
        assert silent_server.accepted.wait(SLOW_TIMEOUT), "the hung fetch never connected"
        assert working.fetch().commit == commit
        finished.append("working")
    finally:
        thread.join(SLOW_TIMEOUT * 3)
    # The working fetch ended while the hung one was still waiting out its timeout.
    assert finished == ["working", "hung"]
    assert len(errors) == 1 and "timeout 5s" in str(errors[0])


def test_each_ssh_target_keeps_its_own_known_hosts_when_fetching_together(
    bare_remote: BareRemote,
    ssh_source: Callable[..., GitSource],
    git_ssh_server: SshServer,
    tmp_path: Path,
) -> None:
    commit = bare_remote.commit(MANIFESTS)
    wrong = tmp_path / "known_hosts_wrong"
    wrong.write_text(git_ssh_server.known_hosts_line(ssh_keygen(tmp_path / "impostor")))
    trusting = ssh_source(bare_remote, target="trusting")
    distrusting = ssh_source(bare_remote, target="distrusting", known_hosts=wrong)

    def trusted() -> Revision:
        return trusting.fetch()

    def refused() -> str:
        with pytest.raises(AuthenticationError) as err:
            distrusting.fetch()
        return str(err.value)

    with ThreadPoolExecutor(max_workers=4) as pool:
        good = [pool.submit(trusted) for _ in range(4)]
        bad = [pool.submit(refused) for _ in range(4)]
        assert {f.result().commit for f in good} == {commit}
        assert all("is unknown or changed" in f.result() for f in bad)


def test_targets_sharing_a_remote_fetch_together_without_lock_errors(
    bare_remote: BareRemote,
    git_http_server: GitHttpServer,
    http_secret: SecretRef,
    tmp_path: Path,
) -> None:
    settings = branch_settings(
        git_http_server.url(bare_remote), username=git_http_server.username, password=http_secret
    )
    barrier = threading.Barrier(SHARING_TARGETS)

    def fetch(source: GitSource) -> str:
        barrier.wait()
        return source.fetch().commit

    with ThreadPoolExecutor(max_workers=SHARING_TARGETS) as pool:
        for round_ in range(ROUNDS):
            commit = bare_remote.commit({**MANIFESTS, "deploy/round.yaml": f"n: {round_}\n"})
            # Even rounds start from an empty state directory, so the mirror is created too;
            # odd ones fetch a moved ref into the mirror the previous round left.
            state_dir = tmp_path / f"state-{round_ - round_ % 2}"
            sources = [GitSource(f"web-{i}", settings, state_dir) for i in range(SHARING_TARGETS)]
            results = [pool.submit(fetch, source) for source in sources]
            assert [f.result() for f in results] == [commit] * SHARING_TARGETS
