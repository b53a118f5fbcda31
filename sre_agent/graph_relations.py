"""The relations the evidence walk follows, as pure functions over API objects and text.

:mod:`sre_agent.graph` does the reading; everything here only looks at JSON it
was handed (a pod's volumes, a Deployment's ReplicaSets, a PV's node affinity)
or at text a tool returned (a Service's DNS name in a log line, the webhook an
event names), so each rule can be tested on its own and none knows a scenario.
"""

from __future__ import annotations

from typing import Any

from sre_agent_tools.kube_scope import CLUSTER_SCOPED_KINDS

Obj = dict[str, Any]

#: Kinds :mod:`sre_agent_tools.kubernetes` knows without discovery (lowercase kind).
BUILT_IN = frozenset(
    {
        "pod",
        "deployment",
        "statefulset",
        "daemonset",
        "replicaset",
        "job",
        "cronjob",
        "node",
        "service",
        "endpoints",
        "endpointslice",
        "persistentvolumeclaim",
        "persistentvolume",
        "ingress",
        "ingressclass",
        "storageclass",
        "configmap",
        "namespace",
        "resourcequota",
        "limitrange",
        "horizontalpodautoscaler",
        "mutatingwebhookconfiguration",
        "validatingwebhookconfiguration",
        "event",
        "networkpolicy",
        "poddisruptionbudget",
        "serviceaccount",
    }
)
CLUSTER_SCOPED = frozenset(kind.lower() for kind in CLUSTER_SCOPED_KINDS)
WORKLOADS = ("deployment", "statefulset", "daemonset")

#: Event sources that are Kubernetes itself (kubelet, scheduler, kube-controller-manager's
#: loops), not a controller with a Deployment of its own to read.
CORE_COMPONENTS = frozenset(
    {
        "kubelet",
        "default-scheduler",
        "kube-proxy",
        "kube-apiserver",
        "kube-controller-manager",
        "cloud-controller-manager",
        "replicaset-controller",
        "deployment-controller",
        "statefulset-controller",
        "daemonset-controller",
        "job-controller",
        "cronjob-controller",
        "endpoint-controller",
        "endpointslice-controller",
        "endpointslice-mirroring-controller",
        "persistentvolume-controller",
        "persistentvolume-expander",
        "attachdetach-controller",
        "horizontal-pod-autoscaler",
        "node-controller",
        "taint-eviction-controller",
        "service-controller",
        "resourcequota-controller",
        "namespace-controller",
        "garbage-collector",
        "garbage-collector-controller",
        "ttl-after-finished-controller",
        "disruption-controller",
        "replication-controller",
        "certificate-controller",
        "serviceaccount-controller",
    }
)


def kind_key(kind: str, api_version: str | None = None) -> str:
    """The tool's spelling of a kind: ``pod`` for built-ins, ``Kind.group`` otherwise."""
    low = kind.lower()
    if low in BUILT_IN:
        return low
    group = (api_version or "").rpartition("/")[0]
    return f"{kind}.{group}" if group else kind


def selector_of(obj: Obj) -> dict[str, str]:
    """What selects a workload's pods: ``matchLabels``, or a Job's own label."""
    if obj.get("kind") == "Job":
        name = obj["metadata"]["name"]
        labels = (obj["metadata"].get("labels") or {}) | (
            ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        )
        if "batch.kubernetes.io/job-name" in labels or "job-name" not in labels:
            return {"batch.kubernetes.io/job-name": name}
        return {"job-name": name}
    selector = (obj.get("spec") or {}).get("selector") or {}
    match = selector.get("matchLabels") if "matchLabels" in selector else selector
    return {str(k): str(v) for k, v in (match or {}).items() if isinstance(v, str | int)}


def selector_text(selector: dict[str, str]) -> str:
    """A label selector as the API takes it: ``k=v,k2=v2``, sorted."""
    return ",".join(f"{k}={val}" for k, val in sorted(selector.items()))


