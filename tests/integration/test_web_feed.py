"""The live feed (``GET /events/investigations``) as a browser's EventSource reads it
from the real app: rows that change arrive rendered, filters hold, a reconnect resumes
where it left off, a store that fails for a while does not end it, and a connected
client does not hold the service open at shutdown."""

from __future__ import annotations

import json
import queue
import signal
import sqlite3
import subprocess
import threading
import time
from typing import Any

import httpx
import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient

from sre_agent.app import create_app
from tests.integration.test_web_pages import completed, firing, stored
from tests.support.net import free_port
from tests.support.service import ServiceProcess

#: The poller asks every second: an event is due within a few.
WAIT = 6.0


class Events:
    """One SSE connection read in a thread, frame by frame (as EventSource parses)."""

    def __init__(self, client: TestClient, url: str, headers: dict[str, str] | None = None):
        self.frames: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.status: int | None = None
        self.content_type = ""
        self.ended = threading.Event()
        self._thread = threading.Thread(
            target=self._read, args=(client, url, headers or {}), daemon=True
        )
        self._thread.start()
        opened = self.next(WAIT)  # the first frame: the retry hint, once subscribed
        assert opened is not None and "retry" in opened, opened

    def _read(self, client: TestClient, url: str, headers: dict[str, str]) -> None:
        try:
            with client.stream("GET", url, headers=headers) as response:
                self.status = response.status_code
                self.content_type = response.headers.get("content-type", "")
                frame: dict[str, Any] = {}
                for line in response.iter_lines():
                    if not line:
                        if frame:
                            self.frames.put(frame)
                        frame = {}
                    elif line.startswith(":"):
                        frame["comment"] = line[1:].strip()
                    else:
                        name, _, value = line.partition(":")
                        frame[name] = value.removeprefix(" ")
        except Exception as exc:  # noqa: BLE001 - shown to the test that reads next
            self.frames.put({"exception": repr(exc)})
        finally:
            self.ended.set()
            self.frames.put(None)

    def next(self, timeout: float = WAIT) -> dict[str, Any] | None:
        return self.frames.get(timeout=timeout)

    def until(self, kind: str, ident: str, timeout: float = WAIT) -> tuple[dict[str, Any], list]:
        """The first ``kind`` event about ``ident``, and every frame before it."""
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            frame = self.next(max(0.01, deadline - time.monotonic()))
            assert frame is not None, f"the stream ended before {kind} {ident}: {seen}"
            if frame.get("event") == kind and json.loads(frame["data"])["id"] == ident:
                return {**frame, "data": json.loads(frame["data"])}, seen
            seen.append(frame)

    def events(self, settle: float = 2.5) -> list[tuple[str, dict[str, Any]]]:
        """Every event sent within ``settle`` seconds (the poller asks every second)."""
        found = []
        deadline = time.monotonic() + settle
        while (left := deadline - time.monotonic()) > 0:
            try:
                frame = self.next(left)
            except queue.Empty:
                break
            if frame is None:
                break
            if "event" in frame:
                found.append((frame["event"], json.loads(frame["data"])))
        return found


@pytest.fixture
def client(make_settings):
    with TestClient(create_app(make_settings())) as client:
        yield client


@pytest.fixture
def store(client):
    return client.app.state.services.store


def test_a_new_investigation_arrives_with_its_row_and_then_its_changes(client, store):
    events = Events(client, "/events/investigations")
    assert events.status == 200 and events.content_type.startswith("text/event-stream")

    record = stored(store, "queued", firing("TargetDown", namespace="web"))
    event, _ = events.until("investigation", record.id)

    assert event["data"]["status"] == "queued"
    row = BeautifulSoup(event["data"]["html"], "html.parser").select_one("tr")
    assert row["id"] == f"inv-{record.id}" and row["data-status"] == "queued"
    assert row.select_one("a.inv-link")["href"] == f"/investigations/{record.id}"
    assert "TargetDown" in row.get_text()
    first = int(event["id"])  # the change cursor, for a reconnect

    store.claim(record.id)
    running, _ = events.until("investigation", record.id)
    assert running["data"]["status"] == "running" and int(running["id"]) > first
    assert 'data-status="running"' in running["data"]["html"]


def test_filters_hold_and_a_row_that_stops_matching_is_gone(client, store):
    events = Events(client, "/events/investigations?namespace=web&status=queued")

    other = stored(store, "queued", firing("KubePodCrashLooping", namespace="homepage"))
    wanted = stored(store, "queued", firing("TargetDown", namespace="web"))
    event, before = events.until("investigation", wanted.id)
    assert event["data"]["status"] == "queued"
    sent = before + [event] + [{"event": k, "data": d} for k, d in events.events()]
    assert not [f for f in sent if f.get("event") == "investigation" and other.id in str(f)]

    store.claim(wanted.id)  # running: no longer a queued one
    gone, _ = events.until("gone", wanted.id)
    assert gone["data"] == {"id": wanted.id}


