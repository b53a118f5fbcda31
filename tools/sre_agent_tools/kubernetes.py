"""Read-only Kubernetes tools: ``describe``, ``events`` and ``logs``.

Each tool answers like a terse ``kubectl``: the facts an on-call engineer
reads first (state, reasons, exit codes, recent events), redacted and capped,
as a :class:`ToolResult`. Backend trouble (not found, RBAC, unreachable API)
comes back as an ``error`` result the model can read and act on; nothing here
raises for it.

Only GET requests are made, and Secrets are never read: env vars that come
from a Secret are shown as a reference, not resolved. The sync ``kubernetes``
client runs in a worker thread; responses are read as plain JSON dicts
(``_preload_content=False``) so the rendering follows the API's own field names.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import urllib3
from kubernetes.client import AppsV1Api, AutoscalingV2Api, BatchV1Api, CoreV1Api
from kubernetes.client.exceptions import ApiException

from sre_agent_tools import kube_scope
from sre_agent_tools.deps import ToolDeps
from sre_agent_tools.kube_render import (
    cpu_cores,
    fmt_bytes,
    fmt_cpu,
    header,
    keep_tail,
    labels_text,
    mem_bytes,
    pct,
    pod_request,
    render_conditions,
    render_cronjob,
    render_events,
    render_hpa,
    render_job,
    render_pod,
    render_pvc,
    render_workload,
)
from sre_agent_tools.redact import redact
from sre_agent_tools.result import ToolResult, cap

log = logging.getLogger(__name__)

NOT_CONFIGURED = "Kubernetes is not configured (set SRE_AGENT_KUBECONFIG or run in-cluster)"
MAX_TAIL_LINES = 500
#: At most this much log is read at all (500 lines of a chatty container can be megabytes).
MAX_LOG_BYTES = 256 * 1024
MAX_EVENTS_DESCRIBE = 10
Obj = dict[str, Any]


class _Kind(NamedTuple):
    kind: str  # as the API names it
    api: type
    method: str  # suffix of read_namespaced_* / list_namespaced_*
    namespaced: bool


_KINDS: dict[str, _Kind] = {
    "pod": _Kind("Pod", CoreV1Api, "pod", True),
    "deployment": _Kind("Deployment", AppsV1Api, "deployment", True),
    "statefulset": _Kind("StatefulSet", AppsV1Api, "stateful_set", True),
    "daemonset": _Kind("DaemonSet", AppsV1Api, "daemon_set", True),
    "replicaset": _Kind("ReplicaSet", AppsV1Api, "replica_set", True),
    "job": _Kind("Job", BatchV1Api, "job", True),
    "cronjob": _Kind("CronJob", BatchV1Api, "cron_job", True),
    "node": _Kind("Node", CoreV1Api, "node", False),
    "service": _Kind("Service", CoreV1Api, "service", True),
    "persistentvolumeclaim": _Kind(
        "PersistentVolumeClaim", CoreV1Api, "persistent_volume_claim", True
    ),
    "horizontalpodautoscaler": _Kind(
        "HorizontalPodAutoscaler", AutoscalingV2Api, "horizontal_pod_autoscaler", True
    ),
}
_ALIASES = {
    "po": "pod",
    "deploy": "deployment",
    "sts": "statefulset",
    "ds": "daemonset",
    "rs": "replicaset",
    "cj": "cronjob",
    "no": "node",
    "svc": "service",
    "pvc": "persistentvolumeclaim",
    "hpa": "horizontalpodautoscaler",
}


class _Failed(Exception):
    """Carries a finished error result out of nested helpers."""

    def __init__(self, result: ToolResult) -> None:
        super().__init__(result.text)
        self.result = result


def _kind_of(kind: str) -> _Kind:
    key = kind.strip().lower().split(".")[0]
    if key in ("secret", "secrets"):
        raise _Failed(
            ToolResult(
                "error",
                "Reading Secrets is not allowed: this agent never "
                "reads Secret objects. Describe the pod or workload "
                "instead; it shows which secret a setting comes from.",
            )
        )
    key = _ALIASES.get(key, key)
    if key not in _KINDS and key.endswith("s"):
        key = _ALIASES.get(key[:-1], key[:-1])
    if key not in _KINDS:
        raise _Failed(
            ToolResult("error", f"Unsupported kind {kind!r}; supported: {', '.join(_KINDS)}.")
        )
    return _KINDS[key]


# -- calling the API ------------------------------------------------------------


def _host(deps: ToolDeps) -> str:
    return getattr(getattr(deps.kube, "configuration", None), "host", "?")


def _api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "")["message"])
    except (ValueError, KeyError, TypeError):
        return str(exc.reason or exc.body or "").strip()


async def _raw(
    deps: ToolDeps, api: type, method: str, *, summary: str | None = None, **kwargs: Any
) -> bytes:
    """Run one client call in a thread and return the response body.

    Every request passes here, with keyword arguments only, so that
    :func:`kube_scope.admit` sees each name, namespace and selector: checked,
    escaped and held to the scope before anything is sent.
    """
    try:
        kube_scope.admit(method, kwargs, deps.namespaces, deps.scope_owner, summary)
    except kube_scope.Rejected as exc:
        raise _Failed(ToolResult("error", str(exc))) from None
    fn = getattr(api(deps.kube), method)

    def call() -> bytes:
        resp = fn(_preload_content=False, _request_timeout=deps.timeout, **kwargs)
        try:
            return bytes(resp.data)
        finally:
            resp.release_conn()

    try:
        return await asyncio.to_thread(call)
    except ApiException as exc:
        if exc.status == 403:
            raise _Failed(
                ToolResult("error", f"RBAC forbids this request ({method}): {_api_message(exc)}")
            ) from exc
        if exc.status == 401:
            raise _Failed(
                ToolResult(
                    "error",
                    f"Kubernetes API rejected the credentials (401 Unauthorized) at {_host(deps)}",
                )
            ) from exc
        raise
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise _Failed(
            ToolResult(
                "error",
                f"Kubernetes API unreachable at {_host(deps)}: {type(reason).__name__}: {reason}",
            )
        ) from exc


async def _json(deps: ToolDeps, api: type, method: str, **kwargs: Any) -> Obj:
    return json.loads(await _raw(deps, api, method, **kwargs))


async def _read(deps: ToolDeps, k: _Kind, name: str, namespace: str) -> Obj:
    """Read one object; a 404 becomes an error that lists what does exist."""
    try:
        if k.namespaced:
            return await _json(
                deps, k.api, f"read_namespaced_{k.method}", name=name, namespace=namespace
            )
        return await _json(deps, k.api, f"read_{k.method}", name=name)
    except ApiException as exc:
        if exc.status != 404:
            raise
    where = f"{namespace}/{name}" if k.namespaced else name
    text = f"{k.kind.lower()} {where} not found. {await _existing(deps, k, name, namespace)}"
    raise _Failed(ToolResult("error", text.strip()))


async def _list(deps: ToolDeps, k: _Kind, namespace: str | None, **kwargs: Any) -> list[Obj]:
    if k.namespaced and namespace is not None:
        body = await _json(
            deps, k.api, f"list_namespaced_{k.method}", namespace=namespace, **kwargs
        )
    elif k.namespaced:
        body = await _json(deps, k.api, f"list_{k.method}_for_all_namespaces", **kwargs)
    else:
        body = await _json(deps, k.api, f"list_{k.method}", **kwargs)
    return list(body.get("items") or [])


async def _existing(deps: ToolDeps, k: _Kind, name: str, namespace: str) -> str:
    """A hint naming up to ten objects of that kind, closest names first."""
    try:
        names = sorted(o["metadata"]["name"] for o in await _list(deps, k, namespace))
    except (ApiException, _Failed, KeyError):
        return ""
    where = f" in namespace {namespace}" if k.namespaced else ""
    if not names:
        return f"There are no {k.kind.lower()}s{where}."
    close = difflib.get_close_matches(name, names, n=10, cutoff=0.4)
    ordered = close + [n for n in names if n not in close]
    more = f" (and {len(names) - 10} more)" if len(names) > 10 else ""
    return f"Existing {k.kind.lower()}s{where}: {', '.join(ordered[:10])}{more}."


async def _events_of(
    deps: ToolDeps, namespace: str | None, name: str | None = None, kind: str | None = None
) -> list[Obj]:
    """Events (core/v1) for one object or a namespace, oldest first.

    Without a namespace only a cluster-scoped object's events are asked for.
    """
    terms: kube_scope.Terms = [
        (f"involvedObject.{key}", "=", value)
        for key, value in (("name", name), ("namespace", namespace), ("kind", kind))
        if value
    ]
    if namespace is not None:
        body = await _json(
            deps, CoreV1Api, "list_namespaced_event", namespace=namespace, field_selector=terms
        )
        return sorted(body.get("items") or [], key=_event_time)
    if kind not in kube_scope.CLUSTER_SCOPED_KINDS or not name:
        raise _Failed(ToolResult("error", "events need a namespace"))
    body = await _json(
        deps,
        CoreV1Api,
        "list_event_for_all_namespaces",
        field_selector=terms,
        summary="the events of a cluster-scoped object",
    )
    items = [
        e
        for e in body.get("items") or []
        if (e.get("involvedObject") or {}).get("kind") == kind
        and (e.get("involvedObject") or {}).get("name") == name
    ]
    return sorted(items, key=_event_time)


def _event_time(event: Obj) -> str:
    return (
        event.get("lastTimestamp")
        or event.get("eventTime")
        or (event.get("series") or {}).get("lastObservedTime")
        or event.get("firstTimestamp")
        or event["metadata"].get("creationTimestamp")
        or ""
    )


async def _guard(
    deps: ToolDeps, what: str, body: Callable[[], Awaitable[ToolResult]]
) -> ToolResult:
    """Run a tool body: configured check, error mapping, redaction, cap, one log line."""
    started = time.monotonic()
    if deps.kube is None:
        result = ToolResult("error", NOT_CONFIGURED)
    else:
        try:
            result = await body()
        except _Failed as failed:
            result = failed.result
        except ApiException as exc:
            result = ToolResult(
                "error", f"Kubernetes API error {exc.status} during {what}: {_api_message(exc)}"
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


# -- describe -------------------------------------------------------------------


async def describe(
    deps: ToolDeps, kind: str, name: str, namespace: str | None = None
) -> ToolResult:
    """Describe one Kubernetes object the way ``kubectl describe`` does, with recent events.

    kind: pod, deployment, statefulset, daemonset, replicaset, job, cronjob, node,
    service or persistentvolumeclaim (short names such as deploy, sts, svc, pvc work).
    namespace: defaults to "default"; ignored for nodes.
    """

    async def body() -> ToolResult:
        k = _kind_of(kind)
        ns = (namespace or "default") if k.namespaced else ""
        return await _render_described(deps, k, await _read(deps, k, name, ns))

    return await _guard(deps, f"describe {kind} {name}", body)


async def describe_object(deps: ToolDeps, kind: str, obj: Obj) -> ToolResult:
    """:func:`describe` for an object the caller has already read (no second GET)."""

    async def body() -> ToolResult:
        return await _render_described(deps, _kind_of(kind), obj)

    return await _guard(deps, f"describe {kind} {obj['metadata'].get('name')}", body)


async def _render_described(deps: ToolDeps, k: _Kind, obj: Obj) -> ToolResult:
    """The object rendered by kind, then its recent events (nodes: none)."""
    render = _RENDERERS.get(k.kind, _describe_workload)
    lines = await render(deps, obj)
    if k.kind != "Node":
        meta = obj["metadata"]
        try:
            events = await _events_of(deps, meta.get("namespace") or None, meta["name"], k.kind)
            lines += render_events(events[-MAX_EVENTS_DESCRIBE:], len(events))
        except _Failed as failed:  # the object itself is still worth showing
            lines.append(f"Events: unavailable ({failed.result.text})")
    return ToolResult("ok", "\n".join(lines))


async def _describe_pod(deps: ToolDeps, obj: Obj) -> list[str]:
    return header(obj, created=False) + render_pod(obj)


async def _describe_workload(deps: ToolDeps, obj: Obj) -> list[str]:
    lines = render_workload(obj)
    selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if obj["kind"] == "Deployment" and selector:
        lines += await _replica_sets(deps, obj, selector)
    return lines


async def _replica_sets(deps: ToolDeps, deployment: Obj, selector: dict[str, str]) -> list[str]:
    k = _KINDS["replicaset"]
    name, ns = deployment["metadata"]["name"], deployment["metadata"]["namespace"]
    owned = [
        rs
        for rs in await _list(deps, k, ns, label_selector=kube_scope.label_selector(selector))
        if not rs["metadata"].get("ownerReferences")
        or any(o.get("name") == name for o in rs["metadata"]["ownerReferences"])
    ]

    def revision(rs: Obj) -> tuple[int, str]:
        value = (rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision")
        return (
            int(str(value)) if str(value).isdigit() else -1,
            rs["metadata"].get("creationTimestamp") or "",
        )

    lines = [f"ReplicaSets ({len(owned)}, newest first):"]
    for rs in sorted(owned, key=revision, reverse=True)[:10]:
        st = rs.get("status") or {}
        images = ", ".join(
            c.get("image", "?")
            for c in rs["spec"].get("template", {}).get("spec", {}).get("containers", [])
        )
        lines.append(
            f"  {rs['metadata']['name']}  revision {revision(rs)[0]}  "
            f"desired {rs['spec'].get('replicas', 0)} / ready "
            f"{st.get('readyReplicas', 0)}  image {images}"
            f"  created {rs['metadata'].get('creationTimestamp', '?')}"
        )
    return lines


async def _describe_node(deps: ToolDeps, obj: Obj) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    name = obj["metadata"]["name"]
    lines = header(obj)
    info = status.get("nodeInfo") or {}
    lines.append(
        f"Kubelet: {info.get('kubeletVersion', '?')}  OS: {info.get('osImage', '?')}  "
        f"Unschedulable: {bool(spec.get('unschedulable'))}"
    )
    taints = [
        f"{t['key']}{'=' + t['value'] if t.get('value') else ''}:{t.get('effect')}"
        for t in spec.get("taints") or []
    ]
    lines.append(f"Taints: {', '.join(taints) or 'none'}")
    lines += render_conditions(status.get("conditions") or [])
    cap_, alloc = status.get("capacity") or {}, status.get("allocatable") or {}
    lines.append("Capacity: " + ", ".join(f"{k}={v}" for k, v in sorted(cap_.items())))
    lines.append("Allocatable: " + ", ".join(f"{k}={v}" for k, v in sorted(alloc.items())))
    # Across namespaces, but only summed up: no pod of another namespace is named.
    pods = await _list(
        deps,
        _KINDS["pod"],
        None,
        field_selector=[
            ("spec.nodeName", "=", name),
            ("status.phase", "!=", "Succeeded"),
            ("status.phase", "!=", "Failed"),
        ],
        summary="requests and limits summed over the node's pods",
    )
    totals = {"cpu": [0.0, 0.0], "memory": [0.0, 0.0]}  # requests, limits
    for pod in pods:
        for i, part in enumerate(("requests", "limits")):
            totals["cpu"][i] += pod_request(pod, part, "cpu", cpu_cores)
            totals["memory"][i] += pod_request(pod, part, "memory", mem_bytes)
    cpu_alloc, mem_alloc = cpu_cores(alloc.get("cpu", "0")), mem_bytes(alloc.get("memory", "0"))
    lines.append(f"Allocated resources ({len(pods)} non-terminated pods):")
    for res, alloc_v, fmt in (("cpu", cpu_alloc, fmt_cpu), ("memory", mem_alloc, fmt_bytes)):
        req, lim = totals[res]
        lines.append(
            f"  {res}: requests {fmt(req)}{pct(req, alloc_v)}, limits {fmt(lim)}"
            f"{pct(lim, alloc_v)} of allocatable {fmt(alloc_v)}"
        )
    events = await _events_of(deps, None, name, "Node")
    return lines + render_events(events[-MAX_EVENTS_DESCRIBE:], len(events))


async def _describe_service(deps: ToolDeps, obj: Obj) -> list[str]:
    spec = obj.get("spec") or {}
    lines = header(obj)
    lines.append(f"Type: {spec.get('type', 'ClusterIP')}  ClusterIP: {spec.get('clusterIP')}")
    lines.append(f"Selector: {labels_text(spec.get('selector') or {}, limit=20) or 'none'}")
    ports = [
        f"{p.get('name', '')}:{p.get('port')}->{p.get('targetPort', p.get('port'))}/"
        f"{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or []
    ]
    lines.append(f"Ports: {', '.join(ports) or 'none'}")
    meta = obj["metadata"]
    try:
        ep = await _json(
            deps,
            CoreV1Api,
            "read_namespaced_endpoints",
            name=meta["name"],
            namespace=meta["namespace"],
        )
    except ApiException as exc:
        if exc.status != 404:
            raise
        return lines + ["Endpoints: none (no Endpoints object)"]
    subsets = ep.get("subsets") or []
    ready = sum(len(s.get("addresses") or []) for s in subsets)
    not_ready = sum(len(s.get("notReadyAddresses") or []) for s in subsets)
    return lines + [f"Endpoints: {ready} ready, {not_ready} not ready"]


def _offline(render: Callable[[Obj], list[str]]) -> Callable[[ToolDeps, Obj], Awaitable[list[str]]]:
    async def run(deps: ToolDeps, obj: Obj) -> list[str]:
        return render(obj)

    return run


_RENDERERS: dict[str, Callable[[ToolDeps, Obj], Awaitable[list[str]]]] = {
    "Pod": _describe_pod,
    "Job": _offline(render_job),
    "CronJob": _offline(render_cronjob),
    "Node": _describe_node,
    "Service": _describe_service,
    "PersistentVolumeClaim": _offline(render_pvc),
    "HorizontalPodAutoscaler": _offline(render_hpa),
}


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
        api_kind = _kind_of(kind).kind if kind else None
        found = await _events_of(deps, namespace, name, api_kind)
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
    which is where a crash-looping container's error is.
    """

    async def body() -> ToolResult:
        obj = await _read(deps, _KINDS["pod"], pod, namespace)
        names = [c["name"] for c in obj["spec"].get("containers") or []]
        init = [c["name"] for c in obj["spec"].get("initContainers") or []]
        chosen = container or (names[0] if names else "")
        if chosen not in names + init:
            return ToolResult(
                "error",
                f"container {chosen!r} is not in pod {namespace}/{pod}; "
                f"containers: {', '.join(names + init)}",
            )
        tail = max(1, min(int(tail_lines), MAX_TAIL_LINES))
        try:
            raw = await _raw(
                deps,
                CoreV1Api,
                "read_namespaced_pod_log",
                name=pod,
                namespace=namespace,
                container=chosen,
                previous=previous,
                tail_lines=tail,
                limit_bytes=MAX_LOG_BYTES,
            )
        except ApiException as exc:
            message = _api_message(exc)
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
        header = f"Logs of pod {namespace}/{pod}, container {chosen} ({which}), last {tail} lines"
        if len(names) > 1 and container is None:
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


