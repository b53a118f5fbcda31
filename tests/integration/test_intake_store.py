"""Intake and storage under hostile bodies and failures: a group is stored whole
or not at all, what is stored and served is masked like the labels, what is
accepted is investigable, and what was acknowledged survives kill -9."""

from __future__ import annotations

import copy
import json
import sqlite3
import threading
import time
import uuid

import httpx
import pytest
from fastapi.testclient import TestClient

from sre_agent.alerts import parse_payload
from sre_agent.app import create_app
from sre_agent.migrations import MIGRATIONS
from sre_agent.models import Analysis, Evidence, LlmUsage
from sre_agent.store import Store
from tests.conftest import EXAMPLES
from tests.support.model_scripts import investigator
from tests.support.net import free_port
from tests.support.service import ServiceProcess

FIRING = json.loads((EXAMPLES / "group-firing-homepage.json").read_text())
JSON = {"Content-Type": "application/json"}
#: A GitHub token: a strong form the label-value redactor masks wherever it stands.
CANARY = "ghp_" + "Zq8Xw2Vb7Nm4Kj6Hg1Fd3Sa5Pl9Ok0IuYtRe"


def _group(mutate=None) -> dict:
    body = copy.deepcopy(FIRING)
    if mutate:
        mutate(body)
    return body


def _count(client: TestClient) -> int:
    return client.get("/investigations", params={"limit": 500}).json()["count"]


@pytest.fixture
def client(make_settings, ollama):
    ollama.default = investigator
    with TestClient(create_app(make_settings())) as client:
        yield client


@pytest.mark.parametrize(
    ("where", "mutate"),
    [
        (
            "alerts.0.labels.alertname",
            lambda b: b["alerts"][0]["labels"].update(alertname="\ud800"),
        ),
        (
            "alerts.1.labels.namespace",
            lambda b: b["alerts"][1]["labels"].update(namespace="a\udfffb"),
        ),
        ("alerts.1.labels.severity", lambda b: b["alerts"][1]["labels"].update(severity="\ud83d")),
        ("alerts.2.labels", lambda b: b["alerts"][2]["labels"].update({"\ud800": "x"})),
        (
            "alerts.2.annotations.description",
            lambda b: b["alerts"][2]["annotations"].update(description="ok \udc00"),
        ),
        ("groupKey", lambda b: b.update(groupKey="{}:{\ud800}")),
        ("receiver", lambda b: b.update(receiver="\udbff")),
        ("commonLabels", lambda b: b["commonLabels"].update({"\udbff": "x"})),
        (
            "alerts.2.annotations.summary",
            lambda b: b["alerts"][2]["annotations"].update(summary="a\x00b"),
        ),
        (
            "alerts.2.generatorURL",
            lambda b: b["alerts"][2].update(generatorURL="http://[prom/graph?g0.expr=up"),
        ),
        ("externalURL", lambda b: b.update(externalURL="http://[::1")),
        (
            "alerts.2.startsAt",
            lambda b: b["alerts"][2].update(startsAt="9999-12-31T23:59:59-05:00"),
        ),
        (
            "alerts.2.startsAt",
            lambda b: b["alerts"][2].update(startsAt="0001-01-01T00:00:00+05:00"),
        ),
    ],
)
def test_a_bad_field_anywhere_is_a_422_naming_it_and_nothing_of_the_group_is_stored(
    client, where, mutate
):
    # The bad field is in the last alerts: those before it must not be stored either,
    # since Alertmanager retries the whole group.
    response = client.post(
        "/webhook/alert", content=json.dumps(_group(mutate)).encode(), headers=JSON
    )
    assert response.status_code == 422, response.text
    assert where in response.json()["error"]
    assert _count(client) == 0
    assert client.post("/webhook/alert", json=FIRING).status_code == 202


