"""Two ``sre-agent serve`` processes on one real Postgres database, behind the real
Alertmanager sending every notification to both (a receiver with one webhook per
replica, as an HA pair delivers): every firing alert is investigated exactly once; a
replica killed with SIGKILL mid-investigation leaves its run to the other once its
lease expires; restarted, it doubles nothing; each alert group gets one Slack thread.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import settings_env
from tests.support.alertmanager import BINARY, AlertmanagerServer, am_alert
from tests.support.fake_slack import TOKEN, FakeSlack
from tests.support.model_scripts import investigator
from tests.support.net import wait_for
from tests.support.service import ServiceProcess

pytestmark = pytest.mark.skipif(BINARY is None, reason="prometheus-alertmanager not installed")

LEASE = 4.0
#: Seconds the scripted model takes to answer: long enough to kill a replica mid-run.
THINK = 4.0


def _slow(request: dict[str, Any]) -> Any:
    time.sleep(THINK)
    return investigator(request)


def _rows(url: str) -> list[dict[str, Any]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(
            "SELECT i.id, i.alertname, i.namespace, i.status, i.attempts, i.started_at,"
            " l.owner, l.stage FROM investigations i"
            " LEFT JOIN leases l ON l.investigation_id = i.id ORDER BY i.created_at"
        )
        names = [c.name for c in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def test_two_replicas_investigate_each_alert_once_and_survive_a_kill(
    tmp_path, make_settings, ollama, postgres_url
):
    ollama.default = _slow
    with FakeSlack() as slack:
        base = make_settings(
            database_url=postgres_url,
            lease_seconds=LEASE,
            incidents=False,  # one Slack thread per alert group
            slack_bot_token=TOKEN,
            slack_channel="#alerts",
            slack_api_url=slack.api_url,
            max_concurrent=1,
        )
        env = settings_env(base)
        a = ServiceProcess({**env, "SRE_AGENT_REPLICA_ID": "replica-a"}, tmp_path / "a.log")
        b = ServiceProcess({**env, "SRE_AGENT_REPLICA_ID": "replica-b"}, tmp_path / "b.log")
        with a, b:
            am = AlertmanagerServer(
                tmp_path / "am",
                f"{a.url}/webhook/alert",
                also=(f"{b.url}/webhook/alert",),
                group_by=("namespace",),
            )
            with am:
                started = datetime.now(UTC) - timedelta(minutes=2)
                alerts = [
                    am_alert(
                        {
                            "alertname": "KubePodCrashLooping",
                            "namespace": namespace,
                            "pod": f"api-{n}",
                            "severity": "critical",
                        },
                        {"summary": f"api-{n} restarts"},
                        starts_at=started,
                    )
                    for namespace in ("shop", "web")
                    for n in range(2)
                ]
                am.post(alerts)
                stored = wait_for(
                    lambda: len(rows := _rows(postgres_url)) == 4 and rows,
                    30,
                    "both groups stored",
                )
                assert len({r["id"] for r in stored}) == 4  # each firing once, not twice

                # Kill replica a while it holds a model run.
                held = wait_for(
                    lambda: [
                        r
                        for r in _rows(postgres_url)
                        if r["status"] == "running" and (r["owner"] or "").startswith("replica-a/")
                    ],
                    60,
                    "replica a to be running an investigation",
                )
                victim = held[0]["id"]
                assert a.proc is not None
                a.proc.kill()  # SIGKILL: no shutdown, the lease stays behind
                a.proc.wait()
                killed_at = time.monotonic()

                def taken_over() -> bool:
                    row = next(r for r in _rows(postgres_url) if r["id"] == victim)
                    return (row["owner"] or "").startswith("replica-b/") or row["status"] in (
                        "completed",
                        "degraded",
                    )

                wait_for(taken_over, LEASE * 4 + 10, "replica b to take the killed run up")
                failover = time.monotonic() - killed_at
                assert failover >= LEASE * 0.5  # not while a's lease was live

                def all_done() -> list[dict[str, Any]]:
                    rows = _rows(postgres_url)
                    return rows if all(r["status"] == "completed" for r in rows) else []

                final = wait_for(all_done, 120, "every alert to be investigated")
                attempts = {r["id"]: r["attempts"] for r in final}
                assert attempts[victim] == 2  # started on a, finished on b
                assert all(n == 1 for ident, n in attempts.items() if ident != victim), attempts

                # Restarted, replica a takes nothing back and runs nothing again.
                a.start()
                time.sleep(LEASE + 1)
                again = _rows(postgres_url)
                assert {r["id"]: r["attempts"] for r in again} == attempts
                assert all(r["status"] == "completed" for r in again)
                assert (
                    httpx.get(f"{a.url}/investigations/{victim}", timeout=5).json()["status"]
                    == "completed"
                )

        # One thread per group: one top-level message each, every other alert a reply.
        top = slack.channel_messages()
        assert len(top) == 2, [m.get("text") for m in top]
        replies = Counter(len(slack.replies(m["ts"])) for m in top)
        assert sum(n * k for n, k in replies.items()) == 2  # the other alerts, in the threads
        print(f"failover after kill -9: {failover:.1f} s (lease {LEASE:g} s)")
