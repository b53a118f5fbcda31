"""The store's change feed and text search (what the web list pages on)."""

from __future__ import annotations

import sqlite3

from sre_agent.alerts import Alert
from sre_agent.migrations import MIGRATIONS
from sre_agent.store import Store


def _alert(name: str, namespace: str, summary: str = "") -> Alert:
    return Alert.model_validate(
        {
            "status": "firing",
            "labels": {"alertname": name, "namespace": namespace, "severity": "critical"},
            "annotations": {"summary": summary},
            "startsAt": "2026-12-01T00:00:00Z",
            "fingerprint": f"{name}-{namespace}",
        }
    )


def test_every_write_moves_the_record_to_the_end_of_the_change_feed(tmp_path):
    store = Store(tmp_path / "x.db")
    store.open()
    try:
        start, none = store.changed(-1)
        assert (start, none) == (0, [])
        crash, _ = store.create_or_get(_alert("KubePodCrashLooping", "shop"))
        down, _ = store.create_or_get(_alert("TargetDown", "monitoring"))
        cursor, items = store.changed(start)
        assert [i.id for i in items] == [crash.id, down.id]
        assert store.changed(cursor) == (cursor, [])  # nothing new: the same cursor
        store.claim(crash.id)
        later, items = store.changed(cursor)
        assert [(i.id, i.status) for i in items] == [(crash.id, "running")]
        assert later > cursor
        # A repeated delivery is a write too (its count changed).
        store.create_or_get(_alert("TargetDown", "monitoring"))
        _, items = store.changed(later)
        assert [(i.id, i.deliveries) for i in items] == [(down.id, 2)]
        _, first = store.changed(0, limit=1)
        assert len(first) == 1
    finally:
        store.close()


def test_rows_stored_before_the_feed_existed_get_a_place_in_it(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE migrations (id INTEGER PRIMARY KEY, applied_at TEXT)")
        for number, sql in enumerate(MIGRATIONS[:3], 1):
            assert isinstance(sql, str)
            db.executescript(sql)
            db.execute("INSERT INTO migrations VALUES (?, '2026-11-01')", (number,))
    store = Store(path)
    store.open()
    try:
        store.create_or_get(_alert("A", "x"))
        cursor, items = store.changed(0)
        assert [i.alertname for i in items] == ["A"] and cursor >= 1
    finally:
        store.close()


def test_text_search_is_literal_and_case_insensitive(tmp_path):
    store = Store(tmp_path / "x.db")
    store.open()
    try:
        store.create_or_get(_alert("KubePodCrashLooping", "shop", "disk 50%_full"))
        store.create_or_get(_alert("TargetDown", "monitoring", "disk 50 percent"))
        assert [r.alertname for r in store.list(text="crashloop")] == ["KubePodCrashLooping"]
        assert [r.alertname for r in store.list(text="50%_")] == ["KubePodCrashLooping"]
        assert store.list(text="5_%") == []  # '_' and '%' are characters, not wildcards
        assert len(store.list(text="disk")) == 2
        assert [r.alertname for r in store.list(text="disk", namespace="monitoring")] == [
            "TargetDown"
        ]
    finally:
        store.close()
