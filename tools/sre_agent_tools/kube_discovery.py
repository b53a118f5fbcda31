"""Kinds beyond the built-in table, custom resources included, found through discovery.

An alert can name anything a cluster serves (``Certificate``, ``HelmRelease``,
``Kustomization``), so a kind the tools do not know is looked up the way
kubectl does: ``/api/v1`` and ``/apis`` plus each version a group serves
(``/apis/<group>/<version>``, the preferred one first), kept per API client for
:data:`CACHE_SECONDS`. A kind named with its group (``Order.acme.cert-manager.io``,
or an ownerReference's apiVersion) asks that group alone (one request, and one
per version it serves). One fetch of each runs at a time per client; concurrent
lookups wait for it. A group whose list fails (an aggregated API that is down)
is skipped and named, not fatal. Subresources (``x/status``) and resources without ``get`` are not
readable, and anything named Secret(s) is refused whatever its group.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import time
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from kubernetes.client.exceptions import ApiException

from sre_agent_tools.deps import ToolDeps
from sre_agent_tools.kube_api import (
    BUILTINS,
    Failed,
    KindInfo,
    Obj,
    api_message,
    builtin,
    fail,
    get_json,
    parse_kind,
    refuse_secrets,
)

log = logging.getLogger(__name__)

CACHE_SECONDS = 300.0
#: Group versions fetched at once (each is one GET in a worker thread of the default
#: executor, which has only min(32, cpus + 4) threads: leave some for other lookups).
PARALLEL = 4
#: At most this many API groups are read (a real cluster serves 20-60).
MAX_GROUPS = 300
#: At most this many versions of one group are read (a group serves one to three),
#: and this many group versions in all.
MAX_VERSIONS = 4
MAX_GROUP_VERSIONS = 400
#: A whole discovery asks no new group after this many request timeouts: hung
#: aggregated APIs each hold a slot for a timeout, and the groups not asked by then
#: are named as failed rather than waited on.
DEADLINE_TIMEOUTS = 3
_SUMMARY = "API discovery (resource types, no objects)"
T = TypeVar("T")


@dataclass
class Discovery:
    """What one discovery found: every readable resource, and the groups that failed."""

    at: float
    kinds: list[KindInfo] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


#: Per client: what was found (key "" for the full discovery, else a group's name), and
#: the fetches under way, so that concurrent lookups share one.
_found: weakref.WeakKeyDictionary[Any, dict[str, tuple[float, Any]]] = weakref.WeakKeyDictionary()
_running: weakref.WeakKeyDictionary[
    Any, dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]]]
] = weakref.WeakKeyDictionary()


async def _shared(deps: ToolDeps, key: str, fetch: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``fetch()``'s answer, kept :data:`CACHE_SECONDS` per client and key; one at a time."""
    client = deps.kube
    try:
        found, running = _found.setdefault(client, {}), _running.setdefault(client, {})
    except TypeError:  # a client that cannot be weakly referenced: no cache
        return await fetch()
    if key in found and time.monotonic() - found[key][0] < CACHE_SECONDS:
        return cast(T, found[key][1])
    loop = asyncio.get_running_loop()
    task = running.get(key)
    if task is None or task[0] is not loop or task[1].done():
        task = (loop, loop.create_task(fetch()))
        # a caller cancelled mid-fetch leaves it running for the others; its error is
        # then read here, not reported as "never retrieved"
        task[1].add_done_callback(lambda t: t.cancelled() or t.exception())
        running[key] = task
    value = await asyncio.shield(task[1])
    found[key] = (time.monotonic(), value)
    return cast(T, value)


async def discover(deps: ToolDeps) -> Discovery:
    """The client's whole discovery, fetched at most once per :data:`CACHE_SECONDS`."""
    return await _shared(deps, "", lambda: _fetch(deps))


async def _fetch(deps: ToolDeps) -> Discovery:
    found = Discovery(at=time.monotonic())
    core = await get_json(deps, "discover_core", "/api/v1", summary=_SUMMARY)
    found.kinds += _resources(core, "", "v1")
    groups = (await get_json(deps, "discover_groups", "/apis", summary=_SUMMARY)).get("groups")
    preferred: list[tuple[str, str]] = []
    others: list[tuple[str, str]] = []
    for group in (groups or [])[:MAX_GROUPS]:
        name = str(group.get("name") or "")
        versions = versions_of(group) if name else []
        preferred += [(name, v) for v in versions[:1]]
        others += [(name, v) for v in versions[1:]]
    # every preferred version first (their kinds win), then the others, within the budget
    wanted = (preferred + others)[:MAX_GROUP_VERSIONS]
    gate = asyncio.Semaphore(PARALLEL)
    deadline = time.monotonic() + DEADLINE_TIMEOUTS * deps.timeout

    async def one(group: str, version: str) -> list[KindInfo]:
        async with gate:
            if time.monotonic() > deadline:  # hung groups ate the time: say so, not wait on
                found.failed.append(f"{group}/{version} (not asked: discovery ran out of time)")
                return []
            try:
                path = KindInfo("", group, version, "", False).base()
                body = await get_json(deps, "discover_group", path, summary=_SUMMARY)
            except ApiException as exc:
                found.failed.append(f"{group}/{version} ({exc.status}: {api_message(exc)})")
                return []
            except Failed as exc:  # unusable name, unreachable: skip the group, say so
                found.failed.append(f"{group}/{version} ({exc.result.text})")
                return []
        return _resources(body, group, version)

    for kinds in await asyncio.gather(*(one(g, v) for g, v in wanted)):
        found.kinds += kinds
    if found.failed:
        log.info("kubernetes discovery: %d group(s) did not answer", len(found.failed))
    return found


