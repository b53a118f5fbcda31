"""The service's own metrics: what ``/metrics`` says after real traffic, what
the real Prometheus scrapes from a running ``sre-agent serve``, and the
monitoring manifests checked (and their alerts tested) by the real promtool."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from sre_agent.app import create_app
from tests.conftest import EXAMPLES, settings_env
from tests.support.model_scripts import investigator
from tests.support.net import free_port
from tests.support.prometheus import PrometheusServer
from tests.support.service import ServiceProcess

FIRING = (EXAMPLES / "group-firing-homepage.json").read_text()
RESOLVED = (EXAMPLES / "group-resolved-homepage.json").read_text()
JSON = {"Content-Type": "application/json"}
MONITORING = Path(__file__).parents[2] / "deploy" / "monitoring"
needs_prometheus = pytest.mark.skipif(
    not (shutil.which("prometheus") and shutil.which("promtool")),
    reason="prometheus/promtool not installed",
)


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of an exposition, keyed by (name, labels)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def test_metrics_count_alerts_investigations_and_model_use(make_settings, ollama):
    ollama.default = investigator
    with TestClient(create_app(make_settings())) as client:
        client.post(
            "/webhook/alert?wait=true", content=FIRING, headers=JSON
        )  # 2 queued, 1 skipped (info)
        client.post("/webhook/alert", content=FIRING, headers=JSON)  # 2 duplicates, 1 skipped
        client.post("/webhook/alert", content=RESOLVED, headers=JSON)  # 3 resolved
        response = client.get("/metrics")
        records = [
            client.get(f"/investigations/{r['id']}").json()
            for r in client.get("/investigations").json()["investigations"]
        ]
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    m = samples(response.text)
    received = "sre_agent_alerts_received_total"
    assert value(m, received, status="queued") == 2
    assert value(m, received, status="duplicate") == 2
    assert value(m, received, status="skipped") == 2
    assert value(m, received, status="resolved") == 3
    outcomes = "sre_agent_investigations_total"
    # One incident: the deployment's run explains its pod's alert (linked, no run).
    assert value(m, outcomes, outcome="completed") == 1
    assert value(m, outcomes, outcome="linked") == 1
    assert value(m, outcomes, outcome="failed") == 0
    duration = "sre_agent_investigation_duration_seconds"
    assert value(m, f"{duration}_count") == 1
    assert value(m, f"{duration}_bucket", le="600.0") == 1
    runs = [r["duration_s"] for r in records if r["duration_s"] is not None]
    assert value(m, f"{duration}_sum") == pytest.approx(sum(runs))
    assert value(m, "sre_agent_incidents_total") == 1
    assert value(m, "sre_agent_first_report_seconds_count") == 2
    assert value(m, "sre_agent_analysis_seconds_count") == 2
    # The model and tool counters agree with what the stored records say.
    usage = [r["llm_usage"] for r in records]
    assert value(m, "sre_agent_llm_calls_total") == sum(u["calls"] for u in usage) > 0
    tokens = "sre_agent_llm_tokens_total"
    assert value(m, tokens, kind="prompt") == sum(u["prompt_tokens"] for u in usage) > 0
    assert value(m, tokens, kind="completion") == sum(u["completion_tokens"] for u in usage) > 0
    calls: dict[tuple[str, str], int] = {}
    for record in records:
        for call in record["tool_calls"]:
            calls[(call["name"], call["status"])] = calls.get((call["name"], call["status"]), 0) + 1
    assert calls  # the scripted model calls kubectl_describe / kubectl_logs
    for (tool, status), count in calls.items():
        assert value(m, "sre_agent_tool_calls_total", tool=tool, status=status) == count
    assert value(m, "sre_agent_queue_depth") == 0
    assert value(m, "sre_agent_ollama_up") == 1
    assert value(m, "sre_agent_slack_notifications_total", status="sent") == 0


def test_ollama_down_shows_as_zero_and_unsuccessful_outcomes(make_settings, ollama):
    ollama.stop_accepting()
    with TestClient(create_app(make_settings())) as client:
        client.post("/webhook/alert?wait=true", content=FIRING, headers=JSON)
        m = samples(client.get("/metrics").text)
    assert value(m, "sre_agent_ollama_up") == 0
    outcomes = "sre_agent_investigations_total"
    ended = [value(m, outcomes, outcome=o) for o in ("completed", "degraded", "failed")]
    assert ended[0] == 0 and ended[1] + ended[2] == 2  # degraded when evidence was gathered
    assert value(m, "sre_agent_llm_tokens_total", kind="prompt") == 0


def _query(prometheus: PrometheusServer, promql: str) -> list[dict]:
    answer = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": promql}, timeout=5)
    answer.raise_for_status()
    return answer.json()["data"]["result"]  # type: ignore[no-any-return]


@needs_prometheus
def test_the_real_prometheus_scrapes_the_running_service(make_settings, ollama, tmp_path):
    ollama.default = investigator
    port = free_port()
    targets = {"sre-agent": [f"127.0.0.1:{port}"]}
    with PrometheusServer(tmp_path / "prometheus", scrape_targets=targets) as prometheus:
        env = settings_env(make_settings(prometheus_url=prometheus.url, incidents=False))
        with ServiceProcess(env, tmp_path / "service.log", port=port) as service:
            answer = httpx.post(
                f"{service.url}/webhook/alert?wait=true", content=FIRING, headers=JSON, timeout=60
            )
            assert {r["status"] for r in answer.json()["results"]} == {"completed", "skipped"}
            wanted = {
                'up{job="sre-agent"}': 1.0,
                'sre_agent_investigations_total{job="sre-agent",outcome="completed"}': 2.0,
                'sre_agent_alerts_received_total{job="sre-agent",status="queued"}': 2.0,
                'sre_agent_alerts_received_total{job="sre-agent",status="skipped"}': 1.0,
                'sre_agent_ollama_up{job="sre-agent"}': 1.0,
                'sre_agent_queue_depth{job="sre-agent"}': 0.0,
            }
            seen: dict[str, float | None] = {}
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                for promql in wanted:
                    result = _query(prometheus, promql)
                    seen[promql] = float(result[0]["value"][1]) if len(result) == 1 else None
                if seen == wanted:
                    break
                time.sleep(0.25)
            assert seen == wanted, prometheus.log_tail()
            calls = _query(prometheus, 'sum(sre_agent_llm_calls_total{job="sre-agent"})')
            assert float(calls[0]["value"][1]) == 2  # one model call per alert: it had evidence


# --- deploy/monitoring ---------------------------------------------------------------------


def _manifest(name: str) -> dict:
    return yaml.safe_load((MONITORING / name).read_text())


def test_servicemonitor_scrapes_the_service_port_http_at_metrics():
    monitor = _manifest("servicemonitor.yaml")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["kind"] == "ServiceMonitor"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["agent-sre"]}
    assert monitor["spec"]["selector"]["matchLabels"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    kustomization = _manifest("kustomization.yaml")
    assert sorted(kustomization["resources"]) == ["prometheusrule.yaml", "servicemonitor.yaml"]


RULE_TESTS = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'sre_agent_ollama_up{{job="sre-agent"}}'
        values: '1 1 0x15'
      - series: 'sre_agent_investigations_total{{job="sre-agent",outcome="completed"}}'
        values: '0+0x60'
      - series: 'sre_agent_investigations_total{{job="sre-agent",outcome="failed"}}'
        values: '0+1x60'
      - series: 'sre_agent_queue_depth{{job="sre-agent"}}'
        values: '3x60'
    alert_rule_test:
      - eval_time: 8m
        alertname: SreAgentOllamaUnreachable
        exp_alerts: []
      - eval_time: 14m
        alertname: SreAgentOllamaUnreachable
        exp_alerts:
          - exp_labels: {{severity: warning, job: sre-agent}}
            exp_annotations:
              summary: sre-agent cannot reach Ollama (or the model is not pulled).
              description: "{description}"
      - eval_time: 20m
        alertname: SreAgentInvestigationsFailing
        exp_alerts:
          - exp_labels: {{severity: warning}}
            exp_annotations:
              summary: Most sre-agent investigations fail or end degraded.
              description: "{failing}"
      - eval_time: 30m
        alertname: SreAgentQueueBacklog
        exp_alerts: []
"""


@needs_prometheus
def test_prometheusrule_passes_promtool_and_its_alerts_fire(tmp_path):
    rule = _manifest("prometheusrule.yaml")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["kind"] == "PrometheusRule"
    names = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"SreAgentInvestigationsFailing", "SreAgentOllamaUnreachable"} <= names
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    check = subprocess.run(
        ["promtool", "check", "rules", str(rules)], capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(names)} rules found" in check.stdout

    # The alerts fire on the series they are about (and not before their `for`).
    by_name = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}

    def rendered(name: str, **values: str) -> str:
        text = by_name[name]["annotations"]["description"]
        for template, shown in values.items():
            text = text.replace("{{ " + template + " }}", shown)
        return json.dumps(text)[1:-1]

    tests = tmp_path / "rules_test.yaml"
    tests.write_text(
        RULE_TESTS.format(
            rules=rules.name,
            description=rendered(
                "SreAgentOllamaUnreachable", **{"$labels.namespace": "", "$labels.pod": ""}
            ),
            failing=rendered(
                "SreAgentInvestigationsFailing", **{"$value | humanizePercentage": "100%"}
            ),
        )
    )
    run = subprocess.run(
        ["promtool", "test", "rules", str(tests)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
