"""The store's memory (:mod:`sre_agent.memory`, docs/memory.md): earlier firings of an
alert on the same object, people's verdicts on analyses (the ``feedback`` table, kept as
given), past investigations like a new one (SQLite FTS5 over each record's summary,
causes and telling evidence lines, ranked by what the alerts share first), and
retention. A part of :class:`sre_agent.store.Store`.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sre_agent.db import Connection
from sre_agent.models import FINAL, Feedback, Investigation, SimilarRef, Verdict
from sre_agent.report import telling_lines
from sre_agent.rows import decode, dump, text

#: Past investigations "Seen before" lists, at most; FTS candidates read per probe.
SIMILAR_SHOWN = 5
_CANDIDATES = 50
#: An earlier alert of the same subject still firing that began this close before it is
#: the same episode (another pod of the workload), not history.
SAME_EPISODE = timedelta(minutes=15)
#: Words of a probe, at most (the most telling first: summary and causes, then evidence).
_PROBE_WORDS = 48
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]{2,40}")
#: Words every record has: matching on them says nothing.
_COMMON = frozenset(
    """the and for with from this that was were are has have not but its into than then
    when which while what where who will would there their been being also only more most
    some such pod pods alert alerts firing status namespace container containers value
    values series query true false none null ok error errors summary since last over
    http https www com svc cluster local running ready""".split()
)
_FINAL = ",".join(f"'{s}'" for s in FINAL)


def index_text(record: Investigation) -> str:
    """What a record is found by: its alert, summary, causes, verdicts, and the telling
    lines of its evidence (the cited findings' first, then any that name a failure)."""
    alert = record.alert
    parts = [
        record.alertname,
        " ".join(f"{k} {v}" for k, v in alert.labels.items() if k != "alertname"),
        alert.annotations.get("summary", ""),
        alert.annotations.get("description", ""),
    ]
    if record.analysis is not None:
        parts.append(record.analysis.summary)
        for cause in record.analysis.root_causes:
            parts += [cause.cause, *cause.evidence]
    for verdict in record.feedback:
        parts += [verdict.cause or "", verdict.note or ""]
    cited = {
        i for c in (record.analysis.root_causes if record.analysis else []) for i in c.evidence_ids
    }
    ordered = sorted(record.evidence, key=lambda e: e.id not in cited)
    for item in ordered[:30]:
        if item.tool != "history":  # other alerts' words: not what this one is about
            parts += telling_lines(item.output, [])
    return "\n".join(p for p in parts if p)[:20000]


def probe(record: Investigation) -> str:
    """An FTS5 query (any of the record's telling words, each quoted) or '' when it has none."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(index_text(record)):
        low = word.lower()
        if low in _COMMON or low.isdigit() or re.fullmatch(r"[0-9a-f]{6,}", low):
            continue
        seen.setdefault(low, None)
        if len(seen) >= _PROBE_WORDS:
            break
    return " OR ".join(f'"{w}"' for w in seen)


class MemoryTables:
    if TYPE_CHECKING:  # the Store's connections

        def _read(self) -> AbstractContextManager[Connection]: ...
        def _tx(self) -> AbstractContextManager[Connection]: ...
        def get(self, ident: str) -> Investigation | None: ...

    # --- earlier firings ------------------------------------------------------
    def past_firings(
        self, alertname: str, subject: str, since: str, exclude: str, limit: int = 200
    ) -> list[Investigation]:
        """Earlier investigations of this alert on this subject since ``since``, newest
        first, each with its feedback. Not ``exclude`` itself, nor the alerts still
        firing that began with it (the same episode: two pods of one workload)."""
        with self._read() as db:
            me = db.execute(
                "SELECT created_at FROM investigations WHERE id=?", (exclude,)
            ).fetchone()
            created = me["created_at"] if me else datetime.now(UTC).isoformat()
            episode = (datetime.fromisoformat(created) - SAME_EPISODE).isoformat(
                timespec="milliseconds"
            )
            rows = db.execute(
                "SELECT * FROM investigations WHERE alertname=? AND subject=? AND id<>?"
                " AND created_at>=? AND created_at<=?"
                " AND NOT (alert_status='firing' AND created_at>=?)"
                " ORDER BY created_at DESC LIMIT ?",
                (alertname, subject, exclude, since, created, episode, limit),
            ).fetchall()
            records = [decode(r) for r in rows]
            attach_feedback(db, records)
        return records

    # --- feedback -------------------------------------------------------------
    def add_feedback(
        self,
        ident: str,
        verdict: Verdict,
        *,
        cause: str | None = None,
        note: str | None = None,
        author: str = "anonymous",
        via: str = "anonymous",
    ) -> Feedback:
        """Keep a verdict on an investigation's analysis. KeyError: no such investigation;
        ValueError: it is not finished, or "confirmed" with no cause to confirm."""
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        with self._tx() as db:
            row = db.execute("SELECT * FROM investigations WHERE id=?", (ident,)).fetchone()
            if row is None:
                raise KeyError(ident)
            record = decode(row)
            if record.status not in FINAL:
                raise ValueError(
                    f"investigation {ident} is still {record.status}: judge it once it has finished"
                )
            said = (
                record.analysis.root_causes[0].cause
                if record.analysis is not None and record.analysis.root_causes
                else None
            )
            # Confirmed: the analysis' cause is the person's word; partly right or wrong,
            # only what they wrote is.
            stands = cause or (said if verdict == "confirmed" else None)
            if verdict == "confirmed" and stands is None:
                raise ValueError(
                    "nothing to confirm: the investigation has no root cause; give the cause"
                )
            row = db.execute(
                "INSERT INTO feedback (investigation_id, verdict, cause, analysis_cause, note,"
                " author, via, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (ident, verdict, stands, said, note, author, via, now),
            ).fetchone()
            db.execute("UPDATE investigations SET verdict=? WHERE id=?", (verdict, ident))
            attach_feedback(db, [record])
            _index(db, record)
        return Feedback(
            id=int(row[0]),
            investigation_id=ident,
            verdict=verdict,
            cause=stands,
            analysis_cause=said,
            note=note,
            author=author,
            via=via,
            created_at=now,
        )

    def judged(self, alertname: str, limit: int = 200) -> list[Investigation]:
        """Investigations of ``alertname`` someone gave a cause for (confirmed, partly
        right with its cause, or corrected), newest first, with their feedback."""
        with self._read() as db:
            rows = db.execute(
                "SELECT * FROM investigations WHERE alertname=? AND id IN"
                " (SELECT investigation_id FROM feedback WHERE cause IS NOT NULL)"
                " ORDER BY created_at DESC LIMIT ?",
                (alertname, limit),
            ).fetchall()
            records = [decode(r) for r in rows]
            attach_feedback(db, records)
        return [r for r in records if r.feedback and r.feedback[-1].cause]

    # --- similar investigations -------------------------------------------------
    def remember(self, ident: str) -> Investigation | None:
        """Index the record for similarity and store the past investigations like it."""
        with self._tx() as db:
            row = db.execute("SELECT * FROM investigations WHERE id=?", (ident,)).fetchone()
            if row is None:
                return None
            record = decode(row)
            attach_feedback(db, [record])
            found = _similar(db, record)
            db.execute(
                'UPDATE investigations SET "similar"=? WHERE id=?', (dump("similar", found), ident)
            )
            _index(db, record)
        return self.get(ident)

    # --- retention ------------------------------------------------------------------
    def prune(self, before: str, confirmed_before: str) -> list[str]:
        """Delete finished investigations created before ``before`` -- those with a cause a
        person gave or confirmed only before ``confirmed_before`` -- with their feedback,
        their index rows, and incidents left with no alert. Returns the ids deleted."""
        with self._tx() as db:
            # Never one whose alert still fires (its deliveries would find no record and
            # start it again), nor the head of an open incident.
            rows = db.execute(
                f"SELECT id FROM investigations WHERE status IN ({_FINAL})"
                " AND alert_status='resolved'"
                " AND id NOT IN (SELECT head_id FROM incidents"
                "  WHERE status='open' AND head_id IS NOT NULL) AND ("
                " (created_at < ? AND id NOT IN"
                "  (SELECT investigation_id FROM feedback WHERE cause IS NOT NULL))"
                " OR created_at < ?)",
                (before, confirmed_before),
            ).fetchall()
            ids = [r["id"] for r in rows]
            for n in range(0, len(ids), 500):
                chunk = ids[n : n + 500]
                marks = ",".join("?" * len(chunk))
                db.execute(f"DELETE FROM feedback WHERE investigation_id IN ({marks})", chunk)
                db.execute(
                    "DELETE FROM memory_fts WHERE rowid IN"
                    f" (SELECT rowid FROM investigations WHERE id IN ({marks}))",
                    chunk,
                )
                db.execute(f"DELETE FROM investigations WHERE id IN ({marks})", chunk)
            if ids:
                db.execute(
                    "DELETE FROM incidents WHERE status='resolved' AND id NOT IN"
                    " (SELECT incident_id FROM investigations WHERE incident_id IS NOT NULL)"
                )
                db.execute("DELETE FROM slack_threads WHERE created_at < ?", (before,))
        return ids


def attach_feedback(db: Connection, records: Sequence[Investigation]) -> None:
    """Each record's feedback, oldest first."""
    by_id = {r.id: r for r in records}
    ids = list(by_id)
    for n in range(0, len(ids), 500):
        chunk = ids[n : n + 500]
        marks = ",".join("?" * len(chunk))
        for row in db.execute(
            f"SELECT * FROM feedback WHERE investigation_id IN ({marks}) ORDER BY id", chunk
        ):
            by_id[row["investigation_id"]].feedback.append(Feedback.model_validate(dict(row)))
    for record in records:
        if record.feedback:
            record.verdict = record.feedback[-1].verdict


def refresh_similar(db: Connection, record: Investigation) -> None:
    """A stored "Seen before" list as of now: each entry's latest verdict and the cause
    it gave (a verdict given after the list was made), without the pruned ones."""
    if not record.similar:
        return
    ids = [ref.investigation_id for ref in record.similar]
    marks = ",".join("?" * len(ids))
    alive = {
        row[0] for row in db.execute(f"SELECT id FROM investigations WHERE id IN ({marks})", ids)
    }
    latest: dict[str, Any] = {}
    for row in db.execute(
        f"SELECT * FROM feedback WHERE investigation_id IN ({marks}) ORDER BY id", ids
    ):
        latest[row["investigation_id"]] = row
    kept = []
    for ref in record.similar:
        if ref.investigation_id not in alive:
            continue
        word = latest.get(ref.investigation_id)
        if word is not None:
            ref.verdict, ref.cause = (
                word["verdict"],
                word["cause"] or (None if word["verdict"] == "wrong" else ref.cause),
            )
        kept.append(ref)
    record.similar = kept


def _index(db: Connection, record: Investigation) -> None:
    """The record's index row, keyed by its row's rowid (found without a scan)."""
    row = db.execute("SELECT rowid FROM investigations WHERE id=?", (record.id,)).fetchone()
    if row is None:
        return
    db.execute("DELETE FROM memory_fts WHERE rowid=?", (row[0],))
    db.execute(
        "INSERT INTO memory_fts (rowid, investigation_id, alertname, subject, body)"
        " VALUES (?, ?, ?, ?, ?)",
        (row[0], record.id, record.alertname, record.subject or "", text(index_text(record))),
    )


def _parts(subject: str | None) -> dict[str, str]:
    """A stored subject (JSON) as its labels; {} for none or one no longer readable."""
    try:
        parts = json.loads(subject or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in parts.items()} if isinstance(parts, dict) else {}


#: Subject keys that name a workload (a pod's ``workload`` is its owner's name).


#: Subject keys that name an object in the subject's namespace.
_NAMESPACED = frozenset(
    {"workload", "persistentvolumeclaim", "resourcequota", "horizontalpodautoscaler",
     "service", "ingress", "job"}
)  # fmt: skip


def _things(subject: str | None) -> set[tuple[str, str]]:
    """The objects a subject names, a workload by its name whatever label named it."""
    parts = _parts(subject)
    ns = parts.get("namespace", "")
    out = set()
    for key, value in parts.items():
        if key in _NAMESPACED:
            out.add((key, f"{ns}/{value}"))
        elif key in ("node", "persistentvolume", "instance"):
            out.add((key, value))
    return out


def _match(record: Investigation, other: Investigation) -> int:
    """0 same alert and object, 1 same object, 2 same alert (same namespace, or both
    cluster-wide), 3 text only."""
    # An object both name: a subject of only a namespace (or none) names no object.
    same_object = bool(_things(record.subject) & _things(other.subject))
    same_alert = record.alertname == other.alertname
    if same_alert and same_object:
        return 0
    if same_object:
        return 1
    if same_alert and record.namespace == other.namespace:
        return 2
    return 3


_MATCHES = ("same alert and object", "same object", "same alert", "similar text")


def _similar(db: Connection, record: Investigation) -> list[SimilarRef]:
    """Ranked by what the alerts share, then by a confirmed cause, then text (bm25)."""
    scores: dict[str, float] = {}
    query = probe(record)
    if query and db.dialect == "postgres":
        # The same quoted words, OR'ed, read by websearch_to_tsquery (which never fails
        # on syntax); ts_rank, the alert's name weighted above the rest, negated to sort
        # as bm25 does (lower is closer).
        for row in db.execute(
            "SELECT investigation_id, -ts_rank('{0, 0, 0.5, 1}', doc, q) AS score"
            " FROM memory_fts, websearch_to_tsquery('english', ?) q WHERE doc @@ q"
            " ORDER BY score LIMIT ?",
            (query, _CANDIDATES),
        ):
            scores[row["investigation_id"]] = float(row["score"])
    elif query:
        try:
            for row in db.execute(
                "SELECT investigation_id, bm25(memory_fts, 0.0, 2.0, 1.0, 1.0) AS score"
                " FROM memory_fts WHERE memory_fts MATCH ? ORDER BY score LIMIT ?",
                (query, _CANDIDATES),
            ):
                scores[row["investigation_id"]] = float(row["score"])
        except sqlite3.OperationalError:  # a query FTS5 cannot parse: the labels still rank
            pass
    named = bool(_things(record.subject))  # else every label-less record would match
    for row in db.execute(
        "SELECT id FROM investigations WHERE ((subject=? AND ?) OR (alertname=? AND"
        " COALESCE(namespace,'')=COALESCE(?,''))) AND id<>? ORDER BY created_at DESC LIMIT 20",
        (record.subject or "", named, record.alertname, record.namespace, record.id),
    ):
        scores.setdefault(row["id"], 0.0)
    scores.pop(record.id, None)
    if not scores:
        return []
    ids = list(scores)
    marks = ",".join("?" * len(ids))
    rows = db.execute(
        f"SELECT * FROM investigations WHERE id IN ({marks}) AND created_at <= ?"
        f" AND status IN ({_FINAL}) AND (analysis IS NOT NULL OR verdict IS NOT NULL)",
        (*ids, record.created_at),
    ).fetchall()
    others = [decode(r) for r in rows]
    attach_feedback(db, others)

    def rank(other: Investigation) -> tuple[int, int, float, float]:
        tier = _match(record, other)
        # What the alerts share first; within that, a cause a person gave or confirmed
        # outranks a guess -- but not among those alike in words only, where the words
        # decide (a confirmed cause of something else is no better a match).
        judged = 0 if _stands(other) or tier == 3 else 1
        return tier, judged, scores[other.id], _neg(other.created_at)

    ranked = sorted(others, key=rank)
    return [_ref(o, _match(record, o)) for o in ranked[:SIMILAR_SHOWN]]


def _stands(record: Investigation) -> bool:
    """A person gave or confirmed its cause."""
    return bool(record.feedback and record.feedback[-1].cause)


def _neg(iso: str) -> float:
    try:
        return -datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return 0.0


def _ref(record: Investigation, match: int) -> SimilarRef:
    latest = record.feedback[-1] if record.feedback else None
    cause = latest.cause if latest is not None else None
    unsaid = latest is None or (latest.verdict == "partial" and not latest.cause)
    if unsaid and record.analysis is not None and record.analysis.root_causes:
        cause = record.analysis.root_causes[0].cause
    return SimilarRef(
        investigation_id=record.id,
        alertname=record.alertname,
        created_at=record.created_at,
        match=_MATCHES[match],  # type: ignore[arg-type]
        cause=cause,
        verdict=latest.verdict if latest is not None else None,
        summary=record.analysis.summary if record.analysis is not None else None,
    )
