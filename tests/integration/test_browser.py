"""The web pages in a real browser, as the on-call engineer uses them: Debian's chromium
(driven by Playwright) against a running ``sre-agent serve`` that investigates alerts
posted to its webhook with the scripted Ollama and the fake Kubernetes API.

Log in with a token; the list shows what the webhook brought, and a new alert appears on
it without a reload; open an investigation, expand a cited finding, ask a question and
watch the answer stream in; filter by namespace; log out and be refused. Nothing the
browser asks for goes anywhere but the service, and no page logs an error (a CSP
violation is one). Then: a phone's width (a 600-character alertname and a 5000-character
label wrap, the filters fold, the root cause is on the first screen), dark and light mode,
the report without JavaScript, a running investigation's live status turning into its
report, the live list kept at its page size, and a question refused or failed.

Never skipped: without ``/usr/bin/chromium`` the tests fail naming ``make system-deps``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.browser import (
    BACKGROUND_JS,
    CHECKOUT,
    HOMEPAGE,
    STEP_MS,
    NetworkLog,
    WebLab,
    launch,
    luminance,
    overflow,
    slow_answer,
)
from tests.support.fake_ollama import hang
from tests.support.model_scripts import investigator

ANSWER = "The api container exits at start: SITE_API_UPSTREAM_URL is not set in its env."
FATAL = "FATAL: config: required setting SITE_API_UPSTREAM_URL is missing"

#: Every text change of the streamed answer, seen by the page itself as it happens.
WATCH_CHAT_JS = """() => {
  window.__answers = [];
  const log = document.getElementById("chat-log");
  new MutationObserver(() => {
    const answer = log.querySelector(".msg.assistant:last-of-type .text");
    if (answer) window.__answers.push(answer.textContent);
  }).observe(log, { subtree: true, childList: true, characterData: true });
}"""


#: The weight the stylesheet gives a claim's "(lowered from ...)" note.
LOWERED_WEIGHT_JS = """() => {
  const claim = document.createElement("p");
  claim.className = "claim";
  claim.innerHTML = 'A cause <span class="lowered muted">(lowered from medium)</span>';
  document.body.appendChild(claim);
  const weight = getComputedStyle(claim.querySelector(".lowered")).fontWeight;
  claim.remove();
  return weight;
}"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The service with the homepage group investigated (two alerts in ``homepage``)."""
    with WebLab(tmp_path_factory.mktemp("web")) as web:
        ids = web.post(HOMEPAGE["alerts"], "homepage")
        records = web.wait_final(ids)
        by_name = {r["alert"]["labels"]["alertname"]: i for i, r in records.items()}
        yield {"web": web, "homepage": ids, "crash": by_name["KubePodCrashLooping"]}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


def new_page(browser: Browser, lab: dict[str, Any], **options: Any) -> tuple[Page, NetworkLog]:
    context = browser.new_context(**options)
    context.set_default_timeout(STEP_MS)
    expect.set_options(timeout=STEP_MS)
    return context.new_page(), NetworkLog(context, lab["web"].netloc)


def row_ids(page: Page) -> set[str]:
    return set(page.eval_on_selector_all("#investigations tbody tr", "rows => rows.map(r => r.id)"))


