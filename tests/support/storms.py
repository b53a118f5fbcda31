"""Run a storm as a user meets one: its alerts posted to the real Alertmanager in a
shuffled order, delivered to a running ``sre-agent serve`` (the lab's fake Kubernetes
and real Prometheus, the scripted Ollama), and measured from what the API serves.

Shared by ``tests/integration/test_storms.py`` (what must hold) and
``scripts/bench_storm.py`` (the figures).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from sre_agent.models import FINAL
from sre_agent.settings import load_settings
from sre_agent_lab.storms import ExpectedIncident, Storm
from tests.conftest import settings_env
from tests.support.alertmanager import AlertmanagerServer
from tests.support.lab import Lab
from tests.support.model_scripts import alert_labels
from tests.support.net import wait_for
from tests.support.service import ServiceProcess

#: bench.py's reference GPU: prompt processing and generation, tokens per second.
PROMPT_RATE = 1500.0
GEN_RATE = 50.0


def _time(text: str | None) -> float | None:
    return datetime.fromisoformat(text).timestamp() if text else None


@dataclass
class StormRun:
    """What the API served once every alert of the storm was final."""

    storm: Storm
    seed: int
    posted: list[str]  # alertnames in the order they were posted
    records: list[dict[str, Any]]  # full records, oldest first
    #: ``GET /incidents``; None when the service has no such route (every alert its own).
    incidents: list[dict[str, Any]] | None
    chats: list[dict[str, Any]] = field(default_factory=list)  # /api/chat bodies, in order

    def order(self) -> str:
        return f"seed {self.seed}: posted " + ", ".join(self.posted)

    def labels(self, record: dict[str, Any]) -> dict[str, str]:
        return dict(record["alert"]["labels"])

    def record_of(self, wanted: dict[str, str]) -> dict[str, Any] | None:
        return next(
            (r for r in self.records if all(self.labels(r).get(k) == v for k, v in wanted.items())),
            None,
        )

    def llm_runs(self) -> list[dict[str, Any]]:
        """Records the model ran for, in the order their runs ended."""
        ran = [r for r in self.records if r["llm_usage"]["calls"] > 0]
        return sorted(ran, key=lambda r: r["finished_at"] or "")

    def first_chat_labels(self) -> dict[str, str]:
        """The labels of the alert the model was first asked about."""
        return alert_labels(self.chats[0]) if self.chats else {}

    def groups(self) -> list[set[str]]:
        """The incidents as sets of investigation ids (every alert its own without them)."""
        if not self.incidents:  # incidents off (404, or none: no record is in one)
            return [{r["id"]} for r in self.records]
        return [{a["investigation_id"] for a in i["alerts"]} for i in self.incidents]

    def heads(self, expected: ExpectedIncident) -> set[str]:
        """The ids of the alerts that may head ``expected`` (every one carrying its
        ``head`` labels: a node's NotReady or its Unreachable alert)."""
        return {
            r["id"]
            for r in self.records
            if all(self.labels(r).get(k) == v for k, v in expected.head.items())
        }

    def head_record(self, expected: ExpectedIncident) -> dict[str, Any] | None:
        """The alert whose analysis answers ``expected``: its incident's head, or (one
        run per alert) the first of its possible heads whose run ended."""
        heads = self.heads(expected)
        for incident in self.incidents or []:
            if incident.get("head_id") in heads:
                return next(r for r in self.records if r["id"] == incident["head_id"])
        ended = [r for r in self.records if r["id"] in heads and r.get("finished_at")]
        return min(ended, key=lambda r: r["finished_at"], default=None)

    def first_report_s(self) -> list[float]:
        """Per alert: seconds from arrival to its evidence report (else to its end)."""
        out = []
        for r in self.records:
            shown = _time(r.get("evidence_at")) or _time(r["finished_at"])
            arrived = _time(r["created_at"])
            if shown is not None and arrived is not None:
                out.append(shown - arrived)
        return out

    def figures(self) -> dict[str, Any]:
        """The bench's row: alerts, incidents, LLM runs, time to the head's analysis and
        to the first evidence reports."""
        head = self.head_record(self.storm.incidents[0]) or {}
        runs = self.llm_runs()
        done = head.get("finished_at") or ""
        model_s = sum(
            c["prompt_tokens"] / PROMPT_RATE + c["completion_tokens"] / GEN_RATE
            for r in runs
            if (r["finished_at"] or "") <= done
            for c in r["llm_usage"]["calls_detail"]
        )
        model_total = sum(
            c["prompt_tokens"] / PROMPT_RATE + c["completion_tokens"] / GEN_RATE
            for r in runs
            for c in r["llm_usage"]["calls_detail"]
        )
        arrived = min(_time(r["created_at"]) or 0.0 for r in self.records)
        reports = self.first_report_s() or [0.0]
        return {
            "storm": self.storm.name,
            "alerts": len(self.records),
            "incidents": len(self.groups()),
            "llm_runs": len(runs),
            "model_s_to_head": model_s,
            "model_s_total": model_total,
            "wall_s_to_head": (_time(done) or arrived) - arrived,
            "first_report_median_s": statistics.median(reports),
            "first_report_max_s": max(reports),
            "evidence_at": any(r.get("evidence_at") for r in self.records),
        }


def _get(url: str, **params: Any) -> httpx.Response:
    return httpx.get(url, params=params, timeout=10)


def _records(service: ServiceProcess) -> list[dict[str, Any]]:
    listed = _get(f"{service.url}/investigations", limit=500).json()["investigations"]
    return [_get(f"{service.url}/investigations/{r['id']}").json() for r in listed]


def _incidents(service: ServiceProcess) -> list[dict[str, Any]] | None:
    answer = _get(f"{service.url}/incidents", limit=200)
    if answer.status_code == 404:
        return None
    answer.raise_for_status()
    found = answer.json()["incidents"]
    return [_get(f"{service.url}/incidents/{i['id']}").json() for i in found]


def run_storm(
    lab: Lab,
    storm: Storm,
    workdir: Path,
    *,
    seed: int,
    incidents: bool = True,
    timeout: float = 90.0,
    **settings: Any,
) -> StormRun:
    """Post the storm through a fresh Alertmanager to a fresh service; wait until every
    alert is in and final; read the records (and incidents) back."""
    workdir.mkdir(parents=True, exist_ok=True)
    values: dict[str, Any] = {
        "ollama_url": lab.ollama.url,
        "prometheus_url": lab.prometheus.url,
        "kubeconfig": lab.kubeconfig,
        "database_url": f"sqlite:///{workdir / 'sre-agent.db'}",
        "backend_timeout": 5.0,
        "incidents": incidents,
        "incident_settle": 3.0,
        # CPUThrottlingHigh is an info alert in kubernetes-mixin: a storm's alerts all count.
        "severities": ("critical", "warning", "info"),
    }
    values.update(settings)
    env = settings_env(load_settings(**values))
    first_chat = len(lab.ollama.requests)
    order = storm.schedule(seed)
    with (
        ServiceProcess(env, workdir / "service.log") as service,
        AlertmanagerServer(
            workdir / "am", f"{service.url}/webhook/alert", group_by=tuple(storm.group_by)
        ) as am,
    ):
        now = datetime.now(UTC)
        began = time.monotonic()
        for alert in order:
            pause = alert.delay - (time.monotonic() - began)
            if pause > 0:
                time.sleep(pause)
            am.post([alert.posted(now)])

        def settled() -> list[dict[str, Any]] | None:
            found = _records(service)
            whole = len(found) == len(storm.alerts) and all(r["status"] in FINAL for r in found)
            return found if whole else None

        try:
            records = wait_for(settled, timeout, f"every alert of {storm.name} to be final")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc} ({len(_records(service))} in);\n{service.log()[-3000:]}"
            ) from None
        found_incidents = _incidents(service)
    records.sort(key=lambda r: r["created_at"])
    return StormRun(
        storm,
        seed,
        [a.alertname for a in order],
        records,
        found_incidents,
        list(lab.ollama.requests[first_chat:]),
    )
