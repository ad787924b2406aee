"""Real Git remotes for tests: bare repositories built with real commits, served
over a path, file://, smart HTTP with basic auth, and SSH.

Everything runs real programs (git, git-http-backend, sshd, ssh-keygen, gpg) so the
source stage is tested against the protocols it meets in production.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

GIT_HTTP_BACKEND = Path("/usr/lib/git-core/git-http-backend")
SSHD = Path("/usr/sbin/sshd")

# A fixed identity and clock-free environment so commits never depend on the host's git config.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "gitopsd tests",
    "GIT_AUTHOR_EMAIL": "tests@gitopsd.invalid",
    "GIT_COMMITTER_NAME": "gitopsd tests",
    "GIT_COMMITTER_EMAIL": "tests@gitopsd.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
}


def run(
    *args: str | Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
) -> str:
    """Run a command, fail loudly with its stderr, return its stdout."""
    full_env = {**os.environ, **GIT_ENV, **(env or {})}
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=full_env, input=input, capture_output=True
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, args))} exited {proc.returncode}: {proc.stderr.decode().strip()}"
        )
    return proc.stdout.decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Symlink:
    """A file value that makes `commit` create a symbolic link to `target`."""

    target: str


FileValue = str | bytes | Symlink | None  # None deletes the file


@dataclass
class Signer:
    """How `commit` signs: git config overrides plus environment (GNUPGHOME for gpg)."""

    config: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)


class BareRemote:
    """A bare repository plus a work clone used to commit and push into it."""

    def __init__(self, bare: Path, work: Path, branch: str = "main") -> None:
        self.bare = bare
        self.work = work
        self.branch = branch
        run("git", "init", "--bare", "-q", "-b", branch, bare)
        run("git", "init", "-q", "-b", branch, work)
        run("git", "-C", work, "remote", "add", "origin", bare)

    @property
    def file_url(self) -> str:
        return self.bare.as_uri()

    def commit(
        self,
        files: Mapping[str, FileValue],
        message: str = "change",
        *,
        branch: str | None = None,
        signer: Signer | None = None,
        push: bool = True,
    ) -> str:
        """Write (or delete) files, commit them and push; return the new commit id."""
        branch = branch or self.branch
        self._checkout(branch)
        for name, value in files.items():
            self._write(self.work / name, value)
        run("git", "-C", self.work, "add", "-A")
        sign: list[str] = []
        env: dict[str, str] = {}
        if signer is not None:
            for key, val in signer.config.items():
                sign += ["-c", f"{key}={val}"]
            env = signer.env
        run(
            "git",
            *sign,
            "-C",
            self.work,
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            message,
            *(["-S"] if signer else []),
            env=env,
        )
        if push:
            self.push(branch)
        return run("git", "-C", self.work, "rev-parse", "HEAD").strip()

    def push(self, branch: str | None = None, *, force: bool = False) -> None:
        branch = branch or self.branch
        run(
            "git",
            "-C",
            self.work,
            "push",
            "-q",
            *(["--force"] if force else []),
            "origin",
            f"{branch}:refs/heads/{branch}",
        )

    def reset(self, commit: str, branch: str | None = None) -> None:
        """Move the work clone's branch back to `commit` (to build a rewritten history)."""
        self._checkout(branch or self.branch)
        run("git", "-C", self.work, "reset", "-q", "--hard", commit)

    def force_push(
        self,
        files: Mapping[str, FileValue],
        onto: str,
        message: str = "rewrite",
        branch: str | None = None,
    ) -> str:
        """Commit `files` on top of `onto` and force-push it over the branch."""
        branch = branch or self.branch
        self.reset(onto, branch)
        new = self.commit(files, message, branch=branch, push=False)
        self.push(branch, force=True)
        return new

    def tag(self, name: str, commit: str | None = None, *, annotated: bool = False) -> None:
        target = commit or self.head()
        args = ["-a", "-m", name] if annotated else []
        run("git", "-C", self.work, "tag", "-f", *args, name, target)
        run("git", "-C", self.work, "push", "-q", "--force", "origin", f"refs/tags/{name}")

    def head(self, branch: str | None = None) -> str:
        return run(
            "git", "-C", self.bare, "rev-parse", f"refs/heads/{branch or self.branch}"
        ).strip()

    def _checkout(self, branch: str) -> None:
        current = run("git", "-C", self.work, "symbolic-ref", "--short", "HEAD").strip()
        if current == branch:
            return
        has = (
            subprocess.run(
                ["git", "-C", str(self.work), "rev-parse", "--verify", "-q", branch],
                capture_output=True,
            ).returncode
            == 0
        )
        run("git", "-C", self.work, "checkout", "-q", *([] if has else ["-b"]), branch)

    @staticmethod
    def _write(path: Path, value: FileValue) -> None:
        if path.is_symlink() or path.exists():
            path.unlink()
        if value is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(value, Symlink):
            path.symlink_to(value.target)
        elif isinstance(value, bytes):
            path.write_bytes(value)
        else:
            path.write_text(value)


