"""What the evidence walk visits: a reference to one object, the visit (depth, why, what
is known of it, how the walk came to it), its priority, and whether what it says is a
finding in itself.

Pure: nothing here reads the cluster. The walk is :mod:`sre_agent.graph`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sre_agent import graph_relations as rel
from sre_agent.models import Origin

__all__ = [
    "P_HOP",
    "P_LABEL",
    "P_SIGNAL",
    "Obj",
    "Ref",
    "Visit",
    "inherit",
    "is_signal",
    "owner_visit",
    "reduce_describe",
    "visit",
    "visit_of",
]

Obj = dict[str, Any]

#: Priorities (0 = the alert's own expression): what the labels name, then facts that
#: are findings in themselves (any depth), then the rest by depth.
P_LABEL = 1
P_SIGNAL = 2
P_HOP = 4

_WARNINGS = re.compile(r"; ([1-9]\d*) Warning")
_BAD_TEXT = re.compile(
    r"Endpoints: 0 ready|Terminating: deletion requested|CrashLoopBackOff|ImagePull|ErrImage|OOMKilled|Evicted|FailedCreate|"
    r"Unschedulable: True|Suspend: True|\bNotReady\b|Pressure=True|=Unknown|Failed\b|BackOff|"
    # a condition that is False, except those where False is the healthy state
    r"\b(?!(?:Memory|Disk|PID)Pressure=|NetworkUnavailable=)[A-Z]\w*=False\b"
)


@dataclass(frozen=True)
class Ref:
    kind: str  # graph_relations.kind_key spelling
    name: str
    namespace: str | None

    def where(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    def key(self) -> str:
        """``kind/namespace/name`` (``kind/name`` cluster-scoped): a WalkedObject's key."""
        return f"{self.kind}/{self.where()}"


@dataclass
class Visit:
    """One object to visit, and why (the finding's title says so)."""

    ref: Ref
    depth: int
    why: str
    obj: Obj | None = None  # already read, from a list
    api_version: str | None = None
    #: Follow the owner chain up from here (not when reached from the owner).
    up: bool = True
    #: Reached because of a finding (a Service with no endpoint's workload): rank high.
    signal: bool = False
    container: str | None = None  # the alert's container label
    #: It repeats the trouble of a sibling already visited (a second Evicted pod).
    echo: bool = False
    #: Its description, once visited (relations read what it says).
    facts: str = ""
    #: How the walk reached the root of its chain (the alert's labels, an address, a
    #: target that is down, warning events); the incident rule trusts some more than others.
    origin: Origin | None = None
    #: The object it was reached from; None for a root.
    parent: Ref | None = None


def visit(
    kind: str,
    name: str,
    namespace: str | None,
    depth: int,
    why: str,
    obj: Obj | None = None,
    **more: Any,
) -> Visit:
    key = rel.kind_key(kind, more.get("api_version"))
    ns = None if key in rel.CLUSTER_SCOPED else namespace
    return Visit(Ref(key, name, ns), depth, why, obj, **more)


def visit_of(kind: str, obj: Obj, depth: int, why: str, **more: Any) -> Visit:
    """:func:`visit` of an object already read, named by its own metadata."""
    meta = obj["metadata"]
    return visit(kind, meta["name"], meta.get("namespace"), depth, why, obj, **more)


def inherit(parent: Visit, children: list[Visit]) -> list[Visit]:
    """``children`` as reached from ``parent``: its chain's origin (unless a child has
    one of its own) and, unless a relation named a nearer one, ``parent`` as their parent."""
    for child in children:
        child.origin = child.origin or parent.origin
        child.parent = child.parent or parent.ref
    return children


def reduce_describe(text: str, normal: int = 3) -> str:
    """A description with its events cut to the warnings and the newest few others."""
    lines = text.splitlines()
    at = next((i for i, line in enumerate(lines) if line.startswith("Events (")), None)
    if at is None:
        return text
    events = lines[at + 1 :]
    rows = [i for i, line in enumerate(events) if not line.lstrip().startswith("Warning")]
    keep = set(range(len(events))) - set(rows[:-normal] if normal else rows)
    dropped = len(events) - len(keep)
    head = lines[at] + (f" [{dropped} older Normal events left out]" if dropped else "")
    return "\n".join([*lines[:at], head, *(events[i] for i in sorted(keep))])


def is_signal(kind: str, obj: Obj, text: str) -> bool:
    if _WARNINGS.search(text) or _BAD_TEXT.search(text):
        return True
    if kind == "pod":
        return rel.unhealthy(obj)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if kind in (*rel.WORKLOADS, "replicaset"):
        want = spec.get("replicas", status.get("desiredNumberScheduled", 1))
        have = status.get("readyReplicas", status.get("numberReady", 0))
        return bool(want) and have < want
    if kind == "persistentvolumeclaim":
        return status.get("phase") != "Bound"
    return False


def owner_visit(v: Visit, obj: Obj) -> list[Visit]:
    """The visit of ``obj``'s controlling owner, one hop further (none if it has none)."""
    owner = rel.owner_of(obj)
    if not owner:
        return []
    kind, name, api = owner
    return [
        visit(
            kind,
            name,
            v.ref.namespace,
            v.depth + 1,
            f"Owner of {v.ref.kind} {v.ref.where()}",
            api_version=api,
        )
    ]
