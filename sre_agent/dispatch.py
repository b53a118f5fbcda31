"""Which alert the model works on next (pure: the worker reads the store, this decides).

The model's queue holds every queued investigation whose evidence report is in. Per
incident (:mod:`sre_agent.incidents`):

- while alerts may still join it none of its alerts runs, for the alert that explains
  the others may not be in yet: while its last join is less than ``incident_settle``
  seconds old, and while an alert that arrived before it settled (or one of its
  Alertmanager groups) is still gathering its evidence — a node's alert, whose walk
  reaches every pod on the node, may finish after its pods' alerts;
- then its head (the alert most likely to explain the others) runs first; the members
  its analysis will explain wait for it, and become ``linked`` when it completes
  (:meth:`Store.head_finished`); members it cannot explain run on their own;
- a head whose run gave no analysis (and will not be run again) gives way to the next.

Across incidents the order is :func:`sre_agent.incidents.priority`: severity, then heads,
then age, an old alert rising a severity step per ``queue_aging`` seconds; under a storm
(more runnable alerts than ``storm_queue``) heads come first whatever their severity.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sre_agent import incidents as rule
from sre_agent.models import Investigation
from sre_agent.settings import Settings

#: Queue roles, as the metrics label them.
ROLES = ("head", "own", "waiting")


@dataclass
class Choice:
    """The next run (if any), what to record first, and when to look again."""

    ident: str | None = None
    head: bool = False
    #: (incident id, investigation id): the head to record before the run starts.
    set_head: tuple[str, str] | None = None
    #: Heads whose analysis explains members still queued: link them (a late race).
    relink: list[str] = field(default_factory=list)
    #: Seconds until an incident settles (nothing to run before then), or None.
    wake_in: float | None = None
    #: (severity, role) -> how many wait, for the metrics.
    depth: dict[tuple[str, str], int] = field(default_factory=dict)
    #: When the chosen one's wait began (its evidence report), for the metrics.
    waited: float = 0.0
    storm: bool = False


@dataclass
class _Runnable:
    record: Investigation
    head: bool
    set_head: tuple[str, str] | None = None


def pick(
    queued: Sequence[Investigation],
    incidents: Mapping[str, Mapping[str, Any]],
    heads: Mapping[str, Investigation],
    running: Iterable[str],
    settings: Settings,
    now: datetime | None = None,
    pending: Collection[tuple[str | None, str]] = (),
) -> Choice:
    """The investigation to run next among ``queued`` (see the module's docstring);
    ``pending``: (Alertmanager group, arrival) of each alert still gathering evidence."""
    now = now or datetime.now(UTC)
    busy = set(running)
    choice = Choice()
    runnable: list[_Runnable] = []
    waiting: list[Investigation] = []
    groups: dict[str | None, list[Investigation]] = {}
    for record in queued:
        if record.id not in busy:
            groups.setdefault(record.incident_id if settings.incidents else None, []).append(record)
    for incident_id, members in groups.items():
        row = incidents.get(incident_id) if incident_id else None
        if (
            incident_id is None or row is None
        ):  # not in an incident (yet), or incidents are off: each alone
            runnable += [_Runnable(m, head=True) for m in members]
            continue
        head = heads.get(str(row.get("head_id"))) if row.get("head_id") else None
        gathering = _gathering(row, members, pending, settings)
        _incident(
            incident_id,
            row,
            head,
            members,
            busy,
            gathering,
            settings,
            now,
            runnable,
            waiting,
            choice,
        )
    storm = len(runnable) > settings.storm_queue
    choice.storm = storm
    for item in runnable:
        role = "head" if item.head else "own"
        key = (item.record.severity, role)
        choice.depth[key] = choice.depth.get(key, 0) + 1
    for record in waiting:
        key = (record.severity, "waiting")
        choice.depth[key] = choice.depth.get(key, 0) + 1
    if not runnable:
        return choice
    best = min(
        runnable,
        key=lambda r: rule.priority(
            r.record, head=r.head, storm=storm, now=now, aging=settings.queue_aging
        ),
    )
    choice.ident, choice.head, choice.set_head = best.record.id, best.head, best.set_head
    choice.waited = max(
        0.0, (now - _when(best.record.evidence_at or best.record.created_at)).total_seconds()
    )
    return choice


def _incident(
    incident_id: str,
    row: Mapping[str, Any],
    head: Investigation | None,
    members: list[Investigation],
    busy: set[str],
    gathering: bool,
    settings: Settings,
    now: datetime,
    runnable: list[_Runnable],
    waiting: list[Investigation],
    choice: Choice,
) -> None:
    """One incident's part of the queue: what may run now, what waits."""
    running = head is not None and (head.status == "running" or head.id in busy)
    if head is not None and head.status == "completed" and head.analysis is not None:
        for m in members:  # what it explains was linked when it finished
            if rule.explains(head, m) is not None:
                choice.relink.append(head.id)
                waiting.append(m)
            else:
                runnable.append(_Runnable(m, head=False))
        return
    if running:
        assert head is not None
        for m in members:
            if rule.explains(head, m) is not None:
                waiting.append(m)
            else:
                runnable.append(_Runnable(m, head=False))
        return
    # No head yet, a head not started, or one that ended without an analysis.
    quiet = (now - _when(str(row["updated_at"]))).total_seconds()
    if gathering:  # its evidence lands soon, and wakes the dispatcher
        waiting += members
        return
    if settings.incidents and quiet < settings.incident_settle:
        left = settings.incident_settle - quiet
        choice.wake_in = left if choice.wake_in is None else min(choice.wake_in, left)
        waiting += members
        return
    best = rule.choose_head(members)
    if best is None:
        return
    moved = (incident_id, best.id) if row.get("head_id") != best.id else None
    runnable.append(_Runnable(best, head=True, set_head=moved))
    for m in members:
        if m is best:
            continue
        if rule.explains(best, m) is not None:
            waiting.append(m)
        else:
            runnable.append(_Runnable(m, head=False))


def _gathering(
    row: Mapping[str, Any],
    members: Sequence[Investigation],
    pending: Collection[tuple[str | None, str]],
    settings: Settings,
) -> bool:
    """An alert still gathering evidence may join the incident: one of its Alertmanager
    groups, or one that arrived before the incident settled."""
    if not pending:
        return False
    groups = {m.group_key for m in members if m.group_key}
    settles = _when(str(row["updated_at"])).timestamp() + settings.incident_settle
    return any(g in groups or _when(c).timestamp() <= settles for g, c in pending)


def _when(iso: str) -> datetime:
    when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)
