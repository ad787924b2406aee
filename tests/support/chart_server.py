"""A real Helm chart repository on loopback: `helm package` + `helm repo index` output
served over HTTP with ETags (so conditional requests answer 304) and optional Basic auth."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Served:
    """One request the server answered."""

    path: str
    status: int
    conditional: bool


@dataclass
class ChartServer:
    """Serves `root`; `requests` records every answer."""

    root: Path
    helm: str
    username: str | None = None
    password: str | None = None
    requests: list[Served] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/charts/"

    def publish(self, chart_dir: Path) -> None:
        """`helm package` the chart into the repository and `helm repo index` it again."""
        subprocess.run(
            [self.helm, "package", str(chart_dir), "--destination", str(self.root)],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [self.helm, "repo", "index", str(self.root), "--url", self.url],
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)


def _handler(server: ChartServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            conditional = "If-None-Match" in self.headers
            status = self._answer()
            server.requests.append(Served(self.path, status, conditional))

        def _answer(self) -> int:
            if server.username is not None and not self._authorized():
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="charts"')
                self.end_headers()
                return 401
            name = self.path.removeprefix("/charts/")
            path = server.root / name
            if "/" in name or not path.is_file():
                self.send_response(404)
                self.end_headers()
                return 404
            body = path.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return 304
            self.send_response(200)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return 200

        def _authorized(self) -> bool:
            expected = base64.b64encode(f"{server.username}:{server.password}".encode()).decode()
            return self.headers.get("Authorization") == f"Basic {expected}"

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler
