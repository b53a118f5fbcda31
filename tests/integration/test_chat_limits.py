"""Chat's limits as a user meets them: a flood of questions gets 429 with Retry-After,
one user's flood does not limit another, and at most SRE_AGENT_CHAT_MAX_CONCURRENT
chats are answered at once -- a client that goes away frees its place.

The app is real (TestClient, or ``sre-agent serve`` for simultaneous and cut-off
requests) and the model is the scripted Ollama, which holds a reply until the test
lets it go."""

from __future__ import annotations

import functools
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from sre_agent.app import create_app
from sre_agent.chat_limits import ChatLimits, ChatRefused
from sre_agent.settings import Settings
from tests.conftest import settings_env
from tests.integration.test_chat import FIRING, NO_REPLY, investigate
from tests.support.fake_ollama import FakeOllama, say
from tests.support.model_scripts import investigator
from tests.support.service import ServiceProcess

ALICE = "alice-" + secrets.token_urlsafe(24)
BOB = "bob-" + secrets.token_urlsafe(24)


@pytest.fixture
def make_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    """Chat about one investigation of its own: no incident links the crash loop to its
    Deployment's alert (tests/integration/test_incidents_api.py covers that)."""
    return functools.partial(make_settings, incidents=False)


def ask(client: Any, ident: str, message: str = "why?", **headers: str) -> httpx.Response:
    return client.post(  # type: ignore[no-any-return]
        f"/investigations/{ident}/chat", json={"message": message}, headers=headers
    )


def refused_metric(client: Any, reason: str) -> float:
    text = client.get("/metrics").text
    found = re.search(rf'^sre_agent_chat_refused_total\{{reason="{reason}"\}} (\S+)$', text, re.M)
    assert found, text
    return float(found.group(1))


def assert_refused(response: httpx.Response, setting: str, most: int) -> int:
    """A 429 a client can act on: when to ask again, and why, as JSON."""
    assert response.status_code == 429, response.text
    wait = int(response.headers["retry-after"])  # whole seconds
    assert 1 <= wait <= most
    error = response.json()["error"]
    assert setting in error and f"{wait} s" in error
    return wait


# --- the rate per user ------------------------------------------------------------


def test_a_chat_flood_gets_429_with_retry_after(make_settings, ollama):
    settings = make_settings()
    assert settings.chat_rate_per_minute == 6  # the shipped default is what is tested
    with TestClient(create_app(settings)) as client:
        ident = investigate(client, ollama)
        ollama.enqueue(*(say(f"Answer {n}.") for n in range(7)))
        for n in range(6):
            assert ask(client, ident).json()["answer"] == f"Answer {n}."
        calls = ollama.chat_count

        flood = ask(client, ident)

        # Six a minute: the next question is taken once a sixth of a minute has refilled.
        wait = assert_refused(flood, "SRE_AGENT_CHAT_RATE_PER_MINUTE", 10)
        assert wait >= 9  # the questions took well under a second
        assert ollama.chat_count == calls  # refused before any work
        assert ollama.pending == 1
        history = client.get(f"/investigations/{ident}/chat").json()["messages"]
        assert sum(m["role"] == "user" for m in history) == 6
        streamed = client.post(
            f"/investigations/{ident}/chat",
            json={"message": "and as a stream?"},
            headers={"Accept": "text/event-stream"},
        )
        assert_refused(streamed, "SRE_AGENT_CHAT_RATE_PER_MINUTE", 10)
        assert refused_metric(client, "rate") == 2 and refused_metric(client, "busy") == 0


def test_one_users_flood_does_not_limit_another(make_settings, ollama):
    settings = make_settings(api_tokens=f"alice={ALICE},bob={BOB}", chat_rate_per_minute=3)
    with TestClient(create_app(settings)) as client:
        ident = investigate(client, ollama)  # the webhook keeps its own (here no) token
        alice = {"Authorization": f"Bearer {ALICE}"}
        bob = {"Authorization": f"Bearer {BOB}"}
        ollama.enqueue(*(say("Yes.") for _ in range(5)))
        for _ in range(3):
            assert ask(client, ident, **alice).status_code == 200
        assert_refused(ask(client, ident, **alice), "SRE_AGENT_CHAT_RATE_PER_MINUTE", 20)

        assert ask(client, ident, **bob).json()["answer"] == "Yes."  # bob is someone else
        assert ask(client, ident, **bob).status_code == 200
        assert ask(client, ident, **alice).status_code == 429  # and alice still waits
        assert ollama.pending == 0


def test_the_openapi_document_lists_the_429_and_its_retry_after(make_settings):
    with TestClient(create_app(make_settings())) as client:
        doc = client.get("/openapi.json").json()
    answers = doc["paths"]["/investigations/{ident}/chat"]["post"]["responses"]
    assert "SRE_AGENT_CHAT_RATE_PER_MINUTE" in answers["429"]["description"]
    assert answers["429"]["headers"]["Retry-After"]["schema"]["type"] == "integer"
    assert "ErrorBody" in str(answers["429"]["content"])


def test_the_rate_refills_and_memory_stays_bounded_under_a_flood_of_addresses():
    now = [1000.0]
    limits = ChatLimits(6, 2, max_users=100, clock=lambda: now[0])
    for _ in range(6):
        limits.admit("address:198.51.100.1").release()
    with pytest.raises(ChatRefused) as refused:
        limits.admit("address:198.51.100.1")
    assert (refused.value.reason, refused.value.retry_after) == ("rate", 10)
    now[0] += 10.0
    limits.admit("address:198.51.100.1").release()  # one question every ten seconds

    for n in range(5000):  # an attacker cycling through addresses
        limits.admit(f"address:10.{n // 65536}.{n // 256 % 256}.{n % 256}").release()
        assert limits.users <= 100
    now[0] += 61.0  # a minute later every bucket is full again: none needs keeping
    limits.admit("user:alice").release()
    assert limits.users == 1
    assert limits.active == 0


