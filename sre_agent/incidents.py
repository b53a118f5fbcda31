"""The incident rule, pure: which alerts are one failure, which of them the model should
investigate (the head), what the head's analysis explains, and the model queue's order.

An investigation's *footprint* is its **core** (the objects it is about: what its labels
name, and the walk's roots) and its **reach** (what the evidence walk reached from them).
Two alerts link when a person would join them: they name one object; one reaches what the
other names; they reach one workload or claim; or Alertmanager grouped them by an object.
Objects many unrelated failures share (a healthy node, a namespace, an exporter's Service,
a busy namespace's warned objects) are never enough. The store applies this rule inside
one transaction (:mod:`sre_agent.store_joins`); nothing here reads or writes anything.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType

from sre_agent import graph_relations as rel
from sre_agent.evidence import k8s_name_like
from sre_agent.graph_roots import OBJECT_LABELS, from_labels
from sre_agent.models import Investigation, Join, JoinRule, WalkedObject

__all__ = [
    "Footprint",
    "Thing",
    "choose_head",
    "explains",
    "footprint",
    "group_labels",
    "head_rank",
    "link",
    "priority",
    "severity_step",
    "title",
]

#: Kinds too shared to join on (a namespace's, a cluster's plumbing); a ConfigMap only
#: when the alert names it.
SHARED_KINDS = frozenset(
    {
        "namespace",
        "storageclass",
        "configmap",
        "networkpolicy",
        "serviceaccount",
        "priorityclass",
        "ingressclass",
        "event",
        "endpoints",
        "endpointslice",
    }
)
OWNER_CHAIN = frozenset({"replicaset", "deployment", "statefulset", "daemonset", "job", "cronjob"})
CLAIMS = frozenset({"persistentvolumeclaim", "persistentvolume"})
WORKLOAD_KINDS = OWNER_CHAIN | {"horizontalpodautoscaler"}
#: Kinds an alert is about more than about the node it also names.
SUBJECTS = OWNER_CHAIN | CLAIMS | {"pod"}
#: Group labels that make an Alertmanager group one object's: the object labels, but not
#: ``service`` (often the exporter's) nor objects that govern many (quota, PDB, policy).
GROUP_OBJECT_LABELS = frozenset(label for label, _ in OBJECT_LABELS) - {
    "service",
    "resourcequota",
    "poddisruptionbudget",
    "networkpolicy",
}
_STRUCTURAL = ("alert", "address", "target")
_SEVERITY = {"critical": 0, "warning": 1, "info": 2}
_NEVER = datetime.max.replace(tzinfo=UTC)
_CACHE_SIZE = 1024


@dataclass(frozen=True, order=True)
class Thing:
    """One object, as the walk spells it (``graph_relations.kind_key``)."""

    kind: str
    namespace: str | None
    name: str

    def text(self) -> str:
        return (
            f"{self.kind} {self.namespace}/{self.name}"
            if self.namespace
            else f"{self.kind} {self.name}"
        )


@dataclass(frozen=True)
class Footprint:
    """What an investigation is about (``core``) and what its walk reached (``reach``,
    core included); ``rank``: the head rank of its best core object (5: none)."""

    core: frozenset[Thing]
    reach: frozenset[Thing]
    #: How each reached object was reached (the WalkedObject.why), for reasons.
    why: Mapping[Thing, str] = field(compare=False, hash=False)
    group_key: str
    #: The Alertmanager group is keyed by an object label (a group worth joining on).
    group_specific: bool
    rank: int = 5


# --- footprints -----------------------------------------------------------------------
_cache: OrderedDict[tuple[str, str | None, int], Footprint] = OrderedDict()
_lock = threading.Lock()


def footprint(inv: Investigation) -> Footprint:
    """The investigation's footprint, memoized: the store links one new alert against a
    few hundred members, and a record's labels and objects are written once per evidence
    report (a new report has a new ``evidence_at``)."""
    key = (inv.id, inv.evidence_at, len(inv.objects))
    with _lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return found
    made = _footprint(inv)
    with _lock:
        _cache[key] = made
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return made


def _footprint(inv: Investigation) -> Footprint:
    walked = [o for o in inv.objects if o.origin in _STRUCTURAL]
    why: dict[Thing, str] = {}
    core: set[Thing] = set()
    for thing in _named(inv, walked):
        core.add(thing)
        why.setdefault(thing, "Named by the alert")
    targets: set[Thing] = set()
    ordered = sorted(walked, key=lambda o: o.depth)
    for obj in ordered:
        thing = _thing(obj)
        if obj.depth == 0 and not _shared(thing, named=obj.origin == "alert"):
            core.add(thing)
            if obj.origin == "target":
                targets.add(thing)
    # A node named beside a pod, workload or volume (a kubelet metric's `node` label on a
    # PVC alert) is where the alert's object is, not what it is about: it does not join
    # the alert to the others on that node, nor do the pods listed on the node.
    nodes = {t for t in core if t.kind == "node"}
    if any(_bare(t.kind) in SUBJECTS for t in core):
        core -= nodes
        for node in nodes:
            why.pop(node, None)
    listed_by = {f"node/{t.name}" for t in core if t.kind == "node"}
    # A pod on the node of the alert's object is a neighbour, not a link; so is whatever
    # the walk reached from that pod (its ReplicaSet, its Deployment, …).
    neighbours: set[str] = set()
    for obj in ordered:
        thing = _thing(obj)
        if obj.parent and (
            obj.parent in neighbours
            or (obj.parent.startswith("node/") and obj.parent not in listed_by)
        ):
            neighbours.add(obj.key())
            continue
        if _shared(thing, named=obj.depth == 0 and obj.origin == "alert"):
            continue
        if obj.depth == 0 or obj.found:
            why.setdefault(thing, obj.why)
    reach = frozenset(why)
    rank = min((_kind_rank(t, t in targets) for t in core), default=5)
    group = inv.group_key
    specific = bool(group) and bool(GROUP_OBJECT_LABELS & set(group_labels(group)))
    return Footprint(frozenset(core), reach, MappingProxyType(why), group, specific, rank)


def _named(inv: Investigation, walked: Sequence[WalkedObject]) -> list[Thing]:
    """The objects the alert's labels name (as the evidence walk starts from them), in
    the walk's spelling of custom kinds when the walk found them."""
    labels = dict(inv.alert.labels)
    instance = labels.get("instance", "")
    if not labels.get("node") and inv.alertname.startswith("Node") and instance:
        host = instance.rsplit(":", 1)[0]  # node-exporter: `instance` relabelled to the node
        if k8s_name_like(host):
            labels["node"] = host
    roots = {_thing(o) for o in walked if o.depth == 0}
    out = []
    for v in from_labels(labels):
        thing = Thing(v.ref.kind, v.ref.namespace, v.ref.name)
        spelled = [
            r
            for r in roots
            if r.kind.split(".", 1)[0] == thing.kind
            and r.name == thing.name
            and r.namespace == thing.namespace
        ]
        thing = min(spelled, default=thing)
        if not _shared(thing, named=True):
            out.append(thing)
    return out


