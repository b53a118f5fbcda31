"""What the fake API server knows about resource types: discovery, and selectors.

A real API server publishes its resource types (``/api/v1``, ``/apis``,
``/apis/<group>/<version>``) and accepts field selectors only on the fields
each resource registers; anything else is a 400. The fake does the same, so
the tools cannot come to rely on a lookup a real cluster refuses. Built-in
types are listed here as a real v1.31 server lists them (``secrets``
included: the tools must refuse it on their own); custom resources are
served for every group/version/kind present in the loaded objects.
"""

from __future__ import annotations

import base64
import re
from typing import Any, NamedTuple

VERBS = ["get", "list", "watch"]
#: ``GET /version``
VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0",
    "gitCommit": "9c3a8d5e1f0b2c4d6e8f0a1b3c5d7e9f1a3b5c7d",
    "gitTreeState": "clean",
    "buildDate": "2026-10-01T00:00:00Z",
    "goVersion": "go1.23.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}
#: Plurals that are not simply ``kind.lower() + "s"``.
_PLURALS = {
    "Endpoints": "endpoints",
    "Ingress": "ingresses",
    "NetworkPolicy": "networkpolicies",
    "StorageClass": "storageclasses",
    "PriorityClass": "priorityclasses",
}


def plural_of(kind: str) -> str:
    """The resource name the API uses in URLs for ``kind`` (as a CRD's default plural)."""
    if kind in _PLURALS:
        return _PLURALS[kind]
    lower = kind.lower()
    if lower.endswith(("s", "x", "ch", "sh")):
        return lower + "es"
    if lower.endswith("y") and lower[-2:-1] not in ("a", "e", "i", "o", "u"):
        return lower[:-1] + "ies"
    return lower + "s"


