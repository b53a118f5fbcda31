"""End to end, as a user runs it: the real Alertmanager posts to a running
``sre-agent serve``; the agent investigates against the scripted Ollama, the
real Prometheus and the fake Kubernetes API; the analysis is read over the API."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import EXAMPLES, settings_env
from tests.support.alertmanager import AlertmanagerServer, am_alert
from tests.support.fake_ollama import hang
from tests.support.model_scripts import investigator
from tests.support.net import wait_for
from tests.support.service import ServiceProcess

TOKEN = "am-token-" + "k" * 24
EXAMPLE = json.loads((EXAMPLES / "group-firing-homepage.json").read_text())
CRASH, MISMATCH = EXAMPLE["alerts"][1], EXAMPLE["alerts"][0]


def investigations(service: ServiceProcess, **params: str) -> list[dict[str, Any]]:
    return httpx.get(f"{service.url}/investigations", params=params).json()["investigations"]


def record(service: ServiceProcess, ident: str) -> dict[str, Any]:
    return httpx.get(f"{service.url}/investigations/{ident}").json()


def from_example(alert: dict[str, Any], starts_at: datetime, **extra: Any) -> dict[str, Any]:
    return am_alert(
        alert["labels"],
        alert["annotations"],
        starts_at=starts_at,
        generator_url=alert["generatorURL"],
        **extra,
    )


def all_bytes_of(db: Path) -> str:
    return "".join(p.read_bytes().decode("latin-1") for p in db.parent.glob(db.name + "*"))


def test_alertmanager_to_stored_analysis(tmp_path, make_settings, ollama, kube, prometheus):
    ollama.default = investigator
    settings = make_settings(prometheus_url=prometheus.url, webhook_token=TOKEN)
    service = ServiceProcess(settings_env(settings), tmp_path / "service.log")
    with (
        service,
        AlertmanagerServer(tmp_path / "am", f"{service.url}/webhook/alert", token=TOKEN) as am,
    ):
        started = datetime.now(UTC) - timedelta(minutes=3)
        am.post([from_example(CRASH, started)])
        found = wait_for(
            lambda: investigations(service, status="completed"),
            30,
            "the crash-loop investigation to complete",
        )
        assert len(found) == 1
        ident = found[0]["id"]
        full = record(service, ident)
        assert full["alert"]["labels"]["pod"] == "bruno-site-api-7d9f8c6b5-x2x4q"
        assert full["alert"]["expr"].startswith("max_over_time(kube_pod_container_status_waiting")
        # Evidence first: the previous container's logs were read before the model was
        # called, and the model found the line that explains the crash in them.
        assert any(
            c["name"] == "kubectl_logs" and c["args"].get("previous") and c["phase"] == "evidence"
            for c in full["tool_calls"]
        )
        causes = json.dumps(full["analysis"]["root_causes"])
        assert "SITE_API_UPSTREAM_URL" in causes
        assert full["llm_usage"]["calls"] == 1
        assert full["llm_usage"]["prompt_tokens"] > 0 and full["llm_usage"]["completion_tokens"] > 0
        report = httpx.get(f"{service.url}/investigations/{ident}", params={"format": "markdown"})
        assert "## Likely root cause" in report.text and "**Resolved:**" not in report.text
        assert "report" not in full and "dedup_key" not in full  # the record, not its views

        # A group change re-sends the firing crash alert with a new one: no second investigation.
        am.post([from_example(MISMATCH, started), from_example(CRASH, started)])
        wait_for(
            lambda: len(investigations(service, status="completed")) == 2,
            30,
            "the second alert's investigation",
        )
        crash_runs = investigations(service, alertname="KubePodCrashLooping")
        assert [r["id"] for r in crash_runs] == [ident]
        assert record(service, ident)["deliveries"] >= 2

        # The alert resolves: Alertmanager sends it with endsAt, and the record says so.
        am.post([from_example(CRASH, started, ends_at=datetime.now(UTC))])
        wait_for(
            lambda: record(service, ident)["alert_status"] == "resolved",
            30,
            "the resolved notification",
        )
        assert record(service, ident)["resolved_at"]
        # The report is rendered when asked for: it tells the record as it is now.
        report = httpx.get(f"{service.url}/investigations/{ident}", params={"format": "markdown"})
        assert "**Resolved:**" in report.text and "## Likely root cause" in report.text
        assert len(investigations(service)) == 2

        # The investigation of the deployment used the real Prometheus-backed world too.
        mismatch = investigations(service, alertname="KubeDeploymentReplicasMismatch")[0]
        assert record(service, mismatch["id"])["status"] == "completed"

    log = service.log()
    assert "webhook URL http://127.0.0.1:" in log
    assert "tool kubectl_logs ok" in log
    # Canary secrets planted in the pod's env and logs reached neither the model,
    # nor the database, nor the log.
    assert "CANARY" in "".join(kube.logs.values())  # the world really holds them
    assert "CANARY" not in ollama.received_text()
    assert "CANARY" not in all_bytes_of(settings.database_path)
    assert "CANARY" not in log
    # Read-only: the Kubernetes API saw only GETs, and never a Secret.
    assert kube.requests and all(method == "GET" for method, _ in kube.requests)
    assert not any("/secrets" in path for _, path in kube.requests)


def test_restart_with_work_queued_loses_nothing(tmp_path, make_settings, ollama):
    ollama.default = hang(60)  # the GPU is busy: the first investigation never finishes
    settings = make_settings(investigation_timeout=120, incidents=False)
    env = settings_env(settings)
    body = json.loads((EXAMPLES / "group-firing-homepage.json").read_text())
    with ServiceProcess(env, tmp_path / "first.log") as first:
        response = httpx.post(f"{first.url}/webhook/alert", json=body)
        assert response.status_code == 202
        ids = [r["investigation_id"] for r in response.json()["results"] if r["investigation_id"]]
        assert len(ids) == 2
        wait_for(lambda: investigations(first, status="running"), 10, "a running investigation")
    # The process is gone with one investigation running and one queued.
    ollama.default = investigator
    with ServiceProcess(env, tmp_path / "second.log") as second:
        done = wait_for(
            lambda: len(investigations(second, status="completed")) == 2,
            30,
            "both investigations to finish after the restart",
        )
        assert done
        assert sorted(r["id"] for r in investigations(second)) == sorted(ids)
        assert "resuming 2 investigation(s)" in second.log()
        # Alertmanager re-sends the group after the restart: still the same two.
        again = httpx.post(f"{second.url}/webhook/alert", json=body).json()
        assert sorted(
            r["investigation_id"] for r in again["results"] if r["investigation_id"]
        ) == sorted(ids)


@pytest.mark.parametrize("model_reply", ["down", "error"])
def test_ollama_failure_fails_one_investigation_not_the_service(
    tmp_path, make_settings, ollama, model_reply
):
    from tests.support.fake_ollama import fail

    if model_reply == "down":
        ollama.stop_accepting()
    else:
        ollama.default = fail(500, "llama runner process has terminated")
    settings = make_settings(incidents=False)
    with ServiceProcess(settings_env(settings), tmp_path / "svc.log") as service:
        body = json.loads((EXAMPLES / "group-firing-homepage.json").read_text())
        response = httpx.post(
            f"{service.url}/webhook/alert", params={"wait": "true"}, json=body, timeout=60
        )
        assert response.status_code == 200
        for result in response.json()["results"]:
            if result["investigation_id"]:
                # Evidence was gathered before the model was asked: the report is
                # built from it, and says the model could not be reached.
                assert result["status"] == "degraded"
                assert "## Evidence gathered" in result["analysis"]
                full = record(service, result["investigation_id"])
                assert ollama.url in full["status_reason"]
                if result["alert_name"] == "KubePodCrashLooping":
                    assert "FATAL: config: required setting" in result["analysis"]
                    assert "Runbook: https://runbooks.prometheus-operator.dev" in result["analysis"]
        assert httpx.get(f"{service.url}/healthz").status_code == 200
        ready = httpx.get(f"{service.url}/readyz").json()
        assert ready["status"] == "ready"
        assert ready["ollama"]["ok"] is (model_reply != "down")
    if model_reply == "down":
        assert "Ollama not usable at" in service.log()
