"""The drift journal: every pass and every drift, in SQLite under the state directory.

History must survive restarts and be queryable (`gitopsd history`), so it is
a file, not a log stream. Values arrive already redacted (see normalize).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gitopsd.errors import StateError
from gitopsd.model import ChangeSetEntry

FILE_NAME = "journal.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS passes (
    id INTEGER PRIMARY KEY,
    target TEXT NOT NULL,
    revision TEXT,
    outcome TEXT NOT NULL,
    started_at REAL NOT NULL,
    duration_seconds REAL NOT NULL,
    writes INTEGER NOT NULL,
    error TEXT
);
CREATE TABLE IF NOT EXISTS drifts (
    id INTEGER PRIMARY KEY,
    pass_id INTEGER REFERENCES passes(id),
    target TEXT NOT NULL,
    revision TEXT,
    time REAL NOT NULL,
    "group" TEXT NOT NULL,
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    action TEXT NOT NULL,
    fields TEXT NOT NULL,
    managers TEXT NOT NULL,
    error TEXT
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    target TEXT NOT NULL,
    time REAL NOT NULL,
    event TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS passes_target_time ON passes (target, started_at);
CREATE INDEX IF NOT EXISTS drifts_target_time ON drifts (target, time);
CREATE INDEX IF NOT EXISTS passes_time ON passes (started_at);
CREATE INDEX IF NOT EXISTS drifts_time ON drifts (time);
CREATE INDEX IF NOT EXISTS events_time ON events (time);
"""
# Rows deleted per transaction when pruning: a pass recording meanwhile waits for one batch.
PRUNE_BATCH = 2000
_TIME_COLUMNS = (("drifts", "time"), ("passes", "started_at"), ("events", "time"))


@contextmanager
def _translated(path: Path) -> Iterator[None]:
    """SQLite's and the OS's errors as a StateError naming the journal and the fix."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StateError(path, f"{exc}{_file_system_state(path)}") from exc
    except OSError as exc:
        raise StateError(exc.filename or path, exc.strerror or str(exc)) from exc


def _file_system_state(path: Path) -> str:
    """What the file system says, for SQLite's vaguer errors ('disk I/O error')."""
    try:
        stats = os.statvfs(path.parent)
    except OSError:
        return ""
    if stats.f_flag & os.ST_RDONLY:
        return " (read-only file system)"
    free = stats.f_bfree if os.geteuid() == 0 else stats.f_bavail  # root may use reserved
    return " (no space left on device)" if free == 0 else ""


