"""Fetches of different targets at the same time: one hung remote delays no other,
and each SSH target is still checked against its own known_hosts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gitopsd.errors import AuthenticationError, RemoteUnreachableError
from gitopsd.model import Revision
from gitopsd.source import GitSource
from tests.source.conftest import MANIFESTS, MakeSource, SilentServer
from tests.support.git_remotes import BareRemote, SshServer, ssh_keygen

SLOW_TIMEOUT = 5.0


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