# --- at most N at once --------------------------------------------------------------


class Held:
    """A model reply the test holds back: the chat waits for the model until ``go``."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Semaphore(0)

    def reply(self, text: str) -> Callable[[dict[str, Any]], Any]:
        def answer(_request: dict[str, Any]) -> Any:
            self.entered.release()
            self.gate.wait(60)
            return say(text)

        return answer

    def wait_entered(self, count: int) -> None:
        for _ in range(count):
            assert self.entered.acquire(timeout=30), "the chat never reached the model"


@pytest.fixture
def serve(make_settings, ollama, tmp_path) -> Iterator[Callable[..., ServiceProcess]]:
    services: list[ServiceProcess] = []

    def start(**overrides: Any) -> ServiceProcess:
        settings: Settings = make_settings(**overrides)
        service = ServiceProcess(settings_env(settings), tmp_path / "service.log").start()
        services.append(service)
        return service

    yield start
    for service in services:
        service.stop()


def investigations(http: httpx.Client, ollama: FakeOllama) -> list[str]:
    """Every investigation of the homepage group, finished."""
    ollama.default = investigator
    results = http.post("/webhook/alert?wait=true", json=FIRING).json()["results"]
    ollama.default = NO_REPLY
    return [r["investigation_id"] for r in results if r["status"] == "completed"]


def test_anonymous_clients_are_limited_by_their_address(serve, ollama):
    """With no authentication configured (a loopback service), the address is the user."""
    service = serve(chat_rate_per_minute=2)
    other = httpx.HTTPTransport(local_address="127.0.0.2")  # another host, as the service sees it
    with (
        httpx.Client(base_url=service.url, timeout=60) as http,
        httpx.Client(base_url=service.url, timeout=60, transport=other) as neighbour,
    ):
        ident = investigations(http, ollama)[0]
        ollama.enqueue(*(say("Yes.") for _ in range(3)))
        assert [ask(http, ident).status_code for _ in range(3)] == [200, 200, 429]
        assert ask(neighbour, ident).json()["answer"] == "Yes."


def test_over_max_concurrent_chats_get_429_at_once_json_and_streams(serve, ollama):
    service = serve(chat_max_concurrent=2, chat_rate_per_minute=60)
    held = Held()
    with httpx.Client(base_url=service.url, timeout=60) as http:
        first, second = investigations(http, ollama)[:2]
        ollama.enqueue(held.reply("Slow answer."), held.reply("Slow answer."))
        answers: dict[str, Any] = {}

        def json_chat() -> None:
            answers["json"] = ask(http, first).json()

        def streamed_chat() -> None:
            with http.stream(
                "POST",
                f"/investigations/{second}/chat",
                json={"message": "why?"},
                headers={"Accept": "text/event-stream"},
            ) as response:
                answers["sse"] = response.read().decode()

        threads = [threading.Thread(target=json_chat), threading.Thread(target=streamed_chat)]
        for thread in threads:
            thread.start()
        held.wait_entered(2)  # both are being answered: every slot is taken

        started = time.monotonic()
        extra = ask(http, first)
        assert time.monotonic() - started < 5  # refused at once, not queued
        assert_refused(extra, "SRE_AGENT_CHAT_MAX_CONCURRENT", 10)
        assert refused_metric(http, "busy") == 1

        held.gate.set()
        for thread in threads:
            thread.join(30)
        assert answers["json"]["answer"] == "Slow answer."
        assert "Slow answer." in answers["sse"] and "event: done" in answers["sse"]
        # Both slots are free again: one chat held, and another is still taken.
        again = Held()
        ollama.enqueue(again.reply("Slow again."), say("Free again."))
        holder = threading.Thread(target=lambda: answers.update(again=ask(http, first).json()))
        holder.start()
        again.wait_entered(1)
        assert ask(http, second).json()["answer"] == "Free again."
        again.gate.set()
        holder.join(30)
        assert answers["again"]["answer"] == "Slow again."


def test_a_client_that_goes_away_mid_stream_frees_its_slot(serve, ollama):
    service = serve(chat_max_concurrent=1, chat_rate_per_minute=60)
    held = Held()
    try:
        with httpx.Client(base_url=service.url, timeout=60) as http:
            ident = investigations(http, ollama)[0]
            ollama.enqueue(held.reply("Nobody reads this."))
            with httpx.Client(base_url=service.url, timeout=60) as leaving:
                with leaving.stream(
                    "POST",
                    f"/investigations/{ident}/chat",
                    json={"message": "why?"},
                    headers={"Accept": "text/event-stream"},
                ) as response:
                    assert response.status_code == 200
                    held.wait_entered(1)
                    assert ask(http, ident).status_code == 429  # its one slot is held
            # The client closed its connection while the model was still answering.
            ollama.enqueue(say("Here I am."))
            deadline = time.monotonic() + 10
            answer = ask(http, ident)
            while answer.status_code == 429 and time.monotonic() < deadline:
                time.sleep(0.2)
                answer = ask(http, ident)
            assert answer.status_code == 200, answer.text
            assert answer.json()["answer"] == "Here I am."
            history = http.get(f"/investigations/{ident}/chat").json()["messages"]
            assert [m["content"] for m in history if m["role"] == "user"] == ["why?"]
    finally:
        held.gate.set()
