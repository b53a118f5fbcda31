"""The database's migrations, in order: each runs once, in one transaction with the
rest, and is recorded by number in the ``migrations`` table (as simonw/llm does).

A migration is SQL, or a function for what SQL cannot do (hashing, masking). The same
numbered migrations run on SQLite and on Postgres; where the engines' SQL differs (types,
triggers, full-text search) :data:`PG_MIGRATIONS` holds Postgres' text of that number.
On Postgres they run under an advisory lock: two replicas starting at once migrate once.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterator

from sre_agent_tools.redact import redact, redact_obj

from sre_agent.alerts import dedup_hash, mask_label
from sre_agent.db import MIGRATE_LOCK, WRITE_LOCK, Connection, PgConnection

log = logging.getLogger(__name__)

Migration = str | Callable[[Connection], None]

MIGRATIONS: list[Migration] = [
    # 1: investigations
    """
    CREATE TABLE investigations (
        id TEXT PRIMARY KEY,
        dedup_key TEXT NOT NULL UNIQUE,
        fingerprint TEXT NOT NULL,
        alertname TEXT NOT NULL,
        severity TEXT NOT NULL,
        namespace TEXT,
        group_key TEXT NOT NULL DEFAULT '',
        alert TEXT NOT NULL,
        status TEXT NOT NULL,
        status_reason TEXT,
        alert_status TEXT NOT NULL DEFAULT 'firing',
        resolved_at TEXT,
        deliveries INTEGER NOT NULL DEFAULT 1,
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        duration_s REAL,
        evidence TEXT NOT NULL DEFAULT '[]',
        tool_calls TEXT NOT NULL DEFAULT '[]',
        llm_usage TEXT NOT NULL DEFAULT '{}',
        analysis TEXT,
        raw_text TEXT,
        report TEXT
    );
    CREATE INDEX investigations_status ON investigations(status);
    CREATE INDEX investigations_created ON investigations(created_at);
    CREATE INDEX investigations_alertname ON investigations(alertname);
    """,
    # 2: the Slack thread of each alert group (sre_agent.notify)
    """
    CREATE TABLE slack_threads (
        group_key TEXT PRIMARY KEY,
        channel TEXT NOT NULL,
        ts TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    """,
    # 3: investigations degraded because the model server failed, to run again when it answers
    """
    ALTER TABLE investigations ADD COLUMN llm_retry INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX investigations_llm_retry ON investigations(llm_retry);
    """,
    # 4: dedup keys hashed, identifying columns masked like the labels they copy
    lambda db: mask_columns(db),
    # 5: which backends answered each investigation (sre_agent.sources); NULL: unknown
    "ALTER TABLE investigations ADD COLUMN sources TEXT",
    # 6: a change number per row, bumped by every insert and update (triggers, so no
    # write path can forget): what the web list's live feed pages on (Store.changed)
    """
    ALTER TABLE investigations ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
    UPDATE investigations SET change_seq = rowid;
    CREATE INDEX investigations_change_seq ON investigations(change_seq);
    CREATE TRIGGER investigations_inserted AFTER INSERT ON investigations
    BEGIN
        UPDATE investigations
        SET change_seq = (SELECT COALESCE(MAX(change_seq), 0) + 1 FROM investigations)
        WHERE rowid = NEW.rowid;
    END;
    CREATE TRIGGER investigations_updated AFTER UPDATE ON investigations
    WHEN NEW.change_seq = OLD.change_seq
    BEGIN
        UPDATE investigations
        SET change_seq = (SELECT COALESCE(MAX(change_seq), 0) + 1 FROM investigations)
        WHERE rowid = NEW.rowid;
    END;
    """,
    # 7: web sessions ended by logout, until their cookies would have expired anyway
    # (sre_agent.credentials.Sessions): a restart must not bring a logged-out cookie back
    """
    CREATE TABLE revoked_sessions (
        session_id TEXT PRIMARY KEY,
        expires_at REAL NOT NULL
    );
    """,
    # 8: incidents (sre_agent.incidents): alerts joined by what they share; each
    # investigation's evidence report (stored before the model's run), the objects its
    # evidence walk reached, its incident and why it joined it
    """
    CREATE TABLE incidents (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL DEFAULT 'open',
        title TEXT NOT NULL DEFAULT '',
        head_id TEXT,
        opened_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        resolved_at TEXT,
        slack_channel TEXT,
        slack_ts TEXT
    );
    CREATE INDEX incidents_open ON incidents(status, updated_at);
    CREATE INDEX incidents_opened ON incidents(opened_at);
    ALTER TABLE investigations ADD COLUMN incident_id TEXT;
    ALTER TABLE investigations ADD COLUMN joined TEXT;
    ALTER TABLE investigations ADD COLUMN objects TEXT;
    ALTER TABLE investigations ADD COLUMN evidence_at TEXT;
    ALTER TABLE investigations ADD COLUMN explained_by TEXT;
    CREATE INDEX investigations_incident ON investigations(incident_id);
    """,
    # 9: memory (sre_agent.memory, store_memory): each record's subject (the alert and the
    # object it is about), people's verdicts on analyses (kept as given), the latest one,
    # the past investigations like it, and the full-text index they are found by
    """
    ALTER TABLE investigations ADD COLUMN subject TEXT;
    ALTER TABLE investigations ADD COLUMN verdict TEXT;
    ALTER TABLE investigations ADD COLUMN "similar" TEXT;
    CREATE INDEX investigations_subject ON investigations(alertname, subject, created_at);
    CREATE INDEX investigations_subject_only ON investigations(subject);
    CREATE TABLE feedback (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        investigation_id TEXT NOT NULL,
        verdict TEXT NOT NULL,
        cause TEXT,
        analysis_cause TEXT,
        note TEXT,
        author TEXT NOT NULL,
        via TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX feedback_investigation ON feedback(investigation_id);
    CREATE VIRTUAL TABLE memory_fts USING fts5(
        investigation_id UNINDEXED, alertname, subject, body, tokenize='porter unicode61'
    );
    """,
    # 10: the subjects and index rows of the investigations stored before memory
    lambda db: index_existing(db),
    # 11: leases (sre_agent.worker): which replica gathers an alert's evidence or runs
    # its model, until when; a replica that dies leaves a lease that expires, and
    # another takes the work up
    """
    CREATE TABLE leases (
        investigation_id TEXT PRIMARY KEY,
        stage TEXT NOT NULL,
        owner TEXT NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE INDEX leases_owner ON leases(owner);
    """,
]

#: Postgres' text of the migrations whose SQL differs from SQLite's: typed columns
#: (``DOUBLE PRECISION`` for seconds, not 4-byte ``REAL``), a ``rowid`` column where
#: SQLite has one built in (the store orders by it), a sequence and a trigger function
#: for the change numbers, and a ``tsvector`` index for the full-text search.
PG_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE investigations (
        rowid BIGSERIAL UNIQUE,
        id TEXT PRIMARY KEY,
        dedup_key TEXT NOT NULL UNIQUE,
        fingerprint TEXT NOT NULL,
        alertname TEXT NOT NULL,
        severity TEXT NOT NULL,
        namespace TEXT,
        group_key TEXT NOT NULL DEFAULT '',
        alert TEXT NOT NULL,
        status TEXT NOT NULL,
        status_reason TEXT,
        alert_status TEXT NOT NULL DEFAULT 'firing',
        resolved_at TEXT,
        deliveries INTEGER NOT NULL DEFAULT 1,
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        duration_s DOUBLE PRECISION,
        evidence TEXT NOT NULL DEFAULT '[]',
        tool_calls TEXT NOT NULL DEFAULT '[]',
        llm_usage TEXT NOT NULL DEFAULT '{}',
        analysis TEXT,
        raw_text TEXT,
        report TEXT
    );
    CREATE INDEX investigations_status ON investigations(status);
    CREATE INDEX investigations_created ON investigations(created_at);
    CREATE INDEX investigations_alertname ON investigations(alertname);
    """,
    6: """
    ALTER TABLE investigations ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
    CREATE SEQUENCE investigations_change_numbers;
    UPDATE investigations SET change_seq = nextval('investigations_change_numbers');
    CREATE INDEX investigations_change_seq ON investigations(change_seq);
    CREATE FUNCTION investigations_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' OR NEW.change_seq = OLD.change_seq THEN
            NEW.change_seq := nextval('investigations_change_numbers');
        END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER investigations_changed BEFORE INSERT OR UPDATE ON investigations
        FOR EACH ROW EXECUTE FUNCTION investigations_change();
    """,
    7: """
    CREATE TABLE revoked_sessions (
        session_id TEXT PRIMARY KEY,
        expires_at DOUBLE PRECISION NOT NULL
    );
    """,
    8: """
    CREATE TABLE incidents (
        rowid BIGSERIAL UNIQUE,
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL DEFAULT 'open',
        title TEXT NOT NULL DEFAULT '',
        head_id TEXT,
        opened_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        resolved_at TEXT,
        slack_channel TEXT,
        slack_ts TEXT
    );
    CREATE INDEX incidents_open ON incidents(status, updated_at);
    CREATE INDEX incidents_opened ON incidents(opened_at);
    ALTER TABLE investigations ADD COLUMN incident_id TEXT;
    ALTER TABLE investigations ADD COLUMN joined TEXT;
    ALTER TABLE investigations ADD COLUMN objects TEXT;
    ALTER TABLE investigations ADD COLUMN evidence_at TEXT;
    ALTER TABLE investigations ADD COLUMN explained_by TEXT;
    CREATE INDEX investigations_incident ON investigations(incident_id);
    """,
    9: """
    ALTER TABLE investigations ADD COLUMN subject TEXT;
    ALTER TABLE investigations ADD COLUMN verdict TEXT;
    ALTER TABLE investigations ADD COLUMN "similar" TEXT;
    CREATE INDEX investigations_subject ON investigations(alertname, subject, created_at);
    CREATE INDEX investigations_subject_only ON investigations(subject);
    CREATE TABLE feedback (
        id BIGSERIAL PRIMARY KEY,
        investigation_id TEXT NOT NULL,
        verdict TEXT NOT NULL,
        cause TEXT,
        analysis_cause TEXT,
        note TEXT,
        author TEXT NOT NULL,
        via TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX feedback_investigation ON feedback(investigation_id);
    CREATE TABLE memory_fts (
        rowid BIGINT PRIMARY KEY,
        investigation_id TEXT NOT NULL,
        alertname TEXT NOT NULL DEFAULT '',
        subject TEXT NOT NULL DEFAULT '',
        body TEXT NOT NULL DEFAULT '',
        doc tsvector GENERATED ALWAYS AS (
            setweight(to_tsvector('english', alertname), 'A')
            || setweight(to_tsvector('english', subject || ' ' || body), 'B')
        ) STORED
    );
    CREATE INDEX memory_fts_doc ON memory_fts USING GIN (doc);
    """,
    11: """
    CREATE TABLE leases (
        investigation_id TEXT PRIMARY KEY,
        stage TEXT NOT NULL,
        owner TEXT NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX leases_owner ON leases(owner);
    """,
}


def migrate(db: Connection, now: str) -> list[int]:
    """Run the migrations not recorded yet, in order, inside the caller's transaction;
    the numbers run."""
    postgres = isinstance(db, PgConnection)
    if postgres:  # held to the transaction's end: a second replica waits, then finds all done;
        # and the write lock, so a migration's writes and a running replica's never interleave
        db.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATE_LOCK,))
        db.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))
    db.execute("CREATE TABLE IF NOT EXISTS migrations (id INTEGER PRIMARY KEY, applied_at TEXT)")
    done = {row[0] for row in db.execute("SELECT id FROM migrations")}
    ran = []
    for number, sql in enumerate(MIGRATIONS, 1):
        if number in done:
            continue
        if postgres and number in PG_MIGRATIONS:
            sql = PG_MIGRATIONS[number]
        if callable(sql):
            sql(db)
        elif isinstance(db, PgConnection):
            db.script(sql)
        else:
            for statement in statements(sql):
                db.execute(statement)
        db.execute("INSERT INTO migrations VALUES (?, ?)", (number, now))
        ran.append(number)
    return ran


