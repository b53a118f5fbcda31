"""The service's own metrics (``GET /metrics``), in a registry of its own.

Each app gets its own :class:`~prometheus_client.CollectorRegistry`, made in
the lifespan, so tests that build many apps in one process never share or
collide on counters. Counters are fed by the webhook (alerts received), its
rejections (:mod:`sre_agent.api.rejections`), the worker's ``on_finished`` hook
(outcome, duration, LLM and tool usage), authentication, the chat route's
refusals (:mod:`sre_agent.chat_limits`) and the Slack notifier; gauges are read
when scraped (queue depth) or refreshed by the readiness checks (Ollama
reachability, :mod:`sre_agent.readiness`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sre_agent_tools import make_tools

from sre_agent.api.rejections import REASONS as REJECTION_REASONS
from sre_agent.models import Investigation

log = logging.getLogger(__name__)

ALERT_STATUSES = ("queued", "duplicate", "skipped", "resolved")
OUTCOMES = ("completed", "degraded", "failed", "linked")
#: Every value of ``sre_agent_chat_refused_total{reason}`` (:mod:`sre_agent.chat_limits`).
CHAT_REFUSALS = ("rate", "busy")
#: An investigation takes seconds with a small model and up to the deadline (300 s default).
DURATION_BUCKETS = (1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 240, 300, 450, 600)


class Metrics:
    """Every metric sre-agent exposes, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        #: The only values of the ``tool`` label: a model can invent tool names.
        self.tool_names = frozenset(t.name for t in make_tools())
        r = self.registry
        self.alerts_received = Counter(
            "sre_agent_alerts_received",
            "Alerts received on the webhook, by what was done with them.",
            ["status"],
            registry=r,
        )
        self.investigations = Counter(
            "sre_agent_investigations",
            "Investigations finished, by outcome.",
            ["outcome"],
            registry=r,
        )
        self.duration = Histogram(
            "sre_agent_investigation_duration_seconds",
            "Wall time of one investigation.",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "sre_agent_queue_depth", "Investigations waiting for a worker.", registry=r
        )
        self.auth_failures = Counter(
            "sre_agent_auth_failures",
            "Requests refused by authentication (sre_agent.auth), by reason.",
            ["reason"],
            registry=r,
        )
        self.llm_calls = Counter("sre_agent_llm_calls", "Requests made to the model.", registry=r)
        self.llm_tokens = Counter(
            "sre_agent_llm_tokens", "Tokens the model read and wrote.", ["kind"], registry=r
        )
        self.tool_calls = Counter(
            "sre_agent_tool_calls",
            "Tool calls made by the agent, by tool and result status.",
            ["tool", "status"],
            registry=r,
        )
        self.ollama_up = Gauge(
            "sre_agent_ollama_up",
            "1 when Ollama answers and has the configured model, else 0.",
            registry=r,
        )
        self.webhook_rejected = Counter(
            "sre_agent_webhook_rejected",
            "Webhook deliveries refused, by reason (docs/troubleshooting.md).",
            ["reason"],
            registry=r,
        )
        self.chat_refused = Counter(
            "sre_agent_chat_refused",
            "Chat questions refused with 429: over the rate per user, or every slot busy.",
            ["reason"],
            registry=r,
        )
        self.slack_notifications = Counter(
            "sre_agent_slack_notifications",
            "Slack messages, by whether they were delivered.",
            ["status"],
            registry=r,
        )
        self.model_queue = Gauge(
            "sre_agent_model_queue",
            "Alerts whose evidence report is in, waiting for the model, by severity and role"
            " (head: heads its incident; own: not explained by its head; waiting: for the"
            " head's analysis or for its incident to settle).",
            ["severity", "role"],
            registry=r,
        )
        self.queue_wait = Histogram(
            "sre_agent_queue_wait_seconds",
            "Seconds from an alert's evidence report to the start of its model run.",
            ["severity", "role"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.first_report = Histogram(
            "sre_agent_first_report_seconds",
            "Seconds from an alert's arrival to its evidence report.",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        self.to_analysis = Histogram(
            "sre_agent_analysis_seconds",
            "Seconds from an alert's arrival to the analysis that explains it (its own or"
            " its incident head's).",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.incidents = Counter(
            "sre_agent_incidents", "Incidents opened (alerts that joined none).", registry=r
        )
        # Known label values start at 0, so rates and ratios exist from the first scrape.
        for sev in SEVERITY_CLASSES:
            for role in ("head", "own", "waiting"):
                self.model_queue.labels(sev, role)
        for status in ALERT_STATUSES:
            self.alerts_received.labels(status)
        for outcome in OUTCOMES:
            self.investigations.labels(outcome)
        for kind in ("prompt", "completion"):
            self.llm_tokens.labels(kind)
        for status in ("sent", "failed"):
            self.slack_notifications.labels(status)
        for reason in REJECTION_REASONS:
            self.webhook_rejected.labels(reason)
        for reason in CHAT_REFUSALS:
            self.chat_refused.labels(reason)

    def count_alert(self, result: dict[str, Any]) -> None:
        """One webhook result: queued, duplicate, skipped or resolved."""
        status = result.get("status")
        if status not in ("skipped", "resolved"):
            status = "duplicate" if result.get("duplicate") else "queued"
        self.alerts_received.labels(status).inc()

    def count_rejection(self, reason: str) -> None:
        """A refused webhook delivery; ``reason`` is one of :data:`REJECTION_REASONS`."""
        self.webhook_rejected.labels(reason if reason in REJECTION_REASONS else "other").inc()

    def count_chat_refused(self, reason: str) -> None:
        """A chat question refused by :class:`~sre_agent.chat_limits.ChatLimits`."""
        if reason in CHAT_REFUSALS:
            self.chat_refused.labels(reason).inc()

    def observe_investigation(self, record: Investigation) -> None:
        """A finished investigation, as stored (status, duration, LLM usage, tool calls)."""
        self.investigations.labels(record.status).inc()
        if record.duration_s is not None:
            self.duration.observe(record.duration_s)
        usage = record.llm_usage
        self.llm_calls.inc(usage.calls)
        self.llm_tokens.labels("prompt").inc(usage.prompt_tokens)
        self.llm_tokens.labels("completion").inc(usage.completion_tokens)
        for call in record.tool_calls:
            name = str(call.name)
            self.tool_calls.labels(
                name if name in self.tool_names else "unknown", call.status
            ).inc()

    def set_model_queue(self, depth: dict[tuple[str, str], int]) -> None:
        """The model's queue as the dispatcher last saw it: (severity, role) -> count."""
        counts: dict[tuple[str, str], int] = {}
        for (severity, role), n in depth.items():
            key = (severity_class(severity), role)
            counts[key] = counts.get(key, 0) + n
        for sev in SEVERITY_CLASSES:
            for role in ("head", "own", "waiting"):
                self.model_queue.labels(sev, role).set(counts.get((sev, role), 0))

    def observe_wait(self, severity: str, role: str, seconds: float) -> None:
        self.queue_wait.labels(severity_class(severity), role).observe(seconds)

    def observe_report(self, record: Investigation) -> None:
        """An evidence report stored: how long after the alert arrived."""
        if record.evidence_at:
            self.first_report.observe(_seconds(record.created_at, record.evidence_at))

    def observe_explained(self, record: Investigation) -> None:
        """A record whose analysis (or its head's) is in: how long after it arrived."""
        if record.finished_at and record.status in ("completed", "linked"):
            self.to_analysis.observe(_seconds(record.created_at, record.finished_at))

    def track_queue(self, depth: Callable[[], int]) -> None:
        """The queue depth is read from the worker at each scrape."""
        self.queue_depth.set_function(lambda: float(depth()))

    def set_ollama(self, status: dict[str, Any]) -> None:
        self.ollama_up.set(1 if status.get("ok") else 0)

    def record_backend(self, name: str, status: dict[str, Any]) -> None:
        """A background readiness check's result (:mod:`sre_agent.readiness`)."""
        if name == "ollama":
            self.set_ollama(status)


#: The ``severity`` label's values: an alert's severity is free text.
SEVERITY_CLASSES = ("critical", "warning", "info", "other")


def severity_class(severity: str) -> str:
    return severity if severity in SEVERITY_CLASSES else "other"


def _seconds(start: str, end: str) -> float:
    """Seconds between two stored ISO times (never negative)."""
    a = datetime.fromisoformat(start.replace("Z", "+00:00"))
    b = datetime.fromisoformat(end.replace("Z", "+00:00"))
    return max(0.0, (b - a).total_seconds())
