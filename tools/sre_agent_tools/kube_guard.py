"""How every Kubernetes tool runs: the configured check, backend trouble turned into an
``error`` result the model can read (not found, RBAC, unreachable API, a surprise),
redaction and the output cap, and one log line per call with its duration and status.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from kubernetes.client.exceptions import ApiException

from sre_agent_tools.deps import ToolDeps
from sre_agent_tools.kube_api import Failed, api_message
from sre_agent_tools.redact import redact
from sre_agent_tools.result import ToolResult, cap

__all__ = ["NOT_CONFIGURED", "guard", "value_or_error"]

log = logging.getLogger(__name__)

NOT_CONFIGURED = "Kubernetes is not configured (set SRE_AGENT_KUBECONFIG or run in-cluster)"
T = TypeVar("T")


async def guard(deps: ToolDeps, what: str, body: Callable[[], Awaitable[ToolResult]]) -> ToolResult:
    """Run a tool body: configured check, error mapping, redaction, cap, one log line."""
    started = time.monotonic()
    if deps.kube is None:
        result = ToolResult("error", deps.kube_problem or NOT_CONFIGURED)
    else:
        try:
            result = await body()
        except Failed as failed:
            result = failed.result
        except ApiException as exc:
            result = ToolResult(
                "error", f"Kubernetes API error {exc.status} during {what}: {api_message(exc)}"
            )
        except Exception as exc:  # a surprise must reach the model as text, not end the run
            log.exception("tool kubernetes %s failed", what)
            result = ToolResult("error", f"{what} failed: {exc.__class__.__name__}: {exc}")
    result = ToolResult(result.status, cap(redact(result.text), deps.output_limit))
    log.debug(
        "tool kubernetes %s status=%s duration=%.3fs",
        what,
        result.status,
        time.monotonic() - started,
    )
    return result


async def value_or_error(
    deps: ToolDeps, what: str, produce: Callable[[], Awaitable[T]]
) -> T | ToolResult:
    """``produce()``'s value, or the error a tool would have given (one try, no retry)."""
    box: list[T] = []

    async def body() -> ToolResult:
        box.append(await produce())
        return ToolResult("ok", "")

    failed = await guard(deps, what, body)
    return box[0] if box else failed
