"""Migrations 9-10 on a database from before memory: every row gets its subject and its
index row; one that today's record cannot read does not stop the service from starting."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from sre_agent.migrations import MIGRATIONS, statements
from sre_agent.store import Store


def _v8(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE migrations (id INTEGER PRIMARY KEY, applied_at TEXT)")
        for number, sql in enumerate(MIGRATIONS[:8], 1):
            if callable(sql):
                sql(db)
            else:
                for statement in statements(sql):
                    db.execute(statement)
            db.execute("INSERT INTO migrations VALUES (?, '2026-11-01')", (number,))
        alert = {"labels": {"alertname": "KubePodCrashLooping", "namespace": "shop",
                            "pod": "web-7d9f8b6c5-x2x4k", "container": "web"},
                 "annotations": {"summary": "web crash-loops"}, "startsAt": "2026-11-20T10:00:00Z"}  # fmt: skip
        analysis = {"summary": "web is OOMKilled", "root_causes": [{"cause": "memory limit"}]}
        for ident, status in (("good", "resolved"), ("odd", "unknown")):
            db.execute(
                "INSERT INTO investigations (id, dedup_key, fingerprint, alertname, severity,"
                " namespace, alert, status, alert_status, analysis, created_at)"
                " VALUES (?, ?, 'f', 'KubePodCrashLooping', 'warning', 'shop', ?, 'completed',"
                " ?, ?, '2026-11-20T10:00:00+00:00')",
                (ident, f"k-{ident}", json.dumps(alert), status, json.dumps(analysis)),
            )


def test_an_old_database_gains_subjects_and_index_rows_despite_an_odd_row(tmp_path: Path):
    path = tmp_path / "old.db"
    _v8(path)
    store = Store(path)
    store.open()  # must not raise for the odd row
    try:
        with store._read() as db:
            rows = dict(db.execute("SELECT id, subject FROM investigations").fetchall())
            indexed = [r[0] for r in db.execute("SELECT investigation_id FROM memory_fts")]
            done = [r[0] for r in db.execute("SELECT id FROM migrations ORDER BY id")]
        assert json.loads(rows["good"]) == {
            "container": "web",
            "namespace": "shop",
            "workload": "web",
        }
        assert rows["odd"] is None and indexed == ["good"]
        assert done == list(range(1, len(MIGRATIONS) + 1))
        # ...and the good row reads back with it.
        assert store.get("good").subject == rows["good"]
    finally:
        store.close()
