"""``GET /incidents`` and ``GET /incidents/{id}`` on the real app, for incidents the
store's own write path makes: intake, the evidence report, the join, the head's run and
the alerts its analysis explains (what the worker does, step by step). The pages are
test_web_incident.py's."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sre_agent.alerts import Alert
from sre_agent.app import create_app
from sre_agent.models import Investigation, LlmUsage, Sources, WalkedObject
from sre_agent.store import Store
from tests.integration.test_web_pages import ANALYSIS, EVIDENCE, SOURCES, TOOL_CALLS

WINDOW = 900.0
NODE_ANALYSIS = {
    **ANALYSIS,
    "summary": "Node n1 stopped reporting: its kubelet is down, so its pods are not ready.",
}


def alert(name: str, severity: str = "warning", **labels: str) -> Alert:
    return Alert(
        status="firing",
        labels={"alertname": name, "severity": severity, **labels},
        annotations={"summary": f"{name} fires"},
        startsAt=datetime.now(UTC),
        fingerprint=uuid.uuid4().hex,
    )


def node_alert(node: str = "n1") -> Alert:
    return alert("KubeNodeNotReady", "critical", node=node)


def pod_alert(
    pod: str = "web-1", node: str = "n1", namespace: str = "shop"
) -> tuple[Alert, list[WalkedObject]]:
    """A pod's alert and what its evidence walk reached: the pod, then its node."""
    walked = [
        WalkedObject(kind="pod", name=pod, namespace=namespace, why="the alert's pod"),
        WalkedObject(
            kind="node",
            name=node,
            depth=1,
            why=f"Node of pod {namespace}/{pod}",
            parent=f"pod/{namespace}/{pod}",
        ),
    ]
    return alert("KubePodNotReady", namespace=namespace, pod=pod), walked


def arrive(store: Store, firing: Alert, objects: list[WalkedObject] | None = None) -> Investigation:
    """An alert taken in, its evidence report stored and its incident joined."""
    record, _ = store.create_or_get(firing)
    if objects is None:
        node = firing.labels.get("node")
        objects = [WalkedObject(kind="node", name=node, why="the alert's node")] if node else []
    store.save_evidence(
        record.id,
        [],
        [],
        Sources.model_validate(SOURCES),
        objects,
        LlmUsage(evidence_seconds=0.4),
    )
    joined = store.join_incident(record.id, WINDOW)
    assert joined is not None and joined.incident_id is not None
    return joined


def head_run(store: Store, record: Investigation, analysis: dict[str, Any]) -> list[Investigation]:
    """The head's model run, as the worker makes it: chosen, claimed, finished; the
    members its analysis explains are linked."""
    assert record.incident_id is not None
    store.set_head(record.incident_id, record.id)
    claimed = store.claim(record.id)
    assert claimed is not None
    done = Investigation.model_validate(
        {
            **claimed.model_dump(),
            "status": "completed",
            "analysis": analysis,
            "evidence": EVIDENCE,
            "tool_calls": TOOL_CALLS,
            "duration_s": 3.0,
        }
    )
    store.finish(done)
    return store.head_finished(record.id)


def node_incident(store: Store) -> tuple[Investigation, Investigation]:
    """A node down and a pod on it not ready: one incident, the node's alert its head,
    the pod's linked to it. (head, linked), as stored now."""
    pod_firing, walked = pod_alert()
    pod = arrive(store, pod_firing, walked)
    node = arrive(store, node_alert())
    assert node.incident_id == pod.incident_id, (node.joined, pod.joined)
    linked = head_run(store, node, NODE_ANALYSIS)
    assert [r.id for r in linked] == [pod.id]
    head, member = store.get(node.id), store.get(pod.id)
    assert head is not None and member is not None
    return head, member


@pytest.fixture
def client(make_settings):
    with TestClient(create_app(make_settings())) as client:
        yield client


@pytest.fixture
def store(client) -> Store:
    return client.app.state.services.store  # type: ignore[no-any-return]