def test_a_database_failure_mid_group_stores_none_of_it_and_says_retry(make_settings, ollama):
    ollama.default = investigator
    settings = make_settings()
    body = _group(lambda b: b["alerts"][1]["labels"].update(severity="critical"))
    with TestClient(create_app(settings)) as client:
        # A real SQLite failure on the group's second insert (a full disk would do the same).
        with sqlite3.connect(settings.database_path) as db:
            db.execute(
                "CREATE TRIGGER full_disk BEFORE INSERT ON investigations"
                " WHEN NEW.severity = 'critical'"
                " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
            )
        failed = client.post("/webhook/alert", json=body)
        assert failed.status_code == 503  # Alertmanager retries a 5xx: nothing is lost
        assert "nothing was stored" in failed.json()["error"]
        assert _count(client) == 0
        with sqlite3.connect(settings.database_path) as db:
            db.execute("DROP TRIGGER full_disk")
        retried = client.post("/webhook/alert", json=body)
        assert retried.status_code == 202
        assert _count(client) == 2
        assert client.get("/healthz").status_code == 200


def test_columns_are_masked_like_the_labels_they_copy(client, make_settings):
    leaky = f"postgres://app:{CANARY}@db:5432/shop"

    def plant(body: dict) -> None:
        body["groupKey"] = '{}:{dsn="' + leaky + '"}'
        body["alerts"][1]["labels"].update(alertname=f"Leak {CANARY}", namespace=f"ns-{CANARY}")
        body["alerts"][1]["fingerprint"] = CANARY

    body = _group(plant)
    answer = client.post("/webhook/alert?wait=true", json=body)
    assert answer.status_code == 200
    assert CANARY not in answer.text
    listing = client.get("/investigations")
    assert listing.status_code == 200 and CANARY not in listing.text
    ids = [i["id"] for i in listing.json()["investigations"]]
    for ident in ids:
        record = client.get(f"/investigations/{ident}")
        assert record.status_code == 200 and CANARY not in record.text
        markdown = client.get(f"/investigations/{ident}", params={"format": "markdown"})
        assert CANARY not in markdown.text
    # Filters match the stored (masked) values: asking with the raw name still finds it.
    found = client.get("/investigations", params={"alertname": f"Leak {CANARY}"}).json()
    assert found["count"] == 1 and CANARY not in json.dumps(found)
    db = make_settings().database_path
    raw = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    assert CANARY.encode() not in raw
    # Still deduplicated, by the hash of the raw fingerprint and startsAt.
    again = client.post("/webhook/alert", json=body).json()
    assert {r["investigation_id"] for r in again["results"] if r["investigation_id"]} == set(ids)


ODD_BUT_VALID = [
    ("startsAt year 1", lambda a: a.update(startsAt="0001-01-01T00:00:00Z")),
    ("startsAt year 9999", lambda a: a.update(startsAt="9999-12-31T23:59:59Z")),
    ("startsAt as unix seconds", lambda a: a.update(startsAt=0)),
    ("5,000 labels", lambda a: a["labels"].update({f"l{n}": "v" * 20 for n in range(5000)})),
    ("a 300 KB annotation", lambda a: a["annotations"].update(description="eyJa-" * 60_000)),
    ("a 100 KB pod name", lambda a: a["labels"].update(pod="p" * 100_000)),
    ("unicode everywhere", lambda a: a["labels"].update(alertname="Ünïcødé 🔥", namespace="名前")),
    ("control characters", lambda a: a["annotations"].update(summary="\x1b[31mred\x07\r\n\t")),
    ("chat-template tokens", lambda a: a["annotations"].update(summary="<|im_start|>system")),
    ("a generatorURL without a query", lambda a: a.update(generatorURL="http://prom:9090/graph")),
    (
        "a generatorURL with odd PromQL",
        lambda a: a.update(generatorURL="http://p/graph?g0.expr=%7B%7D"),
    ),
]


@pytest.mark.parametrize("mutate", [m for _, m in ODD_BUT_VALID], ids=[n for n, _ in ODD_BUT_VALID])
def test_odd_but_valid_alerts_are_accepted_and_investigated_without_an_internal_error(
    client, mutate
):
    body = _group()
    body["alerts"] = [body["alerts"][1]]  # KubePodCrashLooping (warning)
    mutate(body["alerts"][0])
    response = client.post("/webhook/alert?wait=true", json=body)
    assert response.status_code == 200, response.text[:500]
    [result] = response.json()["results"]
    record = client.get(f"/investigations/{result['investigation_id']}")
    assert record.status_code == 200
    record = record.json()
    assert record["status"] in ("completed", "degraded"), record["status_reason"]
    assert "internal error" not in (record["status_reason"] or "")
    assert (
        client.get(f"/investigations/{record['id']}", params={"format": "markdown"}).status_code
        == 200
    )


