"""Rendering of storage and namespace-level objects: PVC, PV, StorageClass, quotas, ConfigMaps.

What decides these failures is usually one field (a PV pinned to a node that
is gone, a quota at its hard limit, a StorageClass that does not exist), so
each renderer puts that field on a line of its own, in the API's words.
ConfigMap values are shown because they are often the broken config, but a
ConfigMap can hold credentials too: every value is redacted (whole when its
key looks secret) before it is cut to :data:`CONFIGMAP_VALUE_LINES` lines.
Nothing here does I/O.
"""

from __future__ import annotations

from typing import Any

from sre_agent_tools.kube_render import (
    Obj,
    age,
    header,
    labels_text,
    quantity,
    render_conditions,
    short,
)
from sre_agent_tools.redact import redact_value

CONFIGMAP_VALUE_LINES = 40
#: PV spec keys that are not the volume source.
_PV_FIELDS = {
    "accessModes",
    "capacity",
    "claimRef",
    "persistentVolumeReclaimPolicy",
    "storageClassName",
    "mountOptions",
    "volumeMode",
    "nodeAffinity",
    "volumeAttributesClassName",
}


def render_pvc(obj: Obj) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    lines = header(obj)
    requested = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "?")
    lines.append(
        f"Status: {status.get('phase', '?')}  Capacity: "
        f"{(status.get('capacity') or {}).get('storage', '-')} (requested {requested})"
    )
    lines.append(
        f"StorageClass: {spec.get('storageClassName', '-')}  Volume: "
        f"{spec.get('volumeName', '-')}  Access Modes: "
        f"{','.join(spec.get('accessModes') or [])}"
    )
    lines += render_conditions(status.get("conditions") or [])
    return lines


def _scalars(body: Any, limit: int = 6) -> str:
    if not isinstance(body, dict):
        return ""
    parts = [
        f"{k}={redact_value(k, str(v))}"
        for k, v in body.items()
        if isinstance(v, str | int | float | bool)
    ]
    refs = [
        f"{k}=<{v.get('name')}>" for k, v in body.items() if isinstance(v, dict) and "name" in v
    ]
    return " ".join((parts + refs)[:limit])


def _selector_term(term: Obj) -> str:
    exprs = [
        f"{e.get('key')} {e.get('operator')}"
        + (f" [{', '.join(str(v) for v in e.get('values') or [])}]" if e.get("values") else "")
        for part in ("matchExpressions", "matchFields")
        for e in term.get(part) or []
    ]
    return " and ".join(exprs) or "(empty term: matches every node)"


def node_affinity_lines(affinity: Obj | None) -> list[str]:
    """``Node affinity: kubernetes.io/hostname In [node-lpv-3]``, one line per required term."""
    terms = ((affinity or {}).get("required") or {}).get("nodeSelectorTerms") or []
    return [
        f"Node affinity{' (or)' if i else ''}: {_selector_term(term)}"
        for i, term in enumerate(terms)
    ]


def render_pv(obj: Obj) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    lines = header(obj)
    claim = spec.get("claimRef") or {}
    claimed = f"{claim.get('namespace', '')}/{claim.get('name')}" if claim.get("name") else "none"
    phase = status.get("phase", "?")
    if status.get("reason") or status.get("message"):
        phase += (
            f" ({': '.join(x for x in (status.get('reason'), short(status.get('message'))) if x)})"
        )
    lines.append(
        f"Status: {phase}  Claim: {claimed}  Reclaim Policy: "
        f"{spec.get('persistentVolumeReclaimPolicy', 'Retain')}"
    )
    lines.append(
        f"StorageClass: {spec.get('storageClassName') or '-'}  Capacity: "
        f"{(spec.get('capacity') or {}).get('storage', '?')}  Access Modes: "
        f"{','.join(spec.get('accessModes') or [])}  Volume Mode: "
        f"{spec.get('volumeMode', 'Filesystem')}"
    )
    sources = [k for k in spec if k not in _PV_FIELDS]
    for source in sources[:2]:
        lines.append(f"Source: {source} {_scalars(spec[source])}".rstrip())
    lines += node_affinity_lines(spec.get("nodeAffinity"))
    return lines