def test_an_incident_names_its_head_and_the_alerts_its_analysis_explains(client, store):
    head, linked = node_incident(store)

    answer = client.get(f"/incidents/{head.incident_id}")

    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    incident = answer.json()
    assert incident["status"] == "open" and incident["head_id"] == head.id
    assert "KubeNodeNotReady" in incident["title"]
    assert incident["analysis"]["summary"] == NODE_ANALYSIS["summary"]
    assert incident["explains"] == [linked.id]
    roles = {a["investigation_id"]: a for a in incident["alerts"]}
    assert [a["investigation_id"] for a in incident["alerts"]] == [linked.id, head.id]  # arrival
    assert roles[head.id]["role"] == "head" and roles[head.id]["status"] == "completed"
    assert roles[head.id]["summary"] == NODE_ANALYSIS["summary"]
    member = roles[linked.id]
    assert member["role"] == "linked" and member["status"] == "linked"
    assert member["explained_by"] == head.id
    assert member["evidence_at"] and member["summary"].startswith("explained by the analysis of")
    # The records themselves say it too.
    record = client.get(f"/investigations/{linked.id}").json()
    assert record["incident_id"] == head.incident_id and record["explained_by"] == head.id


def test_a_queued_member_waits_and_the_list_pages_newest_first(client, store):
    first = arrive(store, node_alert("n1"))
    second = arrive(store, node_alert("n2"))  # another node: another incident
    pod_firing, walked = pod_alert(node="n3")
    third = arrive(store, pod_firing, walked)
    assert len({first.incident_id, second.incident_id, third.incident_id}) == 3

    page = client.get("/incidents", params={"limit": 2}).json()

    assert [i["id"] for i in page["incidents"]] == [third.incident_id, second.incident_id]
    assert page["count"] == 2 and page["next_before"] == second.incident_id
    assert page["next"] == f"/incidents?limit=2&before={second.incident_id}"
    (waiting,) = page["incidents"][0]["alerts"]
    assert waiting["role"] == "waiting" and waiting["status"] == "queued"
    assert page["incidents"][0]["summary"] is None  # no analysis yet
    rest = client.get(page["next"]).json()
    assert [i["id"] for i in rest["incidents"]] == [first.incident_id]
    assert rest["next"] is None and rest["next_before"] is None


def test_an_incident_resolves_with_its_last_alert_and_the_status_filter_finds_it(client, store):
    node_firing = node_alert("n7")
    resolved = arrive(store, node_firing)
    still = arrive(store, node_alert("n8"))
    store.mark_resolved(node_firing.model_copy(update={"status": "resolved"}))

    done = client.get("/incidents", params={"status": "resolved"}).json()
    open_ = client.get("/incidents", params={"status": "open"}).json()

    assert [i["id"] for i in done["incidents"]] == [resolved.incident_id]
    assert done["incidents"][0]["status"] == "resolved" and done["incidents"][0]["resolved_at"]
    assert done["incidents"][0]["alerts"][0]["alert_status"] == "resolved"
    assert [i["id"] for i in open_["incidents"]] == [still.incident_id]


def test_an_unknown_incident_is_a_404_that_says_so(client):
    answer = client.get("/incidents/nope")
    assert answer.status_code == 404
    assert answer.json() == {"error": "no incident with id 'nope'"}
    page = client.get("/incidents/nope", headers={"Accept": "text/html"})
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "no incident with id" in page.text


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({"status": "closed"}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"before": "gone"}, "before: no incident with id 'gone'"),
    ],
)
def test_bad_list_parameters_are_a_422_that_names_them(client, query, says):
    answer = client.get("/incidents", params=query)
    assert answer.status_code == 422, answer.text
    assert says in answer.json()["error"]


def test_the_incidents_need_credentials_like_the_investigations(make_settings):
    token = "alice-" + secrets.token_urlsafe(24)
    settings = make_settings(api_tokens=f"alice={token}", session_secret="k" * 32)
    with TestClient(create_app(settings)) as secured:
        store = secured.app.state.services.store
        record = arrive(store, node_alert())
        for path in ("/incidents", f"/incidents/{record.incident_id}"):
            refused = secured.get(path)
            assert refused.status_code == 401, path
            assert refused.json()["error"].startswith("authentication required")
            wrong = secured.get(path, headers={"Authorization": f"Bearer {token[:-1]}"})
            assert wrong.status_code == 401, path
            right = secured.get(path, headers={"Authorization": f"Bearer {token}"})
            assert right.status_code == 200, path
