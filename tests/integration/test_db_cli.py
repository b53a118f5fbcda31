"""``sre-agent db``: status and migrate, and an existing SQLite install moved into a real
Postgres with ``db copy``: every record, verdict, Slack thread and chat conversation,
searchable there; a second copy into the same database is refused."""

from __future__ import annotations

import asyncio

import psycopg
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from sre_agent.cli import main
from sre_agent.migrations import MIGRATIONS
from sre_agent.store import Store
from tests.support.memory import WEB, ago, seed


async def _chat(path: str, ident: str) -> None:
    async with AsyncSqliteSaver.from_conn_string(path) as saver:
        await saver.setup()
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {
            "messages": [HumanMessage("why does it restart?"), AIMessage("its config is gone")]
        }
        checkpoint["channel_versions"] = {"messages": 1}
        config = {"configurable": {"thread_id": ident, "checkpoint_ns": ""}}
        await saver.aput(config, checkpoint, {"step": 1}, {"messages": 1})


async def _messages(url: str, ident: str) -> list[str]:
    async with AsyncPostgresSaver.from_conn_string(url) as saver:
        found = await saver.aget_tuple({"configurable": {"thread_id": ident}})
        assert found is not None
        return [m.content for m in found.checkpoint["channel_values"]["messages"]]


def test_status_migrate_and_a_copy_of_sqlite_into_postgres(tmp_path, postgres_url, capsys):
    path = tmp_path / "sre-agent.db"
    source = Store(path)
    source.open()
    first = seed(
        source, {**WEB, "pod": "web-1"}, starts=ago(days=3), cause="the config map was deleted"
    )
    second = seed(source, {**WEB, "pod": "web-2"}, starts=ago(days=1))
    source.add_feedback(first, "confirmed", author="ana", via="api")
    source.save_slack_thread("group-1", "C1", "123.4")
    source.revoke_session("s1", 4102444800.0)
    source.close()
    asyncio.run(_chat(str(path), first))

    assert main(["db", "status", "--database-url", postgres_url]) == 0
    assert f"0 of {len(MIGRATIONS)} run" in capsys.readouterr().out
    assert main(["db", "migrate", "--database-url", postgres_url]) == 0
    assert "ran migration(s) 1," in capsys.readouterr().out

    assert main(["db", "copy", "--from", f"sqlite:///{path}", "--to", postgres_url]) == 0
    out = capsys.readouterr().out
    assert "2 investigations" in out and "1 feedback" in out and "1 chat checkpoint" in out

    target = Store(postgres_url)
    target.open()
    try:
        copied = target.get(first)
        assert copied is not None and copied.verdict == "confirmed"
        assert target.get(second) is not None
        assert target.slack_thread("group-1") == ("C1", "123.4")
        assert "s1" in target.revoked_sessions()
        assert [r.id for r in target.list(text="config map was deleted")] == [first]
        with psycopg.connect(postgres_url) as conn:  # the full-text index, rebuilt there
            assert conn.execute("SELECT count(*) FROM memory_fts").fetchone()[0] == 2
        # A verdict given after the copy gets a new id, after the copied one's.
        later = target.add_feedback(second, "wrong", cause="a bad image", author="ana", via="api")
        assert later.id > 1
    finally:
        target.close()
    assert asyncio.run(_messages(postgres_url, first)) == [
        "why does it restart?",
        "its config is gone",
    ]

    assert main(["db", "status", "--database-url", postgres_url]) == 0
    assert "investigations: 2" in capsys.readouterr().out
    # Never into a database that holds records: that would mix two histories.
    assert main(["db", "copy", "--from", f"sqlite:///{path}", "--to", postgres_url]) == 2
    assert "holds 2 investigation(s) already" in capsys.readouterr().err
