"""The listener's connection bookkeeping: limit, eviction of idle clients, request deadline."""

from __future__ import annotations

import resource
import socket

import pytest

from gitopsd.http import FD_RESERVE, ClientSocket, Connections, connection_limit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeSocket:
    """Records shutdown; closes at once (as the handler's thread does) when told to."""

    def __init__(self, connections: Connections | None = None, unread: bool = False) -> None:
        self.shut: int | None = None
        self.unread = unread  # bytes waiting in the kernel for the handler's thread
        self._connections = connections

    def fileno(self) -> int:
        raise AssertionError("the tests give Connections their own `unread`")

    def shutdown(self, how: int, /) -> None:
        self.shut = how
        if self._connections is not None:
            self._connections.release(self)


def unread(sock: ClientSocket) -> bool:
    assert isinstance(sock, FakeSocket)
    return sock.unread


@pytest.mark.parametrize(
    ("wanted", "open_files", "expected"),
    [
        (64, 1024, 64),
        (64, FD_RESERVE + 10, 10),  # the reserve for passes comes first
        (64, FD_RESERVE, 1),  # one connection still lets probes through, by eviction
        (64, resource.RLIM_INFINITY, 64),
    ],
)
def test_connection_limit_keeps_the_reserve(wanted: int, open_files: int, expected: int) -> None:
    assert connection_limit(wanted, open_files) == expected


def test_a_full_listener_evicts_the_oldest_client_still_sending_its_request() -> None:
    clock = Clock()
    connections = Connections(3, timeout=10.0, clock=clock, unread=unread)
    busy, idle_old, idle_new = (FakeSocket(connections) for _ in range(3))
    for sock in (busy, idle_old, idle_new):
        assert connections.admit(sock)
        clock.now += 1
    connections.request_read(busy)

    newcomer = FakeSocket(connections)
    assert connections.admit(newcomer)
    assert idle_old.shut == socket.SHUT_RDWR
    assert busy.shut is None and idle_new.shut is None


def test_a_request_waiting_unread_in_the_kernel_is_not_evicted() -> None:
    clock = Clock()
    connections = Connections(2, timeout=10.0, clock=clock, unread=unread)
    waiting, idle = FakeSocket(connections, unread=True), FakeSocket(connections)
    for sock in (waiting, idle):
        assert connections.admit(sock)
        clock.now += 1

    assert connections.admit(FakeSocket(connections))
    assert waiting.shut is None and idle.shut == socket.SHUT_RDWR


def test_a_listener_full_of_busy_connections_refuses_after_the_timeout() -> None:
    connections = Connections(2, timeout=0.0, clock=Clock(), unread=unread)
    busy = [FakeSocket(connections) for _ in range(2)]
    for sock in busy:
        assert connections.admit(sock)
        connections.request_read(sock)

    assert not connections.admit(FakeSocket(connections))
    assert all(sock.shut is None for sock in busy)
    connections.release(busy[0])  # a request finished
    assert connections.admit(FakeSocket(connections))


def test_clients_that_do_not_send_their_request_in_time_are_cut() -> None:
    clock = Clock()
    connections = Connections(10, timeout=10.0, clock=clock)
    slow, busy = FakeSocket(), FakeSocket()
    connections.admit(slow)
    connections.admit(busy)
    connections.request_read(busy)
    clock.now += 5
    young = FakeSocket()
    connections.admit(young)

    clock.now += 5.5
    connections.expire()
    assert slow.shut == socket.SHUT_RDWR
    assert busy.shut is None and young.shut is None


def test_a_closed_listener_admits_nothing() -> None:
    connections = Connections(10, timeout=10.0, clock=Clock())
    connections.close()
    assert not connections.admit(FakeSocket())
