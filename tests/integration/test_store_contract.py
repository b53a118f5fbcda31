"""The store's contract, run on both backends (the ``store`` fixture: SQLite, and a
real Postgres server): intake and dedup, the change feed and search, the queue's
claims and leases, once-only claims (Slack threads, incident messages), and what two
replicas on one database must never do twice.

A second ``Store`` opened on the same database plays a second replica.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

from sre_agent.alerts import Alert
from sre_agent.migrations import MIGRATIONS
from sre_agent.models import Analysis, LlmUsage
from sre_agent.store import AtCapacity, LeaseLost, Store


def _alert(name: str, namespace: str = "shop", summary: str = "", **labels: str) -> Alert:
    return Alert.model_validate(
        {
            "status": "firing",
            "labels": {"alertname": name, "namespace": namespace, "severity": "critical", **labels},
            "annotations": {"summary": summary},
            "startsAt": "2026-12-01T00:00:00Z",
            "fingerprint": f"{name}-{namespace}-{sorted(labels.items())}",
        }
    )


def _resolved(alert: Alert) -> Alert:
    return alert.model_copy(update={"status": "resolved"})


@contextmanager
def replica(store: Store) -> Iterator[Store]:
    """Another process' store on the same database."""
    other = Store(store.database_url)
    other.open()
    try:
        yield other
    finally:
        other.close()


def test_the_same_firing_is_stored_once_and_counted(store: Store):
    first, created = store.create_or_get(_alert("KubePodCrashLooping"))
    again, created_again = store.create_or_get(_alert("KubePodCrashLooping"))
    assert created and not created_again
    assert again.id == first.id and again.deliveries == 2
    other, created = store.create_or_get(_alert("KubePodCrashLooping", "web"))
    assert created and other.id != first.id


def test_twenty_deliveries_at_once_from_two_replicas_make_one_investigation(store: Store):
    """An HA Alertmanager pair sends the same group to both replicas at the same instant."""
    group = [_alert("KubePodCrashLooping", pod=f"api-{n}") for n in range(3)]
    with replica(store) as other:
        barrier = threading.Barrier(20)

        def deliver(n: int) -> list[tuple[str, str, bool]]:
            barrier.wait()
            opened, _ = (store if n % 2 else other).create_group(group, group_key="g")
            return opened

        with ThreadPoolExecutor(20) as pool:
            results = list(pool.map(deliver, range(20)))
    ids = {ident for opened in results for ident, _, _ in opened}
    created = [ident for opened in results for ident, _, made in opened if made]
    assert len(ids) == 3 and sorted(created) == sorted(ids)  # each made exactly once
    listed = store.list(limit=50)
    assert len(listed) == 3 and all(r.deliveries == 20 for r in listed)


def test_a_resolved_alert_cancels_its_queued_investigation(store: Store):
    alert = _alert("TargetDown")
    record, _ = store.create_or_get(alert)
    closed = store.mark_resolved(_resolved(alert))
    assert closed is not None and closed.id == record.id
    assert closed.status == "cancelled" and closed.alert_status == "resolved"
    assert store.claim(record.id) is None  # never started


def test_the_change_feed_and_search(store: Store):
    start, _ = store.changed(-1)
    crash, _ = store.create_or_get(_alert("KubePodCrashLooping", summary="Pod Restarts 100%"))
    down, _ = store.create_or_get(_alert("TargetDown", "monitoring", summary="scrape_failed"))
    cursor, items = store.changed(start)
    assert [i.id for i in items] == [crash.id, down.id]
    store.claim(crash.id)
    later, items = store.changed(cursor)
    assert [(i.id, i.status) for i in items] == [(crash.id, "running")] and later > cursor
    # Case-insensitive, and % and _ are literal characters, not patterns.
    assert [r.id for r in store.list(text="pod restarts")] == [crash.id]
    assert [r.id for r in store.list(text="100%")] == [crash.id]
    assert [r.id for r in store.list(text="e_f")] == [down.id]
    assert store.list(text="o%r") == []
    assert [r.id for r in store.list(namespace="monitoring")] == [down.id]
    assert [r.id for r in store.list(before=down.id)] == [crash.id]
    with pytest.raises(KeyError):
        store.list(before="nope")


