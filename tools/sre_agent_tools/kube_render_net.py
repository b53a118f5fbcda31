"""Rendering of traffic objects: Ingress, IngressClass, EndpointSlice, webhook configurations.

These are the hops between "requests fail" and "which pod": an Ingress names
its backend Services, a Service's EndpointSlices name the pods behind it
(ready or not), a webhook configuration names the Service the API server
calls. So the lines name those objects the way a person would look them up
next (``namespace/name:port``). A TLS secret is named, never read. Nothing
here does I/O.
"""

from __future__ import annotations

from sre_agent_tools.kube_render import Obj, header, labels_text

MAX_NAMES = 20


def _names(names: list[str]) -> str:
    more = f" (+{len(names) - MAX_NAMES} more)" if len(names) > MAX_NAMES else ""
    return ", ".join(names[:MAX_NAMES]) + more


def selector_text(selector: Obj | None) -> str:
    """A LabelSelector (matchLabels + matchExpressions) as kubectl prints it; "" if empty."""
    selector = selector or {}
    parts = [labels_text(selector.get("matchLabels") or {}, limit=20, sep=",")]
    for e in selector.get("matchExpressions") or []:
        values = ",".join(str(v) for v in e.get("values") or [])
        op = str(e.get("operator", "?"))
        if op == "Exists":
            parts.append(str(e.get("key")))
        elif op == "DoesNotExist":
            parts.append(f"!{e.get('key')}")
        else:
            parts.append(f"{e.get('key')} {op.lower()} ({values})")
    return ",".join(p for p in parts if p)


def _backend(backend: Obj | None) -> str:
    backend = backend or {}
    if backend.get("service"):
        svc = backend["service"]
        port = svc.get("port") or {}
        return f"{svc.get('name')}:{port.get('number') or port.get('name') or '?'}"
    if backend.get("resource"):
        res = backend["resource"]
        return f"{res.get('kind')}/{res.get('name')} ({res.get('apiGroup') or 'core'})"
    if backend.get("serviceName"):  # extensions/v1beta1 spelling
        return f"{backend['serviceName']}:{backend.get('servicePort')}"
    return "none"


def _load_balancer(status: Obj) -> str:
    ingress = ((status or {}).get("loadBalancer") or {}).get("ingress") or []
    return ", ".join(str(i.get("ip") or i.get("hostname") or "?") for i in ingress) or "none"


def render_ingress(obj: Obj) -> list[str]:
    spec = obj.get("spec") or {}
    notes = obj["metadata"].get("annotations") or {}
    lines = header(obj)
    cls = spec.get("ingressClassName") or notes.get("kubernetes.io/ingress.class")
    lines.append(f"Class: {cls or '<none: the default IngressClass>'}")
    lines.append("Rules:")
    for rule in spec.get("rules") or []:
        lines.append(f"  {rule.get('host') or '*'}")
        for path in (rule.get("http") or {}).get("paths") or []:
            lines.append(
                f"    {path.get('path') or '/'} ({path.get('pathType', 'ImplementationSpecific')})"
                f" → {_backend(path.get('backend'))}"
            )
    if not spec.get("rules"):
        lines.append("  none")
    default = spec.get("defaultBackend") or spec.get("backend")
    lines.append(f"Default backend: {_backend(default) if default else 'none'}")
    for tls in spec.get("tls") or []:
        hosts = ", ".join(tls.get("hosts") or []) or "*"
        secret = tls.get("secretName") or "<none>"
        lines.append(f"TLS: hosts [{hosts}] → secret {secret}")
    lines.append(f"Load balancer: {_load_balancer(obj.get('status') or {})}")
    return lines


def render_ingressclass(obj: Obj) -> list[str]:
    spec = obj.get("spec") or {}
    notes = obj["metadata"].get("annotations") or {}
    lines = header(obj)
    default = notes.get("ingressclass.kubernetes.io/is-default-class") == "true"
    lines.append(f"Controller: {spec.get('controller', '?')}  Default: {default}")
    params = spec.get("parameters") or {}
    if params:
        lines.append(
            f"Parameters: {params.get('kind')}/{params.get('name')} ({params.get('apiGroup') or 'core'})"
        )
    return lines


def _ports(ports: list[Obj] | None) -> str:
    return (
        ", ".join(
            f"{p.get('name') or '-'}:{p.get('port')}/{p.get('protocol', 'TCP')}"
            for p in ports or []
        )
        or "none"
    )


