"""Which resource a kind names: the table of built-in kinds, the spellings a caller may
use (``Pod``, ``pods``, ``po``, ``Kind.group``, ``group/version/plural``), and the refusal
of Secrets in every spelling, before anything is asked of the server.

A :class:`KindInfo` is the only source of an API path (:meth:`KindInfo.base`);
kinds the table does not know come from the server's discovery
(:mod:`sre_agent_tools.kube_discovery`).
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from sre_agent_tools import kube_scope
from sre_agent_tools.result import ToolResult

__all__ = [
    "BUILTINS",
    "BUILTIN_RESOURCES",
    "EVENT",
    "POD",
    "SECRETS_REFUSED",
    "Failed",
    "KindInfo",
    "Obj",
    "builtin",
    "fail",
    "parse_kind",
    "refuse_secrets",
]

Obj = dict[str, Any]

#: Group, version and plural as they may appear in a path (they come from our table or
#: from the server's discovery, never from the model; checked all the same).
GROUP = re.compile(r"([a-z0-9]([-a-z0-9]*[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SEGMENT = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
#: A kind, singular, plural or short name, lowercased.
_KIND_NAME = re.compile(r"[a-z][a-z0-9]*")
SECRETS_REFUSED = (
    "Reading Secrets is not allowed: this agent never reads Secret objects. Describe the "
    "pod or workload instead; it shows which secret a setting comes from."
)


class Failed(Exception):
    """Carries a finished error result out of nested helpers."""

    def __init__(self, result: ToolResult) -> None:
        super().__init__(result.text)
        self.result = result


def fail(text: str) -> Failed:
    return Failed(ToolResult("error", text))


class KindInfo(NamedTuple):
    """One readable resource: what its kind is called and where it lives in the API."""

    kind: str
    group: str  # "" for the core group
    version: str
    plural: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ("get", "list", "watch")

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def ref(self) -> str:
        """A spelling that always resolves to this resource (``Certificate.cert-manager.io``)."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def resource(self) -> str:
        """``certificates.cert-manager.io`` / ``pods``: how RBAC and kubectl name it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def names(self) -> set[str]:
        """Every lowercase spelling of this kind (kind, singular, plural, short names)."""
        return {self.kind.lower(), self.singular or self.kind.lower(), self.plural} | set(
            self.short_names
        )

    def base(self) -> str:
        """``/api/v1`` or ``/apis/<group>/<version>``; each part checked (never a path walk)."""
        parts = [(GROUP, self.group), (_SEGMENT, self.version), (_SEGMENT, self.plural)]
        for pattern, part in parts:
            if part and not pattern.fullmatch(part):
                raise fail(f"the API server named an unusable resource path part {part!r}")
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"


def _k(kind: str, group: str, version: str, plural: str, namespaced: bool, *short: str) -> KindInfo:
    return KindInfo(kind, group, version, plural, namespaced, kind.lower(), short)


#: Kinds the tools know without asking the server (each is granted in deploy/rbac.yaml).
BUILTINS: tuple[KindInfo, ...] = (
    _k("Pod", "", "v1", "pods", True, "po"),
    _k("Service", "", "v1", "services", True, "svc"),
    _k("Endpoints", "", "v1", "endpoints", True, "ep"),
    _k("Node", "", "v1", "nodes", False, "no"),
    _k("Namespace", "", "v1", "namespaces", False, "ns"),
    _k("PersistentVolumeClaim", "", "v1", "persistentvolumeclaims", True, "pvc"),
    _k("PersistentVolume", "", "v1", "persistentvolumes", False, "pv"),
    _k("ConfigMap", "", "v1", "configmaps", True, "cm"),
    _k("Event", "", "v1", "events", True, "ev"),
    _k("ResourceQuota", "", "v1", "resourcequotas", True, "quota"),
    _k("LimitRange", "", "v1", "limitranges", True, "limits"),
    _k("Deployment", "apps", "v1", "deployments", True, "deploy"),
    _k("StatefulSet", "apps", "v1", "statefulsets", True, "sts"),
    _k("DaemonSet", "apps", "v1", "daemonsets", True, "ds"),
    _k("ReplicaSet", "apps", "v1", "replicasets", True, "rs"),
    _k("Job", "batch", "v1", "jobs", True),
    _k("CronJob", "batch", "v1", "cronjobs", True, "cj"),
    _k("HorizontalPodAutoscaler", "autoscaling", "v2", "horizontalpodautoscalers", True, "hpa"),
    _k("Ingress", "networking.k8s.io", "v1", "ingresses", True, "ing"),
    _k("IngressClass", "networking.k8s.io", "v1", "ingressclasses", False),
    _k("NetworkPolicy", "networking.k8s.io", "v1", "networkpolicies", True, "netpol"),
    _k("EndpointSlice", "discovery.k8s.io", "v1", "endpointslices", True),
    _k("StorageClass", "storage.k8s.io", "v1", "storageclasses", False, "sc"),
    _k("PodDisruptionBudget", "policy", "v1", "poddisruptionbudgets", True, "pdb"),
    _k(
        "MutatingWebhookConfiguration",
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        False,
    ),
    _k(
        "ValidatingWebhookConfiguration",
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        False,
    ),
)
_BY_NAME: dict[str, KindInfo] = {n: k for k in BUILTINS for n in k.names()}
BUILTIN_RESOURCES = frozenset(k.resource for k in BUILTINS)
POD, EVENT = _BY_NAME["pod"], _BY_NAME["event"]


def builtin(kind: str) -> KindInfo:
    """A built-in kind by any of its spellings (KeyError if it is not one)."""
    return _BY_NAME[kind.lower()]


def parse_kind(kind: str, api_version: str | None = None) -> tuple[str, str | None]:
    """(lowercase name, group or None) from ``Kind``, ``plural.group``, ``group/v/plural``.

    Refuses every spelling of Secrets (any group) before anything is asked.
    """
    text = str(kind or "").strip().lower()
    if "secrets" in text.replace(".", "/").split("/"):
        raise fail(SECRETS_REFUSED)
    group: str | None = None
    if "/" in text:  # a generic path spelling: v1/pods, cert-manager.io/v1/certificates
        parts = [p for p in text.split("/") if p]
        if parts[:1] in (["api"], ["apis"]):
            parts = parts[1:]
        if len(parts) not in (2, 3) or not all(GROUP.fullmatch(p) for p in parts):
            raise fail(f"{kube_scope.shown(kind)} is not a kind (try pod, deployment, Kind.group)")
        text, group = parts[-1], parts[0] if len(parts) == 3 else ""
    name, dot, rest = text.partition(".")
    if dot:
        group = rest
    elif group is None and api_version:
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
    if name in ("secret", "secrets"):
        raise fail(SECRETS_REFUSED)
    if not _KIND_NAME.fullmatch(name) or (group and not GROUP.fullmatch(group)):
        raise fail(f"{kube_scope.shown(kind)} is not a kind (try pod, deployment, Kind.group)")
    return name, group


def refuse_secrets(info: KindInfo) -> KindInfo:
    if info.plural == "secrets" or info.kind.lower() == "secret":
        raise fail(SECRETS_REFUSED)
    return info
