"""SQLite storage of investigations, with ordered, numbered migrations.

One row per investigation, keyed for idempotency by a hash of the alert's
fingerprint and startsAt: the same firing delivered again (repeat_interval,
group changes, an HA pair of Alertmanagers) finds the row it already has.
Rows are read and written as :class:`~sre_agent.models.Investigation` s
(:mod:`sre_agent.rows`). Only the alert is redacted here, at intake, where it
enters; the rest was redacted where it entered (tool outputs, the model's text).

Calls block (SQLite, and the redactor on large bodies): async code runs them
in a thread, writes on the store's own (:meth:`Store.call`), reads with
``asyncio.to_thread``. Two connections, each behind its own lock: writes on one,
reads on the other, so a read (``/readyz``, the API, chat) never queues behind a
large group's transaction (WAL lets a reader see the last commit while a writer
works). WAL with ``synchronous=NORMAL``: a commit is in the WAL file when it
returns, so a killed process loses nothing acknowledged (a power cut may lose
the last commits; we promise survival of the process, not of the machine).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sre_agent.alerts import Alert, mask_label
from sre_agent.memory import subject_key
from sre_agent.migrations import migrate
from sre_agent.models import ACTIVE, FINAL, Investigation
from sre_agent.rows import decode, dump, intake_row, text
from sre_agent.store_incidents import IncidentReads
from sre_agent.store_joins import WILL_RETRY, IncidentWrites, resolve_incidents
from sre_agent.store_memory import MemoryTables, attach_feedback, refresh_similar
from sre_agent.store_side import SideTables

T = TypeVar("T")

#: What ``list(text=...)`` searches: the identifying columns and the JSON of the alert,
#: the analysis and the failure reason.
TEXT_COLUMNS = ("alertname", "namespace", "alert", "analysis", "status_reason")

__all__ = ["ACTIVE", "FINAL", "WILL_RETRY", "Store", "no_retry", "now_iso"]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Store(IncidentReads, IncidentWrites, SideTables, MemoryTables):
    """A thin, thread-safe layer over one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self._reader: sqlite3.Connection | None = None
        self._writer: ThreadPoolExecutor | None = None

    async def call(self, fn: Callable[..., T], /, *args: Any) -> T:
        """Run blocking work that writes here (intake: decode, redact, store) on the
        store's own thread: the event loop never waits on it, and writers queue there
        rather than as many threads fighting the event loop for the GIL."""
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="sre-agent-store")
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    def open(self) -> None:
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # no fsync per commit; see the docstring
        db.execute("PRAGMA busy_timeout=5000")
        self._db = db
        self._migrate()
        reader = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        reader.row_factory = sqlite3.Row
        reader.execute("PRAGMA busy_timeout=5000")
        self._reader = reader

    def close(self) -> None:
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        with self._read_lock:  # never under a query another thread is running: that crashes
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """The read connection: never waits for the write lock."""
        with self._read_lock:
            if self._reader is None:
                raise RuntimeError("store is not open")
            yield self._reader

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        if self._db is None:
            raise RuntimeError("store is not open")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:  # SQLITE_FULL and the like roll back by themselves
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        with self._tx() as db:
            migrate(db, now_iso())

    def ping(self) -> None:
        """A read: readiness must not queue behind writers for the write lock."""
        with self._read() as db:
            db.execute("SELECT count(*) FROM migrations").fetchone()

    # --- intake -------------------------------------------------------------
    def create_group(
        self, firing: Sequence[Alert], resolved: Sequence[Alert] = (), group_key: str = ""
    ) -> tuple[list[tuple[str, str, bool]], list[Investigation | None]]:
        """One delivery of an alert group, in one transaction: for each firing alert the
        ``(id, status, created)`` of its investigation, new (queued) or the one we already
        have; for each resolved alert its investigation, marked resolved (None when we
        have none).

        All or nothing: a delivery that fails part-way stores none of it, so the
        retry Alertmanager sends finds nothing half done. Only alerts not stored yet
        are redacted (the costly part), before the lock is taken: a retried or
        HA-duplicated group costs a few index lookups.
        """
        keys = [alert.dedup_key() for alert in firing]
        known = self._known(keys)
        rows = {
            key: intake_row(alert, group_key)
            for key, alert in zip(keys, firing, strict=True)
            if key not in known
        }
        now = now_iso()
        opened: list[tuple[str, str, bool]] = []
        closed: list[str | None] = []
        with self._tx() as db:
            for key, alert in zip(keys, firing, strict=True):
                found = db.execute(
                    "SELECT id, status FROM investigations WHERE dedup_key=?", (key,)
                ).fetchone()
                if found is not None:
                    db.execute(
                        "UPDATE investigations SET deliveries = deliveries + 1 WHERE id=?",
                        (found["id"],),
                    )
                    opened.append((found["id"], found["status"], False))
                    continue
                row = rows.get(key) or intake_row(alert, group_key)  # gone since: rare
                ident = uuid.uuid4().hex[:16]
                db.execute(
                    "INSERT INTO investigations (id, dedup_key, fingerprint, alertname, severity,"
                    " namespace, group_key, alert, status, created_at)"
                    " VALUES (:id, :dedup_key, :fingerprint, :alertname, :severity, :namespace,"
                    " :group_key, :alert, 'queued', :created_at)",
                    {**row, "id": ident, "created_at": now},
                )
                opened.append((ident, "queued", True))
            for alert in resolved:
                closed.append(_resolve(db, alert, now))
            resolve_incidents(db, [ident for ident in closed if ident], now)
            records = {ident: self._get(db, ident) for ident in closed if ident}
        return opened, [records[ident] if ident else None for ident in closed]

    def _known(self, keys: Sequence[str]) -> set[str]:
        """Which of these dedup keys are stored already (a read: no write lock)."""
        found: set[str] = set()
        with self._read() as db:
            for n in range(0, len(keys), 500):  # SQLite's bound on host parameters
                chunk = keys[n : n + 500]
                marks = ",".join("?" * len(chunk))
                found.update(
                    row[0]
                    for row in db.execute(
                        f"SELECT dedup_key FROM investigations WHERE dedup_key IN ({marks})",
                        chunk,
                    )
                )
        return found

    def create_or_get(self, alert: Alert, group_key: str = "") -> tuple[Investigation, bool]:
        """The investigation of this firing: a new queued one, or the one we already have."""
        [(ident, _, created)], _ = self.create_group([alert], group_key=group_key)
        return _found(self.get(ident)), created

    def mark_resolved(self, alert: Alert) -> Investigation | None:
        """Record that this firing resolved; a still-queued investigation is not started."""
        _, [record] = self.create_group([], [alert])
        return record

    # --- worker -------------------------------------------------------------
    def claim(self, ident: str) -> Investigation | None:
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

    def finish(self, investigation: Investigation) -> None:
        """Store a finished run: its status, reason, evidence, tool calls, usage, analysis,
        sources and timing. A run that asks to be investigated again (``llm_retry``, its
        reason ending in :data:`WILL_RETRY`) of an alert that resolved meanwhile is not:
        its reason says so."""
        inv = investigation
        llm_retry, reason = inv.llm_retry, inv.status_reason
        with self._tx() as db:
            if llm_retry:
                row = db.execute(
                    "SELECT alert_status FROM investigations WHERE id=?", (inv.id,)
                ).fetchone()
                if row is not None and row["alert_status"] != "firing":
                    llm_retry, reason = False, no_retry(reason, "the alert resolved")
            db.execute(
                "UPDATE investigations SET status=?, status_reason=?, evidence=?, tool_calls=?,"
                " llm_usage=?, analysis=?, raw_text=?, finished_at=?, duration_s=?,"
                " llm_retry=?, sources=?, objects=?, subject=? WHERE id=?",
                (
                    inv.status,
                    text(reason) if reason else None,
                    dump("evidence", inv.evidence),
                    dump("tool_calls", inv.tool_calls),
                    dump("llm_usage", inv.llm_usage),
                    dump("analysis", inv.analysis) if inv.analysis is not None else None,
                    text(inv.raw_text) if inv.raw_text else None,
                    now_iso(),
                    round(inv.duration_s or 0.0, 3),
                    int(llm_retry),
                    dump("sources", inv.sources) if inv.sources is not None else None,
                    dump("objects", inv.objects),
                    subject_key(inv.alert.labels),
                    inv.id,
                ),
            )

    def fail_running(self, ident: str, reason: str) -> None:
        """An investigation whose run broke in our own code: failed, with the reason."""
        with self._tx() as db:
            db.execute(
                "UPDATE investigations SET status='failed', status_reason=?, finished_at=?"
                " WHERE id=? AND status='running'",
                (text(reason), now_iso(), ident),
            )

    _AWAITING_LLM = "llm_retry=1 AND alert_status='firing' AND attempts < ?"

    def awaiting_llm(self, max_attempts: int) -> int:
        """How many investigations wait for the model server to come back."""
        with self._read() as db:
            row = db.execute(
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
    def get(self, ident: str) -> Investigation | None:
        with self._read() as db:
            return self._get(db, ident)

    @staticmethod
    def _get(db: sqlite3.Connection, ident: str) -> Investigation | None:
        row = db.execute("SELECT * FROM investigations WHERE id=?", (ident,)).fetchone()
        if row is None:
            return None
        record = decode(row)
        attach_feedback(db, [record])
        refresh_similar(db, record)
        return record

    def changed(self, after: int, limit: int = 100) -> tuple[int, list[Investigation]]:
        """Investigations written since change number ``after`` (oldest change first),
        and the change number to ask after next; ``after=-1``: only the current number."""
        with self._read() as db:
            if after < 0:
                row = db.execute("SELECT COALESCE(MAX(change_seq), 0) FROM investigations")
                return int(row.fetchone()[0]), []
            rows = db.execute(
                "SELECT * FROM investigations WHERE change_seq > ? ORDER BY change_seq LIMIT ?",
                (after, limit),
            ).fetchall()
        return (int(rows[-1]["change_seq"]) if rows else after), [decode(r) for r in rows]

    def list(
        self,
        *,
        status: str | None = None,
        alertname: str | None = None,
        namespace: str | None = None,
        severity: str | None = None,
        text: str | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> list[Investigation]:
        """Newest first; ``before`` (an id) pages on: only those listed after it.
        ``text`` matches anywhere in the alert, the analysis or the failure reason
        (case-insensitive, literally). Raises KeyError when ``before`` names none."""
        if self._db is None:
            raise RuntimeError("store is not open")
        where, params = [], []
        for column, value in (
            ("status", status),
            ("alertname", mask_label("alertname", alertname)),  # stored masked: match alike
            ("namespace", mask_label("namespace", namespace)),
            ("severity", mask_label("severity", severity)),
        ):
            if value:
                where.append(f"{column}=?")
                params.append(value)
        if text:
            like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append("(" + " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in TEXT_COLUMNS) + ")")
            params.extend([like] * len(TEXT_COLUMNS))
        if before is not None:  # the same order as ORDER BY: a stable cursor
            where.append(
                "(created_at, rowid) < (SELECT created_at, rowid FROM investigations WHERE id=?)"
            )
            params.append(before)
        sql = "SELECT * FROM investigations"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, rowid DESC LIMIT ?"
        with self._read() as db:
            if (
                before is not None
                and not db.execute("SELECT 1 FROM investigations WHERE id=?", (before,)).fetchone()
            ):
                raise KeyError(before)
            rows = db.execute(sql, (*params, limit)).fetchall()
        return [decode(row) for row in rows]


def no_retry(reason: str | None, why: str) -> str:
    """``reason`` without the promise of another run, saying why there is none."""
    kept = (reason or "").replace(WILL_RETRY, "")
    return f"{kept}; not investigated again: {why}" if kept else f"not investigated again: {why}"


def _resolve(db: sqlite3.Connection, alert: Alert, now: str) -> str | None:
    """Mark this firing resolved; a still-queued investigation is not started, and one
    waiting for the model server to come back is not run again."""
    resolved_at = (alert.ended_at or datetime.now(UTC)).isoformat()
    row = db.execute(
        "SELECT id, status, llm_retry, status_reason FROM investigations WHERE dedup_key=?",
        (alert.dedup_key(),),
    ).fetchone()
    if row is None:
        return None
    db.execute(
        "UPDATE investigations SET alert_status='resolved', resolved_at=? WHERE id=?",
        (resolved_at, row["id"]),
    )
    if row["llm_retry"]:
        db.execute(
            "UPDATE investigations SET llm_retry=0, status_reason=? WHERE id=?",
            (no_retry(row["status_reason"], "the alert resolved"), row["id"]),
        )
    if row["status"] == "queued":
        db.execute(
            "UPDATE investigations SET status='cancelled', status_reason=?, finished_at=?"
            " WHERE id=?",
            ("alert resolved before the investigation started", now, row["id"]),
        )
    return str(row["id"])


def _found(record: Investigation | None) -> Investigation:
    if record is None:  # written in the same transaction: cannot happen
        raise RuntimeError("investigation vanished while it was being stored")
    return record
