"""The clients a tool works with, handed in by the caller (never read from the environment)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from sre_agent_tools.kube_scope import scope
from sre_agent_tools.result import DEFAULT_OUTPUT_LIMIT


@dataclass
class ToolDeps:
    """Passed to the agent as its run context (``agent.ainvoke(..., context=deps)``).

    ``prometheus`` / ``kube`` are None when that backend is not configured; the
    tools then answer with an error the model can read instead of raising.
    """

    #: a ``prometheus_api_client.PrometheusConnect`` (typed Any: LangGraph resolves
    #: these annotations at run time, and the clients' classes are heavy to import)
    prometheus: Any = None
    #: a ``kubernetes.client.ApiClient``
    kube: Any = None
    #: Why ``kube`` is None (the kubeconfig named and what is wrong), for the tools to say.
    kube_problem: str | None = None
    output_limit: int = DEFAULT_OUTPUT_LIMIT
    #: Per-request timeout (seconds) for backend calls.
    timeout: float = 10.0
    #: How far back one PromQL query may read (ranges, offsets, a range query's span).
    promql_max_range: timedelta = timedelta(days=7)
    #: Series one PromQL selector may match before the query is refused.
    promql_max_series: int = 10_000
    #: Series a range query may return (each is fetched as up to ~1,000 points).
    promql_max_range_series: int = 500
    #: Namespaces Kubernetes reads are limited to; None: any (the evidence gatherer,
    #: the lab). An investigation's agent gets the namespaces its evidence names.
    namespaces: frozenset[str] | None = None
    #: Whose scope that is, for the refusal the model reads ("this investigation's").
    scope_owner: str = "this investigation's"
    #: A :class:`sre_agent_tools.read_cache.ReadCache` shared by every copy (the
    #: service's investigations), or None: each Kubernetes read goes to the server.
    reads: Any = None
    extra: dict[str, object] = field(default_factory=dict)

    def scoped(
        self,
        alert: Mapping[str, Any],
        tool_calls: Iterable[Mapping[str, Any]],
        allowed: Iterable[str] = (),
        owner: str = "this investigation's",
    ) -> ToolDeps:
        """A copy whose Kubernetes reads stay in the namespaces the evidence names.

        Those are the alert's ``namespace`` label and the namespaces the evidence
        gatherer visited (``phase: evidence`` tool calls), plus ``allowed``
        (SRE_AGENT_ALLOWED_NAMESPACES; ``*``: any).
        """
        labels = alert.get("labels") or {}
        return replace(self, namespaces=scope(labels, tool_calls, allowed), scope_owner=owner)
