"""Reports that say what they know: evidence ids the model cites, citations held to
what was gathered, and the Sources of every investigation.

Each test runs the real pipeline (evidence against the fake Kubernetes API and a real
or a closed-port Prometheus, the agent on ``ChatOllama`` against the scripted Ollama,
the Worker into SQLite) and checks what a user reads: the record, the API and the
markdown report.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sre_agent.alerts import parse_payload
from sre_agent.app import create_app
from sre_agent.migrations import MIGRATIONS
from sre_agent.prompts import load_prompts
from sre_agent_lab.runs import run_alert
from tests.conftest import EXAMPLES
from tests.support.fake_ollama import answer_json
from tests.support.fake_slack import FakeSlack
from tests.support.model_scripts import analysis_from, investigator
from tests.support.records import served

BODY = json.loads((EXAMPLES / "group-firing-homepage.json").read_text())
CRASH = parse_payload(BODY).alerts[1]
BLOCK = re.compile(r"^### \[(E\d+)\] (.*?)(?: \[(?:error|no_data)\])?$", re.MULTILINE)


async def investigate(settings) -> dict[str, Any]:
    result = await run_alert(CRASH, settings, load_prompts(), settings.database_path.parent)
    return served(result.record)


def prompt_of(request: dict[str, Any]) -> str:
    return next(m["content"] for m in request["messages"] if m["role"] == "user")


def ids_in(request: dict[str, Any]) -> list[str]:
    return [i for i, _ in BLOCK.findall(prompt_of(request))]


def sure_of_itself(request: dict[str, Any]):
    """A model that claims high confidence whatever it saw, citing every block it saw."""
    analysis = analysis_from(request)
    analysis["root_causes"][0].update(confidence="high", evidence_ids=ids_in(request))
    return answer_json(analysis)


@pytest.fixture
def no_kubernetes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No kubeconfig, not in a cluster, no ~/.kube/config: Kubernetes is not configured."""
    for name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


async def test_prometheus_down_and_no_kubernetes_rests_on_the_alert_alone(
    make_settings, ollama, no_kubernetes
):
    ollama.default = sure_of_itself
    record = await investigate(make_settings(kubeconfig=None))  # Prometheus: a closed port

    assert record["status"] == "completed", record["status_reason"]
    backends = record["sources"]["backends"]
    assert backends["prometheus"]["state"] == "failed"
    assert "unreachable" in backends["prometheus"]["why"]
    assert backends["kubernetes"]["state"] == "not configured"
    assert backends["logs"]["state"] == "not configured"
    # The model claimed high; no finding answered, so it is lowered, and the report says so.
    assert [c["confidence"] for c in record["analysis"]["root_causes"]] == ["low"]
    head = "\n".join(record["report"].splitlines()[:4])
    assert "Prometheus did not answer (Prometheus unreachable" in head
    assert "Kubernetes is not configured" in head
    assert "this analysis rests on the alert's text alone" in head
    assert "lowered from high" in record["report"]
    assert "## Sources" in record["report"]


async def test_nothing_answered_is_failed_and_the_report_opens_with_no_analysis(
    make_settings, ollama, no_kubernetes
):
    """Ollama, Prometheus and Kubernetes all missing: errors alone are not evidence, so the
    run is ``failed`` (README: no analysis and no evidence), and the report's first line
    says there is no analysis, then that it rests on the alert's text alone."""
    ollama.stop_accepting()
    record = await investigate(make_settings(kubeconfig=None, reinvestigate=False))

    assert record["status"] == "failed", record["status_reason"]
    assert record["evidence"] and {e["status"] for e in record["evidence"]} == {"error"}
    first, _, second = record["report"].splitlines()[2:5]
    assert first.startswith("**⚠ No analysis from the model (failed: LLM call failed")
    assert "this report rests on the alert's text alone" in second
    assert "this analysis" not in record["report"]


async def test_an_invented_id_gets_one_retry_that_names_it(make_settings, ollama):
    def invents(request: dict[str, Any]):
        analysis = analysis_from(request)
        analysis["root_causes"][0]["evidence_ids"] = ["E99"]
        return answer_json(analysis)

    ollama.enqueue(invents, investigator)
    record = await investigate(make_settings())

    assert ollama.chat_count == 2
    shown = ids_in(ollama.requests[0])
    retry = prompt_of(ollama.requests[1])
    assert ollama.requests[1]["format"]  # the retry is schema-constrained
    assert "root_causes[0] cites E99, which was never gathered; the evidence ids are E1-" in retry
    assert record["status"] == "completed", record["status_reason"]
    cited = record["analysis"]["root_causes"][0]["evidence_ids"]
    assert cited and set(cited) <= set(shown)


