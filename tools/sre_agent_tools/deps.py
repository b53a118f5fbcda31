"""The clients a tool works with, handed in by the caller (never read from the environment)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    output_limit: int = DEFAULT_OUTPUT_LIMIT
    #: Per-request timeout (seconds) for backend calls.
    timeout: float = 10.0
    extra: dict[str, object] = field(default_factory=dict)
