"""The HTTP listener under hostile clients: idle connections and connection resets.

The daemon runs as a subprocess with the default open-files limit of 1,024, as
systemd and most shells give it, so a connection flood meets the same limit it
would in production.
"""

from __future__ import annotations

import json
import resource
import socket
import struct
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Gitopsd, configmap, wait_for
from tests.e2e.test_daemon import SECRET, get, http_extra
from tests.support.waiting import eventually

IDLE_CONNECTIONS = 2000
DAEMON_OPEN_FILES = 1024


def start_with_open_files_limit(gitopsd: Gitopsd, limit: int) -> subprocess.Popen[str]:
    """Start the daemon (cleaned up with the test's others) under an open-files limit."""
    index = len(gitopsd.processes)
    with (
        open(gitopsd.folder / f"stdout-{index}.log", "w") as out,
        open(gitopsd.folder / f"stderr-{index}.log", "w") as err,
    ):
        process = subprocess.Popen(
            [gitopsd.executable, "--config", str(gitopsd.config_path)],
            env=gitopsd.env,
            stdout=out,
            stderr=err,
            text=True,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)),
        )
    gitopsd.processes.append(process)
    return process


@pytest.fixture
def many_open_files() -> Iterator[None]:
    """Let this process open the test's sockets whatever its inherited soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = IDLE_CONNECTIONS + 1024
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.fail(f"the hard open-files limit {hard} is below the {wanted} this test needs")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# sock_diag (linux/sock_diag.h, linux/inet_diag.h): what `ss` reads.
_NETLINK_SOCK_DIAG, _SOCK_DIAG_BY_FAMILY, _NLMSG_ERROR, _NLMSG_DONE = 4, 20, 2, 3
_NLM_F_REQUEST, _NLM_F_DUMP, _TCP_LISTEN = 0x1, 0x300, 10


def listen_queue(port: int) -> tuple[int, int]:
    """(connections waiting to be accepted, backlog) of the TCP listener on `port`.

    Read through sock_diag, as `ss` does: /proc/net/tcp takes tens of milliseconds
    to read with thousands of sockets open, far too slow to poll between batches.
    """
    request = struct.pack("=BBBBI", socket.AF_INET, socket.IPPROTO_TCP, 0, 0, 1 << _TCP_LISTEN)
    request += bytes(48)  # inet_diag_sockid: no filter, the listeners are filtered below
    flags = _NLM_F_REQUEST | _NLM_F_DUMP
    header = struct.pack("=LHHLL", 16 + len(request), _SOCK_DIAG_BY_FAMILY, flags, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as diag:
        diag.send(header + request)
        while True:
            data, offset = diag.recv(1 << 16), 0
            while offset < len(data):
                length, kind = struct.unpack_from("=LH", data, offset)
                assert kind not in (_NLMSG_ERROR, _NLMSG_DONE), f"nothing listens on {port}"
                (sport,) = struct.unpack_from("!H", data, offset + 20)
                if sport == port:
                    queued, backlog = struct.unpack_from("=II", data, offset + 72)
                    return int(queued), int(backlog)
                offset += (length + 3) & ~3


def drained(port: int, timeout: float) -> bool:
    """Whether the daemon accepts every queued connection within `timeout` seconds."""
    return eventually(lambda: not listen_queue(port)[0], timeout, every=0.001)


def open_idle(port: int, count: int) -> tuple[list[socket.socket], int]:
    """`count` connections that never send a byte, and how many the daemon accepted.

    Opened in batches no larger than the listen backlog, each accepted before the
    next: a connection completed while the accept queue is full is answered with a
    SYN cookie and then dropped, so it would never reach the daemon and prove nothing.
    """
    batch = max(1, listen_queue(port)[1])
    sockets: list[socket.socket] = []
    accepted = 0
    while len(sockets) < count:
        size = min(batch, count - len(sockets))
        if accepted == len(sockets):
            sockets += [socket.create_connection(("127.0.0.1", port), 5) for _ in range(size)]
            accepted += size if drained(port, timeout=2) else 0
        else:  # the daemon stopped accepting: the rest only knock
            for _ in range(size):
                sockets.append(sock := socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                sock.setblocking(False)
                sock.connect_ex(("127.0.0.1", port))
    return sockets, accepted


def last_success(gitopsd: Gitopsd) -> float:
    status = json.loads(get(gitopsd.url("/status"))[1])["targets"]["app"]
    assert status["last_pass"]["outcome"] == "in_sync", status
    return float(status["last_success_at"] or 0.0)


@pytest.mark.usefixtures("many_open_files")
def test_idle_connections_leave_passes_and_healthz_working(gitopsd: Gitopsd) -> None:
    ns = gitopsd.namespace
    gitopsd.remote.commit({"manifests/app.yaml": configmap("app", ns, v="1")})
    gitopsd.write_config(extra=http_extra(gitopsd), interval="1s")
    daemon = start_with_open_files_limit(gitopsd, DAEMON_OPEN_FILES)
    wait_for(lambda: last_success(gitopsd) > 0, timeout=60)

    sockets, accepted = open_idle(gitopsd.port, IDLE_CONNECTIONS)
    try:
        held_since = time.time()
        # Probes get through while every connection is still open on this side...
        assert wait_for(lambda: get(gitopsd.url("/healthz")) == (200, "ok\n"), timeout=30)
        # ...and two passes run to the end after the flood, not only the one in flight.
        first = wait_for(lambda: (t := last_success(gitopsd)) > held_since and t, timeout=30)
        wait_for(lambda: last_success(gitopsd) > first, timeout=30)
        assert get(gitopsd.url("/healthz")) == (200, "ok\n")
        assert accepted == IDLE_CONNECTIONS  # the whole flood reached the daemon
    finally:
        for sock in sockets:
            sock.close()
    assert daemon.poll() is None
    assert "Too many open files" not in gitopsd.log(0)


def test_a_client_trickling_its_request_is_cut_after_the_request_timeout(
    gitopsd: Gitopsd,
) -> None:
    gitopsd.remote.commit({"manifests/app.yaml": configmap("app", gitopsd.namespace, v="1")})
    gitopsd.write_config(extra=http_extra(gitopsd), interval="1h")
    gitopsd.start()
    wait_for(lambda: get(gitopsd.url("/healthz"))[0] == 200)

    sock = socket.create_connection(("127.0.0.1", gitopsd.port), timeout=5)
    opened = time.monotonic()
    sock.sendall(b"GET /healthz HTTP/1.1\r\n")
    with sock:
        # A header line every second or so, each well within any per-read timeout.
        sock.settimeout(1.0)
        closed_after = None
        for index in range(40):
            try:
                sock.sendall(f"X-Trickle-{index}: 1\r\n".encode())
                if sock.recv(1024) == b"":
                    closed_after = time.monotonic() - opened
                    break
            except TimeoutError:
                continue  # still open: send the next line
            except OSError:  # reset while sending: closed by the server
                closed_after = time.monotonic() - opened
                break
    assert closed_after is not None, "the server kept a trickling client for 40 s"
    assert 9 < closed_after < 20
    assert get(gitopsd.url("/healthz")) == (200, "ok\n")


def reset(sock: socket.socket) -> None:
    """Close with a TCP reset instead of a FIN, as a crashed or hostile client does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_connection_resets_log_one_json_line_each(gitopsd: Gitopsd) -> None:
    gitopsd.remote.commit({"manifests/app.yaml": configmap("app", gitopsd.namespace, v="1")})
    extra = http_extra(gitopsd, webhook=True) + "\nlog_level: debug"
    gitopsd.write_config(extra=extra, interval="1h")
    gitopsd.start()
    wait_for(lambda: get(gitopsd.url("/healthz"))[0] == 200)

    resets = 4
    for index in range(resets):
        sock = socket.create_connection(("127.0.0.1", gitopsd.port), timeout=5)
        request = (
            f"POST /hooks/sync HTTP/1.1\r\nHost: x\r\nX-Gitopsd-Secret: {SECRET}\r\n"
            "Content-Length: 1000\r\n\r\n" + "x" * 10
        )
        # Half of them cut in the body, the others in the headers.
        sock.sendall(request.encode()[: None if index % 2 else 40])
        reset(sock)

    def settled() -> bool:
        log = gitopsd.log()
        return "Traceback" in log or log.count('"http_client_error"') >= resets

    wait_for(settled, timeout=30)
    lines = gitopsd.log().splitlines()
    not_json = [line for line in lines if not _is_json(line)]
    assert not not_json, "\n".join(not_json[:20])
    errors = [json.loads(line) for line in lines if '"http_client_error"' in line]
    assert len(errors) == resets
    assert all(e["level"] == "debug" and e["client"] == "127.0.0.1" for e in errors)


def _is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
