"""sre-agent's read-only tools: PromQL queries and Kubernetes lookups.

Each backend module exposes plain async functions ``fn(deps, ...) -> ToolResult``
that the evidence gatherer can call directly; ``make_tools()`` wraps them as
LangChain tools whose signature and docstring are their schema.
"""

from sre_agent_tools.deps import ToolDeps
from sre_agent_tools.result import ToolResult

__all__ = ["ToolDeps", "ToolResult"]
