"""The webhook as Alertmanager and a careless client see it: every bad request
gets a 4xx naming the problem, good ones get a 202 at once, and repeats are
recognised."""

from __future__ import annotations

import copy
import json
import threading

import pytest
from fastapi.testclient import TestClient

from sre_agent.app import create_app
from tests.conftest import EXAMPLES
from tests.support.model_scripts import investigator

FIRING = json.loads((EXAMPLES / "group-firing-homepage.json").read_text())
RESOLVED = json.loads((EXAMPLES / "group-resolved-homepage.json").read_text())
TOKEN = "tok-" + "x" * 28
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@pytest.fixture
def client(make_settings, ollama):
    ollama.default = investigator
    with TestClient(create_app(make_settings(webhook_token=TOKEN))) as client:
        yield client


@pytest.fixture
def solo(make_settings, ollama):
    """Each alert an incident of its own (SRE_AGENT_INCIDENTS=false): the pod alert of the
    group gets its own run, which these tests read."""
    ollama.default = investigator
    with TestClient(create_app(make_settings(webhook_token=TOKEN, incidents=False))) as client:
        yield client


def _body(mutate=None) -> bytes:
    body = copy.deepcopy(FIRING)
    if mutate:
        mutate(body)
    return json.dumps(body).encode()


BAD_BODIES = [
    ("empty body", b"", 400, "malformed JSON"),
    ("not JSON", b"{alerts: [", 400, "malformed JSON"),
    ("not UTF-8", b"\xff\xfe{}", 400, "malformed JSON"),
    ("JSON array", b"[]", 422, "JSON object"),
    ("JSON string", b'"firing"', 422, "JSON object"),
    ("wrong version", _body(lambda b: b.update(version="3")), 422, "version"),
    ("no alerts", _body(lambda b: b.pop("alerts")), 422, "alerts"),
    ("alerts not a list", _body(lambda b: b.update(alerts={"a": 1})), 422, "alerts"),
    ("no status", _body(lambda b: b.pop("status")), 422, "status"),
    ("alert without labels", _body(lambda b: b["alerts"][0].pop("labels")), 422, "alerts.0.labels"),
    ("label not a string", _body(lambda b: b["alerts"][0]["labels"].update(x=1)), 422, "labels.x"),
    ("no alertname", _body(lambda b: b["alerts"][1]["labels"].pop("alertname")), 422, "alertname"),
    ("bad startsAt", _body(lambda b: b["alerts"][0].update(startsAt="soon")), 422, "startsAt"),
    ("no fingerprint", _body(lambda b: b["alerts"][2].pop("fingerprint")), 422, "fingerprint"),
    ("bad alert status", _body(lambda b: b["alerts"][0].update(status="on")), 422, "status"),
]


