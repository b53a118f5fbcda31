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
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from sre_agent.alerts import Alert, mask_label
from sre_agent.db import (
    POOL_SIZE,
    WRITE_LOCK,
    Connection,
    Postgres,
    announce,
    connect_sqlite,
    mark_intake_thread,
)
from sre_agent.db_url import is_postgres, shown_url
from sre_agent.memory import subject_key
from sre_agent.migrations import migrate, not_run
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

__all__ = [
    "ACTIVE",
    "FINAL",
    "WILL_RETRY",
    "AtCapacity",
    "LeaseLost",
    "Store",
    "no_retry",
    "now_iso",
]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Store(IncidentReads, IncidentWrites, SideTables, MemoryTables):
    """A thin, thread-safe layer over one SQLite file or one Postgres database
    (:mod:`sre_agent.db`): ``Store(path)`` or ``Store("postgresql://...")``."""

    def __init__(self, location: Path | str) -> None:
        where = str(location)
        #: The Postgres URL; None for SQLite.
        self.url = where if is_postgres(where) else None
        self.path = Path(where.removeprefix("sqlite:///")) if self.url is None else Path()
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self._reader: sqlite3.Connection | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._intake: ThreadPoolExecutor | None = None
        self._pg: Postgres | None = None
        #: This store's name in its announcements: a replica does not wake itself.
        self.instance = uuid.uuid4().hex

    @property
    def shared(self) -> bool:
        """Whether other replicas may use this database too (Postgres): work is then
        claimed under leases, and nothing in the queue lives only in this process."""
        return self.url is not None

    @property
    def database_url(self) -> str:
        """What SRE_AGENT_DATABASE_URL names this database as."""
        return self.url or f"sqlite:///{self.path}"

    @property
    def where(self) -> str:
        """The database, for messages (a URL without its password)."""
        return shown_url(self.url) if self.url else str(self.path)

    async def call(self, fn: Callable[..., T], /, *args: Any) -> T:
        """Run blocking work that writes here (intake: decode, redact, store) on the
        store's own thread: the event loop never waits on it, and writers queue there
        rather than as many threads fighting the event loop for the GIL."""
        if self._writer is None:
            # Postgres: the pool's width, so a call waiting on a database that does not
            # answer holds only itself; SQLite: one, its writes are serialized anyway.
            width = POOL_SIZE if self.url else 1
            self._writer = ThreadPoolExecutor(width, thread_name_prefix="sre-agent-store")
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    async def call_intake(self, fn: Callable[..., T], /, *args: Any) -> T:
        """:meth:`call` for a webhook delivery. On Postgres it has a thread of its own:
        background work waiting on an unreachable database never delays the 503 that
        makes Alertmanager send the alerts again."""
        if self.url is None:
            return await self.call(fn, *args)
        if self._intake is None:
            self._intake = ThreadPoolExecutor(
                2, thread_name_prefix="sre-agent-intake", initializer=mark_intake_thread
            )
        return await asyncio.get_running_loop().run_in_executor(self._intake, fn, *args)

    def open(self) -> None:
        if self.url is not None:
            # the writer threads, and the readers in asyncio's default executor
            self._pg = Postgres(self.url, max_size=POOL_SIZE + 4)
            try:
                self._pg.open()
                self._migrate()
            except BaseException:
                self._pg.close()
                self._pg = None
                raise
            return
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        db = connect_sqlite(self.path)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # no fsync per commit; see the docstring
        self._db = db
        self._migrate()
        self._reader = connect_sqlite(self.path)

    def close(self) -> None:
        for pool in (self._writer, self._intake):
            if pool is not None:
                pool.shutdown(wait=True)
        self._writer = self._intake = None
        if self._pg is not None:
            self._pg.close()
            self._pg = None
        with self._read_lock:  # never under a query another thread is running: that crashes
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    @property
    def is_open(self) -> bool:
        return self._db is not None or self._pg is not None

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """The read connection: never waits for the write lock."""
        if self._pg is not None:
            with self._pg.read() as conn:
                yield conn
            return
        with self._read_lock:
            if self._reader is None:
                raise RuntimeError("store is not open")
            yield cast(Connection, self._reader)

    @contextmanager
    def _tx(self, *, serial: bool = True) -> Iterator[Connection]:
        """A write transaction. On Postgres ``serial`` takes the replicas' write lock
        (:data:`sre_agent.db.WRITE_LOCK`); lease claims, which race with SKIP LOCKED
        instead, do without it. SQLite serializes every write anyway."""
        if self._pg is not None:
            with self._pg.tx(lock=WRITE_LOCK if serial else None) as conn:
                yield conn
            return
        if self._db is None:
            raise RuntimeError("store is not open")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield cast(Connection, self._db)
            except BaseException:
                if self._db.in_transaction:  # SQLITE_FULL and the like roll back by themselves
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self) -> list[int]:
        with self._tx(serial=False) as db:  # migrate() takes its own lock on Postgres
            return migrate(db, now_iso())

    def migrations_pending(self) -> list[int]:
        with self._read() as db:
            return not_run(db)

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
        alerts = dict(zip(keys, firing, strict=False))
        with self._tx() as db:
            # The unique key decides, not a read before the write: two replicas given the
            # same firing at the same instant store it once. A few statements a delivery,
            # whatever its size.
            made = _insert(db, [(k, rows[k]) for k in alerts if k in rows], now)
            found = _existing(db, [k for k in alerts if k not in made])
            for key in [k for k in alerts if k not in made and k not in found]:
                # known a moment ago, gone since (pruned): stored again
                made |= _insert(db, [(key, intake_row(alerts[key], group_key))], now)
            seen: set[str] = set()
            again: dict[str, int] = {}  # id -> deliveries to add
            for key in keys:
                if key in made and key not in seen:
                    opened.append((made[key], "queued", True))
                else:
                    ident, status = (made[key], "queued") if key in made else found[key]
                    opened.append((ident, status, False))
                    again[ident] = again.get(ident, 0) + 1
                seen.add(key)
            by_count: dict[int, list[str]] = {}
            for ident, count in again.items():
                by_count.setdefault(count, []).append(ident)
            for count, idents in by_count.items():
                for n in range(0, len(idents), 500):
                    chunk = idents[n : n + 500]
                    db.execute(
                        "UPDATE investigations SET deliveries = deliveries + ? WHERE id IN"
                        f" ({','.join('?' * len(chunk))})",
                        (count, *chunk),
                    )
            if made:
                announce(db, self.instance)
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
    def claim(
        self,
        ident: str,
        owner: str = "",
        seconds: float = 0.0,
        total: int | None = None,
    ) -> Investigation | None:
        """queued -> running, atomically, under a lease of ``seconds`` for ``owner``
        when one is given; None when it is not queued any more, another replica holds
        it, or ``total`` runs hold live leases already (SRE_AGENT_MAX_CONCURRENT_TOTAL)."""
        now = time.time()
        with self._tx() as db:
            if db.dialect == "postgres":  # the row before its lease, as lease_evidence does:
                # one order of locks, so the two never deadlock
                db.execute("SELECT id FROM investigations WHERE id=? FOR UPDATE", (ident,))
            if total is not None and owner:
                running = db.execute(
                    "SELECT count(*) FROM investigations i JOIN leases l"
                    " ON l.investigation_id = i.id WHERE i.status='running' AND l.expires_at >= ?",
                    (now,),
                ).fetchone()[0]
                if running >= total:
                    raise AtCapacity(f"{running} runs of {total} at most across replicas")
            if owner and not _take(db, ident, "model", owner, now, seconds):
                return None
            cur = db.execute(
                "UPDATE investigations SET status='running', started_at=?, attempts=attempts+1"
                " WHERE id=? AND status='queued'",
                (now_iso(), ident),
            )
            if cur.rowcount != 1:
                if owner:
                    db.execute(
                        "DELETE FROM leases WHERE investigation_id=? AND owner=?", (ident, owner)
                    )
                return None
        return self.get(ident)

    def finish(self, investigation: Investigation, owner: str = "") -> None:
        """Store a finished run: its status, reason, evidence, tool calls, usage, analysis,
        sources and timing. A run that asks to be investigated again (``llm_retry``, its
        reason ending in :data:`WILL_RETRY`) of an alert that resolved meanwhile is not:
        its reason says so. With ``owner``: only while that owner holds the run's lease
        (else :class:`LeaseLost`: another replica took the run up, and its result counts)."""
        inv = investigation
        llm_retry, reason = inv.llm_retry, inv.status_reason
        with self._tx() as db:
            if owner:
                _fence(db, inv.id, owner)
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

    # --- leases: which replica does what, until when ------------------------------
    def lease_evidence(self, owner: str, seconds: float, ident: str | None = None) -> str | None:
        """Take the evidence stage of ``ident`` -- or, without one, of the oldest queued
        alert whose report is not in -- under a lease of ``seconds`` for ``owner``,
        unless another holds a live one; the id taken, or None."""
        now = time.time()
        with self._tx(serial=False) as db:
            # A named one (this replica's own delivery, or resumed at start) whatever its
            # report: gather_stage joins one whose report is in; else the oldest without.
            where = "i.status='queued' AND (l.expires_at IS NULL OR l.expires_at < ?)"
            params: list[Any] = [now]
            if ident is not None:
                where += " AND i.id=?"
                params.append(ident)
            else:
                where += " AND i.evidence_at IS NULL"
            # Replicas racing for the queue's head each take a different row.
            skip = " FOR UPDATE OF i SKIP LOCKED" if db.dialect == "postgres" else ""
            row = db.execute(
                "SELECT i.id FROM investigations i"
                " LEFT JOIN leases l ON l.investigation_id = i.id"
                f" WHERE {where} ORDER BY i.created_at, i.rowid LIMIT 1{skip}",
                params,
            ).fetchone()
            if row is None or not _take(db, row["id"], "evidence", owner, now, seconds):
                return None
            return str(row["id"])

    def renew_leases(self, owner: str, idents: Sequence[str], seconds: float) -> set[str]:
        """Extend ``owner``'s leases on these; the ids it still holds."""
        if not idents:
            return set()
        held: set[str] = set()
        with self._tx(serial=False) as db:
            for n in range(0, len(idents), 500):
                chunk = list(idents[n : n + 500])
                marks = ",".join("?" * len(chunk))
                held.update(
                    row[0]
                    for row in db.execute(
                        f"UPDATE leases SET expires_at=? WHERE owner=? AND investigation_id IN"
                        f" ({marks}) RETURNING investigation_id",
                        (time.time() + seconds, owner, *chunk),
                    )
                )
        return held

    def release(self, ident: str, owner: str) -> None:
        """``owner`` is done with this one (its report is stored, or its run)."""
        with self._tx(serial=False) as db:
            db.execute("DELETE FROM leases WHERE investigation_id=? AND owner=?", (ident, owner))
            announce(db, self.instance)  # a slot or the model's queue changed

    def requeue_expired(self) -> list[str]:
        """Runs whose lease expired (their replica died or hung): queued again, for
        whichever replica claims them next."""
        with self._tx() as db:
            rows = db.execute(
                "UPDATE investigations SET status='queued' WHERE status='running'"
                " AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.investigation_id ="
                " investigations.id AND l.expires_at >= ?) RETURNING id",
                (time.time(),),
            ).fetchall()
            if rows:
                announce(db, self.instance)
        return [row[0] for row in rows]

    def fail_running(self, ident: str, reason: str, owner: str = "") -> None:
        """An investigation whose run broke in our own code: failed, with the reason
        (with ``owner``: only while it holds the run's lease, see :meth:`finish`)."""
        with self._tx() as db:
            if owner:
                _fence(db, ident, owner)
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

    def requeue_unfinished(self, replica: str = "") -> list[str]:
        """At start: what was queued or running when the process died goes back in the
        queue. With SQLite (one process) all of it; on a shared database only what this
        replica's earlier processes held (``replica``) or whose lease expired -- another
        replica's live work is its own, and queued work nobody holds is swept up anyway."""
        now = time.time()
        with self._tx() as db:
            if not self.shared:
                db.execute("DELETE FROM leases")
                db.execute("UPDATE investigations SET status='queued' WHERE status='running'")
                rows = db.execute(
                    "SELECT id FROM investigations WHERE status='queued' ORDER BY created_at"
                ).fetchall()
                return [row["id"] for row in rows]
            mine = db.execute(
                "DELETE FROM leases WHERE owner LIKE ? ESCAPE '\\' RETURNING investigation_id",
                (_literal(replica) + "/%",),
            ).fetchall()
            requeued = db.execute(
                "UPDATE investigations SET status='queued' WHERE status='running'"
                " AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.investigation_id ="
                " investigations.id AND l.expires_at >= ?) RETURNING id",
                (now,),
            ).fetchall()
            taken = {row[0] for row in (*mine, *requeued)}
            if not taken:
                return []
            ids = sorted(taken)
            marks = ",".join("?" * len(ids))
            rows = db.execute(
                f"SELECT id FROM investigations WHERE status='queued' AND id IN ({marks})"
                " ORDER BY created_at",
                ids,
            ).fetchall()
        return [row["id"] for row in rows]

    # --- reads --------------------------------------------------------------
    def get(self, ident: str) -> Investigation | None:
        with self._read() as db:
            return self._get(db, ident)

    @staticmethod
    def _get(db: Connection, ident: str) -> Investigation | None:
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
        if not self.is_open:
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
            like = "%" + _literal(text) + "%"
            op = "ILIKE" if self.url else "LIKE"  # SQLite's LIKE ignores ASCII case already
            where.append("(" + " OR ".join(f"{c} {op} ? ESCAPE '\\'" for c in TEXT_COLUMNS) + ")")
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


