"""Hung backends: a Kubernetes API or a Prometheus that accepts the connection and
never answers (or sends headers, then stalls).

What a user relies on, each checked against the real ``sre-agent serve`` (real
clients, the hang at the wire): the investigation ends within its deadline as
``degraded`` with what the other backends gave, the report names the lookups
that did not answer, ``/readyz`` answers at once throughout and reports the
hung backend as not ok, and no client re-sends a request behind our back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sre_agent_tools import kubernetes as k8s
from sre_agent_tools import prometheus as prom

from sre_agent.agent import Investigator, RunLog
from sre_agent.backends import make_deps
from sre_agent.models import AlertRecord, Evidence
from sre_agent.prompts import load_prompts
from sre_agent.settings import Settings
from tests.conftest import EXAMPLES
from tests.support.fake_ollama import hang
from tests.support.hung_server import HungServer
from tests.support.service import ServiceProcess

BODY = (EXAMPLES / "group-firing-homepage.json").read_bytes()
CRASHED_POD = "bruno-site-api-7d9f8c6b5-x2x4q"
#: The crashed container's last log line, as the fake Kubernetes world serves it.
CRASH_LOG = "FATAL: config: required setting"
DEADLINE = 6.0
#: The probes' own timeout, as kubelet's timeoutSeconds (deploy/'s probe allows 5 s): a
#: /readyz or /healthz that waits on a hung backend fails the probe, whatever it says.
READYZ_BOUND = 2.0
#: How a lookup that got no answer reads in the evidence.
NO_ANSWER = re.compile(r"timed out|no answer|unreachable|cancelled", re.IGNORECASE)


@pytest.fixture(params=["silent", "headers"])
def hung(request: pytest.FixtureRequest) -> Iterator[HungServer]:
    with HungServer(request.param) as server:
        yield server


class Prober:
    """Polls ``/readyz`` and ``/healthz`` from another thread while a test runs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: list[tuple[str, int, dict[str, Any]]] = []  # status 0: timed out
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with httpx.Client(timeout=READYZ_BOUND) as http:
            while not self._stop.is_set():
                for path in ("/readyz", "/healthz"):
                    try:
                        response = http.get(self.url + path)
                    except httpx.TimeoutException:
                        self.answers.append((path, 0, {}))
                    else:
                        self.answers.append((path, response.status_code, response.json()))
                self._stop.wait(0.25)

    def readyz(self) -> list[tuple[int, dict[str, Any]]]:
        return [(code, body) for path, code, body in self.answers if path == "/readyz"]


def service_env(settings: Settings) -> dict[str, str]:
    """The settings that differ from the defaults, as SRE_AGENT_* variables."""
    return {
        f"SRE_AGENT_{name.upper()}": str(value)
        for name, value in settings.model_dump(exclude_defaults=True).items()
        if value is not None
    }


def investigate(service: ServiceProcess) -> tuple[list[dict[str, Any]], float]:
    """Post the homepage group and wait for its investigations; (records, seconds)."""
    started = time.monotonic()
    response = httpx.post(
        f"{service.url}/webhook/alert",
        content=BODY,
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert response.status_code == 202, response.text
    idents = [r["investigation_id"] for r in response.json()["results"] if r["investigation_id"]]
    assert len(idents) == 2  # the info alert is skipped
    records: list[dict[str, Any]] = []
    while time.monotonic() - started < DEADLINE * 3:
        records = [httpx.get(f"{service.url}/investigations/{i}").json() for i in idents]
        if all(r["status"] in ("completed", "degraded", "failed") for r in records):
            for r in records:  # the report a person reads: rendered when asked for
                url = f"{service.url}/investigations/{r['id']}"
                r["report"] = httpx.get(url, params={"format": "markdown"}).text
            return records, time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"investigations did not finish: {[r['status'] for r in records]}")


def outputs(record: dict[str, Any], *tools: str) -> list[str]:
    return [e["output"] for e in record["evidence"] if e.get("tool") in tools]


def check_probes(prober: Prober, hung_name: str, others: tuple[str, ...]) -> None:
    answers = prober.readyz()
    assert len(answers) >= 5, "the prober got too few answers"
    assert {code for p, code, _ in prober.answers if p == "/healthz"} == {200}
    for code, body in answers:
        assert code == 200 and body["status"] == "ready" and body["database"]["ok"]
        assert body[hung_name]["ok"] is False, body[hung_name]
        assert body[hung_name]["checked_at"] and body[hung_name]["error"]
        for name in others:
            assert body[name]["ok"] is True, body[name]
        assert set(body) >= {"status", "database", "ollama", "prometheus", "kubernetes"}
    # The states are fresh: the background checks keep running while the backend hangs.
    assert min(body[hung_name]["age_s"] for _, body in answers[-3:]) < 5.0


