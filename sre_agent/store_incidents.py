"""The store's incident reads: an incident with its alerts, a page of incidents, and an
incident's whole records. A part of :class:`sre_agent.store.Store`; the writes are
:mod:`sre_agent.store_joins`.

An incident is assembled from its row and its members' rows at read time (roles,
summary, the head's analysis), so what it says is what its alerts' records say now.
A page of incidents costs two queries whatever its size: its incidents, then all their
members at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from sre_agent.db import Connection
from sre_agent.models import Incident, IncidentAlert, IncidentRole, Investigation
from sre_agent.rows import decode

#: What an incident shows of each member: never its evidence or tool calls (large).
_MEMBER_COLUMNS = (
    "id, fingerprint, alertname, severity, namespace, status, status_reason, alert_status,"
    " created_at, evidence_at, finished_at, incident_id, joined, explained_by, analysis"
)


class IncidentReads:
    if TYPE_CHECKING:  # the Store's read connection

        def _read(self) -> AbstractContextManager[Connection]: ...

    def get_incident(self, ident: str) -> Incident | None:
        with self._read() as db:
            row = db.execute("SELECT * FROM incidents WHERE id=?", (ident,)).fetchone()
            if row is None:
                return None
            members = _members(db, [ident])
        return _incident(row, members.get(ident, []))

    def list_incidents(
        self, status: str | None = None, before: str | None = None, limit: int = 50
    ) -> list[Incident]:
        """Newest opened first; ``before`` (an incident id) pages on: only those listed
        after it. Raises KeyError when ``before`` names none."""
        where, params = [], []
        if status:
            where.append("status=?")
            params.append(status)
        if before is not None:  # the same order as ORDER BY: a stable cursor
            where.append("(opened_at, rowid) < (SELECT opened_at, rowid FROM incidents WHERE id=?)")
            params.append(before)
        sql = "SELECT * FROM incidents"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY opened_at DESC, rowid DESC LIMIT ?"
        with self._read() as db:
            if (
                before is not None
                and not db.execute("SELECT 1 FROM incidents WHERE id=?", (before,)).fetchone()
            ):
                raise KeyError(before)
            rows = db.execute(sql, (*params, limit)).fetchall()
            members = _members(db, [row["id"] for row in rows])
        return [_incident(row, members.get(row["id"], [])) for row in rows]

    def incident_members(self, ident: str) -> list[Investigation]:
        """The whole records of an incident's alerts, in the order they arrived."""
        with self._read() as db:
            rows = db.execute(
                "SELECT * FROM investigations WHERE incident_id=? ORDER BY created_at, rowid",
                (ident,),
            ).fetchall()
        return [decode(row) for row in rows]


def _members(db: Connection, incident_ids: Sequence[str]) -> dict[str, list[Investigation]]:
    """Incident id -> its members (without evidence), in arrival order: one query per
    500 incidents (SQLite's bound on host parameters)."""
    found: dict[str, list[Investigation]] = {}
    for n in range(0, len(incident_ids), 500):
        chunk = list(incident_ids[n : n + 500])
        marks = ",".join("?" * len(chunk))
        for row in db.execute(
            f"SELECT {_MEMBER_COLUMNS} FROM investigations WHERE incident_id IN ({marks})"
            " ORDER BY created_at, rowid",
            chunk,
        ):
            record = decode(row)
            found.setdefault(str(record.incident_id), []).append(record)
    return found


def role(record: Investigation, head_id: str | None) -> IncidentRole:
    """The alert's part in its incident (:data:`sre_agent.models.IncidentRole`)."""
    if record.id == head_id:
        return "head"
    if record.status == "linked":
        return "linked"
    if record.status == "queued":
        return "waiting"
    return "own"


def _alert(record: Investigation, head_id: str | None) -> IncidentAlert:
    return IncidentAlert(
        investigation_id=record.id,
        alertname=record.alertname,
        severity=record.severity,
        namespace=record.namespace,
        status=record.status,
        alert_status=record.alert_status,
        role=role(record, head_id),
        joined=record.joined,
        explained_by=record.explained_by,
        created_at=record.created_at,
        evidence_at=record.evidence_at,
        finished_at=record.finished_at,
        summary=(record.analysis.summary if record.analysis else None) or record.status_reason,
    )


def _incident(row: Any, members: list[Investigation]) -> Incident:
    fields: dict[str, Any] = {
        k: row[k] for k in row.keys() if k not in ("slack_channel", "slack_ts")
    }
    head_id = fields.get("head_id")
    head = next((m for m in members if m.id == head_id), None)
    return Incident(
        **fields,
        alerts=[_alert(m, head_id) for m in members],
        analysis=head.analysis if head else None,
        explains=[m.id for m in members if head_id and m.explained_by == head_id],
    )
