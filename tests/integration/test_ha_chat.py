"""Replicas on one Postgres share what people do: a conversation started on one goes on
on the other (its checkpoints are in the shared database, through LangGraph's Postgres
checkpointer), and a logout on one ends the session on the other within seconds."""

from __future__ import annotations

from fastapi.testclient import TestClient

from sre_agent.app import create_app
from tests.integration.test_chat import investigate
from tests.support.fake_ollama import say


def test_a_follow_up_works_whichever_replica_answers(make_settings, ollama, postgres_url):
    settings = make_settings(database_url=postgres_url, incidents=False, kube_read_cache=0)
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        ident = investigate(one, ollama)
        ollama.enqueue(say("The config file is missing."), say("Yes: the same pod."))
        first = one.post(f"/investigations/{ident}/chat", json={"message": "why?"})
        assert first.status_code == 200, first.text
        history = two.get(f"/investigations/{ident}/chat").json()["messages"]
        assert [(m["role"], m["content"]) for m in history] == [
            ("user", "why?"),
            ("assistant", "The config file is missing."),
        ]
        second = two.post(f"/investigations/{ident}/chat", json={"message": "same pod?"})
        assert second.status_code == 200, second.text
        sent = [m["content"] for m in ollama.requests[-1]["messages"][1:]]
        assert sent == ["why?", "The config file is missing.", "same pod?"]  # the first turn


def test_a_logout_on_one_replica_ends_the_session_on_the_other(make_settings, postgres_url):
    from tests.integration.test_auth import ALICE, SESSION_COOKIE, TOKENS, _login, _session_csrf
    from tests.support.net import wait_for

    settings = make_settings(database_url=postgres_url, api_tokens=TOKENS, session_secret="k" * 32)
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        assert _login(one, ALICE).status_code == 303
        cookie = {"Cookie": f"{SESSION_COOKIE}={one.cookies.get(SESSION_COOKIE)}"}
        assert two.get("/investigations", headers=cookie).status_code == 200  # one key
        out = one.post("/logout", data={"csrf": _session_csrf(one)}, follow_redirects=False)
        assert out.status_code == 303
        wait_for(
            lambda: two.get("/investigations", headers=cookie).status_code == 401,
            10,
            "the other replica to refuse the logged-out cookie",
        )


async def test_two_replicas_opening_chat_at_once_on_an_empty_database(make_settings, postgres_url):
    """Both set LangGraph's checkpoint tables up at the same moment (a first rollout)."""
    import asyncio

    from sre_agent.backends import make_deps
    from sre_agent.chat import ChatService
    from sre_agent.prompts import load_prompts
    from sre_agent.store import Store

    settings = make_settings(database_url=postgres_url)
    store = Store(postgres_url)
    store.open()
    deps = make_deps(settings)
    chats = [ChatService(settings, load_prompts(), deps, store) for _ in range(2)]
    try:
        async with asyncio.timeout(60):
            await asyncio.gather(*(chat.open() for chat in chats))
    finally:
        for chat in chats:
            await chat.close()
        store.close()
