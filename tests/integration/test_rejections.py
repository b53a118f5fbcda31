"""Refused webhook deliveries leave a trace: one log line each (status, reason,
remote address, body size; never the body, never the token) and
``sre_agent_webhook_rejected_total{reason}``. And every GET route refuses a
query parameter it does not take, naming it."""

from __future__ import annotations

import json
import logging
import re

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from sre_agent.api.deps import MACHINE_ROUTES
from sre_agent.api.rejections import REASONS
from sre_agent.app import create_app
from tests.conftest import EXAMPLES

TOKEN = "tok-" + "s3cr3t" * 6
FIRING = (EXAMPLES / "group-firing-homepage.json").read_bytes()
JSON = {"Content-Type": "application/json"}
AUTH = {"Authorization": f"Bearer {TOKEN}", **JSON}
#: Planted in every refused body: it must never reach the log.
MARKER = "body-marker-7f3a"


@pytest.fixture
def client(make_settings, ollama):
    settings = make_settings(webhook_token=TOKEN, max_body_bytes=4096, max_headers=20)
    app = create_app(settings)
    with TestClient(app) as client:
        client.fastapi_app = app  # type: ignore[attr-defined]
        yield client


def rejected(client: TestClient) -> dict[str, float]:
    text = client.get("/metrics").text
    return {
        s.labels["reason"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "sre_agent_webhook_rejected_total"
    }


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "sre_agent.api.rejections"]


