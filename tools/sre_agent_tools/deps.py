"""The clients a tool works with, handed in by the caller (never read from the environment)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sre_agent_tools.result import DEFAULT_OUTPUT_LIMIT

if TYPE_CHECKING:
    from kubernetes.client import ApiClient
    from prometheus_api_client import PrometheusConnect


@dataclass
class ToolDeps:
    """Passed to the agent as its run context (``agent.ainvoke(..., context=deps)``).

    ``prometheus`` / ``kube`` are None when that backend is not configured; the
    tools then answer with an error the model can read instead of raising.
    """

    prometheus: PrometheusConnect | None = None
    kube: ApiClient | None = None
    output_limit: int = DEFAULT_OUTPUT_LIMIT
    #: Per-request timeout (seconds) for backend calls.
    timeout: float = 10.0
    extra: dict[str, object] = field(default_factory=dict)