def owner_of(obj: Obj) -> tuple[str, str, str] | None:
    """(kind, name, apiVersion) of the controlling ownerReference."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller", True) and ref.get("kind") and ref.get("name"):
            return ref["kind"], ref["name"], ref.get("apiVersion", "")
    return None


def owned_by(obj: Obj, name: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return not refs or any(r.get("name") == name for r in refs)


def revision(rs: Obj) -> tuple[int, str]:
    value = str((rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision"))
    return (int(value) if value.isdigit() else -1, rs["metadata"].get("creationTimestamp") or "")


def newest_replicaset(replicasets: list[Obj], deployment: str) -> Obj | None:
    owned = [rs for rs in replicasets if owned_by(rs, deployment)]
    return max(owned, key=revision, default=None)


def _statuses(pod: Obj) -> list[Obj]:
    status = pod.get("status") or {}
    return list(status.get("initContainerStatuses") or []) + list(
        status.get("containerStatuses") or []
    )


def unhealthy(pod: Obj) -> bool:
    """Not Ready, Pending, Failed (Evicted included), waiting or restarted: worth a look."""
    status = pod.get("status") or {}
    if status.get("phase") == "Succeeded":
        return False
    if status.get("phase") != "Running" or status.get("reason"):
        return True
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return True
    containers = status.get("containerStatuses") or []
    return any(
        not c.get("ready") or c.get("restartCount", 0) > 0 or "waiting" in (c.get("state") or {})
        for c in containers
    )


def trouble(pod: Obj) -> str:
    """A short signature of what is wrong with a pod, to pick pods that differ."""
    status = pod.get("status") or {}
    if status.get("reason"):
        return str(status["reason"])
    for c in _statuses(pod):
        for key in ("waiting", "terminated"):
            reason = ((c.get("state") or {}).get(key) or {}).get("reason")
            if reason:
                return str(reason)
    return str(status.get("phase") or "?")


def pick_pods(pods: list[Obj], limit: int) -> list[Obj]:
    """Up to ``limit`` unhealthy pods, one per kind of trouble first (an Evicted and a
    Pending pod tell more than two Evicted ones), newest first within a kind."""
    bad = sorted(
        (p for p in pods if unhealthy(p)),
        key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]),
        reverse=True,
    )
    groups: dict[str, list[Obj]] = {}
    for pod in bad:
        groups.setdefault(trouble(pod), []).append(pod)
    chosen: list[Obj] = []
    while len(chosen) < limit and any(groups.values()):
        for group in groups.values():
            if group and len(chosen) < limit:
                chosen.append(group.pop(0))
    return chosen


def with_echoes(pods: list[Obj]) -> list[tuple[Obj, bool]]:
    """Each pod, and whether an earlier one already shows the same trouble."""
    seen: set[str] = set()
    out = []
    for pod in pods:
        out.append((pod, trouble(pod) in seen))
        seen.add(trouble(pod))
    return out


def ready(pod: Obj) -> bool:
    return not unhealthy(pod)


def log_targets(pod: Obj, hint: str | None, limit: int = 2) -> list[tuple[str, bool]]:
    """(container, previous) logs worth reading (L1).

    Restarted: the previous and the current log; never restarted: the current
    one. Init containers are containers: a running or failed one is read. Of
    several containers, those not ready or restarted come first; a container
    that never started has no log.
    """
    spec = pod.get("spec") or {}
    statuses = {c.get("name"): c for c in _statuses(pod)}
    init = [c["name"] for c in spec.get("initContainers") or [] if c.get("name")]
    main = [c["name"] for c in spec.get("containers") or [] if c.get("name")]

    def started(st: Obj) -> bool:
        state = st.get("state") or {}
        return bool({"running", "terminated"} & set(state) or st.get("lastState"))

    def restarted(st: Obj) -> bool:
        return st.get("restartCount", 0) > 0 or bool((st.get("lastState") or {}).get("terminated"))

    chosen: list[str] = []
    for name in init:
        st = statuses.get(name) or {}
        term = (st.get("state") or {}).get("terminated") or {}
        if started(st) and not (term and term.get("exitCode", 0) == 0):
            chosen.append(name)
    troubled = [
        n
        for n in main
        if not (statuses.get(n) or {}).get("ready") or restarted(statuses.get(n) or {})
    ]
    chosen += [n for n in troubled if n not in chosen]
    if hint and hint in main + init:
        chosen = [hint, *(n for n in chosen if n != hint)]
    if not chosen and main:
        chosen = [main[0]]
    out: list[tuple[str, bool]] = []
    for name in chosen[:limit]:
        st = statuses.get(name) or {}
        if restarted(st):
            out.append((name, True))
        if started(st) or not st:
            out.append((name, False))
    return out


def claims(pod: Obj) -> list[str]:
    return [
        v["persistentVolumeClaim"]["claimName"]
        for v in (pod.get("spec") or {}).get("volumes") or []
        if (v.get("persistentVolumeClaim") or {}).get("claimName")
    ]


def configmaps(pod: Obj) -> list[str]:
    """ConfigMaps a pod's containers and volumes read (env, envFrom, volumes, projected)."""
    spec = pod.get("spec") or {}
    names: list[str | None] = []
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for env in c.get("env") or []:
            names.append(((env.get("valueFrom") or {}).get("configMapKeyRef") or {}).get("name"))
        for src in c.get("envFrom") or []:
            names.append((src.get("configMapRef") or {}).get("name"))
    for vol in spec.get("volumes") or []:
        names.append((vol.get("configMap") or {}).get("name"))
        for src in (vol.get("projected") or {}).get("sources") or []:
            names.append((src.get("configMap") or {}).get("name"))
    return list(dict.fromkeys(str(n) for n in names if n))