async def test_a_second_invented_id_ends_degraded_without_the_invention(make_settings, ollama):
    def invents(request: dict[str, Any]):
        analysis = analysis_from(request)
        analysis["root_causes"][0]["evidence"] = ["[E77] OOMKilled at 03:12"]
        return answer_json(analysis)

    ollama.enqueue(invents, invents)
    record = await investigate(make_settings())

    assert ollama.chat_count == 2
    assert "cites E77, which was never gathered" in prompt_of(ollama.requests[1])
    assert record["status"] == "degraded"
    assert "no valid analysis after one retry" in record["status_reason"]
    assert "E77, which was never gathered" in record["status_reason"]
    assert record["analysis"] is None and record["raw_text"] is None
    assert "OOMKilled at 03:12" not in record["report"]
    assert "## Likely root cause" not in record["report"]
    assert "## Evidence gathered" in record["report"] and "## Sources" in record["report"]


async def test_stored_ids_are_the_ids_the_model_was_shown(make_settings, ollama):
    ollama.default = investigator
    # A budget that keeps only some of the evidence: the rest keeps an id, not in the prompt.
    record = await investigate(make_settings(evidence_budget_tokens=400))

    shown = BLOCK.findall(prompt_of(ollama.requests[0]))
    gathered = [e for e in record["evidence"] if e["phase"] == "evidence"]
    assert [e["id"] for e in gathered] == [f"E{n}" for n in range(1, len(gathered) + 1)]
    in_prompt = [(e["id"], e["title"]) for e in gathered if e["in_prompt"]]
    assert in_prompt == shown and shown
    assert any(not e["in_prompt"] for e in gathered)
    for item in gathered:
        assert set(item) >= {"id", "title", "tool", "args", "status", "output", "phase"}
    calls = {c["id"]: c for c in record["tool_calls"]}
    assert all(calls[e["id"]]["name"] == e["tool"] for e in gathered)


async def test_a_finding_the_budget_kept_out_of_the_prompt_cannot_be_cited(make_settings, ollama):
    """The model was never shown it: citing it is guessing, however real the finding."""
    guessed: list[str] = []

    def guesses_the_next_id(request: dict[str, Any]):
        analysis = analysis_from(request)
        guessed.append(f"E{max(int(i[1:]) for i in ids_in(request)) + 1}")
        analysis["root_causes"][0].update(evidence_ids=guessed[:1], confidence="high")
        return answer_json(analysis)

    ollama.enqueue(guesses_the_next_id, investigator)
    record = await investigate(make_settings(evidence_budget_tokens=400))

    left_out = {e["id"] for e in record["evidence"] if e["in_prompt"] is False}
    assert guessed and guessed[0] in left_out  # a real finding, only not in the prompt
    assert ollama.chat_count == 2
    retry = prompt_of(ollama.requests[1])
    assert f"root_causes[0] cites {guessed[0]}, which was never gathered" in retry
    assert f"[{guessed[0]}]" not in retry  # the retry's notes are what the prompt showed
    assert record["status"] == "completed", record["status_reason"]
    assert guessed[0] not in record["analysis"]["root_causes"][0]["evidence_ids"]


async def test_cited_findings_stand_beside_the_claim_with_how_to_run_them_again(
    make_settings, ollama, prometheus
):
    ollama.default = investigator
    external = "https://prometheus.example.com/prom"
    record = await investigate(
        make_settings(prometheus_url=prometheus.url, prometheus_external_url=external)
    )
    assert record["status"] == "completed", record["status_reason"]
    cause = record["analysis"]["root_causes"][0]
    by_id = {e["id"]: e for e in record["evidence"]}
    assert cause["evidence_ids"] and set(cause["evidence_ids"]) <= set(by_id)
    report = record["report"]
    for ident in cause["evidence_ids"]:
        assert f"**[{ident}] {by_id[ident]['title']}**" in report
    logs = next(by_id[i] for i in cause["evidence_ids"] if by_id[i]["tool"] == "kubectl_logs")
    pod, ns = logs["args"]["pod"], logs["args"]["namespace"]
    assert f"Re-run: `kubectl logs {pod} -n {ns}" in report
    assert "FATAL: config: required setting SITE_API_UPSTREAM_URL" in report
    assert all(b["state"] == "answered" for b in record["sources"]["backends"].values())
    assert "⚠" not in report

    # Cite a PromQL finding too: its graph link starts at the setting's base.
    promql = next(e for e in record["evidence"] if e["tool"].startswith("promql"))

    def cites_promql(request: dict[str, Any]):
        analysis = analysis_from(request)
        analysis["root_causes"][0]["evidence_ids"].append(promql["id"])
        return answer_json(analysis)

    ollama.default = cites_promql
    again = await investigate(make_settings(prometheus_url=prometheus.url))
    assert f"Re-run: `{promql['args']['query']}`" in again["report"]
    # No setting: the base is the generatorURL's scheme and host.
    assert (
        "[Prometheus graph](http://prometheus-k8s.monitoring.svc:9090/graph?g0.expr="
        in (again["report"])
    )
    with_setting = await investigate(
        make_settings(prometheus_url=prometheus.url, prometheus_external_url=external)
    )
    assert f"[Prometheus graph]({external}/graph?g0.expr=" in with_setting["report"]
    assert "Run" in with_setting["report"] and "evidence_seconds" in with_setting["llm_usage"]


