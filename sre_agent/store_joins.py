"""The store's incident writes: each alert's evidence report, the incident it joins, the
head chosen for the model, and the alerts a head's analysis explains. A part of
:class:`sre_agent.store.Store`; the rule that joins and ranks is :mod:`sre_agent.incidents`
(pure), applied here inside one transaction, so two alerts whose evidence lands at the
same moment cannot open two incidents for one failure.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sre_agent import incidents as rule
from sre_agent.db import Connection
from sre_agent.memory import subject_key
from sre_agent.models import (
    AlertRecord,
    Evidence,
    Investigation,
    Join,
    LlmUsage,
    Sources,
    ToolCall,
    WalkedObject,
)
from sre_agent.rows import decode, dump, text

#: What the rule reads of an investigation: never the evidence (large) of hundreds of rows.
_FOOTPRINT_COLUMNS = (
    "id, fingerprint, alertname, severity, namespace, group_key, alert, status, created_at,"
    " incident_id, objects, evidence_at, explained_by, alert_status"
)
#: Reasons kept on a record: the first few members it links to say why well enough.
MAX_JOINS = 5
#: How a reason ends when the run is to be made again once the model server answers.
WILL_RETRY = "; will investigate again when Ollama answers"


def _labels(db: Connection, ident: str) -> dict[str, str]:
    """The stored alert's labels (what its subject is made of)."""
    row = db.execute("SELECT alert FROM investigations WHERE id=?", (ident,)).fetchone()
    return AlertRecord.model_validate_json(row["alert"]).labels if row else {}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class IncidentWrites:
    if TYPE_CHECKING:  # the Store's connections

        def _read(self) -> AbstractContextManager[Connection]: ...
        def _tx(self) -> AbstractContextManager[Connection]: ...

    # --- the evidence report --------------------------------------------------
    def save_evidence(
        self,
        ident: str,
        evidence: Sequence[Evidence],
        tool_calls: Sequence[ToolCall],
        sources: Sources,
        objects: Sequence[WalkedObject],
        usage: LlmUsage,
        *,
        window: float | None = None,
        enabled: bool = True,
    ) -> Investigation | None:
        """Store what the evidence phase found, before any model run; None when the
        investigation is gone or already final (resolved meanwhile). With ``window``, it
        joins its incident in the same transaction (:meth:`join_incident`): the model's
        queue never sees it with its report in and no incident yet."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE investigations SET evidence=?, tool_calls=?, sources=?, objects=?,"
                " llm_usage=?, evidence_at=?, subject=? WHERE id=?"
                " AND status IN ('queued', 'running')",
                (
                    dump("evidence", list(evidence)),
                    dump("tool_calls", list(tool_calls)),
                    dump("sources", sources),
                    dump("objects", list(objects)),
                    dump("llm_usage", usage),
                    _now(),
                    subject_key(_labels(db, ident)),
                    ident,
                ),
            )
            if cur.rowcount != 1:
                return None
            if window is not None:
                self._join(db, ident, window, enabled)
            row = db.execute("SELECT * FROM investigations WHERE id=?", (ident,)).fetchone()
        return decode(row)

    # --- joining --------------------------------------------------------------
    def join_incident(
        self, ident: str, window: float, enabled: bool = True
    ) -> Investigation | None:
        """Put the investigation in an incident: the open one(s) it links to within
        ``window`` seconds of their last join (several are merged into the oldest), else
        a new one. Already in one: unchanged. A head that already has its analysis and
        explains the newcomer links it at once (no model run). Not ``enabled``
        (SRE_AGENT_INCIDENTS=false, or a run of its own: the CLI, eval): in none."""
        with self._tx() as db:
            if not self._join(db, ident, window, enabled):
                return None
            full = db.execute("SELECT * FROM investigations WHERE id=?", (ident,)).fetchone()
        return decode(full)

    def _join(self, db: Connection, ident: str, window: float, enabled: bool) -> bool:
        """:meth:`join_incident` within a transaction; False when the record is gone."""
        row = db.execute(
            f"SELECT {_FOOTPRINT_COLUMNS} FROM investigations WHERE id=?", (ident,)
        ).fetchone()
        if row is None:
            return False
        record = decode(row)
        if record.incident_id is None and enabled:
            now = _now()
            found = self._links(db, record, window)
            target = self._place(db, record, found, now)
            self._retitle(db, target)
            self._link_late(db, record, target, now)
        return True

    def _links(self, db: Connection, record: Investigation, window: float) -> dict[str, list[Join]]:
        """Incident id -> the joins of ``record`` to its members, for every open incident
        joined within ``window`` of the record's arrival."""
        since = (_parse(record.created_at) - timedelta(seconds=window)).isoformat(
            timespec="milliseconds"
        )
        rows = db.execute(
            f"SELECT {_FOOTPRINT_COLUMNS} FROM investigations WHERE incident_id IN"
            " (SELECT id FROM incidents WHERE status='open' AND updated_at >= ?)"
            " ORDER BY created_at, rowid",
            (since,),
        ).fetchall()
        found: dict[str, list[Join]] = {}
        for member in map(decode, rows):
            join = rule.link(member, record)
            if join is not None and member.incident_id is not None:
                found.setdefault(member.incident_id, []).append(join)
        return found

    def _place(
        self,
        db: Connection,
        record: Investigation,
        found: dict[str, list[Join]],
        now: str,
    ) -> str:
        """Record ``record`` in the oldest of the incidents it links to (merging the
        others into it), or in a new one; the incident's id."""
        if not found:
            target = uuid.uuid4().hex[:16]
            db.execute(
                "INSERT INTO incidents (id, status, title, opened_at, updated_at)"
                " VALUES (?, 'open', ?, ?, ?)",
                (target, text(rule.title(record, 1)), now, now),
            )
            joins: list[Join] = []
        else:
            marks = ",".join("?" * len(found))
            ordered = db.execute(
                f"SELECT id FROM incidents WHERE id IN ({marks}) ORDER BY opened_at, rowid",
                list(found),
            ).fetchall()
            target, *merged = [r["id"] for r in ordered]
            for other in merged:  # the newcomer links them: one failure, one incident
                db.execute(
                    "UPDATE investigations SET incident_id=? WHERE incident_id=?", (target, other)
                )
                db.execute(
                    "UPDATE incidents SET head_id=(SELECT head_id FROM incidents WHERE id=?)"
                    " WHERE id=? AND head_id IS NULL",
                    (other, target),
                )
                db.execute("DELETE FROM incidents WHERE id=?", (other,))
            joins = [j for ident in (target, *merged) for j in found.get(ident, [])][:MAX_JOINS]
            db.execute("UPDATE incidents SET updated_at=? WHERE id=?", (now, target))
        db.execute(
            "UPDATE investigations SET incident_id=?, joined=? WHERE id=?",
            (target, dump("joined", joins), record.id),
        )
        return target

    def _retitle(self, db: Connection, incident_id: str) -> None:
        """The incident's title names its head (or the best candidate) and its size."""
        members = self._members(db, incident_id)
        head_id = db.execute("SELECT head_id FROM incidents WHERE id=?", (incident_id,)).fetchone()
        head = next((m for m in members if m.id == (head_id[0] if head_id else None)), None)
        head = head or rule.choose_head(members)
        db.execute(
            "UPDATE incidents SET title=? WHERE id=?",
            (text(rule.title(head, len(members))), incident_id),
        )

    def _members(self, db: Connection, incident_id: str) -> list[Investigation]:
        rows = db.execute(
            f"SELECT {_FOOTPRINT_COLUMNS} FROM investigations WHERE incident_id=?"
            " ORDER BY created_at, rowid",
            (incident_id,),
        ).fetchall()
        return [decode(r) for r in rows]

    def _link_late(self, db: Connection, record: Investigation, incident_id: str, now: str) -> None:
        """A newcomer to an incident whose head already has its analysis: linked to it
        when that analysis explains it."""
        row = db.execute(
            "SELECT i.* FROM incidents n JOIN investigations i ON i.id = n.head_id"
            " WHERE n.id=? AND i.status='completed' AND i.analysis IS NOT NULL",
            (incident_id,),
        ).fetchone()
        if row is None or row["id"] == record.id:
            return
        head = decode(row)
        joined = db.execute(
            f"SELECT {_FOOTPRINT_COLUMNS} FROM investigations WHERE id=?", (record.id,)
        ).fetchone()
        _link(db, head, [decode(joined)], now)

    # --- the model's queue ----------------------------------------------------
    def model_queue(
        self, pending_for: float = 120.0
    ) -> tuple[
        list[Investigation],
        dict[str, dict[str, object]],
        dict[str, Investigation],
        list[tuple[str | None, str]],
    ]:
        """What the dispatcher chooses from: the queued investigations whose evidence is
        in (without their evidence), their incidents' rows, those incidents' heads, and
        the alerts still gathering their evidence (arrived in the last ``pending_for``
        seconds) as (Alertmanager group, arrival): an incident's head may be one of them."""
        since = (datetime.now(UTC) - timedelta(seconds=pending_for)).isoformat(
            timespec="milliseconds"
        )
        with self._read() as db:
            pending = [
                (r[0], r[1])
                for r in db.execute(
                    "SELECT group_key, created_at FROM investigations WHERE status='queued'"
                    " AND evidence_at IS NULL AND created_at >= ?",
                    (since,),
                )
            ]
            queued = [
                decode(r)
                for r in db.execute(
                    f"SELECT {_FOOTPRINT_COLUMNS} FROM investigations"
                    " WHERE status='queued' AND evidence_at IS NOT NULL ORDER BY created_at, rowid"
                ).fetchall()
            ]
            ids = sorted({q.incident_id for q in queued if q.incident_id})
            found: dict[str, dict[str, object]] = {}
            heads: dict[str, Investigation] = {}
            for n in range(0, len(ids), 500):
                chunk = ids[n : n + 500]
                marks = ",".join("?" * len(chunk))
                for r in db.execute(f"SELECT * FROM incidents WHERE id IN ({marks})", chunk):
                    found[r["id"]] = dict(r)
                for r in db.execute(
                    "SELECT * FROM investigations WHERE id IN (SELECT head_id FROM incidents"
                    f" WHERE id IN ({marks}))",
                    chunk,
                ):
                    heads[r["id"]] = decode(r)
        return queued, found, heads, pending

    def set_head(self, incident_id: str, ident: str) -> None:
        """The model's next run in this incident is ``ident``'s: its analysis is the incident's."""
        with self._tx() as db:
            db.execute("UPDATE incidents SET head_id=? WHERE id=?", (ident, incident_id))
            self._retitle(db, incident_id)

    def head_finished(self, ident: str) -> list[Investigation]:
        """After a run that completed with an analysis: it heads its incident when it
        outranks the current head (or there is none with an analysis), and the queued
        members it explains are linked to it. The records linked."""
        now = _now()
        with self._tx() as db:
            row = db.execute("SELECT * FROM investigations WHERE id=?", (ident,)).fetchone()
            if row is None or row["incident_id"] is None:
                return []
            record = decode(row)
            incident_id = record.incident_id
            if incident_id is None or record.status != "completed" or record.analysis is None:
                return []
            incident = db.execute(
                "SELECT head_id FROM incidents WHERE id=?", (record.incident_id,)
            ).fetchone()
            current = incident["head_id"] if incident else None
            if current != ident:
                head_row = db.execute(
                    "SELECT * FROM investigations WHERE id=?", (current,)
                ).fetchone()
                head = decode(head_row) if head_row else None
                takes_over = (
                    head is None
                    or head.analysis is None
                    or rule.head_rank(record) < rule.head_rank(head)
                )
                if not takes_over:
                    return []
                db.execute("UPDATE incidents SET head_id=? WHERE id=?", (ident, incident_id))
                self._retitle(db, incident_id)
            waiting = [
                decode(r)
                for r in db.execute(
                    f"SELECT {_FOOTPRINT_COLUMNS} FROM investigations WHERE incident_id=?"
                    " AND status='queued' AND id != ? ORDER BY created_at, rowid",
                    (record.incident_id, ident),
                )
            ]
            linked = _link(db, record, waiting, now)
            rows = [
                db.execute("SELECT * FROM investigations WHERE id=?", (i,)).fetchone()
                for i in linked
            ]
        return [decode(r) for r in rows if r is not None]

    def head_awaits_model(self, ident: str) -> list[Investigation]:
        """After a head's run the model server did not answer (``llm_retry``): the queued
        members its analysis would explain end the same way, to be investigated again
        with it when Ollama answers — not left queued behind a head that cannot run.
        The records so ended."""
        now = _now()
        with self._tx() as db:
            row = db.execute("SELECT * FROM investigations WHERE id=?", (ident,)).fetchone()
            if row is None or not row["llm_retry"] or row["incident_id"] is None:
                return []
            head = decode(row)
            waiting = [
                decode(r)
                for r in db.execute(
                    f"SELECT {_FOOTPRINT_COLUMNS} FROM investigations WHERE incident_id=?"
                    " AND status='queued' AND id != ? ORDER BY created_at, rowid",
                    (head.incident_id, ident),
                )
            ]
            ended = []
            for member in waiting:
                if rule.explains(head, member) is None:
                    continue
                reason = (
                    f"the model server did not answer for {head.alertname} ({head.id}),"
                    f" the head of its incident{WILL_RETRY}"
                )
                cur = db.execute(
                    "UPDATE investigations SET status=?, status_reason=?, llm_retry=1,"
                    " finished_at=? WHERE id=? AND status='queued'",
                    (head.status, text(reason), now, member.id),
                )
                if cur.rowcount == 1:
                    ended.append(member.id)
            rows = [
                db.execute("SELECT * FROM investigations WHERE id=?", (i,)).fetchone()
                for i in ended
            ]
        return [decode(r) for r in rows if r is not None]


