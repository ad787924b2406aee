"""systemd's notify protocol (READY=1, WATCHDOG=1, STATUS=...), written by hand.

The protocol is one datagram on the Unix socket named by NOTIFY_SOCKET; a
dependency for that would be larger than the code.
"""

from __future__ import annotations

import os
import socket

import structlog

log = structlog.get_logger(__name__)


class Notifier:
    """Sends notify messages when run under systemd (or a test); does nothing otherwise."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        # "@name" is Linux's abstract namespace, spelled with a leading NUL on the wire.
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_seconds = _watchdog_seconds(env)

    def ready(self, status: str = "") -> None:
        self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def send(self, message: str) -> None:
        """Send one message; a missing listener is logged, never fatal."""
        if not self._address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message.encode(), self._address)
        except OSError as exc:
            log.debug("sd_notify_failed", error=str(exc))


def _watchdog_seconds(env: dict[str, str] | os._Environ[str]) -> float | None:
    """Half the WatchdogSec systemd gave us (its advice), or None without a watchdog."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None  # the watchdog is meant for another process (we were exec'd by a wrapper)
    return int(usec) / 2_000_000