def versions_of(group: Obj) -> list[str]:
    """A group's versions, the preferred one first (at most :data:`MAX_VERSIONS`).

    Every served version is read, as kubectl does: a group's kinds need not share
    one (``monitoring.coreos.com/v1`` has Prometheus, AlertmanagerConfig is only in
    ``v1alpha1``); where a kind is in several, the preferred version's comes first.
    """
    preferred = str((group.get("preferredVersion") or {}).get("version") or "")
    listed = [str(v.get("version")) for v in group.get("versions") or [] if v.get("version")]
    return list(dict.fromkeys(v for v in (preferred, *listed) if v))[:MAX_VERSIONS]


def _resources(body: Obj, group: str, version: str) -> list[KindInfo]:
    kinds = []
    for res in body.get("resources") or []:
        plural = str(res.get("name") or "")
        if not plural or "/" in plural or not res.get("kind"):
            continue  # subresources (pods/log, x/status) are not objects
        kinds.append(
            KindInfo(
                kind=str(res["kind"]),
                group=group,
                version=version,
                plural=plural.lower(),
                namespaced=bool(res.get("namespaced")),
                singular=str(res.get("singularName") or res["kind"]).lower(),
                short_names=tuple(str(s).lower() for s in res.get("shortNames") or []),
                verbs=tuple(str(v) for v in res.get("verbs") or []),
            )
        )
    return kinds


async def resolve(deps: ToolDeps, kind: str, api_version: str | None = None) -> KindInfo:
    """The resource a kind names; raises :class:`kube_api.Failed` with a readable reason.

    Built-in kinds need no request. ``api_version`` (from an ownerReference or
    involvedObject) picks the group; when that group does not serve the kind, the
    kind alone decides (manifests do carry wrong apiVersions).
    """
    name, group = parse_kind(kind, api_version)
    explicit = "." in str(kind) or "/" in str(kind)
    try:
        known = builtin(name)
        if group is None or group == known.group or not explicit:
            return known
    except KeyError:
        pass
    matches = _matching(await group_kinds(deps, group), name, group) if group else []
    if matches:
        return _readable(matches[0])
    found = await discover(deps)
    matches = _matching(found.kinds, name, group)
    if not matches and group is not None and not explicit:
        matches = _matching(found.kinds, name, None)
    if not matches:
        raise fail(_unknown(kind, name, found))
    groups = sorted({k.group for k in matches})
    if len(groups) > 1:
        spellings = ", ".join(f"{m.kind}.{m.group}" if m.group else m.kind for m in matches)
        raise fail(
            f"Kind {kind!r} is ambiguous: {len(groups)} API groups serve it. "
            f"Name one of: {spellings}."
        )
    return _readable(matches[0])


def _readable(info: KindInfo) -> KindInfo:
    refuse_secrets(info)
    if "get" not in info.verbs:
        raise fail(f"{info.resource} cannot be read (the API server offers no get on it).")
    return info


async def group_kinds(deps: ToolDeps, group: str) -> list[KindInfo]:
    """The kinds one API group serves: from the whole discovery when it is at hand, else
    from that group alone (``/apis/<group>`` and each version it serves: two requests
    for most groups, not one per group). A group the server does not serve has none."""
    try:
        full = _found.get(deps.kube, {}).get("")
    except TypeError:
        full = None
    if full is not None and time.monotonic() - full[0] < CACHE_SECONDS:
        return [k for k in full[1].kinds if k.group == group]
    return await _shared(deps, group, lambda: _fetch_group(deps, group))


async def _fetch_group(deps: ToolDeps, group: str) -> list[KindInfo]:
    base = KindInfo("", group, "v1", "", False).base().rsplit("/", 1)[0]  # /apis/<group>, checked
    kinds: list[KindInfo] = []
    try:
        doc = await get_json(deps, "discover_group", base, summary=_SUMMARY)
        for version in versions_of(doc):
            path = KindInfo("", group, version, "", False).base()
            body = await get_json(deps, "discover_group", path, summary=_SUMMARY)
            kinds += _resources(body, group, version)
    except ApiException as exc:
        if exc.status == 404:
            return kinds
        raise fail(
            f"discovery of API group {group} failed ({exc.status}: {api_message(exc)})"
        ) from exc
    return kinds


def _matching(kinds: list[KindInfo], name: str, group: str | None) -> list[KindInfo]:
    seen: set[str] = set()
    out = []
    for k in kinds:
        if name in k.names() and (group is None or k.group == group) and k.group not in seen:
            seen.add(k.group)
            out.append(k)
    return out


def _unknown(kind: str, name: str, found: Discovery) -> str:
    spellings: dict[str, list[KindInfo]] = {}
    for k in found.kinds:
        if k.plural != "secrets":
            for n in k.names():
                spellings.setdefault(n, []).append(k)
    close = difflib.get_close_matches(name, list(spellings), n=8, cutoff=0.6)
    refs = list(dict.fromkeys(k.ref for c in close for k in spellings[c]))
    text = f"Unknown kind {kind!r}: the API server serves no such resource."
    if refs:
        text += f" Close: {', '.join(refs)}."
    else:
        text += f" Built in: {', '.join(k.kind.lower() for k in BUILTINS)}."
        builtins = {k.resource for k in BUILTINS}
        custom = sorted({k.ref for k in found.kinds if k.group and k.resource not in builtins})
        custom = [c for c in custom if "secret" not in c.lower()]
        if custom:
            more = f" (+{len(custom) - 30} more)" if len(custom) > 30 else ""
            text += f" Other kinds served: {', '.join(custom[:30])}{more}."
    if found.failed:
        text += f" (Discovery of {len(found.failed)} group(s) failed: {found.failed[0]}.)"
    return text
