"""The Kubernetes API core under the tools: which resource a kind names, and the one GET.

Every request passes through :func:`get_raw`, with the names, namespace and
selectors as keyword arguments, so :func:`kube_scope.admit` checks each of
them before a URL is built; the path itself comes from a :class:`KindInfo`
(the built-in table here, or the server's discovery in
:mod:`sre_agent_tools.kube_discovery`). Only GET is ever sent, and no path
that names Secrets leaves this module, whatever a caller asks for.

Requests go through ``ApiClient.param_serialize`` / ``call_api`` (the client's
own URL quoting, auth and TLS), so built-in kinds and custom resources share
one path; bodies are read as plain JSON dicts.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import re
from typing import Any, NamedTuple

import urllib3
from kubernetes.client.exceptions import ApiException

from sre_agent_tools import kube_scope
from sre_agent_tools.deps import ToolDeps
from sre_agent_tools.redact import MASK, redact, redact_obj, redact_value
from sre_agent_tools.result import ToolResult

Obj = dict[str, Any]

#: Group, version and plural as they may appear in a path (they come from our table or
#: from the server's discovery, never from the model; checked all the same).
_GROUP = re.compile(r"([a-z0-9]([-a-z0-9]*[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SEGMENT = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
#: A kind, singular, plural or short name, lowercased.
_KIND_NAME = re.compile(r"[a-z][a-z0-9]*")
#: Query parameter names, as the API spells the client's keyword arguments.
_QUERY = {
    "label_selector": "labelSelector",
    "field_selector": "fieldSelector",
    "tail_lines": "tailLines",
    "limit_bytes": "limitBytes",
    "limit": "limit",
    "container": "container",
    "previous": "previous",
}
#: At most this much of one response is read (a page of 500 pods is ~10 MiB; custom
#: resources can be ~1.5 MiB each, so a page of them could be most of a gigabyte).
MAX_BODY = 32 * 2**20
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
        parts = [(_GROUP, self.group), (_SEGMENT, self.version), (_SEGMENT, self.plural)]
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
_BUILTIN_RESOURCES = frozenset(k.resource for k in BUILTINS)
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
        if len(parts) not in (2, 3) or not all(_GROUP.fullmatch(p) for p in parts):
            raise fail(f"{kube_scope.shown(kind)} is not a kind (try pod, deployment, Kind.group)")
        text, group = parts[-1], parts[0] if len(parts) == 3 else ""
    name, dot, rest = text.partition(".")
    if dot:
        group = rest
    elif group is None and api_version:
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
    if name in ("secret", "secrets"):
        raise fail(SECRETS_REFUSED)
    if not _KIND_NAME.fullmatch(name) or (group and not _GROUP.fullmatch(group)):
        raise fail(f"{kube_scope.shown(kind)} is not a kind (try pod, deployment, Kind.group)")
    return name, group


def refuse_secrets(info: KindInfo) -> KindInfo:
    if info.plural == "secrets" or info.kind.lower() == "secret":
        raise fail(SECRETS_REFUSED)
    return info


# -- calling the API ------------------------------------------------------------


def host(deps: ToolDeps) -> str:
    return str(getattr(getattr(deps.kube, "configuration", None), "host", "?"))


def api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "")["message"])
    except (ValueError, KeyError, TypeError):
        return str(exc.reason or exc.body or "").strip()


def _forbidden(exc: ApiException, what: str, info: KindInfo | None) -> Failed:
    text = f"RBAC forbids this request ({what}): {api_message(exc)}"
    if info is not None and info.resource not in _BUILTIN_RESOURCES:  # custom or core extra
        group = info.group or '"" (core)'
        text += (
            f". The agent's role does not grant {info.plural} in API group {group}: "
            f"grant get/list/watch on it in deploy/rbac.yaml"
            + (" (see its commented opt-in rules)" if info.group else "")
        )
    elif info is not None:
        text += f". deploy/rbac.yaml grants {info.resource}: is the applied role older?"
    return fail(text)


async def get_raw(
    deps: ToolDeps,
    op: str,
    path: str,
    *,
    info: KindInfo | None = None,
    summary: str | None = None,
    **kwargs: Any,
) -> bytes:
    """One GET in a worker thread; the response body.

    ``path`` holds ``{name}`` / ``{namespace}`` placeholders filled from the admitted
    keyword arguments; ``op`` names the read for the scope check (an ``op`` ending in
    ``_for_all_namespaces`` is a list across namespaces and needs a ``summary``).
    """
    try:
        kube_scope.admit(op, kwargs, deps.namespaces, deps.scope_owner, summary)
    except kube_scope.Rejected as exc:
        raise fail(str(exc)) from None
    path_params = {k: kwargs.pop(k) for k in ("name", "namespace") if k in kwargs}
    if "secrets" in path.split("/"):
        raise fail(SECRETS_REFUSED)
    query = [
        (_QUERY[k], str(v).lower() if isinstance(v, bool) else str(v))
        for k, v in kwargs.items()
        if v is not None
    ]
    client = deps.kube
    what = op.replace("_", " ")

    def call() -> bytes:
        request = client.param_serialize(
            method="GET",
            resource_path=path,
            path_params=path_params,
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        resp = client.call_api(*request, _request_timeout=deps.timeout)
        try:
            data = bytes(resp.response.read(MAX_BODY + 1))
            if len(data) > MAX_BODY:
                resp.response.close()  # not drained: the connection is dropped
                raise fail(
                    f"the Kubernetes API answered {what} with more than "
                    f"{MAX_BODY // 2**20} MiB; narrow it (a namespace, a label or field "
                    "selector, a smaller limit)"
                )
            if not 200 <= resp.status <= 299:
                raise ApiException.from_response(
                    http_resp=resp, body=data.decode("utf-8", "replace"), data=None
                )
            return data
        finally:
            resp.response.release_conn()

    try:
        return await asyncio.to_thread(call)
    except ApiException as exc:
        if exc.status == 403:
            raise _forbidden(exc, what, info) from exc
        if exc.status == 401:
            raise fail(
                f"Kubernetes API rejected the credentials (401 Unauthorized) at {host(deps)}"
            ) from exc
        raise
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise fail(
            f"Kubernetes API unreachable at {host(deps)}: {type(reason).__name__}: {reason}"
        ) from exc


async def get_json(
    deps: ToolDeps, op: str, path: str, *, info: KindInfo | None = None, **kwargs: Any
) -> Obj:
    """The body as JSON, decoded in a worker thread (a 500-item list is megabytes); the
    objects of a ``info`` read or list are :func:`mask`-ed there too."""
    raw = await get_raw(deps, op, path, info=info, **kwargs)

    def decode() -> Any:
        body = json.loads(raw)
        if info is not None and isinstance(body, dict):
            items = body["items"] if isinstance(body.get("items"), list) else [body]
            for item in items:
                if isinstance(item, dict):
                    mask(info, item)
        return body

    try:
        body = await asyncio.to_thread(decode)
    except ValueError:
        raise fail(f"the Kubernetes API answered {op} with invalid JSON") from None
    if not isinstance(body, dict):
        raise fail(f"the Kubernetes API answered {op} with something that is not an object")
    return body


#: A copy of the whole object as last applied, ConfigMap data and env values included.
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def mask(info: KindInfo, obj: Obj) -> Obj:
    """Secret-looking values masked where they enter (in place): annotations (the
    last-applied copy whole), container env values, args and commands, event messages,
    and everything in a custom resource's spec and status. ConfigMap ``data`` is left
    to its renderer, which shows sizes, and to the structured reads."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict):
        meta["annotations"] = {
            k: MASK if k == _LAST_APPLIED and v else redact_value(str(k), str(v))
            for k, v in meta["annotations"].items()
        }
    if info.resource not in _BUILTIN_RESOURCES:
        for part in ("spec", "status"):
            if part in obj:
                obj[part] = redact_obj(obj[part])
        return obj
    if info.kind == "Event" and isinstance(obj.get("message"), str):
        obj["message"] = redact(obj["message"])
    spec = obj.get("spec")
    for _ in range(3):  # pod, template.spec, jobTemplate.spec.template.spec
        if not isinstance(spec, dict):
            break
        for key in ("containers", "initContainers", "ephemeralContainers"):
            for container in spec.get(key) or []:
                if isinstance(container, dict):
                    _mask_container(container)
        template = spec.get("template") or spec.get("jobTemplate")
        spec = template.get("spec") if isinstance(template, dict) else None
    return obj