class RemoteFactory:
    """Makes named bare repositories under one root that every server exports."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.repos = root / "repos"
        self.works = root / "work"
        self.repos.mkdir(parents=True, exist_ok=True)
        self.works.mkdir(parents=True, exist_ok=True)

    def create(self, name: str, branch: str = "main") -> BareRemote:
        return BareRemote(self.repos / f"{name}.git", self.works / name, branch)


# --- smart HTTP -------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpRequest:
    """One request the HTTP server answered, for counting round-trips and bytes."""

    method: str
    path: str
    status: int
    bytes_in: int
    bytes_out: int
    user: str | None


class _GitHttpHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps the connection across libgit2's 401 challenge and its retry.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, delayed ACKs add 40 ms.
    disable_nagle_algorithm = True
    server: GitHttpServer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: object) -> None:
        pass  # the request log replaces stderr noise

    def _serve(self) -> None:
        body = self._read_body()
        user = self._authorized_user()
        if user is None:
            self._reply(
                401, {"WWW-Authenticate": 'Basic realm="git"'}, b"unauthorized\n", len(body), None
            )
            return
        status, headers, out = self.server.backend(self, body, user)
        self._reply(status, headers, out, len(body), user)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _authorized_user(self) -> str | None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        if (user, password) != (self.server.username, self.server.password):
            return None
        return user

    def _reply(
        self, status: int, headers: Mapping[str, str], out: bytes, bytes_in: int, user: str | None
    ) -> None:
        # Recorded before answering, so the log keeps the order in which the client asked.
        self.server.record(HttpRequest(self.command, self.path, status, bytes_in, len(out), user))
        self.send_response(status)
        for key, val in headers.items():
            self.send_header(key, val)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


class GitHttpServer(ThreadingHTTPServer):
    """git-http-backend as CGI behind a loopback HTTP server requiring Basic auth."""

    daemon_threads = True

    def __init__(self, project_root: Path, username: str, password: str) -> None:
        super().__init__(("127.0.0.1", 0), _GitHttpHandler)
        self.project_root = project_root
        self.username = username
        self.password = password
        self.requests: list[HttpRequest] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, remote: BareRemote, *, credentials: str | None = None) -> str:
        auth = f"{credentials}@" if credentials else ""
        return f"http://{auth}127.0.0.1:{self.port}/{remote.bare.name}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=10)

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients hanging up (libgit2 after a refused login) are normal; the rest is loud."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]

    def record(self, request: HttpRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    def log(self) -> list[HttpRequest]:
        with self._lock:
            return list(self.requests)

    def backend(
        self, handler: _GitHttpHandler, body: bytes, user: str
    ) -> tuple[int, dict[str, str], bytes]:
        """Run git-http-backend once with the CGI environment of this request."""
        path, _, query = handler.path.partition("?")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.project_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REQUEST_METHOD": handler.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": handler.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": user,
            "REMOTE_ADDR": "127.0.0.1",
        }
        for header, var in (
            ("Content-Encoding", "HTTP_CONTENT_ENCODING"),
            ("Git-Protocol", "GIT_PROTOCOL"),
        ):
            if handler.headers.get(header):
                env[var] = handler.headers[header]
        proc = subprocess.run(
            [str(GIT_HTTP_BACKEND)], input=body, env=env, capture_output=True, check=False
        )
        return self._parse_cgi(proc.stdout)

    @staticmethod
    def _parse_cgi(output: bytes) -> tuple[int, dict[str, str], bytes]:
        head, _, body = output.partition(b"\r\n\r\n")
        if not _:
            head, _, body = output.partition(b"\n\n")
        status, headers = 200, {}
        for line in head.decode("latin-1").splitlines():
            key, _, val = line.partition(":")
            if key.lower() == "status":
                status = int(val.strip().split()[0])
            elif key:
                headers[key.strip()] = val.strip()
        return status, headers, body


# --- SSH --------------------------------------------------------------------------------


def ssh_keygen(path: Path, *, passphrase: str = "", comment: str = "gitopsd-tests") -> Path:
    """Generate an ed25519 key pair at `path` (and `path`.pub); return the private key."""
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", comment, "-f", path)
    return path


class SshServer:
    """Debian's sshd on a loopback port, as the current user, with generated keys."""

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.root = root
        self.host = host
        self.port = port or free_port()
        self.user = getpass.getuser()
        root.mkdir(parents=True, exist_ok=True)
        self.host_key = ssh_keygen(root / "ssh_host_ed25519_key", comment="host")
        self.client_key = ssh_keygen(root / "client_key", comment="client")
        self.authorized_keys = root / "authorized_keys"
        self.authorized_keys.write_text(Path(f"{self.client_key}.pub").read_text())
        self.known_hosts = root / "known_hosts"
        self.known_hosts.write_text(self.known_hosts_line())
        self.config = root / "sshd_config"
        self.log_file = root / "sshd.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def known_hosts_line(self, key: Path | None = None) -> str:
        pub = Path(f"{key or self.host_key}.pub").read_text().split()
        name = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        return f"{name} {pub[0]} {pub[1]}\n"

    def authorize(self, public_key: Path) -> None:
        with self.authorized_keys.open("a") as out:
            out.write(public_key.read_text())

    def url(self, remote: BareRemote) -> str:
        return f"ssh://{self.user}@{self.host}:{self.port}{remote.bare}"

    def start(self) -> None:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation dir
        self.config.write_text(
            f"Port {self.port}\nListenAddress {self.host}\nHostKey {self.host_key}\n"
            f"PidFile {self.root / 'sshd.pid'}\nAuthorizedKeysFile {self.authorized_keys}\n"
            "StrictModes no\nUsePAM no\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
            "PermitRootLogin prohibit-password\nLogLevel VERBOSE\n"
        )
        log = self.log_file.open("ab")
        self._proc = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(self.config)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(
                    f"sshd exited {self._proc.returncode}: "
                    f"{self.log_file.read_text(errors='replace')}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=1) as sock,
            ):
                if sock.recv(4).startswith(b"SSH-"):
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd did not listen on {self.host}:{self.port}")

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None


