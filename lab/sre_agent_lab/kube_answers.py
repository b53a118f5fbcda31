"""What the fake Kubernetes API server answers for a list, a pod's log and an error:
pure functions of the objects held and the request's query, each giving
``(status code, content type, body)`` as a real API server would (``limit`` and
``continue``, selectors a real server refuses, ``tailLines``/``limitBytes``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any

from sre_agent_lab.kube_resources import (
    Resource,
    list_offset,
    matches_fields,
    matches_labels,
    selector_terms,
    status_body,
    unsupported_field,
)

__all__ = [
    "Answer",
    "LogKey",
    "error",
    "json_answer",
    "list_answer",
    "log_answer",
    "not_found_path",
]

Answer = tuple[int, str, str]
LogKey = tuple[str, str, str, bool]  # namespace, pod, container, previous


def json_answer(code: int, body: dict[str, Any]) -> Answer:
    return code, "application/json", json.dumps(body)


def error(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> Answer:
    return json_answer(code, status_body(code, reason, message, details))


def not_found_path(target: str) -> Answer:
    return error(404, "NotFound", f"the server could not find the requested resource ({target})")


def list_answer(
    items: Iterable[dict[str, Any]],
    resources: Iterable[Resource],
    group: str,
    version: str,
    plural: str,
    namespace: str | None,
    query: dict[str, str],
) -> Answer:
    """One page of a list; ``namespace=None``: all namespaces (or a cluster-scoped kind)."""
    fields = query.get("fieldSelector", "")
    try:
        bad = unsupported_field(group, plural, [key for key, _, _ in selector_terms(fields)])
    except ValueError as exc:
        return error(400, "BadRequest", str(exc))
    if bad is not None:
        return error(
            400,
            "BadRequest",
            f'Unable to find "{group}/{version}, Resource={plural}" that match label '
            f'selector "{query.get("labelSelector", "")}", field selector "{fields}": '
            f"field label not supported: {bad}",
        )
    try:
        found = [
            o
            for o in items
            if (namespace is None or o["metadata"].get("namespace") == namespace)
            and matches_labels(o["metadata"].get("labels") or {}, query.get("labelSelector", ""))
            and matches_fields(o, fields)
        ]
    except ValueError as exc:
        return error(400, "BadRequest", str(exc))
    meta: dict[str, Any] = {"resourceVersion": "1"}
    start = list_offset(query.get("continue"))
    if start is None:
        return error(410, "Expired", "the provided continue parameter is too old")
    found = found[start:]
    limit = int(query["limit"]) if query.get("limit", "").isdigit() else 0
    if 0 < limit < len(found):
        meta["continue"] = base64.urlsafe_b64encode(f"{start + limit}".encode()).decode()
        meta["remainingItemCount"] = len(found) - limit
        found = found[:limit]
    kind = next((r.kind for r in resources if (r.group, r.plural) == (group, plural)), "")
    return json_answer(
        200,
        {
            "kind": f"{kind}List",
            "apiVersion": f"{group}/{version}" if group else version,
            "metadata": meta,
            "items": found,
        },
    )


def log_answer(
    pod: dict[str, Any], logs: dict[LogKey, str], namespace: str, query: dict[str, str]
) -> Answer:
    """A pod container's log, as ``read_namespaced_pod_log`` gets it (or the 400 it gets)."""
    name = pod["metadata"]["name"]
    names = [c["name"] for c in pod.get("spec", {}).get("containers", [])]
    init = [c["name"] for c in pod.get("spec", {}).get("initContainers") or []]
    container = query.get("container")
    if container is None:
        if len(names) != 1:
            also = f" or one of the init containers: [{' '.join(init)}]" if init else ""
            return error(
                400,
                "BadRequest",
                f"a container name must be specified for pod {name}, "
                f"choose one of: [{' '.join(names)}]{also}",
            )
        container = names[0]
    if container not in names + init:
        return error(400, "BadRequest", f"container {container} is not valid for pod {name}")
    previous = query.get("previous", "false").lower() == "true"
    text = logs.get((namespace, name, container, previous))
    if text is None and previous:
        return error(
            400,
            "BadRequest",
            f'previous terminated container "{container}" in pod "{name}" not found',
        )
    lines = (text or "").splitlines(keepends=True)
    if "tailLines" in query:
        lines = lines[-int(query["tailLines"]) :] if int(query["tailLines"]) > 0 else []
    out = "".join(lines)
    if query.get("limitBytes", "").isdigit():
        out = out.encode()[: int(query["limitBytes"])].decode("utf-8", "replace")
    return 200, "text/plain", out
