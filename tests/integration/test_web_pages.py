"""Each investigation's page as a browser gets it from the real app, for records stored
the way the service stores them (the store's own intake, claim and finish), hostile
alert text included; the list is test_web_list.py's, the live feed test_web_feed.py's.

The browser itself (JavaScript, layout) is tests/integration/test_browser.py's; here is
what a page says without JavaScript, which links it makes and which it refuses."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient

from sre_agent.alerts import Alert
from sre_agent.app import create_app
from sre_agent.models import Investigation
from sre_agent.store import Store
from tests.support.fake_ollama import say

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
HTML = {"Accept": BROWSER}
FATAL = "FATAL: config: required setting SITE_API_UPSTREAM_URL is missing"
ANALYSIS = {
    "summary": "The api pod crash-loops: a required setting is missing.",
    "impact": "The homepage answers 502 for every visitor.",
    "root_causes": [
        {
            "cause": "SITE_API_UPSTREAM_URL is not set in the api deployment.",
            "evidence": [FATAL],
            "evidence_ids": ["E1", "E2"],
            "confidence": "high",
        }
    ],
    "mitigation": ["Set SITE_API_UPSTREAM_URL in the deployment and roll it out."],
    "follow_up_queries": ['rate(http_requests_total{job="homepage"}[5m])'],
    "follow_up_commands": ["kubectl -n homepage rollout history deploy/api"],
}
EVIDENCE = [
    {
        "id": "E1",
        "title": "Logs of api (previous container)",
        "tool": "kubectl_logs",
        "args": {"pod": "api-7d9f8c6b5-x2x4q", "namespace": "homepage", "previous": True},
        "output": f"status: ok\nstarting api\n{FATAL}\nexiting",
    },
    {
        "id": "E2",
        "title": "Restarts of the api container",
        "tool": "promql_query",
        "args": {"query": 'kube_pod_container_status_restarts_total{namespace="homepage"}'},
        "output": "status: ok\n{pod=api} 14",
    },
]
SOURCES = {
    "backends": {
        "prometheus": {
            "name": "Prometheus",
            "state": "answered",
            "answered": 1,
            "ids": ["E2"],
            "graph_base": "http://prometheus.example:9090",
        },
        "kubernetes": {"name": "Kubernetes", "state": "answered", "answered": 1, "ids": ["E1"]},
    }
}
TOOL_CALLS = [
    {"id": "E1", "name": "kubectl_logs", "args": EVIDENCE[0]["args"], "duration_ms": 41.0},
    {"id": "E2", "name": "promql_query", "args": EVIDENCE[1]["args"], "duration_ms": 12.5},
]
USAGE = {"model": "qwen3:4b", "calls": 2, "prompt_tokens": 3100, "completion_tokens": 240}


def firing(
    name: str = "KubePodCrashLooping",
    severity: str = "critical",
    namespace: str = "homepage",
    annotations: dict[str, str] | None = None,
    generator: str = "http://prometheus.example:9090/graph?g0.expr=up%3D%3D0",
) -> Alert:
    return Alert(
        status="firing",
        labels={"alertname": name, "severity": severity, "namespace": namespace},
        annotations=annotations or {"summary": f"{name} in {namespace}"},
        startsAt=datetime.now(UTC),
        generatorURL=generator,
        fingerprint=uuid.uuid4().hex,
    )


def stored(store: Store, status: str = "completed", alert: Alert | None = None, **parts: Any):
    """A record as the service stores one: taken in, claimed, finished with ``parts``."""
    record, _ = store.create_or_get(alert or firing())
    if status == "queued":
        return record
    store.claim(record.id)
    if status == "running":
        return store.get(record.id)
    done = Investigation.model_validate(
        {**store.get(record.id).model_dump(), "status": status, **parts}  # type: ignore[union-attr]
    )
    store.finish(done)
    return store.get(record.id)


def completed(store: Store, alert: Alert | None = None) -> Investigation:
    return stored(
        store,
        "completed",
        alert,
        analysis=ANALYSIS,
        evidence=EVIDENCE,
        sources=SOURCES,
        tool_calls=TOOL_CALLS,
        llm_usage=USAGE,
        duration_s=7.5,
    )


def soup(response: Any) -> BeautifulSoup:
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    return BeautifulSoup(response.text, "html.parser")


def text_of(node: Any) -> str:
    return " ".join(node.get_text(" ").split())


@pytest.fixture
def client(make_settings):
    with TestClient(create_app(make_settings())) as client:
        yield client


@pytest.fixture
def store(client) -> Store:
    return client.app.state.services.store  # type: ignore[no-any-return]


# --- the investigation page ---------------------------------------------------------


def test_a_completed_investigation_reads_as_its_report(client, store):
    record = completed(store)

    page = soup(client.get(f"/investigations/{record.id}", headers=HTML))

    assert ANALYSIS["summary"] in text_of(page.select_one("section#summary"))
    assert ANALYSIS["impact"] in text_of(page.select_one("section#summary"))
    (cause,) = page.select("li.cause")
    assert ANALYSIS["root_causes"][0]["cause"] in text_of(cause)
    assert "confidence: high" in text_of(cause)
    findings = {d["data-evidence-id"]: d for d in cause.select("details.finding")}
    assert set(findings) == {"E1", "E2"}
    assert FATAL in text_of(findings["E1"])  # the telling line beside the claim
    assert "kubectl logs api-7d9f8c6b5-x2x4q -n homepage --previous" in text_of(findings["E1"])
    (graph,) = findings["E2"].select("a.graph-link")
    assert graph["href"].startswith("http://prometheus.example:9090/graph?g0.expr=")
    assert "kube_pod_container_status_restarts_total" in graph["href"]
    assert ANALYSIS["mitigation"][0] in text_of(page.select_one("#mitigation"))
    follow = page.select_one("#follow-up")
    assert ANALYSIS["follow_up_commands"][0] in text_of(follow)
    assert follow.select_one("a.graph-link")["href"].startswith("http://prometheus.example:9090/")
    sources = text_of(page.select_one("#sources"))
    assert "Prometheus answered" in sources and "Kubernetes answered" in sources
    evidence = page.select_one("#evidence-E1")
    assert FATAL in evidence.select_one("pre").get_text()
    calls = text_of(page.select_one("#tool-calls"))
    assert "kubectl_logs" in calls and "41 ms" in calls and "promql_query" in calls
    usage = text_of(page.select_one("#usage"))
    assert "qwen3:4b" in usage and "3100 prompt + 240 completion tokens" in usage
    assert "7.5 s" in usage
    labels = text_of(page.select_one("#labels"))
    assert "namespace homepage" in labels and "severity critical" in labels
    source = page.select_one("#alert a[href^='http://prometheus.example']")
    assert source is not None and "graph?g0.expr=up" in source["href"]
    assert page.select_one("span#live-status") is None  # final: no live status
    form = page.select_one("section#chat form#chat-form")
    assert form.select_one("textarea[name=message]") and form.select_one("button[type=submit]")
    assert page.select_one("meta[name=csrf-token]") is not None
    assert page.select_one("a.brand")["href"] == "/"


@pytest.mark.parametrize("status", ["queued", "running"])
def test_an_active_investigation_shows_its_live_status_and_no_chat_yet(client, store, status):
    record = stored(store, status)

    page = soup(client.get(f"/investigations/{record.id}", headers=HTML))

    # One status, with how long it has been in it; nothing that is not known yet.
    assert re.fullmatch(rf"{status} for \d+ s", text_of(page.select_one("span#live-status")))
    assert text_of(page).count(status) == 1 + text_of(page.select_one("title")).count(status)
    for section in ("sources", "usage", "tool-calls", "evidence"):
        assert page.select_one(f"section#{section}") is None, section
    assert "Not recorded" not in page.get_text()
    article = page.select_one("article#investigation")
    assert article["data-status"] == status
    assert article["data-feed"].startswith(f"/events/investigations?id={record.id}&after=")
    assert "the report appears here when the investigation ends" in text_of(
        page.select_one("section#summary")
    )
    assert page.select_one("#chat-form") is None
    assert "opens when the investigation has finished" in text_of(page.select_one("#chat"))


def test_a_failed_investigation_says_why_it_has_no_analysis(client, store):
    reason = "the model server failed (http://127.0.0.1:1): connection refused"
    record = stored(store, "failed", status_reason=reason)

    page = soup(client.get(f"/investigations/{record.id}", headers=HTML))

    summary = text_of(page.select_one("section#summary"))
    assert f"No analysis from the model (failed: {reason})" in summary
    assert text_of(page).count(reason) == 1  # said once, not in a line above as well
    assert page.select("li.cause") == []
    assert "None gathered" in text_of(page.select_one("#evidence"))
    assert page.select_one("#chat-form") is not None  # one may still ask about it


def test_a_degraded_investigation_shows_the_model_text_and_the_evidence(client, store):
    record = stored(
        store,
        "degraded",
        status_reason="the model gave no valid analysis",
        raw_text="I think the <b>api</b> pod is broken",
        evidence=EVIDENCE[:1],
        sources={"backends": {"prometheus": {"name": "Prometheus", "state": "not configured"}}},
    )

    response = client.get(f"/investigations/{record.id}", headers=HTML)
    page = soup(response)

    summary = page.select_one("section#summary")
    assert "No analysis from the model (degraded" in text_of(summary)
    assert summary.select_one("pre").get_text() == "I think the <b>api</b> pod is broken"
    assert "<b>api</b>" not in response.text  # the model's markup stays text
    # The warning opens the page in a few words; the whole sentence is folded under it.
    warning = page.select_one("details#sources-warning")
    assert text_of(warning.summary) == "⚠ Prometheus not configured: the alert's text alone"
    assert "Prometheus is not configured" in text_of(warning)
    assert text_of(page).count("the model gave no valid analysis") == 1
    assert FATAL in page.select_one("#evidence-E1 pre").get_text()


def test_hostile_alert_text_stays_text_and_only_web_urls_become_links(client, store):
    hostile = {
        "summary": '<script>alert("summary")</script>',
        "description": '"><img src=x onerror=alert(1)>',
        "runbook_url": "javascript:alert(document.cookie)",
        "dashboard_url": "https://grafana.example/d/abc?var=<x>",
    }
    alert = firing(
        name="Evil<script>alert(2)</script>",
        annotations=hostile,
        generator="javascript:alert(3)//graph",
    )
    record = completed(store, alert)

    response = client.get(f"/investigations/{record.id}", headers=HTML)
    page = soup(response)

    assert page.find("script", string=True) is None  # no script with content: none inline
    assert [s["src"] for s in page.find_all("script")] == ["/static/web/app.js"]
    assert page.find("img") is None
    assert "<script>alert" not in response.text and "<img" not in response.text
    annotations = text_of(page.select_one("#annotations"))
    assert hostile["summary"] in annotations and hostile["description"] in annotations
    assert "Evil<script>alert(2)</script>" in text_of(page.select_one("h1"))
    hrefs = [a["href"] for a in page.find_all("a", href=True)]
    assert not [h for h in hrefs if not h.startswith(("/", "#", "http://", "https://"))], hrefs
    assert "https://grafana.example/d/abc?var=<x>" in hrefs  # a web URL is a link (escaped)
    alert_facts = page.select_one("#alert dl")
    assert "javascript:alert(document.cookie) (not a web link)" in text_of(alert_facts)
    assert "javascript:alert(3)//graph (not a web link)" in text_of(alert_facts)
    assert page.select_one("#chat")["data-url"] == f"/investigations/{record.id}/chat"


def test_the_page_has_its_security_headers(client, store):
    record = completed(store)
    for path in ("/", f"/investigations/{record.id}"):
        response = client.get(path, headers=HTML)
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        # No inline style or script for the CSP to block: the page works under it.
        assert 'style="' not in response.text and " on" + "click=" not in response.text


def test_the_chat_history_is_on_the_page_without_javascript(client, store, ollama):
    record = completed(store)
    ollama.enqueue(say("The api container exits: SITE_API_UPSTREAM_URL is not set."))
    asked = client.post(f"/investigations/{record.id}/chat", json={"message": "why <b>?"})
    assert asked.status_code == 200, asked.text

    page = soup(client.get(f"/investigations/{record.id}", headers=HTML))

    messages = page.select("#chat-log div.msg")
    assert [m["class"] for m in messages] == [["msg", "user"], ["msg", "assistant", "done"]]
    assert text_of(messages[0]) == "why <b>?"
    assert text_of(messages[1]) == "The api container exits: SITE_API_UPSTREAM_URL is not set."


# --- JSON or HTML ---------------------------------------------------------------------


def test_a_browser_gets_the_page_and_every_other_client_json(client, store):
    record = completed(store)
    path = f"/investigations/{record.id}"

    for accept in (None, "*/*", "application/json", "application/json, text/html;q=0.5"):
        headers = {"Accept": accept} if accept else {}
        response = client.get(path, headers=headers)
        assert response.headers["content-type"] == "application/json", accept
        assert response.json()["id"] == record.id
    for accept in (BROWSER, "text/html", "text/html, application/json;q=0.9"):
        assert client.get(path, headers={"Accept": accept}).text.startswith("<!doctype html>")
    as_json = client.get(f"{path}?format=json", headers=HTML)
    assert as_json.json()["analysis"]["summary"] == ANALYSIS["summary"]
    markdown = client.get(f"{path}?format=markdown", headers=HTML)
    assert markdown.headers["content-type"].startswith("text/markdown")


def test_an_unknown_investigation_is_a_404_page_for_a_browser_and_json_for_the_api(client):
    page = client.get("/investigations/does-not-exist", headers=HTML)
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "no investigation with id 'does-not-exist'" in text_of(
        BeautifulSoup(page.text, "html.parser").select_one("#error")
    )
    assert "content-security-policy" in page.headers

    api = client.get("/investigations/does-not-exist")
    assert api.status_code == 404
    assert api.json() == {"error": "no investigation with id 'does-not-exist'"}


def test_the_openapi_document_says_a_browser_gets_html(client):
    doc = client.get("/openapi.json").json()
    answers = doc["paths"]["/investigations/{ident}"]["get"]["responses"]
    assert "text/html" in answers["200"]["content"]
    assert "text/html" in answers["404"]["content"]
    params = {p["name"] for p in doc["paths"]["/investigations"]["get"]["parameters"]}
    assert "text" in params
    assert "/" not in doc["paths"] and "/events/investigations" not in doc["paths"]