async def get_object(
    deps: ToolDeps, kind: str, name: str, namespace: str | None = None
) -> Obj | None:
    """One object as JSON, or None when it is missing, forbidden, unreachable or a Secret.

    The evidence gatherer uses this to follow a pod to its owner and node; the
    model only ever sees rendered, redacted text.
    """
    if deps.kube is None:
        return None
    try:
        k = _kind_of(kind)
        ns = (namespace or "default") if k.namespaced else ""
        return await _read(deps, k, name, ns)
    except (_Failed, ApiException):
        return None


async def read_object(
    deps: ToolDeps, kind: str, name: str, namespace: str | None = None
) -> Obj | ToolResult:
    """:func:`get_object`, or the error :func:`describe` would give instead (not found
    and what exists, forbidden, unreachable): one GET either way, never a second one
    to learn why the first failed (against a hung API server that costs a timeout)."""
    found: Obj | None = None

    async def body() -> ToolResult:
        nonlocal found
        k = _kind_of(kind)
        found = await _read(deps, k, name, (namespace or "default") if k.namespaced else "")
        return ToolResult("ok", "")

    failed = await _guard(deps, f"describe {kind} {name}", body)
    return found if found is not None else failed


async def list_objects(
    deps: ToolDeps, kind: str, namespace: str | None, label_selector: str | None = None
) -> list[Obj]:
    """Objects of one kind (optionally by label selector); empty on any failure."""
    if deps.kube is None:
        return []
    try:
        k = _kind_of(kind)
        kwargs = {"label_selector": label_selector} if label_selector else {}
        return await _list(deps, k, namespace, **kwargs)
    except (_Failed, ApiException):
        return []