def mounts(pod: Obj, claim: str) -> bool:
    return claim in claims(pod)


def affinity_nodes(pv: Obj) -> list[str]:
    """Hostnames a PersistentVolume's required node affinity pins it to."""
    required = (((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required")) or {}
    out: list[str] = []
    for term in required.get("nodeSelectorTerms") or []:
        for expr in term.get("matchExpressions") or []:
            if expr.get("key") == "kubernetes.io/hostname" and expr.get("operator") == "In":
                out += [str(v) for v in expr.get("values") or []]
    return list(dict.fromkeys(out))


def ingress_services(ing: Obj) -> list[str]:
    spec = ing.get("spec") or {}
    names = []
    default = ((spec.get("defaultBackend") or {}).get("service") or {}).get("name")
    for rule in spec.get("rules") or []:
        for path in (rule.get("http") or {}).get("paths") or []:
            name = ((path.get("backend") or {}).get("service") or {}).get("name")
            if name:
                names.append(name)
    if default:
        names.append(default)
    return list(dict.fromkeys(names))


def ingress_hosts(ing: Obj) -> list[str]:
    spec = ing.get("spec") or {}
    hosts = [r.get("host") for r in spec.get("rules") or []]
    hosts += [h for t in spec.get("tls") or [] for h in t.get("hosts") or []]
    return [h for h in hosts if h]


def host_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and host.count(".") == pattern.count(".")
    return pattern == host


def template_labels(workload: Obj) -> dict[str, str]:
    template = ((workload.get("spec") or {}).get("template") or {}).get("metadata") or {}
    return dict(template.get("labels") or {})


def overlap(selector: dict[str, str], labels: dict[str, str]) -> int:
    """How many of the selector's terms the labels carry (all of them: it selects them)."""
    return sum(1 for k, v in selector.items() if labels.get(k) == v)


def webhook_backend(config: Obj, webhook: str) -> tuple[str, str] | None:
    """(namespace, service) behind one webhook of a webhook configuration."""
    for hook in config.get("webhooks") or []:
        if hook.get("name") == webhook:
            service = (hook.get("clientConfig") or {}).get("service") or {}
            if service.get("name") and service.get("namespace"):
                return service["namespace"], service["name"]
    return None


def has_webhook(config: Obj, webhook: str) -> bool:
    return any(h.get("name") == webhook for h in config.get("webhooks") or [])


def controller_for(component: str, deployments: list[Obj]) -> Obj | None:
    """The Deployment of the controller that reported an event (``cert-manager-certificates-
    issuing`` -> cert-manager): the longest name or ``app.kubernetes.io/name`` that the
    component is, or starts with followed by ``-``."""
    if not component or component in CORE_COMPONENTS:
        return None
    best: tuple[int, Obj] | None = None
    for dep in deployments:
        meta = dep.get("metadata") or {}
        labels = meta.get("labels") or {}
        for name in (
            meta.get("name"),
            labels.get("app.kubernetes.io/name"),
            labels.get("app.kubernetes.io/instance"),
            labels.get("app"),
        ):
            if name and (component == name or component.startswith(f"{name}-")):
                if best is None or len(name) > best[0]:
                    best = (len(name), dep)
    return best[1] if best else None


def selects(selector: Obj | None, labels: dict[str, str]) -> bool:
    """Whether a LabelSelector (``matchLabels`` and ``matchExpressions``) selects
    ``labels``; an empty selector selects everything, as the API server reads it."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(str(key)) != str(value):
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op = str(expr.get("key") or ""), expr.get("operator")
        values = {str(v) for v in expr.get("values") or []}
        have = key in labels
        if op == "In" and not (have and labels[key] in values):
            return False
        if op == "NotIn" and have and labels[key] in values:
            return False
        if op == "Exists" and not have:
            return False
        if op == "DoesNotExist" and have:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False  # an operator we do not know selects nothing we can vouch for
    return True


def policies_for(pod: Obj, policies: list[Obj]) -> list[Obj]:
    """The NetworkPolicies of the pod's namespace whose ``podSelector`` selects it."""
    labels = {str(k): str(v) for k, v in ((pod.get("metadata") or {}).get("labels") or {}).items()}
    return [p for p in policies if selects((p.get("spec") or {}).get("podSelector"), labels)]
