"""Git over HTTPS with a private CA, and a real CONNECT proxy: the network a platform team's
bastion meets. Certificates come from the openssl command, the proxy is Debian's tinyproxy;
every server listens on loopback and is stopped by its fixture."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.git_remotes import GitHttpServer, free_port

TINYPROXY = "tinyproxy"


def _openssl(folder: Path, *args: str) -> None:
    result = subprocess.run(["openssl", *args], cwd=folder, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


@dataclass(frozen=True)
class Authority:
    """A private CA; `issue` signs a serving certificate for 127.0.0.1 and localhost."""

    folder: Path
    name: str

    @property
    def certificate(self) -> Path:
        return self.folder / f"{self.name}.crt"

    @classmethod
    def create(cls, folder: Path, name: str) -> Authority:
        folder.mkdir(parents=True, exist_ok=True)
        _openssl(
            folder,
            *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", f"{name}.key", "-out", f"{name}.crt", "-subj", f"/CN={name}"),
        )
        return cls(folder, name)

    def issue(self, server: str) -> tuple[Path, Path]:
        """A certificate and key for `server`, signed by this CA."""
        ext = self.folder / f"{server}.ext"
        ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
        _openssl(
            self.folder,
            *("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{server}.key"),
            *("-out", f"{server}.csr", "-subj", f"/CN={server}"),
        )
        _openssl(
            self.folder,
            *("x509", "-req", "-in", f"{server}.csr", "-CA", self.certificate.name),
            *("-CAkey", f"{self.name}.key", "-CAcreateserial", "-days", "2"),
            *("-out", f"{server}.crt", "-extfile", ext.name),
        )
        return self.folder / f"{server}.crt", self.folder / f"{server}.key"


class GitHttpsServer(GitHttpServer):
    """The smart-HTTP Git server of git_remotes.py, over TLS with a certificate from `ca`."""

    def __init__(self, project_root: Path, username: str, password: str, ca: Authority) -> None:
        super().__init__(project_root, username, password)
        self.ca = ca  # the tests name its certificate in ca_file, or leave it out
        certificate, key = ca.issue("git-server")
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._tls.load_cert_chain(certificate, key)

    def get_request(self) -> tuple[socket.socket, object]:
        connection, address = super().get_request()
        # The handshake happens in the handler's thread, at its first read: a client that
        # refuses the certificate fails its own request, not the accept loop.
        wrapped = self._tls.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return wrapped, address

    def handle_error(self, request: object, client_address: object) -> None:
        """A client refusing our certificate is what some tests want; not a server fault."""
        import sys

        if not isinstance(sys.exc_info()[1], ssl.SSLError | ConnectionError):
            super().handle_error(request, client_address)

    def https_url(self, repository: str) -> str:
        return f"https://127.0.0.1:{self.port}/{repository}"


def serving_https(
    project_root: Path, username: str, password: str, folder: Path
) -> Iterator[GitHttpsServer]:
    """For a fixture: a GitHttpsServer with a fresh CA made in `folder`, stopped afterwards."""
    ca = Authority.create(folder, f"ca-{uuid.uuid4().hex[:8]}")
    server = GitHttpsServer(project_root, username, password, ca)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Tinyproxy:
    """Debian's tinyproxy on a loopback port, logging each request (CONNECT included)."""

    def __init__(self, folder: Path) -> None:
        executable = shutil.which(TINYPROXY) or shutil.which(f"/usr/bin/{TINYPROXY}")
        if executable is None:
            raise RuntimeError("tinyproxy is not installed (apt-get install tinyproxy)")
        self.executable = executable
        self.folder = folder
        self.port = free_port()
        self.log_file = folder / "tinyproxy.log"
        folder.mkdir(parents=True, exist_ok=True)
        lines = [
            "Listen 127.0.0.1",
            f"Port {self.port}",
            "Timeout 60",
            f'LogFile "{self.log_file}"',
            "LogLevel Connect",
            "MaxClients 50",
            "Allow 127.0.0.1",
        ]
        self.config = folder / "tinyproxy.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        self._process = subprocess.Popen(
            [self.executable, "-d", "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_listening(self._process, "tinyproxy", self.port, timeout)

    def connects(self) -> list[str]:
        """The CONNECT request lines the proxy logged, in order."""
        if not self.log_file.exists():
            return []
        return [
            line.split("): ", 1)[1]
            for line in self.log_file.read_text().splitlines()
            if "Request (file descriptor" in line and "): CONNECT " in line
        ]

    def stop(self) -> None:
        _stop(self._process)
        self._process = None


class Squid:
    """Debian's squid on a loopback port demanding Basic proxy credentials (one user).

    Squid, unlike tinyproxy, keeps the connection open after its 407 challenge, which
    libgit2 1.9 needs to answer one (libgit2 issue 7081)."""

    def __init__(self, username: str, password: str) -> None:
        executable = shutil.which("squid") or shutil.which("/usr/sbin/squid")
        if executable is None:
            raise RuntimeError("squid is not installed (apt-get install squid)")
        self.executable = executable
        # Squid started as root works as the `proxy` user: its files live where it may write.
        self.folder = Path(tempfile.mkdtemp(prefix="gitopsd-squid-"))
        self.folder.chmod(0o755)
        if os.geteuid() == 0:
            shutil.chown(self.folder, user="proxy")
        self.port = free_port()
        self.access_log = self.folder / "access.log"
        passwords = self.folder / "passwd"
        digest = subprocess.run(
            ["openssl", "passwd", "-apr1", password], capture_output=True, text=True, check=True
        ).stdout.strip()
        passwords.write_text(f"{username}:{digest}\n")
        passwords.chmod(0o644)
        self.config = self.folder / "squid.conf"
        self.config.write_text(
            f"http_port 127.0.0.1:{self.port}\n"
            f"pid_filename {self.folder / 'squid.pid'}\n"
            f"access_log stdio:{self.access_log}\n"
            f"cache_log {self.folder / 'cache.log'}\n"
            "cache_store_log none\ncache deny all\npinger_enable off\n"
            "shutdown_lifetime 0 seconds\n"
            f"auth_param basic program /usr/lib/squid/basic_ncsa_auth {passwords}\n"
            "acl authed proxy_auth REQUIRED\nhttp_access allow authed\nhttp_access deny all\n"
        )
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self._process = subprocess.Popen(
            [self.executable, "-N", "-f", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_listening(self._process, "squid", self.port, timeout)

    def tunnels(self) -> list[str]:
        """`user CONNECT host:port` for each tunnel squid opened (status 200)."""
        if not self.access_log.exists():
            return []
        found = []
        for line in self.access_log.read_text().splitlines():
            fields = line.split()
            if len(fields) > 7 and fields[3].endswith("/200") and fields[5] == "CONNECT":
                found.append(f"{fields[7]} CONNECT {fields[6]}")
        return found

    def stop(self) -> None:
        _stop(self._process)
        self._process = None
        shutil.rmtree(self.folder, ignore_errors=True)


def _wait_listening(process: subprocess.Popen[bytes], name: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not listen on {port} within {timeout}s")


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
