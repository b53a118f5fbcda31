"""The incident on the pages and in the report, as a browser and ``?format=markdown`` get
them from the real app: the incident page (its head's analysis, each alert's part and why
it joined), the investigation page of an alert in an incident, the list's rows, and the
evidence report of an alert still waiting for the model."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from sre_agent.app import create_app
from sre_agent.models import Evidence
from sre_agent.store import Store
from tests.integration.test_incidents_api import (
    NODE_ANALYSIS,
    alert,
    arrive,
    node_alert,
    node_incident,
    pod_alert,
)
from tests.integration.test_intake_store import CANARY
from tests.integration.test_web_pages import EVIDENCE, HTML, soup, text_of


@pytest.fixture
def client(make_settings):
    with TestClient(create_app(make_settings())) as client:
        yield client


@pytest.fixture
def store(client) -> Store:
    return client.app.state.services.store  # type: ignore[no-any-return]


def test_the_incident_page_shows_the_heads_analysis_and_each_alerts_part(client, store):
    head, linked = node_incident(store)

    page = soup(client.get(f"/incidents/{head.incident_id}", headers=HTML))

    assert "KubeNodeNotReady" in text_of(page.select_one("h1"))
    assert "open" in text_of(page.select_one("header .meta"))
    summary = page.select_one("section#summary")
    assert NODE_ANALYSIS["summary"] in text_of(summary)
    assert summary.select_one("a.head-link")["href"] == f"/investigations/{head.id}"
    (cause,) = page.select("li.cause")
    assert NODE_ANALYSIS["root_causes"][0]["cause"] in text_of(cause)
    assert {d["data-evidence-id"] for d in cause.select("details.finding")} == {"E1", "E2"}
    # "The whole finding" is on the head's own page (this one lists no evidence).
    assert cause.select_one("details.finding a[href*='#evidence-']")["href"] == (
        f"/investigations/{head.id}#evidence-E1"
    )
    rows = {r["id"]: r for r in page.select("#members tbody tr")}
    assert list(rows) == [f"member-{linked.id}", f"member-{head.id}"]
    top, member = rows[f"member-{head.id}"], rows[f"member-{linked.id}"]
    assert top["data-role"] == "head" and "completed" in text_of(top)
    assert head.joined[0].reason in text_of(top.select_one("td.why"))  # it joined the pod's
    assert member["data-role"] == "linked"
    why = member.select_one("td.why")
    assert text_of(why.select_one("p.joined")) == "It opened the incident."  # it came first
    assert why.select_one("p.explained a")["href"] == f"/investigations/{head.id}"
    assert text_of(why.select_one("p.explained")) == "Explained by KubeNodeNotReady"
    links = {a["href"] for a in page.select("#members a.inv-link")}
    assert links == {f"/investigations/{head.id}", f"/investigations/{linked.id}"}


def test_the_page_of_a_linked_alert_links_its_incident_and_the_head_that_explains_it(client, store):
    head, linked = node_incident(store)

    page = soup(client.get(f"/investigations/{linked.id}", headers=HTML))

    incident = page.select_one("p#incident")
    assert incident.select_one("a")["href"] == f"/incidents/{head.incident_id}"
    assert "KubeNodeNotReady" in text_of(incident) and "(linked)" in text_of(incident)
    assert page.select_one("ul#joined") is None  # it came first: it opened the incident
    explained = page.select_one("p#explained-by")
    assert text_of(explained) == "Explained by KubeNodeNotReady"
    assert explained.select_one("a")["href"] == f"/investigations/{head.id}"
    summary = page.select_one("section#summary")
    assert NODE_ANALYSIS["summary"] in text_of(summary.select_one("blockquote"))
    assert "No analysis from the model" not in text_of(summary)
    # The head's own page names its incident and its part in it, and no "explained by".
    head_page = soup(client.get(f"/investigations/{head.id}", headers=HTML))
    assert "(head)" in text_of(head_page.select_one("p#incident"))
    assert head.joined[0].reason in text_of(head_page.select_one("ul#joined"))
    assert head_page.select_one("p#explained-by") is None


def test_the_markdown_report_names_the_incident_and_the_head(client, store):
    head, linked = node_incident(store)

    report = client.get(f"/investigations/{linked.id}", params={"format": "markdown"}).text

    title = store.get_incident(head.incident_id).title
    assert f"**Incident:** {title} ({head.incident_id})" in report
    assert f"**Linked:** explained by KubeNodeNotReady ({head.id})" in report
    assert "No analysis from the model" not in report and "**Joined:**" not in report
    head_report = client.get(f"/investigations/{head.id}", params={"format": "markdown"}).text
    assert f"**Incident:** {title}" in head_report and "explained by" not in head_report
    assert f"**Joined:** {head.joined[0].reason}" in head_report


def test_a_waiting_alert_shows_its_evidence_report_before_the_models_analysis(client, store):
    pod_firing, walked = pod_alert(node="n9")
    record = arrive(store, pod_firing, walked)
    evidence = [Evidence.model_validate(e) for e in EVIDENCE]
    store.save_evidence(  # its findings, as the evidence stage stores them
        record.id, evidence, [], record.sources, walked, record.llm_usage
    )

    page = soup(client.get(f"/investigations/{record.id}", headers=HTML))
    report = client.get(f"/investigations/{record.id}", params={"format": "markdown"}).text

    assert page.select_one("#live-status .state").get_text() == "queued"
    assert "the model's analysis is pending" in text_of(page.select_one("section#summary"))
    assert page.select_one("#evidence-E1") is not None and page.select_one("section#sources")
    assert "(waiting)" in text_of(page.select_one("p#incident"))
    assert report.startswith("# KubePodNotReady (warning)\n\n**Evidence report; the model's")
    assert "## Evidence gathered" in report and "starting api" in report
    incident = soup(client.get(f"/incidents/{record.incident_id}", headers=HTML))
    assert "No analysis yet" in text_of(incident.select_one("section#summary"))
    assert incident.select_one(f"tr#member-{record.id}")["data-role"] == "waiting"


def test_the_list_rows_link_their_incident_and_say_linked(client, store):
    head, linked = node_incident(store)
    alone, _ = store.create_or_get(alert("Watchdog", "info"))  # no evidence yet: no incident

    page = soup(client.get("/", headers=HTML))

    row = page.select_one(f"tr#inv-{linked.id}")
    assert row["data-status"] == "linked"
    assert text_of(row.select_one("span.badge")) == "linked"
    assert row.select_one("a.incident-link")["href"] == f"/incidents/{head.incident_id}"
    assert page.select_one(f"tr#inv-{alone.id} a.incident-link") is None


def test_no_secret_reaches_the_incident_or_its_pages(client, store):
    leaky = node_alert(f"n-{CANARY}")
    leaky.labels["alertname"] = f"Leak {CANARY}"
    leaky.annotations["description"] = f"postgres://app:{CANARY}@db:5432/shop"
    record = arrive(store, leaky)
    other = arrive(store, node_alert(f"n-{CANARY}"))

    answers = [
        client.get(f"/incidents/{record.incident_id}", headers=HTML),
        client.get(f"/incidents/{record.incident_id}"),
        client.get("/incidents"),
        client.get(f"/investigations/{record.id}", headers=HTML),
        client.get(f"/investigations/{other.id}", params={"format": "markdown"}),
        client.get("/", headers=HTML),
    ]

    for answer in answers:
        assert answer.status_code == 200, answer.url
        assert CANARY not in answer.text, answer.url
        assert CANARY[4:] not in answer.text, answer.url
