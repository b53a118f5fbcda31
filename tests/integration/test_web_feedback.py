""" "Seen before" and "Feedback" on the investigation page, over HTTP against a running
``sre-agent serve`` (the scripted Ollama, the fake Kubernetes API), read as a person's
web session reads it: logged in through the form, posting with the page's CSRF token.

The worker fills "Seen before" after each run: a second firing of an alert on the same
workload lists the first, with the cause a person confirmed on it. The form's JavaScript
in a real browser is tests/integration/test_browser_feedback.py's; here is what the page
says and what the API it posts to answers a session."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from bs4 import BeautifulSoup

from tests.support.browser import CHECKOUT, FINAL, HOMEPAGE, WebLab, without_cause
from tests.support.fake_ollama import hang
from tests.support.model_scripts import investigator

#: A note with markup in it: the page shows it as text.
NOTE = "Rolled back to <b>v41</b>; the crash stopped."
#: The alert the scripted model finds no root cause for.
NO_CAUSE = "KubeJobFailed"


#: The homepage's crash-looping api pod (the fake cluster has its logs: a FATAL line).
CRASH = next(a for a in HOMEPAGE["alerts"] if a["labels"]["alertname"] == "KubePodCrashLooping")


def checkout(fingerprint: str, pod: str, **labels: str) -> dict[str, Any]:
    """The checkout alert of tests/support/browser.py on another pod, another alertname."""
    return {
        **CHECKOUT,
        "labels": {**CHECKOUT["labels"], "pod": pod, **labels},
        "fingerprint": fingerprint,
    }


def wait_similar(web: WebLab, ident: str, timeout: float = 30.0) -> dict[str, Any]:
    """The record once it is final and the worker has looked for past ones like it (just
    after it stores the run)."""
    deadline = time.monotonic() + timeout
    while True:
        record = web.api(f"/investigations/{ident}")
        if record["status"] in FINAL and record["similar"]:
            return record  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise AssertionError(f"no similar investigations in {timeout} s: {record['similar']}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The homepage's api pod crash-looping, investigated, a person's "confirmed" on it;
    then the same alert firing again later (it lists the first)."""
    with WebLab(tmp_path_factory.mktemp("feedback")) as web:
        web.ollama.default = without_cause(NO_CAUSE)
        (first,) = web.post([CRASH], "homepage")
        record = web.wait_final([first])[first]
        cause = record["analysis"]["root_causes"][0]["cause"]
        web.give_feedback(first, "confirmed", note=NOTE)
        (again,) = web.post([{**CRASH, "startsAt": "2026-11-28T09:12:40.006Z"}], "homepage")
        wait_similar(web, again)
        yield {"web": web, "first": first, "again": again, "cause": cause}


@pytest.fixture
def session(lab: dict[str, Any]) -> Iterator[tuple[httpx.Client, str]]:
    client, csrf = lab["web"].session()
    try:
        yield client, csrf
    finally:
        client.close()


def soup(response: httpx.Response) -> BeautifulSoup:
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    return BeautifulSoup(response.text, "html.parser")


def text_of(node: Any) -> str:
    return " ".join(node.get_text(" ").split())


def test_the_second_firing_lists_the_first_as_seen_before_with_its_confirmed_cause(lab, session):
    client, _ = session

    page = soup(client.get(f"/investigations/{lab['again']}"))

    section = page.select_one("section#similar")
    assert text_of(section.select_one("h2")) == "Seen before"
    seen = section.select_one(f"li.seen[data-id='{lab['first']}']")
    assert seen is not None, text_of(section)
    link = seen.select_one("a.inv-link")
    assert link["href"] == f"/investigations/{lab['first']}"
    assert text_of(link) == "KubePodCrashLooping"
    assert seen["data-match"] == "same alert and object"
    assert "same alert and object" in text_of(seen)
    assert seen.select_one("time[datetime]") is not None and " ago" in text_of(seen)
    cause = seen.select_one("p.seen-cause")
    assert "confirmed" in cause["class"]
    assert text_of(cause) == f"✓ Confirmed cause: {lab['cause']}"
    assert text_of(seen.select_one(".badge")) == "Cause confirmed"
    # Nobody judged the second yet: its page says so, and offers the form.
    feedback = page.select_one("section#feedback")
    assert text_of(feedback.select_one("#no-feedback")) == "No verdict yet."
    assert page.select_one("#verdict") is None


def test_the_first_page_shows_the_verdict_given_and_no_seen_before(lab, session):
    client, _ = session

    response = client.get(f"/investigations/{lab['first']}")
    page = soup(response)

    assert page.select_one("section#similar") is None  # nothing before it: no section
    (entry,) = page.select("section#feedback li.feedback-entry")
    assert entry["data-verdict"] == "confirmed"
    assert text_of(entry.select_one(".badge")) == "Cause confirmed"
    assert text_of(entry.select_one(".author")) == "oncall"  # the token's name
    assert entry.select_one("time[datetime]") is not None
    # "confirmed" with no cause given keeps the analysis' own.
    assert text_of(entry.select_one(".given-cause")) == f"Cause: {lab['cause']}"
    assert text_of(entry.select_one(".note")) == f"Note: {NOTE}"
    assert "<b>v41</b>" not in response.text  # the note's markup stays text
    assert text_of(page.select_one("header.page-head #verdict")) == "Cause confirmed"