def test_a_run_is_finished_and_a_model_failure_queued_again(store: Store):
    record, _ = store.create_or_get(_alert("KubePodCrashLooping"))
    running = store.claim(record.id)
    assert running is not None and running.status == "running" and running.attempts == 1
    assert store.claim(record.id) is None  # once
    store.finish(
        running.model_copy(
            update={
                "status": "degraded",
                "status_reason": "the model server failed",
                "llm_retry": True,
                "llm_usage": LlmUsage(),
                "duration_s": 1.5,
            }
        )
    )
    assert store.awaiting_llm(3) == 1
    with replica(store) as other:  # both replicas see Ollama back: one re-queues
        first, second = store.requeue_for_llm(3), other.requeue_for_llm(3)
    assert (first, second) == ([record.id], [])
    again = store.claim(record.id)
    assert again is not None and again.attempts == 2
    analysis = Analysis.model_validate(
        {
            "summary": "The api pod crash-loops: its config file is missing.",
            "root_causes": [{"cause": "config missing", "confidence": "low", "evidence": []}],
        }
    )
    store.finish(again.model_copy(update={"status": "completed", "analysis": analysis}))
    done = store.get(record.id)
    assert done is not None and done.status == "completed" and done.analysis == analysis


def test_a_nul_in_a_label_is_stored_not_refused(store: Store):
    """Postgres' text holds no NUL: the delivery must not fail forever."""
    record, _ = store.create_or_get(_alert("Odd\x00Name", summary="a\x00b"))
    assert store.get(record.id) is not None


# --- leases ------------------------------------------------------------------------------
def test_one_replica_gathers_each_alert_and_a_dead_ones_work_is_taken_up(store: Store):
    made = [store.create_or_get(_alert("A", pod=f"p{n}"))[0].id for n in range(3)]
    with replica(store) as other:
        first = store.lease_evidence("a/1", 3)
        second = other.lease_evidence("b/1", 30)
        assert first == made[0] and second == made[1]  # the queue's head, one each
        assert other.lease_evidence("b/1", 30, made[0]) is None  # a's, while live
        assert store.renew_leases("a/1", [made[0], made[1]], 1) == {made[0]}  # not b's
        time.sleep(1.2)  # a stops renewing (it died): its lease expires
        assert other.lease_evidence("b/1", 30, made[0]) == made[0]
        assert store.renew_leases("a/1", [made[0]], 30) == set()  # a lost it
        assert store.lease_evidence("a/1", 30) == made[2]
        assert store.lease_evidence("a/1", 30) is None  # none left


def test_a_run_is_held_by_its_lease_and_queued_again_when_it_expires(store: Store):
    record, _ = store.create_or_get(_alert("B"))
    with replica(store) as other:
        running = store.claim(record.id, "a/1", 3)
        assert running is not None
        assert other.requeue_expired() == []  # live: a's
        store.renew_leases("a/1", [record.id], 1)
        time.sleep(1.2)
        assert other.requeue_expired() == [record.id]
        taken = other.claim(record.id, "b/1", 30)
        assert taken is not None and taken.attempts == 2
        assert store.claim(record.id, "a/1", 30) is None  # running, b's
        # a wakes up and stores its result: refused, b's run is the one that counts
        with pytest.raises(LeaseLost):
            store.finish(running.model_copy(update={"status": "completed"}), "a/1")
        with pytest.raises(LeaseLost):
            store.fail_running(record.id, "late", "a/1")
        assert store.get(record.id).status == "running"  # type: ignore[union-attr]
        other.finish(taken.model_copy(update={"status": "completed"}), "b/1")
        assert store.get(record.id).status == "completed"  # type: ignore[union-attr]


