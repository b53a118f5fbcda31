"""sre-agent's read-only tools: PromQL queries and Kubernetes lookups.

Each backend module (``prometheus``, ``kubernetes``) exposes plain async
functions ``fn(deps, ...) -> ToolResult`` that code can call directly;
``make_tools()`` wraps them as LangChain tools whose signature and docstring
are their schema.
"""

from sre_agent_tools.deps import ToolDeps
from sre_agent_tools.result import ToolResult

__all__ = ["ToolDeps", "ToolResult", "make_tools"]


def make_tools():  # type: ignore[no-untyped-def]
    """The agent's tools (imported lazily: LangChain is heavy)."""
    from sre_agent_tools.toolset import make_tools as _make_tools

    return _make_tools()
