"""Measure the Git source stage over smart HTTP on a repository with ~3,000 files.

Reports time and bytes of an unchanged-remote check and of an incremental fetch of one
new commit. Run: python bench/source_fetch.py [--files 3000] [--rounds 20]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Run from a checkout: tests.support (the HTTP server harness) is not an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import structlog

from gitopsd.config import RefKind, SecretRef, SourceSettings
from gitopsd.source import GitSource
from tests.support.git_remotes import GitHttpServer, HttpRequest, RemoteFactory


def manifest(i: int, rev: int = 0) -> str:
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n"
        f"  namespace: team-{i % 20}\ndata:\n  key: value-{i}-{rev}\n"
    )


def traffic(log: list[HttpRequest]) -> str:
    sent = sum(r.bytes_out for r in log)
    received = sum(r.bytes_in for r in log)
    kinds = ", ".join(
        f"{r.method} {r.path.split('?')[0].rsplit('/', 1)[-1]} {r.status}" for r in log
    )
    return f"{len(log)} requests [{kinds}], server sent {sent} B, received {received} B"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())  # keep output clean

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        factory = RemoteFactory(root / "git")
        remote = factory.create("bench")
        started = time.perf_counter()
        remote.commit(
            {f"deploy/team-{i % 20}/cm-{i}.yaml": manifest(i) for i in range(args.files)}, "initial"
        )
        print(f"built repository: {args.files} files in {time.perf_counter() - started:.2f}s")

        password = secrets.token_hex(8)
        (root / "pw").write_text(password)
        server = GitHttpServer(factory.repos, "bench", password)
        server.start()
        try:
            settings = SourceSettings(
                repo=server.url(remote),
                ref_kind=RefKind.BRANCH,
                ref="main",
                path="deploy",
                username="bench",
                password=SecretRef(file=root / "pw"),
            )
            source = GitSource("bench", settings, root / "state")
            measure("initial fetch (empty mirror)", source, server)
            revision = source.fetch()
            started = time.perf_counter()
            files = source.read_tree(revision)
            print(
                f"read_tree: {len(files)} files in {1000 * (time.perf_counter() - started):.1f} ms"
            )

            times = []
            for _ in range(args.rounds):
                server.clear_log()
                started = time.perf_counter()
                source.fetch()
                times.append(time.perf_counter() - started)
            print(
                f"unchanged check: median {1000 * statistics.median(times):.1f} ms, "
                f"min {1000 * min(times):.1f} ms over {args.rounds} rounds; "
                f"objects downloaded: {0 if source.last_transfer is None else 'some'}; "
                f"{traffic(server.log())}"
            )

            times, last = [], ""
            for n in range(args.rounds // 4 or 1):
                remote.commit({f"deploy/team-7/cm-{7 + 20 * n}.yaml": manifest(7, n + 1)})
                server.clear_log()
                started = time.perf_counter()
                source.fetch()
                times.append(time.perf_counter() - started)
                transfer = source.last_transfer
                assert transfer is not None
                last = (
                    f"objects {transfer.received_objects}, pack {transfer.received_bytes} B; "
                    f"{traffic(server.log())}"
                )
            print(
                f"incremental fetch of one new commit: median "
                f"{1000 * statistics.median(times):.1f} ms over {len(times)} rounds; {last}"
            )
        finally:
            server.stop()


def measure(label: str, source: GitSource, server: GitHttpServer) -> None:
    server.clear_log()
    started = time.perf_counter()
    source.fetch()
    elapsed = time.perf_counter() - started
    transfer = source.last_transfer
    objects = transfer.received_objects if transfer else 0
    print(f"{label}: {1000 * elapsed:.1f} ms, objects {objects}; {traffic(server.log())}")


if __name__ == "__main__":
    main()
