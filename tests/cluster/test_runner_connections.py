"""A target's runner between passes: no connection to the API server left open."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import yaml

from gitopsd.config import ClusterSettings, Config, RefKind, SourceSettings, TargetSettings
from gitopsd.journal import Journal
from gitopsd.passresult import PassOutcome
from gitopsd.runner import TargetRunner
from tests.support.git_remotes import BareRemote


def _connections_to(port: int) -> int:
    """This process's established TCP connections to `port` on loopback."""
    mine = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if link.startswith("socket:["):
            mine.add(link[8:-1])
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == "01" and fields[9] in mine:
                count += 1
    return count


def test_a_pass_leaves_no_idle_connection_open(
    bare_remote: BareRemote, kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    # A daemon keeps one runner per target: with 100 targets, 8 idle TLS connections
    # each held about 46 MiB between passes (bench/README.md, many targets).
    bare_remote.commit(
        {f"cm-{n}.yaml": f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{n}}}\n"
         for n in range(20)}
    )  # fmt: skip
    server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    port = int(server.rsplit(":", 1)[1])
    target = TargetSettings(
        name=f"conn-{uuid.uuid4().hex[:8]}",
        source=SourceSettings(repo=str(bare_remote.bare), ref_kind=RefKind.BRANCH, ref="main"),
        cluster=ClusterSettings(kubeconfig=kubeconfig),
        namespace=namespace,
    )
    config = Config(path=tmp_path / "gitopsd.yaml", state_dir=tmp_path / "state")
    journal = Journal.open(config.state_dir)
    runner = TargetRunner(config, target, journal)
    before = _connections_to(port)
    try:
        for expected in (PassOutcome.CONVERGED, PassOutcome.IN_SYNC):
            result = runner.run_pass()
            assert result.outcome is expected, result.error
            assert _connections_to(port) == before
        assert runner.run_pass().outcome is PassOutcome.IN_SYNC  # the next pass reconnects
    finally:
        runner.close()
        journal.close()