def _thing(obj: WalkedObject) -> Thing:
    ns = None if obj.kind in rel.CLUSTER_SCOPED else obj.namespace
    return Thing(obj.kind, ns, obj.name)


def _bare(kind: str) -> str:
    return kind.split(".", 1)[0].lower()


def _shared(thing: Thing, *, named: bool) -> bool:
    bare = _bare(thing.kind)
    return bare in SHARED_KINDS and not (named and bare == "configmap")


def _kind_rank(thing: Thing, target: bool) -> int:
    """Node 0; volume or claim 1; workload 2; service, ingress, scrape target (or
    anything else) 3; pod 4."""
    kind = _bare(thing.kind)
    if kind == "node":
        return 0
    if kind in CLAIMS:
        return 1
    if kind in WORKLOAD_KINDS:
        return 2
    if kind == "pod" and not target:
        return 4
    return 3


# --- linking --------------------------------------------------------------------------
def link(a: Investigation, b: Investigation) -> Join | None:
    """How ``b`` joins ``a`` (the first rule that matches), or None. Whether they link
    does not depend on the order they are given in."""
    return _structural(a, b) or _same_group(a, b)


def _structural(a: Investigation, b: Investigation) -> Join | None:
    fa, fb = footprint(a), footprint(b)
    shared = _best(fa.core & fb.core)
    if shared is not None:
        return _join(a, "same-object", f"{b.alertname} and {a.alertname} both name {shared.text()}")
    for inner, outer, far in ((a, b, fb), (b, a, fa)):
        shared = _best(footprint(inner).core & far.reach)
        if shared is not None:
            how = far.why.get(shared)
            via = f" ({how})" if how else ""
            reason = (
                f"{outer.alertname} reaches {shared.text()}{via}, which {inner.alertname} names"
            )
            return _join(a, "reaches", reason)
    both = fa.reach & fb.reach
    rules: tuple[tuple[JoinRule, frozenset[str]], ...] = (
        ("same-workload", OWNER_CHAIN),
        ("same-claim", CLAIMS),
    )
    for rule, kinds in rules:
        shared = _best(t for t in both if _bare(t.kind) in kinds)
        if shared is not None:
            reason = f"{_about(b)} and {_about(a)} both reach {shared.text()}"
            return _join(a, rule, reason)
    return None


def _same_group(a: Investigation, b: Investigation) -> Join | None:
    fa = footprint(a)
    if not fa.group_specific or fa.group_key != footprint(b).group_key:
        return None
    by = ", ".join(
        f'{k}="{v}"'
        for k, v in sorted(group_labels(fa.group_key).items())
        if k in GROUP_OBJECT_LABELS
    )
    return _join(
        a, "same-group", f"{b.alertname} and {a.alertname} are one Alertmanager group ({by})"
    )


