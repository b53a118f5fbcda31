"""The store's two databases behind one small interface: SQLite (the default, one
process, one file) and Postgres (``SRE_AGENT_DATABASE_URL=postgresql://...``: several
replicas on one database).

The store writes its SQL once, in the subset both engines read alike (``?``
placeholders, ``:name`` parameters, ``ON CONFLICT``, ``RETURNING``, row values), and
each connection here runs it: a SQLite connection as it is, a Postgres one (psycopg 3,
from a connection pool) after :func:`pg_sql` rewrites the placeholders. A few
statements differ by engine (full-text search, case-insensitive ``LIKE``, ``FOR UPDATE
SKIP LOCKED``); they ask the connection's :attr:`dialect`.

Writes on Postgres are serialized across replicas by a transaction-level advisory lock
(:data:`WRITE_LOCK`), as SQLite serializes them within its file: every read-then-write
the store does (an alert joining its incident, a group's Slack thread, re-queueing for
the model) stays as correct with two replicas as with one, and the change numbers the
live feed pages on are committed in the order they were given. The lease claims, which
the replicas race for, take no such lock: they use ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import functools
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import psycopg
import psycopg_pool
from psycopg.rows import RowMaker

#: What a failing database raises, whichever it is.
DB_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, psycopg.Error, psycopg_pool.PoolTimeout)
#: Connections per replica's pool (and the store's threads that use them).
POOL_SIZE = 8
#: The advisory lock every Postgres write transaction takes (any constant: ours).
WRITE_LOCK = 0x5AE_A6E7
#: The advisory lock the migrations run under: two replicas starting at once migrate once.
MIGRATE_LOCK = 0x5AE_A6E8
#: The advisory lock chat's checkpointer sets its tables up under (sre_agent.chat).
CHAT_SETUP_LOCK = 0x5AE_A6E9
#: The channel new work is announced on (Postgres LISTEN/NOTIFY).
CHANNEL = "sre_agent_work"


class Connection(Protocol):
    """What the store's SQL runs on: sqlite3's own interface, which :class:`PgConnection`
    offers too."""

    dialect: str

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ..., /) -> Any: ...
    def executemany(self, sql: str, params: Iterable[Any], /) -> Any: ...


class SqliteConnection(sqlite3.Connection):
    dialect = "sqlite"


def connect_sqlite(path: Path) -> SqliteConnection:
    db = sqlite3.connect(
        path, check_same_thread=False, isolation_level=None, factory=SqliteConnection
    )
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA busy_timeout=5000")
    return db


# --- Postgres -----------------------------------------------------------------------------
class Row(tuple[Any, ...]):
    """A row read by index or by column name, as ``sqlite3.Row`` is."""

    _names: dict[str, int]

    def __new__(cls, names: dict[str, int], values: Sequence[Any]) -> Row:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _rows(cursor: Any) -> RowMaker[Row]:
    names = {column.name: n for n, column in enumerate(cursor.description or ())}
    return lambda values: Row(names, values)


_TOKEN = re.compile(r"'(?:[^']|'')*'|\?|(?<!:):([A-Za-z_]\w*)|%")


@functools.lru_cache(maxsize=512)
def pg_sql(sql: str) -> str:
    """The store's SQL as psycopg takes it: ``?`` -> ``%s``, ``:name`` -> ``%(name)s``,
    a literal ``%`` doubled; string literals kept as they are (but their ``%``)."""

    def swap(match: re.Match[str]) -> str:
        token = match.group(0)
        if token.startswith("'"):
            return token.replace("%", "%%")
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        return f"%({match.group(1)})s"

    return _TOKEN.sub(swap, sql)


class PgConnection:
    """A pooled psycopg connection with sqlite3's ``execute`` interface."""

    dialect = "postgres"

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = (), /) -> Any:
        cur = self.conn.cursor()
        if params or isinstance(params, dict):
            cur.execute(pg_sql(sql), _no_nul(params))  # type: ignore[call-overload]
        else:
            cur.execute(sql)  # type: ignore[call-overload]  # no parameters: no placeholders
        return cur

    def executemany(self, sql: str, params: Iterable[Any], /) -> Any:
        rows = list(params)
        cur = self.conn.cursor()
        if rows:
            cur.executemany(pg_sql(sql), [_no_nul(row) for row in rows])
        return cur

    def script(self, sql: str) -> None:
        """Several statements at once (a migration), no parameters."""
        self.conn.execute(sql)  # type: ignore[arg-type]


