"""Runbook drafts from confirmed causes, and retention that keeps confirmed causes longer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from sre_agent.app import create_app
from sre_agent.retention import Retention
from sre_agent.runbooks import draft, markdown
from sre_agent.settings import load_settings
from sre_agent.store import Store
from tests.support.memory import WEB, ago, seed

OOM_LINE = "Last State: Terminated  Reason: OOMKilled  Exit Code: 137"
DNS_LINE = "dial tcp: lookup db.shop.svc: no such host (connection refused)"


def _two_causes(store: Store) -> dict[str, str]:
    ids = {
        "oom1": seed(store, {**WEB, "pod": "web-7d9f8b6c5-bcdfg"}, starts=ago(days=3),
                     cause="web runs out of memory under the nightly import", lines=[OOM_LINE],
                     mitigation=["Raise web's memory limit to 512Mi"]),
        "oom2": seed(store, {**WEB, "pod": "web-7d9f8b6c5-bbbbb"}, starts=ago(days=9),
                     cause="web runs out of memory during the nightly import", lines=[OOM_LINE]),
        "dns": seed(store, {**WEB, "pod": "web-7d9f8b6c5-ccccc"}, starts=ago(days=5),
                    cause="web cannot resolve its database after a DNS change", lines=[DNS_LINE],
                    query='sum(rate(coredns_dns_responses_total{rcode="NXDOMAIN"}[5m]))'),
        "guess": seed(store, {**WEB, "pod": "web-7d9f8b6c5-ddddd"}, starts=ago(days=1),
                      cause="an unconfirmed guess about a noisy neighbour"),
        "wrong": seed(store, {**WEB, "pod": "web-7d9f8b6c5-hjklm"}, starts=ago(days=2),
                      cause="the certificate expired", lines=["x509: certificate has expired"]),
    }  # fmt: skip
    store.add_feedback(ids["oom1"], "confirmed", author="alice", note="limit raised, fixed")
    store.add_feedback(ids["oom2"], "confirmed", author="bob")
    store.add_feedback(
        ids["dns"],
        "partial",
        cause="web cannot resolve db.shop after the DNS change",
        author="carol",
    )
    store.add_feedback(ids["wrong"], "wrong", author="dave")  # wrong, and no cause given
    return ids


def test_a_runbook_draft_names_both_confirmed_causes_with_their_evidence(store: Store):
    ids = _two_causes(store)
    book = draft("KubePodCrashLooping", store.judged("KubePodCrashLooping"), "https://sre.example")
    assert book.draft is True
    causes = {c.cause: c for c in book.causes}
    assert len(book.causes) == 2, list(causes)
    oom = book.causes[0]  # the one seen twice comes first
    assert oom.seen == 2 and "memory" in oom.cause
    assert any(OOM_LINE in row and ids["oom1"] in row for row in oom.recognised_by)
    assert (
        "Raise web's memory limit to 512Mi" in oom.fixed_by
        and "limit raised, fixed" in oom.fixed_by
    )
    assert f"https://sre.example/investigations/{ids['oom1']}" in oom.investigations
    dns = causes["web cannot resolve db.shop after the DNS change"]
    assert any(DNS_LINE in row for row in dns.recognised_by)
    assert dns.queries == ['sum(rate(coredns_dns_responses_total{rcode="NXDOMAIN"}[5m]))']
    assert any(v.startswith("Partly right (by carol") for v in dns.verdicts)
    text = markdown(book)
    assert text.startswith("# Runbook draft: KubePodCrashLooping") and "**Draft.**" in text
    for words in ("noisy neighbour", "certificate expired"):  # a guess, a rejected cause
        assert words not in text

    # A new verdict redrafts it at once.
    store.add_feedback(ids["guess"], "confirmed", author="erin")
    again = draft("KubePodCrashLooping", store.judged("KubePodCrashLooping"))
    assert any("noisy neighbour" in c.cause for c in again.causes)


def test_runbook_route_json_and_markdown(store: Store, tmp_path: Path):
    _two_causes(store)
    store.close()
    settings = load_settings(database_url=store.database_url,
                             allowed_hosts="testserver", prometheus_url="http://127.0.0.1:1",
                             ollama_url="http://127.0.0.1:1", incidents=False)  # fmt: skip
    with TestClient(create_app(settings)) as client:
        book = client.get("/runbooks/KubePodCrashLooping").json()
        assert len(book["causes"]) == 2
        text = client.get("/runbooks/KubePodCrashLooping", params={"format": "markdown"})
        assert text.headers["content-type"].startswith("text/markdown")
        for line in (OOM_LINE, DNS_LINE):  # as inline code: its runs of spaces are one
            assert " ".join(line.split()) in text.text
    store.open()


def test_retention_keeps_confirmed_causes_longer(store: Store, tmp_path: Path):
    old_guess = seed(
        store, {**WEB, "pod": "web-7d9f8b6c5-bcdfg"}, starts=ago(days=120), cause="a guess"
    )
    old_kept = seed(
        store, {**WEB, "pod": "web-7d9f8b6c5-bbbbb"}, starts=ago(days=120), cause="memory"
    )
    ancient = seed(
        store, {**WEB, "pod": "web-7d9f8b6c5-ccccc"}, starts=ago(days=400), cause="memory"
    )
    recent = seed(
        store, {**WEB, "pod": "web-7d9f8b6c5-ddddd"}, starts=ago(days=10), cause="a guess"
    )
    # Still firing after 120 days: kept (a delivery of it must find its record).
    firing = seed(store, {**WEB, "pod": "web-7d9f8b6c5-hjklm"}, starts=ago(days=120), lasted=None)
    store.add_feedback(old_kept, "confirmed", author="alice")
    store.add_feedback(ancient, "confirmed", author="alice")
    settings = load_settings(retention_days=90, retention_confirmed_days=365)
    forgotten: list[str] = []

    async def forget(ids):
        forgotten.extend(ids)

    deleted = asyncio.run(Retention(settings, store, forget).prune(datetime.now(UTC)))
    assert sorted(deleted) == sorted([old_guess, ancient]) == sorted(forgotten)
    assert store.get(old_guess) is None and store.get(ancient) is None
    assert store.get(old_kept) is not None and store.get(recent) is not None
    assert store.get(firing) is not None
    assert store.get(old_kept).feedback[0].author == "alice"
    # Nothing active is pruned, however old; 0 days: kept forever.
    never = load_settings(retention_days=0)
    assert (
        asyncio.run(Retention(never, store).prune(datetime.now(UTC) + timedelta(days=9999))) == []
    )