def test_the_form_posts_a_verdict_and_the_page_then_shows_it(lab, session):
    web: WebLab = lab["web"]
    client, csrf = session
    page = soup(client.get(f"/investigations/{lab['again']}"))
    form = page.select_one("section#feedback form#feedback-form")
    assert form is not None
    buttons = {b["value"]: text_of(b) for b in form.select("button[name=verdict]")}
    assert buttons == {"confirmed": "Cause confirmed", "partial": "Partly right", "wrong": "Wrong"}
    assert form.select_one("input[name=cause]") and form.select_one("textarea[name=note]")
    assert page.select_one("meta[name=csrf-token]")["content"] == csrf
    assert page.find("script", string=True) is None  # the form's script is app.js

    # What the form's script sends: JSON to its data-url, with the session's CSRF token.
    real = "The checkout image v42 reads a config key that v41 did not need."
    given = client.post(
        form["data-url"],
        json={"verdict": "wrong", "cause": real, "note": "fixed by the rollback"},
        headers={"X-CSRF-Token": csrf, "Accept": "application/json"},
    )

    assert given.status_code == 201, given.text
    stored = given.json()
    assert (stored["verdict"], stored["author"], stored["via"]) == ("wrong", "oncall", "session")
    page = soup(client.get(f"/investigations/{lab['again']}"))
    entry = page.select("section#feedback li.feedback-entry")[-1]
    assert entry["data-verdict"] == "wrong"
    assert text_of(entry.select_one(".badge")) == "Wrong"
    assert text_of(entry.select_one(".author")) == "oncall"
    assert text_of(entry.select_one(".given-cause")) == f"Cause: {real}"
    assert f"The analysis said: {stored['analysis_cause']}" in text_of(entry)
    assert text_of(entry.select_one(".note")) == "Note: fixed by the rollback"
    assert text_of(page.select_one("#verdict")) == "Wrong"
    listed = web.api(f"/investigations/{lab['again']}/feedback")
    assert listed["verdict"] == "wrong" and listed["feedback"][-1]["cause"] == real


def test_a_session_post_without_its_csrf_token_is_refused(lab, session):
    web: WebLab = lab["web"]
    client, csrf = session
    url = f"/investigations/{lab['first']}/feedback"
    before = web.api(url)["feedback"]

    for headers in ({}, {"X-CSRF-Token": "guessed-" + csrf[:8]}):
        refused = client.post(url, json={"verdict": "wrong"}, headers=headers)
        assert refused.status_code == 403, refused.text
        assert "X-CSRF-Token" in refused.json()["error"]

    assert web.api(url)["feedback"] == before  # nothing kept


def test_with_no_root_cause_confirming_needs_the_cause_and_the_page_says_so(lab, session):
    web: WebLab = lab["web"]
    client, csrf = session
    (ident,) = web.post(
        [checkout("3c3c3c3c3c3c3c3c", "batch-28f4k", alertname=NO_CAUSE)], "payments"
    )
    web.wait_final([ident])
    page = soup(client.get(f"/investigations/{ident}"))
    assert page.select("li.cause") == []
    hint = text_of(page.select_one("#feedback-form p"))
    assert hint.startswith("The analysis named no root cause")
    url = f"/investigations/{ident}/feedback"
    headers = {"X-CSRF-Token": csrf, "Accept": "application/json"}

    refused = client.post(url, json={"verdict": "confirmed"}, headers=headers)
    given = client.post(
        url, json={"verdict": "confirmed", "cause": "The job's image is gone."}, headers=headers
    )

    assert refused.status_code == 422, refused.text
    assert "nothing to confirm" in refused.json()["error"]  # what the form then shows
    assert given.status_code == 201, given.text
    entry = soup(client.get(f"/investigations/{ident}")).select_one("li.feedback-entry")
    assert text_of(entry.select_one(".given-cause")) == "Cause: The job's image is gone."


def test_a_running_investigation_has_no_form_and_takes_no_verdict(lab, session):
    web: WebLab = lab["web"]
    client, csrf = session
    web.ollama.default = hang(4, investigator)  # the model takes a while to answer
    try:
        (ident,) = web.post(
            [checkout("4d4d4d4d4d4d4d4d", "checkout-5f6d7c8b9-z9y8x", alertname="KubePodNotReady")],
            "payments",
        )
        deadline = time.monotonic() + 10
        while web.api(f"/investigations/{ident}")["status"] != "running":
            assert time.monotonic() < deadline, "it never started"
            time.sleep(0.1)

        page = soup(client.get(f"/investigations/{ident}"))
        refused = client.post(
            f"/investigations/{ident}/feedback",
            json={"verdict": "wrong"},
            headers={"X-CSRF-Token": csrf, "Accept": "application/json"},
        )

        assert page.select_one("#feedback-form") is None
        assert page.select_one("section#feedback") is None  # nothing to show yet
        assert refused.status_code == 409, refused.text
        assert "still running" in refused.json()["error"]
    finally:
        web.ollama.default = without_cause(NO_CAUSE)
    web.wait_final([ident])