# --- signing keys ------------------------------------------------------------------------


class GpgKey:
    """A throwaway OpenPGP key in its own GNUPGHOME, able to sign commits and export itself."""

    def __init__(self, home: Path, email: str) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        home.chmod(0o700)
        self.env = {"GNUPGHOME": str(home)}
        run(
            "gpg",
            "--batch",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--quick-generate-key",
            f"gitopsd tests <{email}>",
            "ed25519",
            "sign",
            "never",
            env=self.env,
        )
        listing = run("gpg", "--batch", "--with-colons", "--list-keys", email, env=self.env)
        self.fingerprint = next(
            line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
        )

    def signer(self) -> Signer:
        return Signer({"user.signingkey": self.fingerprint, "gpg.format": "openpgp"}, self.env)

    def export(self, path: Path) -> Path:
        path.write_text(
            run("gpg", "--batch", "--armor", "--export", self.fingerprint, env=self.env)
        )
        return path

    def close(self) -> None:
        """Stop the gpg-agent this home started, so no process outlives the tests."""
        subprocess.run(
            ["gpgconf", "--homedir", str(self.home), "--kill", "all"],
            capture_output=True,
            check=False,
        )


class SshSigningKey:
    """An ed25519 key that signs commits with `gpg.format=ssh`."""

    def __init__(self, path: Path, principal: str) -> None:
        self.key = ssh_keygen(path, comment=principal)
        self.principal = principal

    def signer(self) -> Signer:
        return Signer({"gpg.format": "ssh", "user.signingkey": str(self.key)})

    def allowed_signers(self, path: Path) -> Path:
        pub = Path(f"{self.key}.pub").read_text().split()
        path.write_text(f'{self.principal} namespaces="git" {pub[0]} {pub[1]}\n')
        return path
