"""Structured reads for code, not the model: one object, a list, an object's events or
what a kind names, as JSON, or the error the tools would give instead.

The evidence gatherer's graph walk follows relations with these; each is one
try (no second request to learn why the first failed), and a ConfigMap's values
come back masked as :func:`~sre_agent_tools.redact.redact_value` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sre_agent_tools.deps import ToolDeps
from sre_agent_tools.kube_api import KindInfo, Obj, list_items, read
from sre_agent_tools.kube_describe import events_of
from sre_agent_tools.kube_discovery import resolve
from sre_agent_tools.kube_guard import value_or_error
from sre_agent_tools.redact import redact_value
from sre_agent_tools.result import ToolResult

__all__ = [
    "MAX_LIST",
    "Selector",
    "get_object",
    "kind_info",
    "list_objects",
    "list_or_error",
    "object_events",
    "object_events_or_error",
    "read_object",
]

MAX_LIST = 500
Selector = Mapping[str, Any] | Iterable[tuple[str, str, str]] | str | None


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
    return await value_or_error(deps, f"kind {kind}", lambda: resolve(deps, kind, api_version))


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

    return await value_or_error(deps, f"describe {kind} {name}", produce)


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

    return await value_or_error(deps, f"list {kind}", produce)


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

    return await value_or_error(deps, f"events {kind} {name}", produce)


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
