"""The Kubernetes API core under the tools: the one GET, and reads and lists built on it.

Every request passes through :func:`get_raw`, with the names, namespace and
selectors as keyword arguments, so :func:`kube_scope.admit` checks each of
them before a URL is built; the path itself comes from a :class:`KindInfo`
(the built-in table in :mod:`sre_agent_tools.kube_kinds`, or the server's
discovery in :mod:`sre_agent_tools.kube_discovery`). Only GET is ever sent,
and no path that names Secrets leaves this module, whatever a caller asks for.
What is read is masked where it enters (:mod:`sre_agent_tools.kube_mask`). Identical
reads within a few seconds (a storm's evidence walks) share one request
(:mod:`sre_agent_tools.read_cache`), after each caller's own scope check.

Requests go through ``ApiClient.param_serialize`` / ``call_api`` (the client's
own URL quoting, auth and TLS), so built-in kinds and custom resources share
one path; bodies are read as plain JSON dicts.
"""

from __future__ import annotations

import asyncio
import difflib
import json
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from sre_agent_tools import kube_scope
from sre_agent_tools.deps import ToolDeps
from sre_agent_tools.kube_kinds import (
    BUILTIN_RESOURCES,
    BUILTINS,
    EVENT,
    POD,
    SECRETS_REFUSED,
    Failed,
    KindInfo,
    Obj,
    builtin,
    fail,
    parse_kind,
    refuse_secrets,
)
from sre_agent_tools.kube_mask import mask

__all__ = [
    "BUILTINS",
    "EVENT",
    "MAX_BODY",
    "POD",
    "SECRETS_REFUSED",
    "Failed",
    "KindInfo",
    "Obj",
    "api_message",
    "builtin",
    "existing",
    "fail",
    "get_json",
    "get_raw",
    "host",
    "list_items",
    "mask",
    "parse_kind",
    "read",
    "refuse_secrets",
]

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
    if info is not None and info.resource not in BUILTIN_RESOURCES:  # custom or core extra
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
        if deps.reads is None:
            return await asyncio.to_thread(call)
        key = (id(client), path, tuple(sorted(path_params.items())), tuple(query))
        return await deps.reads.get(key, lambda: asyncio.to_thread(call))
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
