"""The ``logs`` tool: the last lines of a pod container's log, the previous instance's
on request, the running init container's for a pod still initializing; long lines cut
and secrets masked before anything else reads them.
"""

from __future__ import annotations

from kubernetes.client.exceptions import ApiException

from sre_agent_tools.deps import ToolDeps
from sre_agent_tools.kube_api import POD, Obj, api_message, get_raw, read
from sre_agent_tools.kube_guard import guard
from sre_agent_tools.kube_render import keep_tail
from sre_agent_tools.redact import redact
from sre_agent_tools.result import ToolResult

__all__ = ["MAX_LOG_BYTES", "MAX_TAIL_LINES", "logs"]

MAX_TAIL_LINES = 500
#: At most this much log is read at all (500 lines of a chatty container can be megabytes).
MAX_LOG_BYTES = 256 * 1024


def _running_init_container(pod: Obj) -> str | None:
    """The init container whose log explains a pod that has not started: one that is
    running, or failed and waiting to retry, while no app container has started."""
    status = pod.get("status") or {}
    started = [
        s for s in status.get("containerStatuses") or [] if "waiting" not in (s.get("state") or {})
    ]
    if started:
        return None
    for s in status.get("initContainerStatuses") or []:
        state = s.get("state") or {}
        done = (state.get("terminated") or {}).get("exitCode") == 0
        if not done and ("running" in state or s.get("restartCount") or "terminated" in state):
            return str(s.get("name"))
    return None


async def logs(
    deps: ToolDeps,
    pod: str,
    namespace: str,
    container: str | None = None,
    previous: bool = False,
    tail_lines: int = 100,
) -> ToolResult:
    """The last lines of a pod container's log (at most 500), secrets masked.

    previous=True reads the log of the previous, crashed instance of the container,
    which is where a crash-looping container's error is. container may name an init
    container; without one, a pod still initializing shows its running init container.
    """

    async def body() -> ToolResult:
        obj = await read(deps, POD, pod, namespace)
        names = [c["name"] for c in obj["spec"].get("containers") or []]
        init = [c["name"] for c in obj["spec"].get("initContainers") or []]
        initializing = None if container else _running_init_container(obj)
        chosen = container or initializing or (names[0] if names else "")
        if chosen not in names + init:
            return ToolResult(
                "error",
                f"container {chosen!r} is not in pod {namespace}/{pod}; "
                f"containers: {', '.join(names + init)}",
            )
        tail = max(1, min(int(tail_lines), MAX_TAIL_LINES))
        try:
            raw = await get_raw(
                deps,
                "read_namespaced_pod_log",
                "/api/v1/namespaces/{namespace}/pods/{name}/log",
                name=pod,
                namespace=namespace,
                container=chosen,
                previous=previous,
                tail_lines=tail,
                limit_bytes=MAX_LOG_BYTES,
            )
        except ApiException as exc:
            message = api_message(exc)
            if exc.status == 400 and "previous terminated container" in message:
                return ToolResult(
                    "error",
                    f"No previous logs for container {chosen} in pod "
                    f"{namespace}/{pod}: it has not terminated before "
                    f"(API said: {message}).",
                )
            if exc.status == 400:
                return ToolResult(
                    "error", f"Cannot read logs of {namespace}/{pod} container {chosen}: {message}"
                )
            raise
        which = "previous instance" if previous else "current instance"
        title = "init container" if chosen in init and chosen not in names else "container"
        header = f"Logs of pod {namespace}/{pod}, {title} {chosen} ({which}), last {tail} lines"
        if initializing:
            header += " [the pod is initializing: showing its init container]"
        elif len(names) > 1 and container is None:
            header += f" [containers: {', '.join(names)}; showing the first]"
        # Long lines are cut before anything else looks at them (redaction included).
        text = "\n".join(
            line if len(line) <= 1000 else line[:1000] + " …"
            for line in raw.decode("utf-8", errors="replace").rstrip("\n").split("\n")
        )
        if not text:
            hint = "" if previous else " If it crashed, try previous=True."
            return ToolResult("no_data", f"{header}: empty.{hint}")
        return ToolResult("ok", keep_tail(header + ":", redact(text), deps.output_limit))

    return await guard(deps, f"logs {namespace}/{pod}", body)