def test_claims_and_evidence_leases_racing_on_one_row_never_deadlock(store: Store):
    """The dispatcher claims a resumed alert as an evidence task takes its hint."""
    with replica(store) as other:
        for n in range(15):
            record, _ = store.create_or_get(_alert("R", pod=f"p{n}"))
            barrier = threading.Barrier(2)

            def run(ident=record.id, barrier=barrier):
                barrier.wait()
                return store.claim(ident, "a/1", 30)

            def lease(ident=record.id, barrier=barrier):
                barrier.wait()
                return other.lease_evidence("b/1", 30, ident)

            with ThreadPoolExecutor(2) as pool:
                claimed, leased = pool.submit(run), pool.submit(lease)
                results = claimed.result(), leased.result()  # neither raises
            assert sum(r is not None for r in results) == 1  # one of the two took it


def test_a_global_cap_on_runs_across_replicas(store: Store):
    ids = [store.create_or_get(_alert("C", pod=f"p{n}"))[0].id for n in range(3)]
    with replica(store) as other:
        assert store.claim(ids[0], "a/1", 30, 2) is not None
        assert other.claim(ids[1], "b/1", 30, 2) is not None
        with pytest.raises(AtCapacity):  # two run already
            other.claim(ids[2], "b/1", 30, 2)
        store.finish(store.get(ids[0]).model_copy(update={"status": "completed"}))  # type: ignore[union-attr]
        store.release(ids[0], "a/1")
        assert other.claim(ids[2], "b/1", 30, 2) is not None


def test_a_restart_takes_back_its_own_work_not_a_live_replicas(store: Store):
    mine, _ = store.create_or_get(_alert("D", pod="mine"))
    theirs, _ = store.create_or_get(_alert("D", pod="theirs"))
    store.claim(mine.id, "pod-a/old", 300)
    store.claim(theirs.id, "pod-b/1", 300)
    resumed = store.requeue_unfinished("pod-a")
    assert mine.id in resumed
    if store.shared:
        assert store.get(theirs.id).status == "running"  # type: ignore[union-attr]
    else:  # SQLite: one process, so whatever ran died with it
        assert theirs.id in resumed


# --- once-only claims ----------------------------------------------------------------------
def test_one_slack_thread_per_group_across_replicas(store: Store):
    with replica(store) as other:
        assert store.claim_slack_thread("g", 60)
        assert not other.claim_slack_thread("g", 60)
        assert other.slack_thread("g") is None  # being posted
        store.save_slack_thread("g", "C1", "111.1")
        other.save_slack_thread("g", "C1", "222.2")  # too late: the first stays
        assert other.slack_thread("g") == ("C1", "111.1")
        assert store.claim_slack_thread("h", 1)
        assert not other.claim_slack_thread("h", 1)
        time.sleep(1.2)  # its poster died before filling it
        assert other.claim_slack_thread("h", 0.2)


def test_an_incidents_message_is_claimed_once(store: Store):
    record, _ = store.create_or_get(_alert("E"))
    joined = store.join_incident(record.id, 300, True)
    assert joined is not None and joined.incident_id
    with replica(store) as other:
        assert store.claim_incident_slack(joined.incident_id, 60)
        assert not other.claim_incident_slack(joined.incident_id, 60)
        assert other.incident_slack(joined.incident_id) is None
        store.save_incident_slack(joined.incident_id, "C1", "1.1")
        assert other.incident_slack(joined.incident_id) == ("C1", "1.1")


def test_a_logout_is_seen_by_every_replica(store: Store):
    with replica(store) as other:
        store.revoke_session("s1", time.time() + 60)
        store.revoke_session("s1", time.time() + 120)  # again: kept once, later expiry
        assert set(other.revoked_sessions()) == {"s1"}


def test_two_replicas_starting_at_once_migrate_once(store: Store):
    if not store.shared:
        pytest.skip("SQLite: one process opens its file")
    url = store.database_url
    store.close()
    from psycopg import connect

    with connect(url, autocommit=True) as conn:  # a fresh database for the race
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    stores = [Store(url) for _ in range(4)]
    barrier = threading.Barrier(4)

    def start(one: Store) -> None:
        barrier.wait()
        one.open()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(start, stores))
    try:
        assert all(one.migrations_pending() == [] for one in stores)
        with stores[0]._read() as db:
            numbers = [row[0] for row in db.execute("SELECT id FROM migrations ORDER BY id")]
        assert numbers == list(range(1, len(MIGRATIONS) + 1))
    finally:
        for one in stores:
            one.close()
        store.open()