def _no_nul(params: Any) -> Any:
    """Postgres' text holds no NUL character (SQLite's does): one in an alert's label
    must not make its delivery fail forever. It becomes U+FFFD, as a lone surrogate
    becomes '?' (:func:`sre_agent.rows.text`)."""
    if isinstance(params, dict):
        return {k: _nul(v) for k, v in params.items()}
    return [_nul(v) for v in params]


def _nul(value: Any) -> Any:
    return value.replace("\x00", "\ufffd") if isinstance(value, str) and "\x00" in value else value


#: Each connection's bounds: no wait for a lock (the replicas' write lock included) or a
#: statement past them, no transaction left open by a stalled replica holding the write
#: lock for long, and TCP keepalives so a peer that vanished is noticed in seconds.
_CONNECTION: dict[str, Any] = {
    "row_factory": _rows,
    "autocommit": True,
    "connect_timeout": 3,
    "options": "-c lock_timeout=15s -c statement_timeout=120s"
    " -c idle_in_transaction_session_timeout=60s",
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}
#: Set in the webhook's intake threads: their connections come from a pool of their own.
_local = threading.local()


def mark_intake_thread() -> None:
    """A ThreadPoolExecutor initializer: this thread stores deliveries."""
    _local.intake = True


class Postgres:
    """A connection pool: reads in autocommit, writes in a transaction under
    :data:`WRITE_LOCK` (see the module's docstring)."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 8, timeout: float = 5):
        self.url = url
        self._pool = self._make(min_size, max_size, timeout, "sre-agent")
        #: The webhook's: deliveries never wait for a connection behind background work.
        self._intake = self._make(1, 2, timeout, "sre-agent-intake")

    def _make(
        self, min_size: int, max_size: int, timeout: float, name: str
    ) -> psycopg_pool.ConnectionPool[Any]:
        return psycopg_pool.ConnectionPool(
            self.url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,  # a pool that cannot give a connection: an error, not a hang
            kwargs=_CONNECTION,
            open=False,
            name=name,
            check=psycopg_pool.ConnectionPool.check_connection,
        )

    def open(self) -> None:
        # One connection first: a refused or failed login says why at once, where the
        # pool would only time out.
        psycopg.connect(self.url, connect_timeout=5).close()
        self._pool.open(wait=True, timeout=15)
        self._intake.open(wait=False)

    def close(self) -> None:
        self._intake.close()
        self._pool.close()

    def _which(self) -> psycopg_pool.ConnectionPool[Any]:
        return self._intake if getattr(_local, "intake", False) else self._pool

    @contextmanager
    def read(self) -> Iterator[PgConnection]:
        with self._which().connection() as conn:
            yield PgConnection(conn)

    @contextmanager
    def tx(self, *, lock: int | None = WRITE_LOCK) -> Iterator[PgConnection]:
        with self._which().connection() as conn, conn.transaction():
            if lock is not None:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
            yield PgConnection(conn)


def announce(db: Connection, source: str) -> None:
    """Tell the other replicas there is new work (Postgres: NOTIFY, delivered when the
    transaction commits, ``source`` naming the store that sent it; SQLite: one process,
    which wakes itself)."""
    if db.dialect == "postgres":
        db.execute("SELECT pg_notify(?, ?)", (CHANNEL, source))
