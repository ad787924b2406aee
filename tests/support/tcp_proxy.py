"""A loopback TCP proxy a test can cut: a network partition between one process and a server.

Once cut, the proxy keeps accepting connections and reading from them but forwards
nothing either way, so the client sees what a partition looks like (requests that
never answer), not a refused connection.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `upstream` until `cut()`; `close()` ends it."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._cut = threading.Event()
        self._closed = threading.Event()
        self._refusing = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        self._cut.set()

    def refuse(self) -> None:
        """Drop every connection, and each new one at once (a server that went away)."""
        self._refusing.set()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def restore(self) -> None:
        """Forward again, after cut() or refuse()."""
        self._refusing.clear()
        self._cut.clear()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        if self._refusing.is_set():
            client.close()
            return
        try:
            server = socket.create_connection(self._upstream, timeout=5)
        except OSError:
            client.close()
            return
        with self._lock:
            self._sockets += [client, server]
        try:
            self._pump({client: server, server: client})
        finally:
            client.close()
            server.close()

    def _pump(self, peers: dict[socket.socket, socket.socket]) -> None:
        while not self._closed.is_set():
            try:
                ready, _, _ = select.select(list(peers), [], [], 0.2)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if not self._cut.is_set():  # cut: swallowed, the peer waits forever
                        peers[sock].sendall(data)
            except OSError:
                return