class Journal:
    """Append-only record of passes and drifts; every failure is a StateError."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self._path = path
        self._lock = threading.Lock()

    @classmethod
    def open(cls, state_dir: Path) -> Journal:
        """Open (creating if needed) `journal.sqlite` in the state directory."""
        path = state_dir / FILE_NAME
        with _translated(path):
            state_dir.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(path, check_same_thread=False)
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.executescript(_SCHEMA)
            except BaseException:
                connection.close()
                raise
        return cls(connection, path)

    def close(self) -> None:
        with _translated(self._path):
            self._db.close()

    def record_pass(
        self,
        *,
        target: str,
        revision: str | None,
        outcome: str,
        started_at: float,
        duration_seconds: float,
        writes: int,
        error: str | None,
        drifts: list[tuple[float, ChangeSetEntry]],
    ) -> None:
        """Store one pass and the drift entries it found, atomically."""
        with _translated(self._path), self._lock, self._db:
            cursor = self._db.execute(
                "INSERT INTO passes (target, revision, outcome, started_at, duration_seconds,"
                " writes, error) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (target, revision, outcome, started_at, duration_seconds, writes, error),
            )
            self._db.executemany(
                'INSERT INTO drifts (pass_id, target, revision, time, "group", kind, namespace,'
                " name, action, fields, managers, error) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [_drift_row(cursor.lastrowid, target, revision, at, e) for at, e in drifts],
            )

    def record_event_once(
        self, *, target: str, at: float, event: str, detail: dict[str, Any]
    ) -> None:
        """Store one other event (a history rewrite), unless another run stored it already."""
        encoded = json.dumps(detail)
        with _translated(self._path), self._lock, self._db:
            seen = self._db.execute(
                "SELECT 1 FROM events WHERE target = ? AND event = ? AND detail = ?",
                (target, event, encoded),
            ).fetchone()
            if seen is None:
                self._db.execute(
                    "INSERT INTO events (target, time, event, detail) VALUES (?, ?, ?, ?)",
                    (target, at, event, encoded),
                )

    def record_event(self, *, target: str, at: float, event: str, detail: dict[str, Any]) -> None:
        """Store one other event (a health change): the caller decides it is news."""
        with _translated(self._path), self._lock, self._db:
            self._db.execute(
                "INSERT INTO events (target, time, event, detail) VALUES (?, ?, ?, ?)",
                (target, at, event, json.dumps(detail)),
            )

    def prune(self, before: float) -> int:
        """Delete passes, drifts and events older than `before`, PRUNE_BATCH rows per
        transaction; the number of rows deleted."""
        deleted = 0
        for table, column in _TIME_COLUMNS:
            while True:
                with _translated(self._path), self._lock, self._db:
                    count = self._db.execute(
                        f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} "
                        f"WHERE {column} < ? LIMIT ?)",
                        (before, PRUNE_BATCH),
                    ).rowcount
                deleted += count
                if count < PRUNE_BATCH:
                    break
        return deleted

    def events(
        self, target: str | None = None, since: float | None = None, *, last: int | None = None
    ) -> list[dict[str, Any]]:
        """Other events, oldest first (only the `last` newest if given); `detail` decoded."""
        rows = self._select("events", "time", target, since, last)
        for row in rows:
            row["detail"] = json.loads(row["detail"])
        return rows

    def passes(
        self, target: str | None = None, since: float | None = None, *, last: int | None = None
    ) -> list[dict[str, Any]]:
        """Passes, oldest first, optionally for one target, after a time, the `last` newest."""
        return self._select("passes", "started_at", target, since, last)

    def drifts(
        self, target: str | None = None, since: float | None = None, *, last: int | None = None
    ) -> list[dict[str, Any]]:
        """Drift records, oldest first (the `last` newest if given); `fields` and `managers`
        decoded."""
        rows = self._select("drifts", "time", target, since, last)
        for row in rows:
            row["fields"] = json.loads(row["fields"])
            row["managers"] = json.loads(row["managers"])
        return rows

    def _select(
        self,
        table: str,
        time_column: str,
        target: str | None,
        since: float | None,
        last: int | None = None,
    ) -> list[dict[str, Any]]:
        clauses: list[str] = []
        params: list[object] = []
        if target is not None:
            clauses.append("target = ?")
            params.append(target)
        if since is not None:
            clauses.append(f"{time_column} >= ?")
            params.append(since)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        query = f"SELECT * FROM {table}{where} ORDER BY {time_column}, id"
        if last is not None:  # the newest rows through the time index, then oldest first
            query = (
                f"SELECT * FROM (SELECT * FROM {table}{where} ORDER BY {time_column} DESC, "
                f"id DESC LIMIT ?) ORDER BY {time_column}, id"
            )
            params.append(last)
        with _translated(self._path), self._lock:
            cursor = self._db.execute(query, params)
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _drift_row(
    pass_id: int | None, target: str, revision: str | None, at: float, entry: ChangeSetEntry
) -> tuple[Any, ...]:
    drift = entry.drift
    fields = [
        {"path": c.path, "desired": c.desired, "live": c.live}
        for c in (drift.changes if drift else ())
    ]
    managers = [
        {"manager": o.manager, "operation": o.operation, "time": o.time}
        for o in (drift.owners if drift else ())
    ]
    key = entry.key
    return (
        pass_id,
        target,
        revision,
        at,
        key.group,
        key.kind,
        key.namespace,
        key.name,
        entry.action.value,
        json.dumps(fields, default=str),
        json.dumps(managers),
        entry.error or None,
    )
