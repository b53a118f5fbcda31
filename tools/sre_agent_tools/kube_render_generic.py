"""A generic ``describe`` for kinds without a renderer of their own (custom resources).

Controllers that follow the API conventions say what is wrong in
``status.conditions`` (type, status, reason, message) and a few scalar status
fields (``state``, ``reason``, ``phase``); what an object depends on is in
its spec's references (``issuerRef``, ``secretName``, ``*Ref``, ``*Name``).
So that is what is shown, in the API's own field names, with dotted paths for
nested references, bounded in lines. Values pass :func:`redact_value` (a field
named ``token`` or ``password`` is masked whole). Nothing here does I/O.
"""

from __future__ import annotations

import re
from typing import Any

from sre_agent_tools.kube_render import Obj, header, render_conditions
from sre_agent_tools.redact import redact_value

SPEC_LINES = 20
STATUS_LINES = 15
CONDITION_MESSAGE = 500
_REF_KEY = re.compile(r"(Ref|Refs|Name|Names|Selector)$|^(secretName|serviceName|name)$")
_MAX_DEPTH = 5
_SCALAR = str | int | float | bool


def _value(key: str, value: Any, limit: int = 200) -> str:
    # Cut (with room for a secret that straddles the cut) before redacting: a status
    # field can be megabytes, and this runs on the event loop.
    raw = str(value)
    text = redact_value(key, " ".join(raw[: limit * 4].split()))
    return text if len(text) <= limit and len(raw) <= limit * 4 else text[:limit] + "…"


def _compact(key: str, value: Any) -> str | None:
    """A scalar, a short list of scalars or a small dict of scalars on one line; else None."""
    if isinstance(value, _SCALAR):
        return _value(key, value)
    if isinstance(value, list) and value and all(isinstance(v, _SCALAR) for v in value):
        shown = ", ".join(_value(key, v, 80) for v in value[:10])
        return f"[{shown}{', …' if len(value) > 10 else ''}]"
    if isinstance(value, dict) and value and all(isinstance(v, _SCALAR) for v in value.values()):
        return " ".join(f"{k}={_value(k, v, 80)}" for k, v in list(value.items())[:8])
    return None


def _walk(body: Any, path: str, depth: int, out: list[str], everything: bool) -> None:
    """Fields as ``dotted.path: value``: all of them at the top and inside a reference,
    elsewhere only the references (``solver.http01.ingress.ingressClassName``)."""
    if not isinstance(body, dict) or depth > _MAX_DEPTH:
        return
    for key, value in body.items():
        dotted = f"{path}.{key}" if path else str(key)
        is_ref = bool(_REF_KEY.search(str(key)))
        if is_ref or everything:
            shown = _compact(str(key), value)
            if shown is not None:
                out.append(f"  {dotted}: {shown}")
                continue
        if isinstance(value, dict):
            _walk(value, dotted, depth + 1, out, everything=is_ref)
        elif isinstance(value, list):
            for i, item in enumerate(value[:3]):
                _walk(item, f"{dotted}[{i}]", depth + 1, out, everything=is_ref)


def spec_summary(spec: Any) -> list[str]:
    """Top-level scalars and every reference to another object, at most SPEC_LINES."""
    out: list[str] = []
    _walk(spec, "", 1, out, everything=True)
    if not out:
        return []
    more = [f"  (+{len(out) - SPEC_LINES} more fields)"] if len(out) > SPEC_LINES else []
    return ["Spec:", *out[:SPEC_LINES], *more]


def status_summary(status: Any) -> list[str]:
    """Conditions with their whole message (≤ 500 chars), then the scalar status fields."""
    if not isinstance(status, dict):
        return []
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    lines = render_conditions(conditions, message_limit=CONDITION_MESSAGE)
    fields = []
    for key, value in status.items():
        if key == "conditions":
            continue
        shown = _compact(str(key), value)
        if shown is not None:
            fields.append(f"  {key}: {shown if len(shown) <= 500 else shown[:500] + '…'}")
    if fields:
        lines.append("Status:")
        lines += fields[:STATUS_LINES]
        if len(fields) > STATUS_LINES:
            lines.append(f"  (+{len(fields) - STATUS_LINES} more fields)")
    return lines


def render_generic(obj: Obj) -> list[str]:
    lines = header(obj)
    lines.insert(1, f"API version: {obj.get('apiVersion', '?')}")
    lines += spec_summary(obj.get("spec"))
    lines += status_summary(obj.get("status"))
    other = [  # kinds without spec/status (data-like objects): their top-level scalars
        k for k in obj if k not in ("apiVersion", "kind", "metadata", "spec", "status")
    ]
    if other and not obj.get("spec") and not obj.get("status"):
        body = {k: obj[k] for k in other}
        lines += spec_summary(body)
    return lines
