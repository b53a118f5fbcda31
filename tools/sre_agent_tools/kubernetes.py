"""Read-only Kubernetes tools: ``describe``, ``events`` and ``logs``, and reads for code.

Each tool answers like a terse ``kubectl``: the facts an on-call engineer
reads first (state, reasons, exit codes, recent events), redacted and capped,
as a :class:`ToolResult`. Backend trouble (not found, RBAC, unreachable API)
comes back as an ``error`` result the model can read and act on; nothing here
raises for it. Any kind the API server serves can be read, custom resources
included (:mod:`sre_agent_tools.kube_discovery`), except Secrets, in any form.

This module is the facade; the API core is :mod:`sre_agent_tools.kube_api`,
the describers :mod:`sre_agent_tools.kube_describe`, and the structured reads
at the end (:func:`read_object`, :func:`list_or_error`, :func:`object_events`,
:func:`kind_info`) serve the evidence gatherer's graph walk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from kubernetes.client.exceptions import ApiException

from sre_agent_tools.deps import ToolDeps
from sre_agent_tools.kube_api import (
    POD,
    Failed,
    KindInfo,
    Obj,
    api_message,
    get_raw,
    list_items,
    read,
)
from sre_agent_tools.kube_describe import MAX_EVENTS_DESCRIBE, described, events_of
from sre_agent_tools.kube_discovery import resolve
from sre_agent_tools.kube_render import keep_tail, render_events
from sre_agent_tools.redact import redact, redact_value
from sre_agent_tools.result import ToolResult, cap

__all__ = [
    "MAX_EVENTS_DESCRIBE",
    "NOT_CONFIGURED",
    "KindInfo",
    "Obj",
    "describe",
    "describe_object",
    "events",
    "get_object",
    "kind_info",
    "list_objects",
    "list_or_error",
    "logs",
    "object_events",
    "object_events_or_error",
    "read_object",
    "render_events",
]

log = logging.getLogger(__name__)

NOT_CONFIGURED = "Kubernetes is not configured (set SRE_AGENT_KUBECONFIG or run in-cluster)"
MAX_TAIL_LINES = 500
#: At most this much log is read at all (500 lines of a chatty container can be megabytes).
MAX_LOG_BYTES = 256 * 1024
MAX_LIST = 500
Selector = Mapping[str, Any] | Iterable[tuple[str, str, str]] | str | None
T = TypeVar("T")


async def _guard(
    deps: ToolDeps, what: str, body: Callable[[], Awaitable[ToolResult]]
) -> ToolResult:
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


async def _value_or_error(
    deps: ToolDeps, what: str, produce: Callable[[], Awaitable[T]]
) -> T | ToolResult:
    """``produce()``'s value, or the error a tool would have given (one try, no retry)."""
    box: list[T] = []

    async def body() -> ToolResult:
        box.append(await produce())
        return ToolResult("ok", "")

    failed = await _guard(deps, what, body)
    return box[0] if box else failed


# -- describe -------------------------------------------------------------------


async def describe(
    deps: ToolDeps, kind: str, name: str, namespace: str | None = None
) -> ToolResult:
    """Describe one Kubernetes object the way ``kubectl describe`` does, with recent events.

    kind: pod, deployment, statefulset, daemonset, replicaset, job, cronjob, node, service,
    pvc, pv, ingress, endpointslice, configmap, resourcequota, storageclass, namespace,
    webhook configurations, or any other kind the cluster serves (custom resources such
    as certificates.cert-manager.io). namespace: defaults to "default"; ignored for
    cluster-scoped kinds.
    """

    async def body() -> ToolResult:
        info = await resolve(deps, kind)
        ns = (namespace or "default") if info.namespaced else ""
        return await described(deps, info, await read(deps, info, name, ns))

    return await _guard(deps, f"describe {kind} {name}", body)


async def describe_object(deps: ToolDeps, kind: str, obj: Obj) -> ToolResult:
    """:func:`describe` for an object the caller has already read (no second GET)."""

    async def body() -> ToolResult:
        info = await resolve(deps, kind, obj.get("apiVersion"))
        return await described(deps, info, obj)

    return await _guard(deps, f"describe {kind} {obj['metadata'].get('name')}", body)


# -- events ---------------------------------------------------------------------


async def events(
    deps: ToolDeps,
    namespace: str,
    name: str | None = None,
    kind: str | None = None,
    limit: int = 20,
) -> ToolResult:
    """Recent events in a namespace, newest last, optionally for one object (name, kind).

    Events expire after about an hour, so an empty answer means "nothing recent".
    """

    async def body() -> ToolResult:
        info = await resolve(deps, kind) if kind else None
        api_kind = info.kind if info else None
        if info is not None and not info.namespaced and name:
            found = await events_of(deps, None, name, api_kind, namespaced=False)
        else:
            found = await events_of(deps, namespace, name, api_kind)
        what = f"{api_kind or 'object'} {name}" if name else f"namespace {namespace}"
        if not found:
            return ToolResult(
                "no_data",
                f"No events for {what} in namespace {namespace} "
                "(events expire after about an hour).",
            )
        shown = found[-max(1, min(limit, 100)) :]
        return ToolResult("ok", "\n".join(render_events(shown, len(found), with_object=True)))

    return await _guard(deps, f"events {namespace} {name or ''}".strip(), body)


