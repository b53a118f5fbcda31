"""``sre-agent db``: the database, for operators.

- ``db status``: which database, its migrations (run, pending), investigations by
  status, and the live leases by replica;
- ``db migrate``: run the pending migrations (``serve`` does too, at start; two
  replicas starting at once migrate once);
- ``db copy --from sqlite:///... --to postgresql://...``: move a database into another
  (an existing SQLite install into Postgres, for high availability): every record,
  incident, verdict, Slack thread and logout, then the full-text index rebuilt and the
  chat conversations carried over checkpoint by checkpoint. The target must hold no
  investigations yet; the source's records are only read (its schema is brought to
  this release's first, as ``serve`` would).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from sre_agent.db import DB_ERRORS
from sre_agent.db_url import is_postgres
from sre_agent.migrations import MIGRATIONS, index_existing
from sre_agent.settings import Settings, load_settings
from sre_agent.store import Store

#: The tables ``db copy`` moves, in an order their references allow; ``rowid`` columns
#: are the target's own (new numbers, the same order).
TABLES = ("incidents", "investigations", "feedback", "slack_threads", "revoked_sessions")
_BATCH = 500


def add_parser(sub: Any) -> None:
    db = sub.add_parser("db", help="the database: status, migrate, copy into another")
    actions = db.add_subparsers(dest="db_command", required=True)
    for name, text in (
        ("status", "which database, its migrations, investigations by status, live leases"),
        ("migrate", "run the migrations not run yet"),
    ):
        one = actions.add_parser(name, help=text, description=text)
        one.add_argument("--database-url", help="the database (default: SRE_AGENT_DATABASE_URL)")
    copy = actions.add_parser(
        "copy",
        help="copy every record into another database (SQLite into Postgres)",
        description="Copy every record, incident, verdict, Slack thread and chat into another"
        " database, which must hold no investigations yet. The source's records are only"
        " read (its schema is migrated to this release's first, as serve would).",
    )
    copy.add_argument("--from", dest="source", required=True, help="e.g. sqlite:///./sre-agent.db")
    copy.add_argument("--to", dest="target", required=True, help="e.g. postgresql://u@host/db")


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        if args.db_command == "copy":
            return copy(args.source, args.target)
        if args.database_url:
            settings = load_settings(database_url=args.database_url)
        store = Store(settings.database_url)
        if args.db_command == "migrate":
            return _migrate(store)
        return _status(store)
    except DB_ERRORS as exc:
        print(f"sre-agent db: {type(exc).__name__}: {_first_line(exc)}", file=sys.stderr)
        return 1


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "no detail"


def _migrate(store: Store) -> int:
    before = _pending_without_migrating(store)
    store.open()
    store.close()
    if before:
        print(f"{store.where}: ran migration(s) {', '.join(map(str, before))}")
    else:
        print(f"{store.where}: up to date ({len(MIGRATIONS)} migrations)")
    return 0


def _pending_without_migrating(store: Store) -> list[int]:
    """The migrations not run yet, read without running them."""
    from sre_agent.db import Postgres, connect_sqlite
    from sre_agent.migrations import not_run

    if store.url is not None:
        pg = Postgres(store.url, max_size=1)
        pg.open()
        try:
            with pg.read() as db:
                return not_run(db)
        finally:
            pg.close()
    if not store.path.exists():
        return list(range(1, len(MIGRATIONS) + 1))
    conn = connect_sqlite(store.path)
    try:
        return not_run(conn)
    finally:
        conn.close()


def _status(store: Store) -> int:
    pending = _pending_without_migrating(store)
    kind = "postgres" if store.url else "sqlite"
    print(f"database: {store.where} ({kind})")
    done = len(MIGRATIONS) - len(pending)
    print(
        f"migrations: {done} of {len(MIGRATIONS)} run"
        + (f"; pending: {', '.join(map(str, pending))} (sre-agent db migrate)" if pending else "")
    )
    if pending:  # status never migrates: what there is may be older than this release
        return 0
    store.open()  # nothing to migrate: opening changes nothing
    try:
        with store._read() as db:
            rows = db.execute(
                "SELECT status, count(*) FROM investigations GROUP BY status ORDER BY status"
            ).fetchall()
            leases = db.execute(
                "SELECT owner, stage, count(*), min(expires_at) FROM leases WHERE expires_at >= ?"
                " GROUP BY owner, stage ORDER BY owner, stage",
                (time.time(),),
            ).fetchall()
        total = sum(int(r[1]) for r in rows)
        shown = ", ".join(f"{r[0]} {r[1]}" for r in rows) or "none"
        print(f"investigations: {total} ({shown})")
        if leases:
            print("live leases:")
            for owner, stage, count, first in leases:
                print(f"  {owner}: {count} {stage} (next expiry in {first - time.time():.0f} s)")
        else:
            print("live leases: none")
    finally:
        store.close()
    return 0


# --- copy ----------------------------------------------------------------------------------
def copy(source: str, target: str) -> int:
    if _same(source, target):
        print("sre-agent db copy: --from and --to are the same database", file=sys.stderr)
        return 2
    for url in (source, target):
        load_settings(database_url=url)  # a bad URL: the setting's own message
    src, dst = Store(source), Store(target)
    src.open()
    try:
        dst.open()
        try:
            with dst._read() as db:
                there = db.execute("SELECT count(*) FROM investigations").fetchone()[0]
            if there:
                print(
                    f"sre-agent db copy: {dst.where} holds {there} investigation(s) already;"
                    " copy into an empty database",
                    file=sys.stderr,
                )
                return 2
            counts = _copy_tables(src, dst)
            chats = asyncio.run(_copy_chats(source, target))
        finally:
            dst.close()
    finally:
        src.close()
    print(
        f"copied {src.where} -> {dst.where}: "
        + ", ".join(f"{n} {table}" for table, n in counts.items())
        + f", {chats} chat checkpoint(s)"
    )
    return 0


def _same(a: str, b: str) -> bool:
    if is_postgres(a) or is_postgres(b):
        return a == b
    from pathlib import Path

    return (
        Path(a.removeprefix("sqlite:///")).resolve() == Path(b.removeprefix("sqlite:///")).resolve()
    )


def _copy_tables(src: Store, dst: Store) -> dict[str, int]:
    counts: dict[str, int] = {}
    with src._read() as read, dst._tx() as write:
        for table in TABLES:
            order = "rowid" if table in ("incidents", "investigations", "feedback") else "1"
            cur = read.execute(f"SELECT * FROM {table} ORDER BY {order}")
            names = [c[0] for c in cur.description]
            mine = _columns(write, table)
            kept = [n for n in names if n in mine and n != "rowid"]
            marks = ", ".join("?" * len(kept))
            cols = ", ".join(f'"{n}"' for n in kept)
            sql = f"INSERT INTO {table} ({cols}) VALUES ({marks})"
            n = 0
            while batch := cur.fetchmany(_BATCH):
                write.executemany(sql, [tuple(row[c] for c in kept) for row in batch])
                n += len(batch)
            counts[table] = n
        if write.dialect == "postgres":  # the next verdict's id follows the copied ones
            write.execute(
                "SELECT setval(pg_get_serial_sequence('feedback', 'id'),"
                " COALESCE((SELECT max(id) FROM feedback), 0) + 1, false)"
            )
        index_existing(write)  # the full-text index, in the target's own form
    return counts


def _columns(db: Any, table: str) -> set[str]:
    """The names of the target's columns of ``table``."""
    if db.dialect == "postgres":
        rows = db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name=?"
            " AND table_schema = current_schema()",
            (table,),
        )
        return {r[0] for r in rows}
    return {r[1] for r in db.execute(f"PRAGMA table_info({table})")}