CASES = [
    # (id, query, headers, body, status, reason)
    ("no token", "", JSON, FIRING, 401, "unauthorized"),
    ("wrong token", "", {**JSON, "Authorization": "Bearer nope-" + MARKER}, FIRING, 401,
     "unauthorized"),
    ("form body", "", {"Authorization": f"Bearer {TOKEN}",
                       "Content-Type": "application/x-www-form-urlencoded"}, FIRING, 415,
     "unsupported_media_type"),
    ("not JSON", "", AUTH, b'{"' + MARKER.encode() + b'": ', 400, "bad_json"),
    ("not a v4 body", "", AUTH, json.dumps({"version": "3", "x": MARKER}).encode(), 422,
     "invalid"),
    ("bad wait value", "?wait=maybe", AUTH, FIRING, 422, "bad_query"),
    ("too large", "", AUTH, b'{"x": "' + MARKER.encode() * 1000 + b'"}', 413, "too_large"),
    ("too many headers", "", {**AUTH, **{f"x-h{i}": "v" for i in range(30)}}, FIRING, 431,
     "headers_too_large"),
    ("foreign Host", "", {**AUTH, "Host": "evil.example"}, FIRING, 400, "bad_host"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("query", "headers", "body", "status", "reason"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_each_rejection_is_logged_once_and_counted_by_reason(
    client, caplog, query, headers, body, status, reason
):
    before = rejected(client)
    caplog.set_level(logging.INFO)
    caplog.clear()
    response = client.post(f"/webhook/alert{query}", content=body, headers=headers)
    assert response.status_code == status, response.text
    lines = _lines(caplog)
    assert len(lines) == 1, lines
    line = lines[0]
    assert f" {status} {reason} " in line
    assert "testclient:" in line  # the remote address
    assert re.search(r"body \d+ bytes (read|declared)", line), line
    assert MARKER not in line and TOKEN not in line
    assert not any(MARKER in r.getMessage() or TOKEN in r.getMessage() for r in caplog.records)
    after = rejected(client)
    assert after[reason] == before[reason] + 1
    assert {k: v for k, v in after.items() if k != reason} == {
        k: v for k, v in before.items() if k != reason
    }


def test_every_reason_is_exported_from_the_first_scrape(client):
    assert set(rejected(client)) == set(REASONS)
    assert all(v == 0 for v in rejected(client).values())


def test_accepted_deliveries_and_other_routes_are_not_counted(client, caplog):
    caplog.set_level(logging.INFO)
    assert client.post("/webhook/alert", content=FIRING, headers=AUTH).status_code == 202
    assert client.get("/investigations/nope").status_code == 404
    assert client.get("/investigations", params={"limit": 0}).status_code == 422
    assert _lines(caplog) == []
    assert sum(rejected(client).values()) == 0


def test_a_host_refused_on_another_route_is_logged_not_counted(client, caplog):
    caplog.set_level(logging.INFO)
    assert client.get("/investigations", headers={"Host": "evil.example"}).status_code == 400
    [line] = _lines(caplog)
    assert "GET /investigations: 400 bad_host" in line
    assert sum(rejected(client).values()) == 0


def _get_routes(app) -> list[str]:
    """Every GET route of the app (as its OpenAPI document lists them), path
    parameters filled in."""
    return [
        re.sub(r"\{[^}]+\}", "someid", path)
        for path, methods in app.openapi()["paths"].items()
        if "get" in methods
    ]


def test_every_get_route_refuses_an_unknown_query_parameter_naming_it(client):
    paths = _get_routes(client.fastapi_app)
    assert {"/investigations", "/readyz", "/healthz", "/metrics"} <= set(paths)
    for path in paths:
        if path in MACHINE_ROUTES:
            continue
        response = client.get(path, params={"severty": "critical", "format": "markdown"})
        assert response.status_code == 422, (path, response.text)
        error = response.json()["error"]
        assert "severty" in error, (path, error)
        assert "unknown query parameter" in error


def test_machine_clients_extra_query_parameters_are_ignored_with_a_warning(client, caplog):
    """Alertmanager never retries a 4xx: a receiver URL with ``?source=prod`` must not
    lose every alert. Probes and scrapes with extras keep working too."""
    caplog.set_level("WARNING", logger="sre_agent.api.deps")
    response = client.post("/webhook/alert?source=prod", content=FIRING, headers=AUTH)
    assert response.status_code == 202, response.text
    assert response.json()["results"][0]["investigation_id"]
    for path in ("/metrics", "/healthz", "/readyz"):
        assert client.get(path, params={"name[]": "x"}).status_code == 200, path
    warned = [r.getMessage() for r in caplog.records if r.name == "sre_agent.api.deps"]
    assert any(
        "POST /webhook/alert: ignored unknown query parameter(s) 'source'" in w for w in warned
    ), warned
    assert sum(rejected(client).values()) == 0
    # A known parameter with a bad value is still refused.
    assert client.post("/webhook/alert?wait=maybe", content=FIRING, headers=AUTH).status_code == 422


def test_known_query_parameters_still_work(client):
    assert client.get("/investigations", params={"status": "queued", "limit": 5}).status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/investigations", params={"severity": "critical"}).status_code == 200


def test_the_service_log_says_each_refusal_whole_and_on_one_line(tmp_path):
    """The log as an operator reads it (the real service, its secret masking on): the
    line keeps its meaning, and a path cannot start a forged line of its own."""
    import httpx

    from tests.support.net import free_port
    from tests.support.service import ServiceProcess

    env = {
        "SRE_AGENT_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "SRE_AGENT_OLLAMA_URL": f"http://127.0.0.1:{free_port()}",
        "SRE_AGENT_PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}",
        "SRE_AGENT_WEBHOOK_TOKEN": TOKEN,
        "SRE_AGENT_READINESS_CHECK_TIMEOUT": "1",
    }
    query_secret = "qs-" + "Zq9" * 10
    sent = [
        ("", JSON, "no Authorization header"),
        ("", {**JSON, "Authorization": "Basic dXNlcjpwYXNzd29yZA=="}, "scheme is not Bearer"),
        ("", {**JSON, "Authorization": "Bearer nope-" + MARKER}, "a wrong token"),
        (f"?wait=maybe&token={query_secret}", AUTH, "wait"),
        ("%0A2026-12-01 00:00:00,000 INFO forged: x", {**AUTH, "Host": "evil.example"}, "Host"),
    ]
    with ServiceProcess(env, tmp_path / "service.log") as service:
        for tail, headers, _ in sent:
            response = httpx.post(
                f"{service.url}/webhook/alert{tail}", content=FIRING, headers=headers, timeout=10
            )
            assert 400 <= response.status_code < 500, response.text
        log = service.log()
    lines = [line for line in log.splitlines() if "sre_agent.api.rejections" in line]
    assert len(lines) == len(sent), log
    for line, (_, _, what) in zip(lines, sent, strict=True):
        assert what in line and "REDACTED" not in line, line
    assert not any(
        line.startswith("2026-12-01 00:00:00,000 INFO forged") for line in log.splitlines()
    )
    assert TOKEN not in log and MARKER not in log and query_secret not in log