def _literal(text: str) -> str:
    """``text`` as a LIKE pattern matching itself (``ESCAPE '\\'``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def no_retry(reason: str | None, why: str) -> str:
    """``reason`` without the promise of another run, saying why there is none."""
    kept = (reason or "").replace(WILL_RETRY, "")
    return f"{kept}; not investigated again: {why}" if kept else f"not investigated again: {why}"


def _resolve(db: Connection, alert: Alert, now: str) -> str | None:
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


_INSERT = (
    "INSERT INTO investigations (id, dedup_key, fingerprint, alertname, severity, namespace,"
    " group_key, alert, status, created_at) VALUES {} ON CONFLICT (dedup_key) DO NOTHING"
    " RETURNING id, dedup_key"
)
_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?)"


def _insert(db: Connection, rows: Sequence[tuple[str, dict[str, Any]]], now: str) -> dict[str, str]:
    """Insert these new rows (dedup key, intake row), 100 a statement; dedup key -> id of
    those stored now (not those another delivery stored first)."""
    made: dict[str, str] = {}
    for n in range(0, len(rows), 100):
        chunk = rows[n : n + 100]
        params: list[Any] = []
        for key, row in chunk:
            params += [
                uuid.uuid4().hex[:16],
                key,
                row["fingerprint"],
                row["alertname"],
                row["severity"],
                row["namespace"],
                row["group_key"],
                row["alert"],
                now,
            ]
        for r in db.execute(_INSERT.format(", ".join([_ROW] * len(chunk))), params):
            made[r[1]] = r[0]
    return made


def _existing(db: Connection, keys: Sequence[str]) -> dict[str, tuple[str, str]]:
    """dedup key -> (id, status) of those stored."""
    found: dict[str, tuple[str, str]] = {}
    for n in range(0, len(keys), 500):
        chunk = keys[n : n + 500]
        for r in db.execute(
            "SELECT id, status, dedup_key FROM investigations WHERE dedup_key IN"
            f" ({','.join('?' * len(chunk))})",
            chunk,
        ):
            found[r[2]] = (r[0], r[1])
    return found


class LeaseLost(RuntimeError):
    """This replica's lease on a run expired and another replica took it up."""