@pytest.mark.parametrize(
    ("body", "code", "message"), [b[1:] for b in BAD_BODIES], ids=[b[0] for b in BAD_BODIES]
)
def test_bad_bodies_get_a_4xx_that_says_why_and_store_nothing(client, body, code, message):
    response = client.post(
        "/webhook/alert", content=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == code, response.text
    assert message in response.json()["error"]
    assert "Traceback" not in response.text
    assert client.get("/investigations").json()["count"] == 0


def test_bad_query_parameter_is_a_4xx(client):
    response = client.post("/webhook/alert?wait=maybe", content=_body(), headers=AUTH)
    assert response.status_code == 422
    assert "wait" in response.json()["error"]


def test_body_over_the_limit_is_413(client):
    huge = _body(lambda b: b["commonAnnotations"].update(x="y" * (1024 * 1024)))
    response = client.post("/webhook/alert", content=huge, headers=AUTH)
    assert response.status_code == 413
    assert "limit" in response.json()["error"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": f"Bearer {TOKEN}x"},
    ],
)
def test_token_is_required(client, headers):
    response = client.post("/webhook/alert", content=_body(), headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert client.get("/investigations").json()["count"] == 0


def test_firing_group_is_accepted_at_once_and_deduplicated(client, ollama):
    # The model answers only once the gate opens: a 202 before that never waited for it.
    gate, held_for_good = threading.Event(), []

    def gated(request):
        if not gate.wait(60):
            held_for_good.append(request)
        return investigator(request)

    ollama.default = gated
    try:
        first = client.post("/webhook/alert", content=_body(), headers=AUTH)
    finally:
        gate.set()
    assert held_for_good == []
    assert first.status_code == 202
    body = first.json()
    assert body["service"] == "sre-agent" and body["message"] and body["timestamp"]
    by_name = {r["alert_name"]: r for r in body["results"]}
    assert set(by_name) == {
        "KubeDeploymentReplicasMismatch",
        "KubePodCrashLooping",
        "CPUThrottlingHigh",
    }
    # CPUThrottlingHigh is severity info: not investigated.
    assert by_name["CPUThrottlingHigh"]["status"] == "skipped"
    assert by_name["CPUThrottlingHigh"]["investigation_id"] is None
    for name in ("KubeDeploymentReplicasMismatch", "KubePodCrashLooping"):
        assert by_name[name]["status"] == "queued" and by_name[name]["duplicate"] is False
        assert by_name[name]["fingerprint"] and by_name[name]["severity"] == "warning"

    # The same group again (repeat_interval, or the second HA Alertmanager).
    again = client.post("/webhook/alert", content=_body(), headers=AUTH).json()
    for result in again["results"]:
        if result["alert_name"] != "CPUThrottlingHigh":
            assert result["investigation_id"] == by_name[result["alert_name"]]["investigation_id"]
            assert result["duplicate"] is True
    listing = client.get("/investigations").json()
    assert listing["count"] == 2

    # wait=true on a third delivery returns the finished analyses.
    waited = client.post("/webhook/alert?wait=true", content=_body(), headers=AUTH).json()
    crash = next(r for r in waited["results"] if r["alert_name"] == "KubePodCrashLooping")
    rollout = next(
        r for r in waited["results"] if r["alert_name"] == "KubeDeploymentReplicasMismatch"
    )
    # The pod is the deployment's: one incident, the deployment's analysis explains both.
    assert rollout["status"] == "completed"
    assert crash["status"] == "linked"
    assert crash["explained_by"] == rollout["investigation_id"]
    assert "# KubePodCrashLooping" in crash["analysis"]
    assert "# KubeDeploymentReplicasMismatch" in crash["analysis"]
    assert "## Likely root cause" in crash["analysis"]
    assert client.get("/investigations").json()["count"] == 2


def test_resolved_delivery_marks_the_investigation(solo):
    client = solo
    first = client.post("/webhook/alert?wait=true", content=_body(), headers=AUTH).json()
    ident = next(
        r["investigation_id"] for r in first["results"] if r["alert_name"] == "KubePodCrashLooping"
    )
    resolved = client.post("/webhook/alert", content=json.dumps(RESOLVED), headers=AUTH)
    assert resolved.status_code == 202
    result = next(r for r in resolved.json()["results"] if r["alert_name"] == "KubePodCrashLooping")
    assert result["status"] == "resolved" and result["investigation_id"] == ident
    record = client.get(f"/investigations/{ident}").json()
    assert record["alert_status"] == "resolved"
    assert record["resolved_at"].startswith("2026-11-27T00:04:59")
    assert record["status"] == "completed"  # the analysis stays


def test_resolved_before_start_is_not_investigated(make_settings, ollama):
    # Two workers' worth of queue, but the model hangs on the first alert.
    from tests.support.fake_ollama import hang

    ollama.default = hang(5)
    with TestClient(create_app(make_settings(webhook_token=TOKEN))) as client:
        first = client.post("/webhook/alert", content=_body(), headers=AUTH).json()
        client.post("/webhook/alert", content=json.dumps(RESOLVED), headers=AUTH)
        statuses = {
            r["alert_name"]: client.get(f"/investigations/{r['investigation_id']}").json()
            for r in first["results"]
            if r["investigation_id"]
        }
    queued_one = statuses["KubePodCrashLooping"]  # second in the group: still queued
    assert queued_one["status"] == "cancelled"
    assert "resolved before" in queued_one["status_reason"]


def test_read_api(solo):
    client = solo
    client.post("/webhook/alert?wait=true", content=_body(), headers=AUTH)
    listing = client.get("/investigations", params={"alertname": "KubePodCrashLooping"}).json()
    assert listing["count"] == 1
    ident = listing["investigations"][0]["id"]
    record = client.get(f"/investigations/{ident}").json()
    assert record["alert"]["labels"]["pod"] == "bruno-site-api-7d9f8c6b5-x2x4q"
    assert record["llm_usage"]["calls"] == 1
    assert record["llm_usage"]["prompt_tokens"] > 0
    calls = {(c["name"], c["args"].get("kind")) for c in record["tool_calls"]}
    assert {("kubectl_describe", "pod"), ("kubectl_logs", None)} <= calls
    assert all(c["duration_ms"] >= 0 and c["output_chars"] > 0 for c in record["tool_calls"])
    markdown = client.get(f"/investigations/{ident}", params={"format": "markdown"})
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert "SITE_API_UPSTREAM_URL" in markdown.text
    assert client.get("/investigations/nope").status_code == 404
    assert client.get("/investigations", params={"status": "weird"}).status_code == 422
    assert client.get("/investigations", params={"limit": 0}).status_code == 422
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["database"]["ok"] and body["ollama"]["ok"] and body["kubernetes"]["ok"]
    assert body["prometheus"]["ok"] is False  # nothing listens there in this test


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_body(lambda b: b["alerts"][0].update(startsAt="2026-11-26T23:48:56")), "timezone"),
        (_body(lambda b: b["alerts"][0].update(endsAt="2024-01-02T00:00:00")), "timezone"),
        (_body(lambda b: b["alerts"][0].update(startsAt="0001-01-01T00:00:00+01:00")), "range"),
        (b"[" * 100_000 + b"]" * 100_000, "malformed JSON"),
        (b'{"version": "4", "x": ' + b"9" * 5000 + b"}", "malformed JSON"),
    ],
    ids=["naive-startsAt", "naive-endsAt", "year-1-offset", "deep-nesting", "huge-number"],
)
def test_hostile_bodies_are_4xx_too(client, body, message):
    response = client.post("/webhook/alert", content=body, headers=AUTH)
    assert 400 <= response.status_code < 500, response.text
    assert message in response.json()["error"]


