"""The list at ``/`` as a browser gets it from the real app (newest first, filtered like
the API, paged with its cursor, a readable notice for a filter value that matches
nothing), and the login page and session as the pages use them."""

from __future__ import annotations

from typing import Any

import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient

from sre_agent.app import create_app
from tests.integration.test_web_pages import (
    ANALYSIS,
    HTML,
    completed,
    firing,
    soup,
    stored,
    text_of,
)
from tests.support.fake_ollama import say


@pytest.fixture
def client(make_settings):
    with TestClient(create_app(make_settings())) as client:
        yield client


@pytest.fixture
def store(client):
    return client.app.state.services.store


# --- the list -------------------------------------------------------------------------


def rows(page: BeautifulSoup) -> list[Any]:
    return page.select("table#investigations tbody tr")


def test_the_list_shows_investigations_newest_first_with_their_summary(client, store):
    old = completed(store, firing("KubePodCrashLooping"))
    new = stored(store, "running", firing("TargetDown", severity="warning", namespace="web"))

    page = soup(client.get("/", headers=HTML))

    first, second = rows(page)
    assert first["id"] == f"inv-{new.id}" and first["data-status"] == "running"
    assert second["id"] == f"inv-{old.id}" and second["data-status"] == "completed"
    assert first.select_one("a.inv-link")["href"] == f"/investigations/{new.id}"
    cells = [text_of(td) for td in second.select("td")]
    assert cells[:4] == ["KubePodCrashLooping", "critical", "homepage", "completed"]
    assert cells[4].endswith(" s")  # its age
    assert cells[5] == ANALYSIS["summary"]
    table = page.select_one("table#investigations")
    assert table["data-first-page"] == "true"
    assert table["data-feed"].startswith("/events/investigations?after=")
    form = page.select_one("form#filters")
    names = {i["name"] for i in form.select("input[name]")}
    assert names == {"status", "severity", "namespace", "alertname", "text"}


def test_the_list_filters_like_the_api(client, store):
    crash = completed(store, firing("KubePodCrashLooping"))
    target = stored(store, "queued", firing("TargetDown", severity="warning", namespace="web"))

    def listed(**query: str) -> list[str]:
        response = client.get("/", params=query, headers=HTML)
        return [r["id"].removeprefix("inv-") for r in rows(soup(response))]

    assert listed(status="queued") == [target.id]
    assert listed(severity="critical") == [crash.id]
    assert listed(namespace="web") == [target.id]
    assert listed(alertname="KubePodCrashLooping") == [crash.id]
    assert listed(text="upstream_url") == [crash.id]  # in the analysis, any case
    assert listed(text="") == [target.id, crash.id]  # an empty field is no filter
    api = client.get("/investigations", params={"text": "upstream_url"}).json()
    assert [i["id"] for i in api["investigations"]] == [crash.id]
    filtered = soup(client.get("/", params={"status": "queued", "text": "x"}, headers=HTML))
    assert filtered.select_one("input[name=status]")["value"] == "queued"
    assert "status=queued" in filtered.select_one("table#investigations")["data-feed"]


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ({"status": "exploded"}, "No investigation has status 'exploded'"),
        ({"severity": "critcal"}, "did you mean 'critical'?"),
        ({"before": "no-such-id"}, "That page is gone"),
        ({"limit": "many"}, None),
        ({"text": "%_\\' OR 1=1 --"}, None),
    ],
)
def test_unknown_filter_values_are_said_on_the_page(client, store, query, said):
    completed(store)

    page = soup(client.get("/", params=query, headers=HTML))

    notice = page.select_one(".notice")
    if said is None:
        assert notice is None
    else:
        assert said in text_of(notice)


def test_older_pages_follow_the_before_cursor(client, store):
    made = [stored(store, "queued", firing(f"Alert{n}")) for n in range(5)]
    newest_first = [r.id for r in reversed(made)]

    first = soup(client.get("/", params={"limit": "2"}, headers=HTML))
    assert [r["id"] for r in rows(first)] == [f"inv-{i}" for i in newest_first[:2]]
    older = first.select_one("a#older")["href"]
    second = soup(client.get(older, headers=HTML))
    assert [r["id"] for r in rows(second)] == [f"inv-{i}" for i in newest_first[2:4]]
    assert second.select_one("table#investigations")["data-first-page"] == "false"
    third = soup(client.get(second.select_one("a#older")["href"], headers=HTML))
    assert [r["id"] for r in rows(third)] == [f"inv-{newest_first[4]}"]
    assert third.select_one("a#older") is None


def test_an_empty_list_says_so(client):
    page = soup(client.get("/", headers=HTML))
    assert rows(page) == []
    assert text_of(page.select_one("#empty")) == "No investigations."
    assert not page.select_one("#empty").has_attr("hidden")


# --- login ---------------------------------------------------------------------------


def test_the_login_page_has_its_form(make_settings):
    settings = make_settings(api_tokens="alice=" + "a" * 32)
    with TestClient(create_app(settings)) as client:
        redirect = client.get("/", headers=HTML, follow_redirects=False)
        assert redirect.status_code == 303 and redirect.headers["location"] == "/login?next=%2F"

        page = soup(client.get("/login?next=/investigations/x", headers=HTML))

    form = page.select_one("form#login")
    assert form["method"] == "post" and form["action"] == "/login"
    assert form.select_one("input[name=token]")["type"] == "password"
    assert form.select_one("input[name=next]")["value"] == "/investigations/x"
    assert form.select_one("input[name=csrf]")["value"]


def test_a_logged_in_page_carries_the_session_csrf_the_chat_sends(make_settings, ollama):
    token = "b" * 32
    with TestClient(create_app(make_settings(api_tokens=f"alice={token}"))) as client:
        form = soup(client.get("/login?next=/", headers=HTML)).select_one("form#login")
        login_csrf = form.select_one("input[name=csrf]")["value"]
        answer = client.post(
            "/login",
            data={"token": token, "next": "/", "csrf": login_csrf},
            follow_redirects=False,
        )
        assert answer.status_code == 303
        record = completed(client.app.state.services.store)

        page = soup(client.get(f"/investigations/{record.id}", headers=HTML))
        csrf = page.select_one("meta[name=csrf-token]")["content"]
        header = page.select_one("header.top")
        assert text_of(header.select_one(".who")) == "alice"
        logout = header.select_one("form[action='/logout']")
        assert logout["method"] == "post"
        assert logout.select_one("input[name=csrf]")["value"] == csrf != ""

        url = page.select_one("#chat")["data-url"]
        refused = client.post(url, json={"message": "why?"})
        assert refused.status_code == 403
        ollama.enqueue(say("Because the setting is missing."))
        asked = client.post(url, json={"message": "why?"}, headers={"X-CSRF-Token": csrf})
        assert asked.status_code == 200, asked.text
        out = client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
        assert out.status_code == 303