def not_run(db: Connection) -> list[int]:
    """The numbers of the migrations not run yet (``sre-agent db status``)."""
    try:
        done = {row[0] for row in db.execute("SELECT id FROM migrations")}
    except Exception:  # no table yet: none ran
        return list(range(1, len(MIGRATIONS) + 1))
    return [n for n in range(1, len(MIGRATIONS) + 1) if n not in done]


def statements(sql: str) -> Iterator[str]:
    """The statements of a migration's SQL, one by one (in one transaction, which
    ``executescript`` would commit); a trigger's body keeps its own semicolons."""
    pending = ""
    for part in sql.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending
            pending = ""
    if pending.strip(" \n;"):
        yield pending


def mask_columns(db: Connection) -> None:
    """Migration 4: rows written before dedup keys were hashed and the identifying
    columns masked get both now (the hash is of the raw key, as :meth:`Alert.dedup_key`),
    and everything else they hold passes today's redactor, which masks forms the
    earlier one let through."""
    rows = db.execute(
        "SELECT id, dedup_key, fingerprint, alertname, severity, namespace, group_key, alert,"
        " evidence, tool_calls, analysis, raw_text, report, status_reason FROM investigations"
    ).fetchall()
    db.executemany(
        "UPDATE investigations SET dedup_key=?, fingerprint=?, alertname=?, severity=?,"
        " namespace=?, group_key=?, alert=?, evidence=?, tool_calls=?, analysis=?,"
        " raw_text=?, report=?, status_reason=? WHERE id=?",
        [
            (
                dedup_hash(row["dedup_key"]),
                mask_label("fingerprint", row["fingerprint"]),
                mask_label("alertname", row["alertname"]),
                mask_label("severity", row["severity"]),
                mask_label("namespace", row["namespace"]),
                redact(row["group_key"] or ""),
                _alert(row["alert"]),
                _json(row["evidence"]),
                _json(row["tool_calls"]),
                _json(row["analysis"]),
                redact(row["raw_text"]) if row["raw_text"] else row["raw_text"],
                redact(row["report"]) if row["report"] else row["report"],
                redact(row["status_reason"]) if row["status_reason"] else row["status_reason"],
                row["id"],
            )
            for row in rows
        ],
    )