async def _copy_chats(source: str, target: str) -> int:
    """Each conversation's checkpoints, oldest first, through LangGraph's own savers."""
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:
        src = await stack.enter_async_context(_saver(source))
        dst = await stack.enter_async_context(_saver(target))
        found = [t async for t in src.alist(None)]
        found.reverse()  # alist gives the newest first; parents must go in first
        for tup in found:
            config = tup.parent_config or {
                "configurable": {
                    "thread_id": tup.config["configurable"]["thread_id"],
                    "checkpoint_ns": tup.config["configurable"].get("checkpoint_ns", ""),
                }
            }
            stored = await dst.aput(
                config, tup.checkpoint, tup.metadata, tup.checkpoint.get("channel_versions", {})
            )
            by_task: dict[str, list[tuple[str, Any]]] = {}
            for task_id, channel, value in tup.pending_writes or ():
                by_task.setdefault(task_id, []).append((channel, value))
            for task_id, writes in by_task.items():
                await dst.aput_writes(stored, writes, task_id)
        return len(found)


def _saver(url: str) -> Any:
    if is_postgres(url):
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        return _setup(AsyncPostgresSaver.from_conn_string(url))
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    return _setup(AsyncSqliteSaver.from_conn_string(url.removeprefix("sqlite:///")))


class _setup:
    """A saver's context, its tables set up on entry."""

    def __init__(self, context: Any) -> None:
        self.context = context

    async def __aenter__(self) -> Any:
        saver = await self.context.__aenter__()
        await saver.setup()
        return saver

    async def __aexit__(self, *exc: Any) -> Any:
        return await self.context.__aexit__(*exc)
