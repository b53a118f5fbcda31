"""SQLite storage of investigations, with ordered, numbered migrations.

One row per investigation, keyed for idempotency by the alert's fingerprint
and startsAt: the same firing delivered again (repeat_interval, group
changes, an HA pair of Alertmanagers) finds the row it already has.
Everything written here has been through :func:`redact` first.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sre_agent_tools.redact import redact, redact_obj, redact_value

from sre_agent.alerts import Alert

ACTIVE = ("queued", "running")
FINAL = ("completed", "degraded", "failed", "cancelled")

MIGRATIONS: list[str] = [
    # 1: investigations
    """
    CREATE TABLE investigations (
        id TEXT PRIMARY KEY,
        dedup_key TEXT NOT NULL UNIQUE,
        fingerprint TEXT NOT NULL,
        alertname TEXT NOT NULL,
        severity TEXT NOT NULL,
        namespace TEXT,
        group_key TEXT NOT NULL DEFAULT '',
        alert TEXT NOT NULL,
        status TEXT NOT NULL,
        status_reason TEXT,
        alert_status TEXT NOT NULL DEFAULT 'firing',
        resolved_at TEXT,
        deliveries INTEGER NOT NULL DEFAULT 1,
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        duration_s REAL,
        evidence TEXT NOT NULL DEFAULT '[]',
        tool_calls TEXT NOT NULL DEFAULT '[]',
        llm_usage TEXT NOT NULL DEFAULT '{}',
        analysis TEXT,
        raw_text TEXT,
        report TEXT
    );
    CREATE INDEX investigations_status ON investigations(status);
    CREATE INDEX investigations_created ON investigations(created_at);
    CREATE INDEX investigations_alertname ON investigations(alertname);
    """,
    # 2: the Slack thread of each alert group (sre_agent.notify)
    """
    CREATE TABLE slack_threads (
        group_key TEXT PRIMARY KEY,
        channel TEXT NOT NULL,
        ts TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    """,
    # 3: investigations degraded because the model server failed, to run again when it answers
    """
    ALTER TABLE investigations ADD COLUMN llm_retry INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX investigations_llm_retry ON investigations(llm_retry);
    """,
]

_JSON_COLUMNS = ("alert", "evidence", "tool_calls", "llm_usage", "analysis")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Store:
    """A thin, thread-safe layer over one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def open(self) -> None:
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA busy_timeout=5000")
        self._db = db
        self._migrate()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        if self._db is None:
            raise RuntimeError("store is not open")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        with self._tx() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS migrations (id INTEGER PRIMARY KEY, applied_at TEXT)"
            )
            done = {row[0] for row in db.execute("SELECT id FROM migrations")}
            for number, sql in enumerate(MIGRATIONS, 1):
                if number in done:
                    continue
                for statement in filter(str.strip, sql.split(";")):
                    db.execute(statement)
                db.execute("INSERT INTO migrations VALUES (?, ?)", (number, now_iso()))

    def ping(self) -> None:
        """A read: readiness must not queue behind writers for the write lock."""
        if self._db is None:
            raise RuntimeError("store is not open")
        with self._lock:
            self._db.execute("SELECT count(*) FROM migrations").fetchone()

    # --- intake -------------------------------------------------------------
    def create_or_get(self, alert: Alert, group_key: str = "") -> tuple[dict[str, Any], bool]:
        """The investigation of this firing: a new queued one, or the one we already have."""
        key = alert.dedup_key()
        record = redact_obj(
            {
                "annotations": alert.annotations,
                "startsAt": alert.startsAt.isoformat(),
                "endsAt": alert.ended_at.isoformat() if alert.ended_at else None,
                "generatorURL": alert.generatorURL,
                "fingerprint": alert.fingerprint,
                "expr": alert.expr,
                "status": alert.status,
            }
        )
        # Labels are identifiers the tools query with: mask a value only when its name looks
        # secret, so a label like instance="auth-service:8080" still matches its series.
        record["labels"] = {k: redact_value(k, v) for k, v in alert.labels.items()}
        with self._tx() as db:
            row = db.execute("SELECT id FROM investigations WHERE dedup_key=?", (key,)).fetchone()
            if row is not None:
                db.execute(
                    "UPDATE investigations SET deliveries = deliveries + 1 WHERE id=?", (row["id"],)
                )
                created, ident = False, row["id"]
            else:
                ident = uuid.uuid4().hex[:16]
                db.execute(
                    "INSERT INTO investigations (id, dedup_key, fingerprint, alertname, severity,"
                    " namespace, group_key, alert, status, created_at)"
                    " VALUES (?,?,?,?,?,?,?,?, 'queued', ?)",
                    (
                        ident,
                        key,
                        alert.fingerprint,
                        alert.name,
                        alert.severity,
                        alert.namespace,
                        group_key,
                        json.dumps(record),
                        now_iso(),
                    ),
                )
                created = True
        found = self.get(ident)
        assert found is not None
        return found, created

    def mark_resolved(self, alert: Alert) -> dict[str, Any] | None:
        """Record that this firing resolved; a still-queued investigation is not started."""
        resolved_at = (alert.ended_at or datetime.now(UTC)).isoformat()
        with self._tx() as db:
            row = db.execute(
                "SELECT id, status FROM investigations WHERE dedup_key=?", (alert.dedup_key(),)
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE investigations SET alert_status='resolved', resolved_at=? WHERE id=?",
                (resolved_at, row["id"]),
            )
            if row["status"] == "queued":
                db.execute(
                    "UPDATE investigations SET status='cancelled', status_reason=?, finished_at=?"
                    " WHERE id=?",
                    ("alert resolved before the investigation started", now_iso(), row["id"]),
                )
        return self.get(row["id"])

    # --- worker -------------------------------------------------------------
    def claim(self, ident: str) -> dict[str, Any] | None:
        """queued -> running, atomically; None when it is not queued any more."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE investigations SET status='running', started_at=?, attempts=attempts+1"
                " WHERE id=? AND status='queued'",
                (now_iso(), ident),
            )
            if cur.rowcount != 1:
                return None
        return self.get(ident)

    def finish(
        self,
        ident: str,
        *,
        status: str,
        reason: str | None,
        evidence: list[dict[str, Any]],
        tool_calls: list[dict[str, Any]],
        llm_usage: dict[str, Any],
        analysis: dict[str, Any] | None,
        raw_text: str | None,
        report: str,
        duration_s: float,
        llm_retry: bool = False,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE investigations SET status=?, status_reason=?, evidence=?, tool_calls=?,"
                " llm_usage=?, analysis=?, raw_text=?, report=?, finished_at=?, duration_s=?,"
                " llm_retry=? WHERE id=?",
                (
                    status,
                    redact(reason) if reason else None,
                    json.dumps(redact_obj(evidence)),
                    json.dumps(redact_obj(tool_calls)),
                    json.dumps(llm_usage),
                    json.dumps(redact_obj(analysis)) if analysis is not None else None,
                    redact(raw_text) if raw_text else None,
                    redact(report),
                    now_iso(),
                    round(duration_s, 3),
                    int(llm_retry),
                    ident,
                ),
            )

    def fail_running(self, ident: str, reason: str) -> None:
        """An investigation whose run broke in our own code: failed, with the reason."""
        with self._tx() as db:
            db.execute(
                "UPDATE investigations SET status='failed', status_reason=?, finished_at=?"
                " WHERE id=? AND status='running'",
                (redact(reason), now_iso(), ident),
            )

    _AWAITING_LLM = "llm_retry=1 AND alert_status='firing' AND attempts < ?"

    def awaiting_llm(self, max_attempts: int) -> int:
        """How many investigations wait for the model server to come back."""
        if self._db is None:
            raise RuntimeError("store is not open")
        with self._lock:
            row = self._db.execute(
                f"SELECT count(*) FROM investigations WHERE {self._AWAITING_LLM}", (max_attempts,)
            ).fetchone()
        return int(row[0])

    def requeue_for_llm(self, max_attempts: int) -> list[str]:
        """Investigations degraded by a model-server failure, alert still firing, fewer than
        ``max_attempts`` runs so far: queued again."""
        with self._tx() as db:
            rows = db.execute(
                f"SELECT id FROM investigations WHERE {self._AWAITING_LLM} ORDER BY created_at",
                (max_attempts,),
            ).fetchall()
            db.executemany(
                "UPDATE investigations SET status='queued', llm_retry=0,"
                " status_reason='investigating again: the model server answers again' WHERE id=?",
                [(row["id"],) for row in rows],
            )
        return [row["id"] for row in rows]

    def requeue_unfinished(self) -> list[str]:
        """At start: what was queued or running when the process died goes back in the queue."""
        with self._tx() as db:
            db.execute("UPDATE investigations SET status='queued' WHERE status='running'")
            rows = db.execute(
                "SELECT id FROM investigations WHERE status='queued' ORDER BY created_at"
            ).fetchall()
        return [row["id"] for row in rows]

    # --- reads --------------------------------------------------------------
    def get(self, ident: str) -> dict[str, Any] | None:
        if self._db is None:
            raise RuntimeError("store is not open")
        with self._lock:
            row = self._db.execute("SELECT * FROM investigations WHERE id=?", (ident,)).fetchone()
        return _decode(row) if row else None

    def list(
        self,
        *,
        status: str | None = None,
        alertname: str | None = None,
        namespace: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        if self._db is None:
            raise RuntimeError("store is not open")
        where, params = [], []
        for column, value in (
            ("status", status),
            ("alertname", alertname),
            ("namespace", namespace),
        ):
            if value:
                where.append(f"{column}=?")
                params.append(value)
        sql = "SELECT * FROM investigations"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, rowid DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (*params, limit)).fetchall()
        return [_decode(row) for row in rows]

    # --- Slack threads --------------------------------------------------------
    def slack_thread(self, group_key: str) -> tuple[str, str] | None:
        """(channel, ts) of the first Slack message posted for this alert group."""
        if self._db is None:
            raise RuntimeError("store is not open")
        with self._lock:
            row = self._db.execute(
                "SELECT channel, ts FROM slack_threads WHERE group_key=?", (group_key,)
            ).fetchone()
        return (row["channel"], row["ts"]) if row else None

    def save_slack_thread(self, group_key: str, channel: str, ts: str) -> None:
        """Remember a group's thread; the first one stays."""
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO slack_threads VALUES (?, ?, ?, ?)",
                (group_key, channel, ts, now_iso()),
            )


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    for column in _JSON_COLUMNS:
        if data.get(column) is not None:
            data[column] = json.loads(data[column])
    return data
