"""The feedback form in a real browser (Debian's chromium driven by Playwright, as in
tests/integration/test_browser.py): log in, open a finished investigation, click "Cause
confirmed"; the page then shows the verdict (its section re-read from the service, the
rest of the page untouched), and the API has it under the logged-in user's name. With no
root cause to confirm, the page shows the API's refusal and takes the cause typed in.

Never skipped: without ``/usr/bin/chromium`` the tests fail naming ``make system-deps``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.browser import (
    CHECKOUT,
    HOMEPAGE,
    STEP_MS,
    NetworkLog,
    WebLab,
    launch,
    without_cause,
)

FATAL = "FATAL: config: required setting SITE_API_UPSTREAM_URL is missing"
#: The alert the scripted model finds no root cause for.
NO_CAUSE = "KubeJobFailed"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The homepage's crash-looping pod investigated, and an alert with no root cause."""
    with WebLab(tmp_path_factory.mktemp("web-feedback")) as web:
        web.ollama.default = without_cause(NO_CAUSE)
        crash = next(
            a for a in HOMEPAGE["alerts"] if a["labels"]["alertname"] == "KubePodCrashLooping"
        )
        job = {
            **CHECKOUT,
            "labels": {**CHECKOUT["labels"], "alertname": NO_CAUSE, "pod": "batch-28f4k"},
            "fingerprint": "6f6f6f6f6f6f6f6f",
        }
        (crashed,) = web.post([crash], "homepage")
        (failed,) = web.post([job], "payments")
        web.wait_final([crashed, failed])
        yield {"web": web, "crash": crashed, "no_cause": failed}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


def new_page(browser: Browser, web: WebLab) -> tuple[Page, NetworkLog]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(STEP_MS)
    expect.set_options(timeout=STEP_MS)
    return context.new_page(), NetworkLog(context, web.netloc)


def test_cause_confirmed_in_the_page_is_shown_and_kept_under_the_users_name(browser, lab):
    web: WebLab = lab["web"]
    ident = lab["crash"]
    page, network = new_page(browser, web)
    web.login(page, f"/investigations/{ident}")
    form = page.locator("#feedback-form")
    expect(form).to_be_visible()  # the script shows it (it needs the script to post)
    expect(page.locator("#no-feedback")).to_have_text("No verdict yet.")
    expect(page.locator("#verdict")).to_have_count(0)
    # A question half typed in the chat: giving a verdict must not lose it.
    page.fill("#chat-form textarea[name=message]", "what changed in the last rollout?")

    page.fill("#feedback-form textarea[name=note]", "Setting it in the deployment fixed it.")
    page.click("#feedback-form button[value=confirmed]")

    entry = page.locator("#feedback li.feedback-entry")
    expect(entry).to_have_count(1)
    expect(entry.locator(".badge")).to_have_text("Cause confirmed")
    expect(entry.locator(".author")).to_have_text("oncall")
    expect(entry.locator(".given-cause")).to_contain_text(FATAL)  # the analysis' own cause
    expect(entry.locator(".note")).to_contain_text("Setting it in the deployment fixed it.")
    expect(page.locator("header.page-head #verdict")).to_have_text("Cause confirmed")
    expect(page.locator("#feedback-status")).to_contain_text("your verdict is kept")
    expect(page.locator("#no-feedback")).to_have_count(0)
    expect(page.locator("#chat-form textarea[name=message]")).to_have_value(
        "what changed in the last rollout?"
    )

    listed = web.api(f"/investigations/{ident}/feedback")
    assert listed["verdict"] == "confirmed"
    (given,) = listed["feedback"]
    assert (given["verdict"], given["author"], given["via"]) == ("confirmed", "oncall", "session")
    assert given["cause"] == FATAL and given["note"] == "Setting it in the deployment fixed it."
    # A reload shows the same: it is the stored verdict, not the script's.
    page.reload()
    expect(page.locator("#feedback li.feedback-entry .author")).to_have_text("oncall")
    assert network.foreign() == [] and network.errors == []
    page.context.close()


def test_nothing_to_confirm_shows_the_apis_refusal_then_takes_the_cause_given(browser, lab):
    web: WebLab = lab["web"]
    ident = lab["no_cause"]
    page, network = new_page(browser, web)
    web.login(page, f"/investigations/{ident}")
    status = page.locator("#feedback-status")

    page.click("#feedback-form button[value=confirmed]")

    expect(status).to_contain_text("Not kept: nothing to confirm")
    expect(status).to_have_class(re.compile(r"\bfailed\b"))
    expect(page.locator("#feedback li.feedback-entry")).to_have_count(0)
    page.fill("#feedback-form input[name=cause]", "The batch image tag was deleted.")
    page.locator("#feedback-form input[name=cause]").press("Enter")
    assert "nothing to confirm" in status.inner_text()  # Enter gives no verdict: the buttons do
    page.click("#feedback-form button[value=confirmed]")
    entry = page.locator("#feedback li.feedback-entry")
    expect(entry).to_have_count(1)
    expect(entry.locator(".given-cause")).to_have_text("Cause: The batch image tag was deleted.")
    assert [f["verdict"] for f in web.api(f"/investigations/{ident}/feedback")["feedback"]] == [
        "confirmed"
    ]
    # The one error a page logs is chromium's own line for the 422 it was answered.
    assert network.foreign() == []
    assert all("status of 422" in e for e in network.errors), network.errors
    page.context.close()