def _ready(endpoint: Obj) -> bool:
    # discovery.k8s.io/v1: an unset "ready" means ready (unknown state)
    return (endpoint.get("conditions") or {}).get("ready") is not False


def render_endpointslice(obj: Obj) -> list[str]:
    lines = header(obj)
    service = (obj["metadata"].get("labels") or {}).get("kubernetes.io/service-name", "-")
    lines.append(f"Service: {service}  AddressType: {obj.get('addressType', '?')}")
    lines.append(f"Ports: {_ports(obj.get('ports'))}")
    endpoints = obj.get("endpoints") or []
    lines.append(f"Endpoints ({len(endpoints)}):")
    for e in endpoints[:MAX_NAMES]:
        cond = e.get("conditions") or {}
        ref = e.get("targetRef") or {}
        target = f" → {ref.get('kind')}/{ref.get('name')}" if ref else ""
        node = f" node {e['nodeName']}" if e.get("nodeName") else ""
        lines.append(
            f"  {', '.join(e.get('addresses') or []) or '?'}  ready={_ready(e)} "
            f"serving={cond.get('serving', _ready(e))} terminating={bool(cond.get('terminating'))}"
            f"{target}{node}"
        )
    if len(endpoints) > MAX_NAMES:
        lines.append(f"  (+{len(endpoints) - MAX_NAMES} more)")
    return lines


def backing_pods(slices: list[Obj], endpoints: Obj | None) -> tuple[list[str], list[str]]:
    """(ready, not ready) pod names behind a Service: from its EndpointSlices, else Endpoints.

    An address without a pod behind it is named by its IP.
    """
    ready: dict[str, None] = {}
    not_ready: dict[str, None] = {}
    if slices:
        for s in slices:
            for e in s.get("endpoints") or []:
                ref = e.get("targetRef") or {}
                name = ref.get("name") if ref.get("kind") == "Pod" else None
                label = name or ", ".join(e.get("addresses") or []) or "?"
                (ready if _ready(e) else not_ready)[label] = None
    else:
        for subset in (endpoints or {}).get("subsets") or []:
            for key, into in (("addresses", ready), ("notReadyAddresses", not_ready)):
                for a in subset.get(key) or []:
                    ref = a.get("targetRef") or {}
                    pod = ref.get("name") if ref.get("kind") == "Pod" else None
                    into[str(pod or a.get("ip") or "?")] = None
    return list(ready), [n for n in not_ready if n not in ready]


def backing_lines(ready: list[str], not_ready: list[str]) -> list[str]:
    return [
        f"Ready pods: {_names(ready) or 'none'}",
        f"Not ready pods: {_names(not_ready) or 'none'}",
    ]


def _rules(rules: list[Obj] | None) -> str:
    out = []
    for r in rules or []:
        ops = "/".join(r.get("operations") or ["*"])
        res = ",".join(r.get("resources") or ["*"])
        groups = ",".join(g or "core" for g in r.get("apiGroups") or ["*"])
        scope = f" scope {r['scope']}" if r.get("scope") and r["scope"] != "*" else ""
        out.append(f"{ops} {res} ({groups}){scope}")
    return "; ".join(out[:6]) + (f"; (+{len(out) - 6} more)" if len(out) > 6 else "") or "none"


def render_webhooks(obj: Obj) -> list[str]:
    """Each webhook: whom the API server calls, what happens when that call fails, for what."""
    lines = header(obj)
    hooks = obj.get("webhooks") or []
    lines.append(f"Webhooks ({len(hooks)}):")
    for hook in hooks[:10]:
        client = hook.get("clientConfig") or {}
        svc = client.get("service")
        if svc:
            where = (
                f"service {svc.get('namespace')}/{svc.get('name')}:{svc.get('port', 443)}"
                f"{svc.get('path') or ''}"
            )
        else:
            where = f"url {client.get('url', '?')}"
        lines.append(f"  {hook.get('name')}:")
        lines.append(f"    Client: {where}")
        lines.append(
            f"    Failure policy: {hook.get('failurePolicy', 'Fail')}  Timeout: "
            f"{hook.get('timeoutSeconds', 10)}s  Side effects: {hook.get('sideEffects', '?')}"
        )
        for key, title in (("namespaceSelector", "Namespace"), ("objectSelector", "Object")):
            text = selector_text(hook.get(key))
            lines.append(f"    {title} selector: {text or 'everything'}")
        lines.append(f"    Rules: {_rules(hook.get('rules'))}")
    if len(hooks) > 10:
        lines.append(f"  (+{len(hooks) - 10} more)")
    return lines