def _best(things: Iterable[Thing]) -> Thing | None:
    """The shared object a reason names: the most telling kind, then by name."""
    return min(things, key=lambda t: (_kind_rank(t, False), t), default=None)


def _about(inv: Investigation) -> str:
    best = _best(footprint(inv).core)
    return f"{inv.alertname} ({best.text()})" if best else inv.alertname


def _join(a: Investigation, rule: JoinRule, reason: str) -> Join:
    return Join(investigation_id=a.id, alertname=a.alertname, rule=rule, reason=reason)


# --- the head -------------------------------------------------------------------------
def head_rank(inv: Investigation) -> tuple[int, datetime, int, datetime, str]:
    """Lower heads: the kind of its best core object (node before volume before workload
    before service/target before pod), then the earliest start, the most severe, the
    first to arrive."""
    return (
        footprint(inv).rank,
        _when(inv.alert.startsAt),
        severity_step(inv.severity),
        _when(inv.created_at),
        inv.id,
    )


def choose_head(members: Sequence[Investigation]) -> Investigation | None:
    """The member most likely to explain the others (the caller chooses who may head)."""
    return min(members, key=head_rank, default=None)


def explains(head: Investigation, member: Investigation) -> Join | None:
    """Whether the head's analysis covers ``member``: they share an object structurally
    (an Alertmanager group alone is not enough) and the head is about an object at least
    as far up (a pod's analysis does not explain its node's failure)."""
    if footprint(head).rank > footprint(member).rank:
        return None
    return _structural(head, member)


def title(head: Investigation | None, count: int) -> str:
    """``KubeNodeNotReady on node n1 (+31 alerts)``."""
    if head is None:
        return f"{count} alert{'s' if count != 1 else ''}"
    best = _best(footprint(head).core)
    where = f" on {best.text()}" if best else (f" in {head.namespace}" if head.namespace else "")
    more = count - 1
    tail = f" (+{more} alert{'s' if more != 1 else ''})" if more > 0 else ""
    return f"{head.alertname}{where}{tail}"


# --- the model's queue ----------------------------------------------------------------
def severity_step(severity: str) -> int:
    """critical 0, warning 1, info 2, anything else 3."""
    return _SEVERITY.get(severity.lower(), 3)


def priority(
    inv: Investigation, *, head: bool, storm: bool, now: datetime, aging: float
) -> tuple[int, int, datetime, str]:
    """The model queue's order (lower first): severity, raised one step per ``aging``
    seconds waited so nothing starves, then heads, then arrival; in a storm heads first."""
    created = _when(inv.created_at)
    waited = max(0.0, (now - created).total_seconds()) if created is not _NEVER else 0.0
    step = severity_step(inv.severity) - int(waited // aging)
    role = 0 if head else 1
    return (role, step, created, inv.id) if storm else (step, role, created, inv.id)


def _when(iso: str | None) -> datetime:
    """An ISO time (``Z`` or an offset; naive read as UTC); missing sorts last."""
    try:
        when = datetime.fromisoformat(iso or "")
    except ValueError:
        return _NEVER
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# --- Alertmanager group keys ----------------------------------------------------------
_PAIR = re.compile(
    r'\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*|"(?:[^"\\]|\\.)*")\s*=\s*"(?P<value>(?:[^"\\]|\\.)*)"\s*(?:,|$)'
)
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", re.S)
_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def group_labels(group_key: str) -> dict[str, str]:
    """The labels of an Alertmanager group: the last ``{...}`` of its groupKey
    (``<route>:{namespace="lab", alertname="X"}``); {} when it has none."""
    body = _last_braces(group_key)
    out: dict[str, str] = {}
    pos = 0
    while body is not None and pos < len(body):
        match = _PAIR.match(body, pos)
        if match is None:
            return {}
        name = match["name"]
        out[_unquote(name[1:-1]) if name.startswith('"') else name] = _unquote(match["value"])
        pos = match.end()
    return out


def _last_braces(text: str) -> str | None:
    """The inside of the last top-level ``{...}`` (quoted strings may hold braces)."""
    depth, start, quoted, escaped, last = 0, 0, False, False, None
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif quoted:
            escaped, quoted = ch == "\\", ch != '"'
        elif ch == '"':
            quoted = True
        elif ch == "{":
            depth += 1
            start = i + 1 if depth == 1 else start
        elif ch == "}" and depth:
            depth -= 1
            last = text[start:i] if depth == 0 else last
    return last


def _unquote(text: str) -> str:
    """A Go-quoted string's inside (``strconv.Quote``, which Alertmanager formats with)."""

    def one(match: re.Match[str]) -> str:
        code = match[1]
        if code[0] in "xuU" and len(code) > 1:
            return chr(int(code[1:], 16))
        return _SIMPLE.get(code, code)

    return _ESCAPE.sub(one, text)