def status_body(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return body


class Resource(NamedTuple):
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = tuple(VERBS)


def _r(api: str, plural: str, kind: str, namespaced: bool, *short: str) -> Resource:
    group, _, version = api.rpartition("/")
    return Resource(group, version, plural, kind, namespaced, short)


#: Built-in resources, as a real server's discovery lists them.
BUILTIN: tuple[Resource, ...] = (
    _r("v1", "pods", "Pod", True, "po"),
    _r("v1", "services", "Service", True, "svc"),
    _r("v1", "endpoints", "Endpoints", True, "ep"),
    _r("v1", "nodes", "Node", False, "no"),
    _r("v1", "namespaces", "Namespace", False, "ns"),
    _r("v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, "pvc"),
    _r("v1", "persistentvolumes", "PersistentVolume", False, "pv"),
    _r("v1", "configmaps", "ConfigMap", True, "cm"),
    _r("v1", "secrets", "Secret", True),
    _r("v1", "events", "Event", True, "ev"),
    _r("v1", "resourcequotas", "ResourceQuota", True, "quota"),
    _r("v1", "limitranges", "LimitRange", True, "limits"),
    _r("v1", "serviceaccounts", "ServiceAccount", True, "sa"),
    _r("v1", "replicationcontrollers", "ReplicationController", True, "rc"),
    Resource("", "v1", "bindings", "Binding", True, (), ("create",)),  # as a real server lists it
    _r("apps/v1", "deployments", "Deployment", True, "deploy"),
    _r("apps/v1", "statefulsets", "StatefulSet", True, "sts"),
    _r("apps/v1", "daemonsets", "DaemonSet", True, "ds"),
    _r("apps/v1", "replicasets", "ReplicaSet", True, "rs"),
    _r("apps/v1", "controllerrevisions", "ControllerRevision", True),
    _r("batch/v1", "jobs", "Job", True),
    _r("batch/v1", "cronjobs", "CronJob", True, "cj"),
    _r("autoscaling/v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True, "hpa"),
    _r("networking.k8s.io/v1", "ingresses", "Ingress", True, "ing"),
    _r("networking.k8s.io/v1", "ingressclasses", "IngressClass", False),
    _r("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", True, "netpol"),
    _r("discovery.k8s.io/v1", "endpointslices", "EndpointSlice", True),
    _r("storage.k8s.io/v1", "storageclasses", "StorageClass", False, "sc"),
    _r("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", True, "pdb"),
    _r("events.k8s.io/v1", "events", "Event", True, "ev"),
    _r("rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole", False),
    _r("rbac.authorization.k8s.io/v1", "roles", "Role", True),
    _r("apiextensions.k8s.io/v1", "customresourcedefinitions", "CustomResourceDefinition", False),
    _r(
        "admissionregistration.k8s.io/v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        False,
    ),
    _r(
        "admissionregistration.k8s.io/v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        False,
    ),
)
BUILTIN_BY_KIND = {r.kind: r for r in BUILTIN if r.group != "events.k8s.io"}
#: Subresources a real server lists beside their resources (the tools must skip them).
SUBRESOURCES = {"pods": ("log", "status"), "deployments": ("status", "scale")}

#: Field selectors each resource supports besides metadata.name / metadata.namespace
#: (k8s.io/kubernetes pkg/registry/*/strategy.go GetAttrs / the conversion funcs).
_POD_FIELDS = (
    "spec.nodeName spec.restartPolicy spec.schedulerName spec.serviceAccountName "
    "spec.hostNetwork status.phase status.podIP status.podIPs status.nominatedNodeName"
)
_EVENT_FIELDS = (
    "involvedObject.kind involvedObject.namespace involvedObject.name involvedObject.uid "
    "involvedObject.apiVersion involvedObject.resourceVersion involvedObject.fieldPath "
    "reason reportingComponent source type"
)
FIELDS: dict[tuple[str, str], frozenset[str]] = {
    ("", "pods"): frozenset(_POD_FIELDS.split()),
    ("", "events"): frozenset(_EVENT_FIELDS.split()),
    ("", "nodes"): frozenset({"spec.unschedulable"}),
    ("", "namespaces"): frozenset({"status.phase"}),
    ("", "secrets"): frozenset({"type"}),
    ("", "replicationcontrollers"): frozenset({"status.replicas"}),
    ("apps", "replicasets"): frozenset({"status.replicas"}),
    ("batch", "jobs"): frozenset({"status.successful"}),
}
COMMON_FIELDS = frozenset({"metadata.name", "metadata.namespace"})
#: Field selector keys whose value is not at that path in the object.
FIELD_PATHS = {"source": "source.component", "status.podIPs": "status.podIP"}


def unsupported_field(group: str, plural: str, keys: list[str]) -> str | None:
    """The first field-selector key this resource does not support, or None."""
    allowed = COMMON_FIELDS | FIELDS.get((group, plural), frozenset())
    return next((key for key in keys if key not in allowed), None)


def _entry(r: Resource) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": r.plural,
        "singularName": r.kind.lower(),
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": list(r.verbs),
    }
    if r.short_names:
        entry["shortNames"] = list(r.short_names)
    return entry


def resource_list(group: str, version: str, resources: list[Resource]) -> dict[str, Any]:
    """An ``APIResourceList`` for one group version (subresources listed as a server does)."""
    out: list[dict[str, Any]] = []
    for r in resources:
        if r.group == group and r.version == version:
            out.append(_entry(r))
            for sub in SUBRESOURCES.get(r.plural, ()) if not group or group == "apps" else ():
                out.append(
                    {
                        "name": f"{r.plural}/{sub}",
                        "singularName": "",
                        "namespaced": r.namespaced,
                        "kind": r.kind,
                        "verbs": ["get"],
                    }
                )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": out,
    }


def group_versions(resources: list[Resource]) -> dict[str, list[str]]:
    """group -> its versions, the preferred (first seen: built-in's, else loaded) first."""
    found: dict[str, list[str]] = {}
    for r in resources:
        if r.group and r.version not in found.setdefault(r.group, []):
            found[r.group].append(r.version)
    return found


def group_doc(group: str, versions: list[str]) -> dict[str, Any]:
    listed = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": listed, "preferredVersion": listed[0]}


def discovery_doc(segs: list[str], resources: list[Resource]) -> dict[str, Any] | None:
    """``/api``, ``/api/v1``, ``/apis``, ``/apis/<g>``, ``/apis/<g>/<v>``; None otherwise."""
    versions = group_versions(resources)
    if segs == ["api"]:
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if segs == ["api", "v1"]:
        return resource_list("", "v1", resources)
    if segs == ["apis"]:
        groups = [group_doc(g, v) for g, v in versions.items()]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
    if len(segs) == 2 and segs[0] == "apis" and segs[1] in versions:
        return {"kind": "APIGroup", "apiVersion": "v1", **group_doc(segs[1], versions[segs[1]])}
    if len(segs) == 3 and segs[0] == "apis" and segs[2] in versions.get(segs[1], []):
        return resource_list(segs[1], segs[2], resources)
    return None


def list_offset(token: str | None) -> int | None:
    """The list offset a ``continue`` token carries (0 without one; None if unreadable)."""
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(token.encode()).decode())
    except ValueError:
        return None


# -- selectors ---------------------------------------------------------------


def _lookup(obj: dict[str, Any], dotted: str) -> str | None:
    """Resolve a field-selector path such as ``involvedObject.name``."""
    value: Any = obj
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return None if value is None else str(value)


def selector_terms(selector: str) -> list[tuple[str, str, str]]:
    """``k=v,k!=v`` terms, splitting and unescaping as ``fields.ParseSelector`` does
    (``\\,``, ``\\=`` and ``\\\\`` belong to the value). ValueError if malformed."""
    terms: list[tuple[str, str, str]] = []
    parts: list[str] = []
    current = ""
    chars = iter(selector)
    for ch in chars:
        if ch == "\\":
            current += ch + next(chars, "")
        elif ch == ",":
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    for term in (p.strip() for p in parts):
        if not term:
            continue
        m = re.match(r"([^=!\\]+)(!=|==|=)(.*)", term)
        if not m:
            raise ValueError(f"invalid field selector term {term!r}")
        value = re.sub(r"\\(.)", r"\1", m[3])
        terms.append((m[1].strip(), "!=" if m[2] == "!=" else "=", value))
    return terms


def matches_fields(obj: dict[str, Any], selector: str) -> bool:
    for key, op, want in selector_terms(selector):
        got = _lookup(obj, FIELD_PATHS.get(key, key)) or ""
        if (got == want) != (op == "="):
            return False
    return True


def matches_labels(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, want = (s.strip() for s in term.split("!=", 1))
            if labels.get(key) == want:
                return False
        elif "=" in term:
            key, want = (s.strip() for s in term.replace("==", "=").split("=", 1))
            if labels.get(key) != want:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True