def render_storageclass(obj: Obj) -> list[str]:
    lines = header(obj)
    notes = obj["metadata"].get("annotations") or {}
    default = notes.get("storageclass.kubernetes.io/is-default-class") == "true"
    lines.append(
        f"Provisioner: {obj.get('provisioner', '?')}  ReclaimPolicy: "
        f"{obj.get('reclaimPolicy', 'Delete')}  VolumeBindingMode: "
        f"{obj.get('volumeBindingMode', 'Immediate')}  AllowVolumeExpansion: "
        f"{bool(obj.get('allowVolumeExpansion'))}  Default: {default}"
    )
    params = obj.get("parameters") or {}
    if params:
        lines.append(
            "Parameters: "
            + ", ".join(f"{k}={redact_value(k, str(v))}" for k, v in sorted(params.items())[:12])
        )
    return lines


def render_quota(obj: Obj) -> list[str]:
    """Hard against used per resource; a resource at its hard limit is marked."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    lines = header(obj)
    if spec.get("scopes"):
        lines.append(f"Scopes: {', '.join(spec['scopes'])}")
    hard = status.get("hard") or spec.get("hard") or {}
    used = status.get("used") or {}
    lines.append("Resource: used / hard")
    for resource in sorted(hard):
        limit, now = hard[resource], used.get(resource, "0")
        whole, part = quantity(limit), quantity(now)
        share = f" ({part / whole:.0%})" if whole else ""
        full = "  AT LIMIT" if whole and part >= whole else ""
        lines.append(f"  {resource}: {now} / {limit}{share}{full}")
    return lines


def render_limitrange(obj: Obj) -> list[str]:
    lines = header(obj)
    for item in (obj.get("spec") or {}).get("limits") or []:
        lines.append(f"Type {item.get('type', '?')}:")
        for part in ("min", "max", "default", "defaultRequest", "maxLimitRequestRatio"):
            values = item.get(part) or {}
            if values:
                lines.append(
                    f"  {part}: " + ", ".join(f"{k}={v}" for k, v in sorted(values.items()))
                )
    return lines


def render_configmap(obj: Obj) -> list[str]:
    """Each key with its size and its value, redacted and cut; binaryData by name only."""
    data = obj.get("data") or {}
    binary = obj.get("binaryData") or {}
    lines = header(obj)
    lines.append(f"Data ({len(data)} keys):")
    for key in sorted(data):
        value = str(data[key])
        shown = redact_value(key, value).split("\n")
        count = value.count("\n") + (0 if value.endswith("\n") else 1) if value else 0
        lines.append(f"  {key} ({len(value.encode())} bytes, {count} lines):")
        if shown and shown[-1] == "":
            shown.pop()
        for line in shown[:CONFIGMAP_VALUE_LINES]:
            lines.append(f"    {line if len(line) <= 300 else line[:300] + ' …'}")
        if len(shown) > CONFIGMAP_VALUE_LINES:
            lines.append(f"    [… {len(shown) - CONFIGMAP_VALUE_LINES} more lines]")
    if binary:
        lines.append(
            f"BinaryData ({len(binary)} keys, not shown): "
            + ", ".join(f"{k} ({len(str(v)) * 3 // 4} bytes)" for k, v in sorted(binary.items()))
        )
    return lines


def render_namespace(obj: Obj) -> list[str]:
    meta, status = obj["metadata"], obj.get("status") or {}
    lines = [f"Namespace {meta['name']}", f"Status: {status.get('phase', 'Active')}"]
    lines.append(f"Labels: {labels_text(meta.get('labels') or {}, limit=20) or 'none'}")
    if meta.get("creationTimestamp"):
        lines.append(f"Created: {meta['creationTimestamp']}{age(meta['creationTimestamp'])}")
    if meta.get("deletionTimestamp"):
        lines.append(f"Deletion requested: {meta['deletionTimestamp']}")
    lines += render_conditions(status.get("conditions") or [])
    return lines