def lookups_at(server: HungServer, exclude: str) -> list[str]:
    """The requests the server got, but the readiness checks' (``exclude``). Each came on
    a connection of its own: a connection that timed out is never reused."""
    assert server.connections == len(server.requests)
    return [r for r in server.requests if not r.split(" ", 1)[1].startswith(exclude)]


def test_hung_kubernetes_api(tmp_path: Path, make_settings, ollama, prometheus, hung) -> None:
    ollama.default = hang(60)  # the model never answers either: the deadline ends it
    settings = make_settings(
        kubeconfig=hung.write_kubeconfig(tmp_path / "hung-kubeconfig"),
        prometheus_url=prometheus.url,
        investigation_timeout=DEADLINE,
        backend_timeout=2.0,
        evidence_timeout=1.0,  # cut before the Kubernetes client gives up
        readiness_interval=0.5,
        readiness_check_timeout=1.0,
        max_concurrent=2,
    )
    with (
        ServiceProcess(service_env(settings), tmp_path / "service.log") as service,
        Prober(service.url) as prober,
    ):
        # Within investigate()'s outer guard (3 deadlines), though the model hangs for 60 s.
        records, _ = investigate(service)
        time.sleep(1)  # a few more probes once the investigations are done
    kube_findings = most = 0
    for record in records:
        assert record["status"] == "degraded", record["status_reason"]
        assert "deadline" in record["status_reason"]  # ended by it, not by the 60 s hang
        # Prometheus answered: its evidence is in the record and the report.
        promql = outputs(record, "promql_query", "promql_range")
        assert not [text for text in promql if NO_ANSWER.search(text)], promql
        calls = [c for c in record["tool_calls"] if c["name"].startswith("promql")]
        assert any(c["status"] == "ok" for c in calls), calls
        # The Kubernetes lookups that never answered are named, as errors.
        kube = [c for c in record["tool_calls"] if c["name"].startswith("kubectl")]
        assert kube and all(c["status"] == "error" for c in kube), kube
        for text in outputs(record, "kubectl_describe"):
            assert "timed out: no answer within the evidence phase's 1 s" in text
        assert "timed out" in record["report"]
        kube_findings += len(kube)
        most = max(most, len(kube))
    crash = next(r for r in records if r["alert"]["labels"]["alertname"] == "KubePodCrashLooping")
    assert any(CRASHED_POD in text for text in outputs(crash, "promql_query", "promql_range"))
    assert f"kubectl describe pod homepage/{CRASHED_POD}" in crash["report"]
    # At most one request per lookup: no client retry, no second GET to learn why the
    # first failed; the two investigations' identical reads (their namespace's events)
    # share one request when in flight at once (the read cache's single flight; a failed
    # read is not kept), so none is sent more often than there are investigations.
    lookups = lookups_at(hung, exclude="/version")
    assert most <= len(lookups) <= kube_findings, lookups
    assert max(lookups.count(r) for r in lookups) <= len(records), lookups
    check_probes(prober, "kubernetes", ("ollama", "prometheus"))
    assert "Retrying" not in service.log()


def test_hung_prometheus(tmp_path: Path, make_settings, ollama, kube, hung) -> None:
    ollama.default = hang(60)
    settings = make_settings(
        prometheus_url=hung.url,
        investigation_timeout=DEADLINE,
        backend_timeout=1.0,
        readiness_interval=0.5,
        readiness_check_timeout=1.0,
        max_concurrent=2,
    )
    with (
        ServiceProcess(service_env(settings), tmp_path / "service.log") as service,
        Prober(service.url) as prober,
    ):
        records, _ = investigate(service)
        time.sleep(1)
    for record in records:
        assert record["status"] == "degraded", record["status_reason"]
        assert "deadline" in record["status_reason"]  # ended by it, not by the 60 s hang
        calls = [c for c in record["tool_calls"] if c["name"].startswith("promql")]
        assert calls and all(c["status"] == "error" for c in calls), calls
        for text in outputs(record, "promql_query", "promql_range"):
            assert NO_ANSWER.search(text), text
        kube = [c for c in record["tool_calls"] if c["name"].startswith("kubectl")]
        # answered: a crash-looping container's current log is empty ("no_data"), not an error
        assert kube and all(c["status"] in ("ok", "no_data") for c in kube), kube
    # The fake Kubernetes API answered: the crashed pod, its logs, its deployment.
    crash = next(r for r in records if r["alert"]["labels"]["alertname"] == "KubePodCrashLooping")
    assert any(CRASH_LOG in text for text in outputs(crash, "kubectl_logs"))
    assert any("CrashLoopBackOff" in text for text in outputs(crash, "kubectl_describe"))
    assert CRASH_LOG in crash["report"]
    # Each lookup is one request (test_prometheus_client_makes_one_attempt counts them
    # one by one; here two lookups may share a pre-check, so lines can repeat).
    assert lookups_at(hung, exclude="/-/ready")
    check_probes(prober, "prometheus", ("ollama", "kubernetes"))
    assert "Retrying" not in service.log()