def test_log_in_watch_open_ask_filter_and_log_out(browser, lab, tmp_path):
    web: WebLab = lab["web"]
    page, network = new_page(browser, lab, viewport={"width": 1280, "height": 900})

    # Logging in: asked for the list, sent to the login form, then back to the list.
    web.login(page)
    expect(page.locator("header .who")).to_have_text("oncall")
    assert row_ids(page) == {f"inv-{i}" for i in lab["homepage"]}
    crash_row = page.locator(f"#inv-{lab['crash']}")
    expect(crash_row).to_have_attribute("data-status", "completed")
    expect(crash_row).to_contain_text("KubePodCrashLooping")
    expect(crash_row).to_contain_text("homepage")

    # A new alert arrives while the list is open: its row appears, then turns final,
    # and the page never navigated (its marker survives).
    page.evaluate("() => { window.__marker = 'still here'; }")
    (live,) = web.post([CHECKOUT], "payments")
    live_row = page.locator(f"#inv-{live}")
    expect(live_row).to_be_visible()
    expect(live_row).to_contain_text("payments")
    expect(live_row).to_have_attribute("data-status", "completed")
    assert page.evaluate("() => window.__marker") == "still here"
    assert row_ids(page) == {f"inv-{i}" for i in [*lab["homepage"], live]}
    page.screenshot(path=tmp_path / "list.png", full_page=True)

    # Opening it: the report, a root cause and the finding it cites, folded until asked.
    crash_row.locator("a.inv-link").click()
    page.wait_for_url(f"{web.url}/investigations/{lab['crash']}")
    expect(page.locator("#summary")).to_contain_text("KubePodCrashLooping")
    finding = page.locator("li.cause details.finding").first
    telling = finding.locator("pre.telling")
    expect(telling).to_be_hidden()
    finding.locator("summary").click()
    expect(finding).to_have_attribute("open", "")
    expect(telling).to_be_visible()
    expect(telling).to_contain_text(FATAL)
    page.screenshot(path=tmp_path / "investigation.png", full_page=True)

    # Asking: the answer streams in word by word (the page shows it unfinished), then ends.
    web.ollama.enqueue(slow_answer(ANSWER.split(" ")))
    page.evaluate(WATCH_CHAT_JS)
    page.fill("#chat-form textarea[name=message]", "why does it crash?")
    page.click("#chat-form button[type=submit]")
    expect(page.locator("#chat-log .msg.user")).to_have_text("why does it crash?")
    done = page.locator("#chat-log .msg.assistant.done")
    expect(done).to_have_count(1)
    expect(done.locator(".text")).to_have_text(ANSWER)
    seen = [s.strip() for s in page.evaluate("() => window.__answers") if s.strip()]
    partial = [s for s in seen if s != ANSWER]
    assert len(set(partial)) >= 3, seen  # several states before the whole answer
    assert all(ANSWER.startswith(s) for s in partial), seen
    assert web.ollama.requests[-1]["messages"][-1]["content"] == "why does it crash?"
    # The conversation is kept: a reload shows it, rendered by the service.
    page.reload()
    expect(page.locator("#chat-log .msg.assistant.done .text")).to_have_text(ANSWER)

    # Filtering by namespace: only that namespace's rows remain.
    page.click("header a.brand")
    page.wait_for_url(f"{web.url}/")
    expect(page.locator("#filter-box")).to_have_attribute("open", "")  # wide: unfolded
    page.fill("#filters input[name=namespace]", "payments")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**/?*namespace=payments*")
    assert row_ids(page) == {f"inv-{live}"}
    expect(page.locator("#filters input[name=namespace]")).to_have_value("payments")

    assert network.errors == []  # no script error, nothing the CSP blocked

    # Logging out: the pages send to the login form, the API says 401, even to the old
    # session's cookie played back.
    cookies = page.context.cookies()
    page.click("header form.logout button")
    page.wait_for_url(f"{web.url}/login")
    page.goto(f"{web.url}/")
    page.wait_for_url(f"{web.url}/login?next=%2F")
    expect(page.locator("#login input[name=token]")).to_be_visible()
    fetch_status = "async () => (await fetch('/investigations')).status"
    assert page.evaluate(fetch_status) == 401
    page.context.add_cookies(cookies)  # type: ignore[arg-type]
    assert page.evaluate(fetch_status) == 401

    assert network.urls, "the network log recorded nothing"
    assert network.foreign() == []
    page.context.close()