def _mask_container(container: Obj) -> None:
    for env in container.get("env") or []:
        if isinstance(env, dict) and env.get("value") is not None:
            env["value"] = redact_value(str(env.get("name") or ""), str(env["value"]))
    for key in ("args", "command"):
        if isinstance(container.get(key), list):
            container[key] = [redact(str(a)) for a in container[key]]


async def read(deps: ToolDeps, info: KindInfo, name: str, namespace: str) -> Obj:
    """Read one object; a 404 becomes an error that lists what does exist."""
    try:
        if info.namespaced:
            return await get_json(
                deps,
                f"read_namespaced_{info.plural}",
                info.base() + "/namespaces/{namespace}/" + info.plural + "/{name}",
                info=info,
                name=name,
                namespace=namespace,
            )
        return await get_json(
            deps,
            f"read_{info.plural}",
            f"{info.base()}/{info.plural}/{{name}}",
            info=info,
            name=name,
        )
    except ApiException as exc:
        if exc.status != 404:
            raise
    where = f"{namespace}/{name}" if info.namespaced else name
    hint = await existing(deps, info, name, namespace)
    raise fail(f"{info.kind.lower()} {where} not found. {hint}".strip())


async def list_items(
    deps: ToolDeps,
    info: KindInfo,
    namespace: str | None,
    *,
    summary: str | None = None,
    **kwargs: Any,
) -> list[Obj]:
    """One page of a list (``limit`` caps it); ``namespace=None``: all namespaces."""
    if info.namespaced and namespace is not None:
        op, path = f"list_namespaced_{info.plural}", info.base() + "/namespaces/{namespace}/"
        kwargs["namespace"] = namespace
    elif info.namespaced:
        op, path = f"list_{info.plural}_for_all_namespaces", info.base() + "/"
    else:
        op, path = f"list_{info.plural}", info.base() + "/"
    body = await get_json(deps, op, path + info.plural, info=info, summary=summary, **kwargs)
    items = body.get("items") or []
    kind = info.kind
    for item in items:  # list items carry no kind/apiVersion; renderers need them
        item.setdefault("kind", kind)
        item.setdefault("apiVersion", info.api_version)
    return list(items)


async def existing(deps: ToolDeps, info: KindInfo, name: str, namespace: str) -> str:
    """A hint naming up to ten objects of that kind, closest names first."""
    try:
        items = await list_items(deps, info, namespace if info.namespaced else None, limit=500)
        names = sorted(o["metadata"]["name"] for o in items)
    except (ApiException, Failed, KeyError, TypeError):
        return ""
    where = f" in namespace {namespace}" if info.namespaced else ""
    what = info.plural
    if not names:
        return f"There are no {what}{where}."
    close = difflib.get_close_matches(name, names, n=10, cutoff=0.4)
    ordered = close + [n for n in names if n not in close]
    more = f" (and {len(names) - 10} more)" if len(names) > 10 else ""
    return f"Existing {what}{where}: {', '.join(ordered[:10])}{more}."