# -- logs -----------------------------------------------------------------------


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

    return await _guard(deps, f"logs {namespace}/{pod}", body)


# -- structured reads (for code, not the model) ---------------------------------


def _masked(info: KindInfo, obj: Obj) -> Obj:
    """A ConfigMap's values masked as :func:`redact_value` does; other objects as read."""
    if info.ref == "ConfigMap" and isinstance(obj.get("data"), dict):
        data = {k: redact_value(str(k), str(v)) for k, v in obj["data"].items()}
        return {**obj, "data": data}
    return obj


async def kind_info(
    deps: ToolDeps, kind: str, api_version: str | None = None
) -> KindInfo | ToolResult:
    """What ``kind`` names (API kind, group, plural, namespaced), or why it cannot be read.

    Built-in kinds answer without a request; others go through discovery (cached).
    """
    return await _value_or_error(deps, f"kind {kind}", lambda: resolve(deps, kind, api_version))


async def read_object(
    deps: ToolDeps,
    kind: str,
    name: str,
    namespace: str | None = None,
    api_version: str | None = None,
) -> Obj | ToolResult:
    """One object as JSON, or the error :func:`describe` would give instead (not found
    and what exists, forbidden, unreachable): one GET either way, never a second one
    to learn why the first failed (against a hung API server that costs a timeout)."""

    async def produce() -> Obj:
        info = await resolve(deps, kind, api_version)
        ns = (namespace or "default") if info.namespaced else ""
        return _masked(info, await read(deps, info, name, ns))

    return await _value_or_error(deps, f"describe {kind} {name}", produce)


async def get_object(
    deps: ToolDeps,
    kind: str,
    name: str,
    namespace: str | None = None,
    api_version: str | None = None,
) -> Obj | None:
    """:func:`read_object`, None on any failure (missing, forbidden, unreachable, a Secret).

    The evidence gatherer uses this to follow a pod to its owner and node; the
    model only ever sees rendered, redacted text.
    """
    found = await read_object(deps, kind, name, namespace, api_version)
    return None if isinstance(found, ToolResult) else found


async def list_or_error(
    deps: ToolDeps,
    kind: str,
    namespace: str | None,
    label_selector: Selector = None,
    field_selector: Selector = None,
    limit: int = MAX_LIST,
) -> list[Obj] | ToolResult:
    """Objects of one kind, or why they could not be listed.

    ``namespace=None`` lists a namespaced kind across all namespaces (refused under a
    model's namespace scope). ``label_selector``: ``"k=v,k2=v2"`` or a mapping;
    ``field_selector``: a mapping (equality), ``(key, op, value)`` terms or ``"k=v"`` text.
    """

    async def produce() -> list[Obj]:
        info = await resolve(deps, kind)
        items = await list_items(
            deps,
            info,
            namespace,
            label_selector=label_selector or None,
            field_selector=field_selector,
            limit=max(1, min(int(limit), MAX_LIST)),
        )
        return [_masked(info, o) for o in items]

    return await _value_or_error(deps, f"list {kind}", produce)


async def list_objects(
    deps: ToolDeps,
    kind: str,
    namespace: str | None,
    label_selector: Selector = None,
    field_selector: Selector = None,
    limit: int = MAX_LIST,
) -> list[Obj]:
    """:func:`list_or_error`, empty on any failure."""
    found = await list_or_error(deps, kind, namespace, label_selector, field_selector, limit)
    return [] if isinstance(found, ToolResult) else found


async def object_events_or_error(
    deps: ToolDeps,
    kind: str,
    name: str,
    namespace: str | None = None,
    api_version: str | None = None,
) -> list[Obj] | ToolResult:
    """Events of one object of any kind, newest last, or why they could not be read.

    A cluster-scoped object's (Node, PersistentVolume, ...) are listed across namespaces.
    """

    async def produce() -> list[Obj]:
        info = await resolve(deps, kind, api_version)
        if info.namespaced:
            return await events_of(deps, namespace or "default", name, info.kind)
        return await events_of(deps, None, name, info.kind, namespaced=False)

    return await _value_or_error(deps, f"events {kind} {name}", produce)


async def object_events(
    deps: ToolDeps,
    kind: str,
    name: str,
    namespace: str | None = None,
    api_version: str | None = None,
) -> list[Obj]:
    """:func:`object_events_or_error`, empty on any failure."""
    found = await object_events_or_error(deps, kind, name, namespace, api_version)
    return [] if isinstance(found, ToolResult) else found