def test_token_with_a_trailing_newline_still_matches(make_settings):
    # A Secret created with --from-file ends in a newline; Alertmanager's credentials_file
    # is read and trimmed, so the check must compare trimmed tokens.
    settings = make_settings(webhook_token=TOKEN + "\n")
    with TestClient(create_app(settings)) as client:
        response = client.post("/webhook/alert", content=_body(), headers=AUTH)
    assert response.status_code == 202


def test_readyz_does_not_show_credentials_in_urls(make_settings):
    settings = make_settings(prometheus_url="http://admin:s3cretpw@127.0.0.1:1")
    with TestClient(create_app(settings)) as client:
        body = client.get("/readyz").text
    assert "s3cretpw" not in body


def _group(n: int, tag: str, severity_of=lambda i: "warning") -> bytes:
    """One delivery of ``n`` distinct firing alerts."""
    body = copy.deepcopy(FIRING)
    template = body["alerts"][1]
    body["alerts"] = []
    for i in range(n):
        alert = copy.deepcopy(template)
        alert["labels"] = {**alert["labels"], "pod": f"{tag}-{i}", "severity": severity_of(i)}
        alert["fingerprint"] = f"{tag}{i:04d}"
        body["alerts"].append(alert)
    return json.dumps(body).encode()


def test_pages_of_investigations_follow_next_without_gaps_or_repeats(client):
    for tag in ("a", "b", "c"):  # each group shares one created_at: ties must stay ordered
        severity = lambda i: "critical" if i % 3 == 0 else "warning"  # noqa: E731
        assert client.post("/webhook/alert", content=_group(9, tag, severity), headers=AUTH)
    whole = client.get("/investigations", params={"limit": 500}).json()
    assert whole["count"] == 27 and whole["next"] is None and whole["next_before"] is None
    order = [r["id"] for r in whole["investigations"]]

    seen, url, pages = [], "/investigations?limit=4", 0
    while url:
        page = client.get(url).json()
        seen += [r["id"] for r in page["investigations"]]
        assert page["count"] <= 4
        if pages == 1:  # a new delivery while paging: newer, so never in the pages to come
            client.post("/webhook/alert", content=_group(5, "late"), headers=AUTH)
        url, pages = page["next"], pages + 1
    assert seen == order
    assert pages == 7

    critical = client.get("/investigations", params={"severity": "critical", "limit": 2}).json()
    assert critical["count"] == 2 and "severity=critical" in critical["next"]
    rest = client.get(critical["next"]).json()
    ids = [r["id"] for r in critical["investigations"] + rest["investigations"]]
    assert len(ids) == len(set(ids)) == 4
    everything = client.get("/investigations", params={"severity": "critical"}).json()
    assert everything["count"] == 9
    assert {r["severity"] for r in everything["investigations"]} == {"critical"}


def test_an_unknown_before_cursor_is_a_422_naming_it(client):
    response = client.get("/investigations", params={"before": "nosuchid"})
    assert response.status_code == 422
    assert "before" in response.json()["error"] and "nosuchid" in response.json()["error"]