def test_kubernetes_client_makes_one_attempt_and_logs_no_retry(
    make_settings, hung, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    settings = make_settings(
        kubeconfig=hung.write_kubeconfig(tmp_path / "hung-kubeconfig"), backend_timeout=1.0
    )
    deps = make_deps(settings)
    caplog.set_level(logging.DEBUG)

    try:
        found = asyncio.run(k8s.read_object(deps, "pod", "api-0", "homepage"))
    finally:
        deps.kube.close()
    assert found.status == "error" and "unreachable" in found.text
    # One timeout, not four (urllib3's default Retry(3) would re-send three times).
    assert hung.connections == 1 and len(hung.requests) == 1
    assert not [r for r in caplog.records if "Retrying" in r.getMessage()]


def test_prometheus_client_makes_one_attempt(make_settings, hung) -> None:
    settings = make_settings(prometheus_url=hung.url, backend_timeout=1.0)
    deps = make_deps(settings)
    result = asyncio.run(prom.query_instant(deps, 'up{job="api"}'))
    assert result.status == "error"
    # One timeout, not four (urllib3's default Retry(3) would re-send three times).
    assert hung.connections == 1 and len(hung.requests) == 1


def test_a_deadline_during_gathering_keeps_what_answered(
    make_settings, prometheus, hung, tmp_path: Path
) -> None:
    """The worker's deadline cancels the investigation while Kubernetes hangs: what
    Prometheus gave is already in the run's record, and the lookups that were still
    waiting are named."""
    settings = make_settings(
        kubeconfig=hung.write_kubeconfig(tmp_path / "hung-kubeconfig"),
        prometheus_url=prometheus.url,
        backend_timeout=60.0,  # the Kubernetes read is still waiting when the deadline comes
    )
    alert = _stored_alert("KubePodCrashLooping")
    investigator = Investigator(settings, load_prompts(None), make_deps(settings))
    run = RunLog()

    async def cut_short() -> None:
        # As the worker runs it (wait_for), cancelled once Prometheus has answered.
        task = asyncio.create_task(asyncio.wait_for(investigator.gather(alert, run), 120))
        for _ in range(600):
            if any(item.tool == "promql_query" for item in run.evidence):
                break
            await asyncio.sleep(0.05)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        hung.stop()  # the cancelled read's thread then ends at once, not at its timeout

    try:
        asyncio.run(cut_short())
    finally:
        investigator.deps.kube.close()
    by_tool: dict[str, list[Evidence]] = {}
    for item in run.evidence:
        by_tool.setdefault(item.tool, []).append(item)
    assert any(CRASHED_POD in item.output for item in by_tool["promql_query"])
    waiting = by_tool["kubectl_describe"]
    assert [item.title for item in waiting] == [f"kubectl describe pod homepage/{CRASHED_POD}"]
    assert "deadline" in waiting[0].output
    # In priority order (the alert's expression first), as a finished gathering leaves it.
    assert run.evidence[0].tool == "promql_query"
    assert len(run.tool_calls) == len(run.evidence)
    assert all(c.phase == "evidence" for c in run.tool_calls)


def _stored_alert(alertname: str) -> AlertRecord:
    """One alert of the example group, the way the worker reads it from the store."""
    alert = next(a for a in json.loads(BODY)["alerts"] if a["labels"]["alertname"] == alertname)
    return AlertRecord.model_validate(
        {
            "labels": alert["labels"],
            "annotations": alert["annotations"],
            "startsAt": alert["startsAt"],
            "generatorURL": alert["generatorURL"],
            "expr": prom.expr_from_generator_url(alert["generatorURL"]),
            "status": "firing",
        }
    )