def _json(text: str | None) -> str | None:
    return None if text is None else json.dumps(redact_obj(json.loads(text)))


def _alert(text: str) -> str:
    """The stored alert: labels masked as intake masks them now, the rest redacted."""
    alert = json.loads(text)
    labels = alert.pop("labels", None) or {}
    alert = redact_obj(alert)
    alert["labels"] = {k: mask_label(k, v) for k, v in labels.items()}
    return json.dumps(alert)


def index_existing(db: Connection) -> None:
    """Migration 10: each stored investigation's subject and full-text index row. A row
    today's record cannot read keeps no subject (it is never history), and is logged."""
    from sre_agent.memory import subject_key
    from sre_agent.rows import decode
    from sre_agent.store_memory import index_text

    for row in db.execute("SELECT rowid, * FROM investigations").fetchall():
        try:
            record = decode(row)
            key = subject_key(record.alert.labels)
            body = index_text(record)
        except Exception as exc:  # an odd old row must not stop the service from starting
            log.warning("migration 10: investigation %s not indexed: %s", row["id"], exc)
            continue
        db.execute("UPDATE investigations SET subject=? WHERE id=?", (key, record.id))
        db.execute(
            "INSERT INTO memory_fts (rowid, investigation_id, alertname, subject, body)"
            " VALUES (?, ?, ?, ?, ?)",
            (row["rowid"], record.id, record.alertname, key, body),
        )