def test_an_empty_group_and_a_10000_alert_group_are_answered(make_settings, ollama):
    ollama.default = investigator
    with TestClient(create_app(make_settings(max_body_bytes=8 * 1024 * 1024))) as client:
        empty = client.post("/webhook/alert", json=_group(lambda b: b.update(alerts=[])))
        assert empty.status_code == 202 and empty.json()["results"] == []
        many = [  # severity info: answered for each, no investigation
            {
                "status": "firing",
                "labels": {"alertname": "Many", "severity": "info", "n": str(n)},
                "startsAt": "2026-11-27T00:00:00Z",
                "fingerprint": f"{n:016x}",
            }
            for n in range(10_000)
        ]
        response = client.post("/webhook/alert", json=_group(lambda b: b.update(alerts=many)))
        assert response.status_code == 202, response.text[:300]
        results = response.json()["results"]
        assert len(results) == 10_000 and {r["status"] for r in results} == {"skipped"}


def test_rows_from_before_the_masking_are_migrated(tmp_path):
    # A database as the previous release left it: raw dedup key and raw columns.
    path = tmp_path / "old.db"
    payload = parse_payload(
        _group(lambda b: b["alerts"][1]["labels"].update(namespace=f"x-{CANARY}"))
    )
    alert = payload.alerts[1]
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE migrations (id INTEGER PRIMARY KEY, applied_at TEXT)")
        for number, sql in enumerate(MIGRATIONS[:3], 1):
            assert isinstance(sql, str)
            db.executescript(sql)
            db.execute("INSERT INTO migrations VALUES (?, '2026-11-01')", (number,))
        db.execute(
            "INSERT INTO investigations (id, dedup_key, fingerprint, alertname, severity,"
            " namespace, group_key, alert, report, evidence, status, created_at)"
            " VALUES ('old1', ?, ?, ?, 'warning', ?, ?, ?, ?, ?, 'completed', '2026-11-27')",
            (
                f"{alert.fingerprint}@{alert.startsAt.isoformat()}",
                alert.fingerprint,
                alert.name,
                alert.namespace,
                f'{{}}:{{token="{CANARY}"}}',
                # What the earlier redactor let through, in the stored text and JSON too.
                json.dumps(
                    {
                        "labels": {"namespace": alert.namespace, "alertname": alert.name},
                        "annotations": {"description": f"Authorization:[Bearer {CANARY}]"},
                    }
                ),
                f"a log line with {CANARY}",
                json.dumps([{"title": "logs", "output": f"--auth-token {CANARY}"}]),
            ),
        )
    store = Store(path)
    store.open()
    try:
        record = store.get("old1")
        assert record is not None
        assert CANARY not in record.model_dump_json()
        # What an old row lacks reads as unknown, not as invented values.
        assert record.sources is None and record.analysis is None
        assert record.llm_usage == LlmUsage() and record.llm_usage.evidence_seconds is None
        [item] = record.evidence  # an item from before ids and statuses
        assert (item.id, item.status, item.in_prompt, item.title) == ("", "ok", True, "logs")
        assert record.alert.startsAt == "" and record.alert.expr is None
        assert "report" not in record.model_dump() and "dedup_key" not in record.model_dump()
        (again, created) = store.create_or_get(alert)
        assert again.id == "old1" and created is False  # still the same firing
    finally:
        store.close()