def test_a_phone_width_needs_no_sideways_scrolling(browser, lab):
    web: WebLab = lab["web"]
    # One long unbroken value in each place a page shows one: the alertname (list cell,
    # h1, title), a label (the labels table), an annotation (the summary column).
    huge = {
        **CHECKOUT,
        "labels": {**CHECKOUT["labels"], "alertname": "Kube" + "X" * 600, "pod": "p" * 5000},
        "annotations": {"summary": "s" * 3000, "description": "d" * 5000},
        "fingerprint": "5e5e5e5e5e5e5e5e",
    }
    (long_id,) = web.post([huge], "payments")
    web.wait_final([long_id])
    page, network = new_page(
        browser, lab, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    web.login(page)
    expect(page.locator(f"#inv-{long_id}")).to_be_visible()
    assert overflow(page) <= 1, "the list is wider than a phone"
    # The filters fold away on a phone: the first rows are what the screen shows.
    expect(page.locator("#filters")).to_be_hidden()
    # Read in one step in the page: the live feed may replace a row between two calls.
    top = page.evaluate(
        "() => document.querySelector('#investigations tbody tr').getBoundingClientRect().top"
    )
    assert top < 200
    for ident in (lab["crash"], long_id):
        page.goto(f"{web.url}/investigations/{ident}")
        if ident == lab["crash"]:
            # The sources warning is one short line; the root cause is on the first screen.
            warning = page.locator("#sources-warning > summary")
            expect(warning).to_be_visible()
            assert warning.bounding_box()["height"] < 2 * 22, "the warning is not one line"
            assert page.locator("li.cause").first.bounding_box()["y"] < 844
        for finding in page.locator("details").all():
            finding.locator("summary").first.click()  # open everything: long lines, tables
        expect(page.locator("#chat-form")).to_be_visible()
        assert overflow(page) <= 1, f"the investigation page is wider than a phone ({ident})"
    # A cause lowered for citing nothing that answered says so in normal weight.
    weight = page.evaluate(LOWERED_WEIGHT_JS)
    assert weight == "400", weight
    assert network.foreign() == [] and network.errors == []
    page.context.close()


@pytest.mark.parametrize("scheme", ["dark", "light"])
def test_the_colours_follow_the_system_setting(browser, lab, scheme):
    web: WebLab = lab["web"]
    page, network = new_page(browser, lab, color_scheme=scheme)
    web.login(page)
    for path in ("/", f"/investigations/{lab['crash']}"):
        page.goto(web.url + path)
        background = luminance(page.evaluate(BACKGROUND_JS))
        text = luminance(page.evaluate("() => getComputedStyle(document.body).color"))
        if scheme == "dark":
            assert background < 0.1 and text > 0.4, (path, background, text)
        else:
            assert background > 0.8 and text < 0.2, (path, background, text)
    assert network.foreign() == [] and network.errors == []
    page.context.close()


def test_the_report_reads_without_javascript(browser, lab):
    web: WebLab = lab["web"]
    page, network = new_page(browser, lab, java_script_enabled=False)
    web.login(page, f"/investigations/{lab['crash']}")
    expect(page.locator("#summary")).to_contain_text("KubePodCrashLooping")
    finding = page.locator("li.cause details.finding").first
    finding.locator("summary").click()  # <details> opens without any script
    expect(finding.locator("pre.telling")).to_contain_text(FATAL)
    expect(page.locator("#evidence")).to_contain_text(FATAL)
    # The chat form needs the script, so it stays hidden. (Its <noscript> note is not
    # checked: with scripts switched off by DevTools, chromium still parses <noscript> as
    # if scripting were on, so no browser setting here shows it.)
    expect(page.locator("#chat-form")).to_be_hidden()
    page.goto(f"{web.url}/")
    expect(page.locator(f"#inv-{lab['crash']}")).to_be_visible()
    assert not any("/events/" in u for u in network.urls)
    assert network.foreign() == [] and network.errors == []
    page.context.close()


def test_a_running_investigation_shows_its_status_then_its_report(browser, lab):
    web: WebLab = lab["web"]
    page, network = new_page(browser, lab)
    web.login(page)
    slow = {
        **CHECKOUT,
        "labels": {**CHECKOUT["labels"], "alertname": "KubePodNotReady", "severity": "warning"},
        "fingerprint": "3c9e1f20a4b5d677",
    }
    web.ollama.default = hang(3, investigator)  # the model takes a while to answer
    try:
        (ident,) = web.post([slow], "payments")
        page.goto(f"{web.url}/investigations/{ident}")
        live = page.locator("#live-status")
        expect(live).to_be_visible()
        # Before the model answers: the evidence report once it is in (sources and the
        # lookups made), never the model's timings; one status, its age kept current.
        expect(page.locator("#summary")).to_contain_text(
            re.compile("the report appears here|Evidence report; the model's analysis is pending")
        )
        expect(live).to_have_text(re.compile(r"running for [1-9]\d* s"))
        expect(live).to_have_count(1)
        expect(page.locator("#usage")).to_have_count(0)
        if page.locator("#pending").count():
            expect(page.locator("#sources")).to_have_count(1)
        page.evaluate("() => { window.__marker = 'before'; }")
        # It ends: the page loads the report by itself.
        expect(page.locator("#live-status")).to_have_count(0)
    finally:
        web.ollama.default = investigator
    expect(page.locator("#investigation")).to_have_attribute("data-status", "completed")
    expect(page.locator("#summary")).to_contain_text("KubePodNotReady")
    assert page.evaluate("() => window.__marker") is None  # reloaded, not patched
    assert network.foreign() == [] and network.errors == []
    page.context.close()


def test_the_live_list_keeps_the_first_page_at_its_size(browser, lab):
    web: WebLab = lab["web"]
    page, network = new_page(browser, lab, viewport={"width": 1280, "height": 900})
    web.login(page)
    size = len(web.api("/investigations", limit="500")["investigations"])
    page.goto(f"{web.url}/?limit={size}")
    expect(page.locator("#investigations tbody tr")).to_have_count(size)
    expect(page.locator("#older")).to_have_count(0)
    last = page.locator("#investigations tbody tr").last.get_attribute("id")
    newer = {
        **CHECKOUT,
        "labels": {**CHECKOUT["labels"], "alertname": "KubeDeploymentReplicasMismatch"},
        "fingerprint": "0d0d0d0d0d0d0d0d",
    }
    (ident,) = web.post([newer], "payments")
    expect(page.locator(f"#inv-{ident}")).to_be_visible()
    # Still one page's worth: the oldest row went behind "Older", which leads to it.
    expect(page.locator("#investigations tbody tr")).to_have_count(size)
    expect(page.locator(f"#{last}")).to_have_count(0)
    page.click("#older")
    page.wait_for_url("**/?*before=*")
    assert f"limit={size}" in page.url
    expect(page.locator(f"#{last}")).to_be_visible()
    assert network.foreign() == [] and network.errors == []
    page.context.close()


def test_a_refused_or_failed_question_reads_plainly_and_is_marked_not_sent(browser, lab):
    """Last: it spends the user's chat rate for the next minute."""
    web: WebLab = lab["web"]
    page, network = new_page(browser, lab, viewport={"width": 1280, "height": 900})
    web.login(page, f"/investigations/{lab['crash']}")
    asked = page.locator("#chat-log .msg.user")
    errors = page.locator("#chat-log .msg.error")
    web.ollama.stop_accepting()  # Ollama goes down
    try:
        # The model server is down: a plain line first, the service's detail after it.
        page.fill("#chat-form textarea[name=message]", "is it the config?")
        page.click("#chat-form button[type=submit]")
        expect(errors).to_have_count(1)
        expect(errors.first).to_contain_text(
            "The model server did not answer; the report above is unaffected."
        )
        expect(errors.first.locator(".detail")).to_contain_text("the model server failed")
        expect(asked.last).to_have_class(re.compile(r"\bunsent\b"))

        # Spend the rest of the user's questions for this minute, then ask in the page.
        url = f"{web.url}/investigations/{lab['crash']}/chat"
        auth = {"Authorization": f"Bearer {web.token}"}
        for _ in range(10):
            refused = httpx.post(url, json={"message": "?"}, headers=auth, timeout=30)
            if refused.status_code == 429:
                break
        assert refused.status_code == 429, refused.text
        page.fill("#chat-form textarea[name=message]", "is it the config, then?")
        page.click("#chat-form button[type=submit]")
        expect(errors).to_have_count(2)
        said = errors.last.inner_text()
        assert len(re.findall(r"again in \d+ s", said)) == 1, said  # one retry hint
        assert "try again" not in said, said
        expect(asked.last).to_have_class(re.compile(r"\bunsent\b"))
        expect(asked.last).to_contain_text("not sent")
        # Nothing refused reads as asked: no answered question on the page.
        expect(page.locator("#chat-log .msg.user:not(.unsent)")).to_have_count(
            page.locator("#chat-log .msg.assistant.done").count()
        )
    finally:
        web.ollama.resume()
    # The one error a page logs is chromium's own line for the 429 it was answered.
    assert network.foreign() == []
    assert all("status of 429" in e for e in network.errors), network.errors
    page.context.close()