class AtCapacity(RuntimeError):
    """SRE_AGENT_MAX_CONCURRENT_TOTAL runs hold live leases already."""


def _fence(db: Connection, ident: str, owner: str) -> None:
    held = db.execute(
        "SELECT 1 FROM leases WHERE investigation_id=? AND owner=?", (ident, owner)
    ).fetchone()
    if held is None:
        raise LeaseLost(f"investigation {ident}: its lease is no longer {owner}'s")


def _take(db: Connection, ident: str, stage: str, owner: str, now: float, seconds: float) -> bool:
    """Lease ``ident`` to ``owner`` unless another holds a live lease on it. The
    conflict's own check decides (it sees the latest commit), so two replicas that
    both read the old lease as expired cannot both take it."""
    row = db.execute(
        "INSERT INTO leases (investigation_id, stage, owner, expires_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (investigation_id) DO UPDATE SET stage=excluded.stage,"
        " owner=excluded.owner, expires_at=excluded.expires_at"
        " WHERE leases.expires_at < ? OR leases.owner = excluded.owner"
        " RETURNING investigation_id",
        (ident, stage, owner, now + seconds, now),
    ).fetchone()
    return row is not None


def _found(record: Investigation | None) -> Investigation:
    if record is None:  # written in the same transaction: cannot happen
        raise RuntimeError("investigation vanished while it was being stored")
    return record