def test_what_a_model_or_tool_sends_back_cannot_break_the_record(tmp_path):
    # A lone surrogate can reach a report from the model's own JSON escapes.
    store = Store(tmp_path / "s.db")
    store.open()
    try:
        record, _ = store.create_or_get(parse_payload(FIRING).alerts[0])
        store.finish(
            record.model_copy(
                update={
                    "status": "degraded",
                    "status_reason": "model said \ud800",
                    "evidence": [Evidence(title="x \udfff", output="y")],
                    # pydantic refuses it in a validated model; built unvalidated, stored alike
                    "analysis": Analysis.model_construct(summary="s \ud83d"),
                    "raw_text": "raw \ud800",
                    "duration_s": 1.0,
                }
            )
        )
        done = store.get(record.id)
        assert done is not None and done.status == "degraded"
        assert done.evidence[0].title == "x ?" and done.raw_text == "raw ?"
        done.model_dump_json().encode("utf-8")  # servable as it is
        json.dumps(done.model_dump(mode="json"), ensure_ascii=False).encode("utf-8")
    finally:
        store.close()


def test_kill_9_loses_no_acknowledged_alert(tmp_path):
    env = {
        "SRE_AGENT_DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}",
        "SRE_AGENT_OLLAMA_URL": f"http://127.0.0.1:{free_port()}",
        "SRE_AGENT_PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}",
        "SRE_AGENT_KUBECONFIG": str(tmp_path / "none"),
        "SRE_AGENT_REINVESTIGATE": "false",
    }
    acknowledged: list[str] = []
    lock = threading.Lock()
    service = ServiceProcess(env, tmp_path / "first.log").start()

    def post_until_it_dies() -> None:
        with httpx.Client(base_url=service.url, timeout=10) as http:
            while True:
                body = _group()
                for a in body["alerts"]:
                    a["fingerprint"] = uuid.uuid4().hex[:16]
                try:
                    response = http.post("/webhook/alert", json=body)
                except httpx.HTTPError:
                    return
                if response.status_code == 202:
                    with lock:
                        acknowledged.extend(
                            r["investigation_id"]
                            for r in response.json()["results"]
                            if r["investigation_id"]
                        )

    posters = [threading.Thread(target=post_until_it_dies) for _ in range(4)]
    for t in posters:
        t.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 120 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert service.proc is not None
    service.proc.kill()  # SIGKILL, mid-flood
    service.proc.wait()
    for t in posters:
        t.join(15)
    service.stop()
    assert len(acknowledged) >= 120
    with ServiceProcess(env, tmp_path / "second.log") as second:
        stored = set()
        for status in ("queued", "running", "completed", "degraded", "failed", "cancelled"):
            listing = httpx.get(
                f"{second.url}/investigations", params={"status": status, "limit": 500}
            ).json()
            stored |= {i["id"] for i in listing["investigations"]}
        missing = set(acknowledged) - stored
        if missing and len(stored) >= 500:  # more than the listing shows: ask one by one
            missing = {
                i
                for i in missing
                if httpx.get(f"{second.url}/investigations/{i}").status_code != 200
            }
        assert not missing, f"{len(missing)} acknowledged investigations lost"


def test_the_openapi_document_declares_the_webhook_body(client):
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/webhook/alert"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert "alerts" in schema["properties"] and "alerts" in schema["required"]


def test_one_unreadable_evidence_item_of_a_stored_row_hides_only_itself(tmp_path):
    """An old or hand-edited row whose evidence holds one item no model reads: the
    others are still served."""
    store = Store(tmp_path / "x.db")
    store.open()
    try:
        alert = parse_payload(json.loads((EXAMPLES / "group-firing-homepage.json").read_text()))
        record, _ = store.create_or_get(alert.alerts[0])
        items = [
            {"id": "E1", "title": "pod shop/a", "tool": "kubectl_describe", "output": "fine"},
            {"id": "E2", "title": ["not", "a", "title"], "tool": 7},
            {"id": "E3", "title": "logs shop/a", "tool": "kubectl_logs", "output": "boom"},
        ]
        with sqlite3.connect(tmp_path / "x.db") as db:
            db.execute(
                "UPDATE investigations SET evidence=? WHERE id=?", (json.dumps(items), record.id)
            )
        got = store.get(record.id)
    finally:
        store.close()
    assert got is not None
    assert [e.id for e in got.evidence] == ["E1", "E3"]
    assert got.evidence[1].output == "boom"
