"""Read-only Kubernetes tools: ``describe``, ``events`` and ``logs``, and reads for code.

Each tool answers like a terse ``kubectl``: the facts an on-call engineer
reads first (state, reasons, exit codes, recent events), redacted and capped,
as a :class:`ToolResult`. Backend trouble (not found, RBAC, unreachable API)
comes back as an ``error`` result the model can read and act on; nothing here
raises for it. Any kind the API server serves can be read, custom resources
included (:mod:`sre_agent_tools.kube_discovery`), except Secrets, in any form.

This module is the facade and holds ``describe`` and ``events``; ``logs`` is
:mod:`sre_agent_tools.kube_logs`, how each tool runs (error mapping, redaction,
cap) :mod:`sre_agent_tools.kube_guard`, the API core and kind table
:mod:`sre_agent_tools.kube_api` and :mod:`sre_agent_tools.kube_kinds`, the
describers :mod:`sre_agent_tools.kube_describe`, and the structured reads
(:func:`read_object`, :func:`list_or_error`, :func:`object_events`,
:func:`kind_info`) that serve the evidence gatherer's graph walk
:mod:`sre_agent_tools.kube_reads`.
"""

from __future__ import annotations

from sre_agent_tools.deps import ToolDeps
from sre_agent_tools.kube_api import KindInfo, Obj, read
from sre_agent_tools.kube_describe import MAX_EVENTS_DESCRIBE, described, events_of
from sre_agent_tools.kube_discovery import resolve
from sre_agent_tools.kube_guard import NOT_CONFIGURED, guard
from sre_agent_tools.kube_logs import MAX_LOG_BYTES, MAX_TAIL_LINES, logs
from sre_agent_tools.kube_reads import (
    MAX_LIST,
    Selector,
    get_object,
    kind_info,
    list_objects,
    list_or_error,
    object_events,
    object_events_or_error,
    read_object,
)
from sre_agent_tools.kube_render import render_events
from sre_agent_tools.result import ToolResult

__all__ = [
    "MAX_EVENTS_DESCRIBE",
    "MAX_LIST",
    "MAX_LOG_BYTES",
    "MAX_TAIL_LINES",
    "NOT_CONFIGURED",
    "KindInfo",
    "Obj",
    "Selector",
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

    return await guard(deps, f"describe {kind} {name}", body)


async def describe_object(deps: ToolDeps, kind: str, obj: Obj) -> ToolResult:
    """:func:`describe` for an object the caller has already read (no second GET)."""

    async def body() -> ToolResult:
        info = await resolve(deps, kind, obj.get("apiVersion"))
        return await described(deps, info, obj)

    return await guard(deps, f"describe {kind} {obj['metadata'].get('name')}", body)


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

    return await guard(deps, f"events {namespace} {name or ''}".strip(), body)