def _link(
    db: Connection, head: Investigation, members: Sequence[Investigation], now: str
) -> list[str]:
    """Mark as ``linked`` to ``head`` each queued member its analysis explains."""
    linked = []
    for member in members:
        if member.status != "queued":
            continue
        join = rule.explains(head, member)
        if join is None:
            continue
        reason = f"explained by the analysis of {head.alertname} ({head.id}): {join.reason}"
        cur = db.execute(
            "UPDATE investigations SET status='linked', explained_by=?, status_reason=?,"
            " finished_at=? WHERE id=? AND status='queued'",
            (head.id, text(reason), now, member.id),
        )
        if cur.rowcount == 1:
            linked.append(member.id)
    return linked


def _parse(iso: str) -> datetime:
    when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def resolve_incidents(db: Connection, investigation_ids: Sequence[str], now: str) -> list[str]:
    """Incidents of these (just resolved) investigations whose alerts have all resolved:
    marked resolved. Their ids."""
    done: list[str] = []
    marks = ",".join("?" * len(investigation_ids))
    if not investigation_ids:
        return done
    for row in db.execute(
        f"SELECT DISTINCT incident_id FROM investigations WHERE id IN ({marks})"
        " AND incident_id IS NOT NULL",
        list(investigation_ids),
    ).fetchall():
        incident_id = row[0]
        firing = db.execute(
            "SELECT 1 FROM investigations WHERE incident_id=? AND alert_status='firing' LIMIT 1",
            (incident_id,),
        ).fetchone()
        if firing is None:
            cur = db.execute(
                "UPDATE incidents SET status='resolved', resolved_at=? WHERE id=? AND status='open'",
                (now, incident_id),
            )
            if cur.rowcount:
                done.append(incident_id)
    return done