def test_the_investigation_page_stream_sees_only_its_own(client, store):
    record = stored(store, "queued")
    events = Events(client, f"/events/investigations?id={record.id}")

    other = stored(store, "queued", firing("TargetDown"))
    store.claim(other.id)
    store.claim(record.id)
    event, before = events.until("investigation", record.id)

    assert event["data"]["status"] == "running"
    assert not [f for f in before if "event" in f], before  # nothing of the other
    assert all(other.id not in json.dumps(f) for f in before)


def test_a_reconnect_resumes_after_its_last_event_id(client, store):
    events = Events(client, "/events/investigations")
    first = stored(store, "queued", firing("First"))
    event, _ = events.until("investigation", first.id)
    cursor = event["id"]
    missed = [stored(store, "queued", firing(f"Missed{n}")) for n in range(2)]
    time.sleep(1.5)  # the poller has moved on: the reconnect is caught up from the store

    again = Events(client, "/events/investigations?after=0", {"Last-Event-ID": cursor})
    got = again.events()

    ids = [data["id"] for kind, data in got if kind == "investigation"]
    assert ids == [r.id for r in missed]  # what it missed, in order, and not the first again
    same = Events(client, f"/events/investigations?after={cursor}")
    assert [d["id"] for _, d in same.events()] == [r.id for r in missed]


def test_a_page_passes_its_cursor_so_nothing_between_render_and_connect_is_lost(client, store):
    completed(store)
    time.sleep(1.5)  # the poller is past it (a row changed just before may come again)
    page = BeautifulSoup(client.get("/", headers={"Accept": "text/html"}).text, "html.parser")
    feed = page.select_one("table#investigations")["data-feed"]
    later = stored(store, "queued", firing("AfterTheRender"))
    time.sleep(1.5)  # the poller has already handed it out, to nobody

    events = Events(client, feed)

    assert [d["id"] for k, d in events.events() if k == "investigation"] == [later.id]


def test_a_failing_store_is_retried_and_the_feed_goes_on(client, store, caplog):
    events = Events(client, "/events/investigations")
    path = client.app.state.services.settings.database_path
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("ALTER TABLE investigations RENAME TO investigations_away")
        time.sleep(2.5)  # the poller meets "no such table"
        other.execute("ALTER TABLE investigations_away RENAME TO investigations")
    finally:
        other.close()

    record = stored(store, "queued", firing("AfterTheOutage"))
    event, _ = events.until("investigation", record.id, timeout=12)

    assert event["data"]["status"] == "queued"
    assert "live feed: reading changes failed (retrying)" in caplog.text
    assert "no such table" in caplog.text


def test_shutdown_is_not_held_by_a_connected_client(make_settings):
    client = TestClient(create_app(make_settings()))
    client.__enter__()
    try:
        events = Events(client, "/events/investigations")
    finally:
        started = time.monotonic()
        client.__exit__(None, None, None)
        took = time.monotonic() - started
    assert took < 1.0, f"the lifespan took {took:.1f} s to end with a client connected"
    assert events.ended.wait(2.0)  # its stream ended


def test_bad_resume_values_start_from_now(client, store):
    completed(store)
    time.sleep(1.5)  # the poller is past it: "now" is after it
    for url, headers in (
        ("/events/investigations?after=banana", {}),
        ("/events/investigations?after=-5", {"Last-Event-ID": "x"}),
    ):
        events = Events(client, url, headers)
        assert events.status == 200
        assert events.events(settle=1.5) == []


def test_sigterm_is_not_held_by_a_connected_client(tmp_path):
    env = {
        "SRE_AGENT_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "SRE_AGENT_OLLAMA_URL": f"http://127.0.0.1:{free_port()}",
        "SRE_AGENT_PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}",
        "SRE_AGENT_BACKEND_TIMEOUT": "1",
    }
    service = ServiceProcess(env, tmp_path / "service.log").start()
    try:
        opened = threading.Event()

        def listen() -> None:
            url = f"{service.url}/events/investigations"
            try:
                with httpx.stream("GET", url, timeout=60) as response:
                    for _ in response.iter_lines():
                        opened.set()
            except httpx.HTTPError:  # the service was killed under it
                pass

        threading.Thread(target=listen, daemon=True).start()
        assert opened.wait(10)
        assert service.proc is not None
        service.proc.send_signal(signal.SIGTERM)
        try:
            service.proc.wait(5)
        except subprocess.TimeoutExpired:
            pytest.fail("sre-agent did not exit within 5 s of SIGTERM with a feed client")
    finally:
        if service.proc is not None and service.proc.poll() is None:
            service.proc.kill()
        service.stop()