def test_the_api_and_slack_say_what_the_sources_gave(make_settings, ollama, no_kubernetes):
    ollama.default = sure_of_itself
    with FakeSlack() as slack:
        settings = make_settings(kubeconfig=None, slack_webhook_url=slack.webhook_url)
        with TestClient(create_app(settings)) as client:
            body = {**BODY, "alerts": [BODY["alerts"][1]]}
            (result,) = client.post("/webhook/alert?wait=true", json=body).json()["results"]
            record = client.get(f"/investigations/{result['investigation_id']}").json()
            # An incoming webhook cannot edit: the incident's evidence report, then its
            # analysis, each a message.
            evidence, message = slack.wait_for(2)
    assert record["sources"]["backends"]["kubernetes"]["state"] == "not configured"
    first = json.dumps(evidence["blocks"], ensure_ascii=False)
    assert "Evidence report" in first and "Kubernetes not configured" in first
    text = json.dumps(message["blocks"], ensure_ascii=False)
    assert "rests on the alert's text alone" in text
    assert "Sources: Prometheus failed · Kubernetes not configured · Logs not configured" in text


def test_an_old_row_still_renders(make_settings, tmp_path):
    """A database written before evidence ids and sources: its reports still render."""
    settings = make_settings()
    db = sqlite3.connect(settings.database_path)
    db.execute("CREATE TABLE migrations (id INTEGER PRIMARY KEY, applied_at TEXT)")
    for number, migration in enumerate(MIGRATIONS[:4], 1):
        if callable(migration):
            migration(db)
        else:
            db.executescript(migration)
        db.execute("INSERT INTO migrations VALUES (?, 'then')", (number,))
    old = {
        "summary": "api crash-loops",
        "root_causes": [{"cause": "missing setting", "evidence": ["FATAL"], "confidence": "high"}],
    }
    db.execute(
        "INSERT INTO investigations (id, dedup_key, fingerprint, alertname, severity, alert,"
        " status, created_at, evidence, analysis, llm_usage) VALUES ('old1', 'k', 'f',"
        " 'KubePodCrashLooping', 'warning', ?, 'completed', '2026-01-01', ?, ?, ?)",
        (
            json.dumps({"labels": {"alertname": "KubePodCrashLooping"}, "annotations": {}}),
            json.dumps([{"title": "pod", "tool": "kubectl_describe", "output": "Restarts: 9"}]),
            json.dumps(old),
            json.dumps({"model": "m", "calls": 1}),
        ),
    )
    db.commit()
    db.close()
    with TestClient(create_app(settings)) as client:
        record = client.get("/investigations/old1").json()
        report = client.get("/investigations/old1?format=markdown")
    assert record["sources"] is None
    assert report.status_code == 200
    assert "**missing setting** (confidence: high)" in report.text
    assert "Not recorded (this investigation predates source tracking)." in report.text


def test_chat_shows_the_evidence_under_the_ids_the_investigation_gave(make_settings, ollama):
    ollama.default = investigator
    with TestClient(create_app(make_settings())) as client:
        body = {**BODY, "alerts": [BODY["alerts"][1]]}
        (result,) = client.post("/webhook/alert?wait=true", json=body).json()["results"]
        ident = result["investigation_id"]
        record = client.get(f"/investigations/{ident}").json()
        seen: list[dict[str, Any]] = []

        def answers_by_id(request: dict[str, Any]):
            seen.append(request)
            return answer_json({"answer": "E1 shows it"})

        ollama.enqueue(answers_by_id)
        reply = client.post(f"/investigations/{ident}/chat", json={"message": "what is E3?"})
    assert reply.status_code == 200, reply.text
    system = next(m["content"] for m in seen[0]["messages"] if m["role"] == "system")
    cited = record["analysis"]["root_causes"][0]["evidence_ids"]
    assert f"cites: {', '.join(cited)}" in system
    titles = dict(BLOCK.findall(system))
    assert titles and all(
        titles[i] == e["title"] for e in record["evidence"] if (i := e["id"]) in titles
    )
    assert set(cited) <= set(titles)  # what the analysis rests on is in the chat's context
