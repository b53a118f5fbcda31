#!/usr/bin/env python3
"""Two replicas on Postgres: intake, claims and failover, on SQLite and on Postgres.

    .venv/bin/python scripts/bench_ha.py [--only sqlite|postgres] [--alerts 1000]

Starts a real PostgreSQL server (``tests/support/postgres.py``: Debian's
``postgresql``) and the scripted Ollama, then measures:

1. ``burst``, per backend: one ``sre-agent serve``; one alert is posted first and
   its model run is in progress (the scripted model sleeps 30 s before each answer)
   while ``--alerts`` new alerts arrive as 5-alert groups from 20 concurrent clients.
   ``ack``: client side, from sending a POST to reading its answer. ``/healthz``: a
   probe every 20 ms meanwhile (it answers from the event loop). ``stored``: the
   investigations in the database afterwards (``--alerts`` + 1 expected).
2. ``claim``, per backend, in-process on ``sre_agent.store.Store``, a table of
   ``--rows`` queued alerts: ``lease_evidence(owner, 30)`` (take the queue's head's
   evidence stage) and ``claim(id, owner, 30)`` (queued -> running under a lease),
   each timed ``--claims`` times.
3. ``failover``, Postgres only: replicas ``a`` and ``b`` on one database
   (SRE_AGENT_LEASE_SECONDS=5, the model answers after 3 s); alerts go to ``a``
   only; once ``a`` holds a model run it gets SIGKILL. ``kill -> b claims``: from
   the kill until that run's lease names ``b`` (or the run is done);
   ``lease expiry -> b claims``: the same, less what was left of ``a``'s lease when
   it died (``b`` notices expired leases every third of their length).

Prints one line per figure; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "lab"))

from sre_agent.alerts import Alert  # noqa: E402
from sre_agent.settings import Settings, load_settings  # noqa: E402
from sre_agent.store import Store  # noqa: E402
from tests.conftest import settings_env  # noqa: E402
from tests.support.fake_ollama import FakeOllama  # noqa: E402
from tests.support.model_scripts import investigator  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402
from tests.support.service import ServiceProcess  # noqa: E402

#: Seconds the scripted model sleeps before each answer during the burst.
BURST_THINK = 30.0
#: The failover's lease and model time.
LEASE = 5.0
FAILOVER_THINK = 3.0
CLIENTS = 20
GROUP = 5

W = 48  # the figure's name column


# --- figures --------------------------------------------------------------------------
def _figures(name: str, samples: list[float]) -> str:
    if not samples:
        return f"{name:<{W}} no samples"
    ms = sorted(s * 1000 for s in samples)
    q = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
    return (
        f"{name:<{W}} n={len(ms):<5} p50 {q[49]:8.1f} ms  p99 {q[98]:8.1f} ms  max {ms[-1]:8.1f} ms"
    )


def _seconds(name: str, samples: list[float]) -> str:
    if not samples:
        return f"{name:<{W}} no samples"
    return (
        f"{name:<{W}} n={len(samples):<5} min {min(samples):6.2f} s  median"
        f" {statistics.median(samples):6.2f} s  max {max(samples):6.2f} s"
        f"   ({', '.join(f'{s:.2f}' for s in samples)})"
    )


# --- alerts ---------------------------------------------------------------------------
def _wire_alert(fingerprint: str, n: int, name: str = "KubePodCrashLooping") -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {
            "alertname": name,
            "severity": "warning",
            "namespace": "shop",
            "pod": f"api-{n}",
            "container": "api",
        },
        "annotations": {"summary": f"Pod shop/api-{n} is crash looping", "description": "x" * 200},
        "startsAt": "2026-11-27T00:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up%3D%3D0",
        "fingerprint": fingerprint,
    }


def _group(alerts: list[dict[str, Any]]) -> bytes:
    name = alerts[0]["labels"]["alertname"]
    return json.dumps(
        {
            "version": "4",
            "status": "firing",
            "receiver": "ai-agent-webhook",
            "groupKey": f'{{}}:{{alertname="{name}"}}',
            "truncatedAlerts": 0,
            "groupLabels": {"alertname": name},
            "commonLabels": {"alertname": name},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "alerts": alerts,
        }
    ).encode()


def _new_group(size: int, name: str = "KubePodCrashLooping") -> bytes:
    return _group([_wire_alert(uuid.uuid4().hex[:16], n, name) for n in range(size)])


def _store_alert(n: int) -> Alert:
    return Alert.model_validate(
        {
            "status": "firing",
            "labels": {
                "alertname": "KubePodCrashLooping",
                "namespace": f"ns-{n % 20}",
                "severity": "critical",
                "pod": f"api-{n}",
            },
            "annotations": {"summary": f"api-{n} restarts"},
            "startsAt": "2026-12-01T00:00:00Z",
            "fingerprint": uuid.uuid4().hex[:16],
        }
    )


# --- the pieces -----------------------------------------------------------------------
def _slow(seconds: float, stop: threading.Event) -> Callable[[dict[str, Any]], Any]:
    """The scripted model: thinks ``seconds`` (cut short at clean-up), then answers."""

    def reply(request: dict[str, Any]) -> Any:
        stop.wait(seconds)
        return investigator(request)

    return reply


def _ollama(seconds: float, stop: threading.Event) -> FakeOllama:
    """A started scripted Ollama answering as :func:`_slow`."""
    fake = FakeOllama().start()
    fake.default = _slow(seconds, stop)
    # A killed or stopped service cuts its connections to the model: expected, so no
    # traceback on stderr for each.
    setattr(fake._server, "handle_error", lambda request, client_address: None)  # noqa: B010
    return fake


def _settings(tmp: Path, ollama_url: str, database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "ollama_url": ollama_url,
        "prometheus_url": f"http://127.0.0.1:{free_port()}",  # closed: fails fast
        "kubeconfig": str(tmp / "no-kubeconfig"),
        "database_url": database_url,
        "backend_timeout": 2.0,
        "allowed_hosts": "localhost,127.0.0.1",
        "incident_settle": 0.0,
        "reinvestigate": False,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return load_settings(**values)


def _count(database_url: str) -> int:
    if database_url.startswith("postgresql://"):
        with psycopg.connect(database_url, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM investigations").fetchone()
    else:
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as db:
            row = db.execute("SELECT count(*) FROM investigations").fetchone()
    return int(row[0]) if row else 0


def _running(url: str) -> int:
    body = httpx.get(f"{url}/investigations", params={"status": "running"}, timeout=10).json()
    return int(body["count"])


def _wait(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")


async def _probe(url: str, stop: asyncio.Event, samples: list[float]) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        while not stop.is_set():
            started = time.perf_counter()
            await http.get(f"{url}/healthz")
            samples.append(time.perf_counter() - started)
            await asyncio.sleep(0.02)


async def _burst(url: str, bodies: list[bytes]) -> tuple[list[float], list[float], dict[int, int]]:
    """``CLIENTS`` keep-alive clients share the posts; ack latencies, probe latencies."""
    latencies: list[float] = []
    codes: dict[int, int] = {}
    todo = iter(bodies)
    headers = {"Content-Type": "application/json"}

    async def client() -> None:
        async with httpx.AsyncClient(timeout=120) as http:
            for body in todo:
                started = time.perf_counter()
                response = await http.post(f"{url}/webhook/alert", content=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                codes[response.status_code] = codes.get(response.status_code, 0) + 1

    stop, probe = asyncio.Event(), list[float]()
    prober = asyncio.create_task(_probe(url, stop, probe))
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    stop.set()
    await prober
    return latencies, probe, codes


# --- 1. the burst -----------------------------------------------------------------------
def bench_burst(label: str, database_url: str, tmp: Path, alerts: int) -> None:
    stop = threading.Event()
    fake = _ollama(BURST_THINK, stop)
    service: ServiceProcess | None = None
    try:
        env = settings_env(_settings(tmp, fake.url, database_url))
        service = ServiceProcess(env, tmp / f"burst-{label}.log").start()
        first = _new_group(1, "KubeDeploymentReplicasMismatch")
        answer = httpx.post(
            f"{service.url}/webhook/alert",
            content=first,
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        answer.raise_for_status()
        url = service.url
        waited = time.perf_counter()
        _wait(lambda: _running(url) > 0, 60, "the first alert's model run")
        waited = time.perf_counter() - waited
        bodies = [_new_group(GROUP) for _ in range(max(1, alerts // GROUP))]
        started = time.perf_counter()
        acks, probe, codes = asyncio.run(_burst(service.url, bodies))
        wall = time.perf_counter() - started
        still = _running(service.url)
        stored = _count(database_url)
        name = f"{label}: burst {len(bodies) * GROUP:,} alerts"
        print(_figures(f"{name}: ack", acks))
        print(_figures(f"{name}: /healthz meanwhile", probe))
        print(
            f"{'':<{W}} {len(bodies)} posts in {wall:.2f} s, answers {codes};"
            f" stored {stored:,}; runs in progress after: {still}"
            f" (first run started {waited:.1f} s after its post)"
        )
    finally:
        stop.set()
        if service is not None:
            service.stop()
        fake.stop()


# --- 2. claims --------------------------------------------------------------------------
def bench_claims(label: str, location: str, rows: int, claims: int) -> None:
    store = Store(location)
    store.open()
    try:
        made: list[str] = []
        for start in range(0, rows, 100):
            opened, _ = store.create_group([_store_alert(n) for n in range(start, start + 100)])
            made.extend(ident for ident, _, _ in opened)
        leases: list[float] = []
        for n in range(claims):
            started = time.perf_counter()
            taken = store.lease_evidence(f"bench-{n % 2}/1", 30)
            leases.append(time.perf_counter() - started)
            if taken is None:
                raise RuntimeError("lease_evidence took nothing")
        runs: list[float] = []
        for ident in made[-claims:]:  # rows no evidence lease was taken on
            started = time.perf_counter()
            record = store.claim(ident, "bench-1/1", 30)
            runs.append(time.perf_counter() - started)
            if record is None:
                raise RuntimeError(f"claim({ident}) took nothing")
        print(_figures(f"{label}: lease_evidence, {len(made):,} queued", leases))
        print(_figures(f"{label}: claim, {len(made):,} queued", runs))
    finally:
        store.close()


# --- 3. failover --------------------------------------------------------------------------
def _leased(url: str) -> list[dict[str, Any]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(
            "SELECT i.id, i.status, l.owner, l.stage, l.expires_at FROM investigations i"
            " LEFT JOIN leases l ON l.investigation_id = i.id ORDER BY i.created_at"
        )
        names = [c.name for c in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def failover_once(pg: PostgresServer, tmp: Path, n: int) -> tuple[float, float, float, int]:
    """One kill -9 of replica a mid-run: (kill -> b's claim, lease left at the kill,
    lease expiry -> b's claim) in seconds, and the alerts posted until a ran one."""
    url = pg.database()
    stop = threading.Event()
    fake = _ollama(FAILOVER_THINK, stop)
    # Room for more than one run each: b takes the dead run up without waiting for its own.
    env = settings_env(
        _settings(tmp, fake.url, url, lease_seconds=LEASE, incidents=False, max_concurrent=4)
    )
    a = ServiceProcess({**env, "SRE_AGENT_REPLICA_ID": "a"}, tmp / f"failover-{n}-a.log")
    b = ServiceProcess({**env, "SRE_AGENT_REPLICA_ID": "b"}, tmp / f"failover-{n}-b.log")
    try:
        a.start()
        b.start()

        def held_by_a() -> list[dict[str, Any]]:
            return [
                r
                for r in _leased(url)
                if r["status"] == "running" and (r["owner"] or "").startswith("a/")
            ]

        # b hears of a's new work too (NOTIFY) and may take it first: post to a until a
        # runs one of them.
        victim, posted = None, 0
        for k in range(30):
            posted += 1
            httpx.post(
                f"{a.url}/webhook/alert",
                content=_new_group(1, f"Failover{k}"),
                headers={"Content-Type": "application/json"},
                timeout=30,
            ).raise_for_status()
            try:
                victim = _wait(held_by_a, 3 if k < 29 else 30, "a to run one", 0.05)[0]["id"]
                break
            except RuntimeError:
                continue
        if victim is None:
            raise RuntimeError("replica a never ran an investigation")
        assert a.proc is not None
        a.proc.kill()  # SIGKILL: no shutdown, its lease stays behind
        killed = time.time()
        a.proc.wait()
        # a is dead: its lease, as it left it (a renewal in flight was rolled back).
        lease = next(r for r in _leased(url) if r["id"] == victim)
        left = float(lease["expires_at"]) - killed

        def taken() -> bool:
            row = next(r for r in _leased(url) if r["id"] == victim)
            return (row["owner"] or "").startswith("b/") or row["status"] in (
                "completed",
                "degraded",
            )

        _wait(taken, LEASE * 4 + 20, "replica b to take the killed run up", 0.02)
        took = time.time() - killed
        return took, left, took - left, posted
    finally:
        stop.set()
        a.stop()
        b.stop()
        fake.stop()


def bench_failover(pg: PostgresServer, tmp: Path, trials: int) -> None:
    results = [failover_once(pg, tmp, n) for n in range(trials)]
    print(_seconds(f"postgres: kill -9 -> b claims (lease {LEASE:g} s)", [r[0] for r in results]))
    print(_seconds("postgres: lease left at the kill", [r[1] for r in results]))
    print(_seconds("postgres: lease expiry -> b claims", [r[2] for r in results]))
    posted = ", ".join(str(r[3]) for r in results)
    print(f"{'':<{W}} alerts posted to a until it ran one, per trial: {posted}")


# --- main -----------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("sqlite", "postgres"), help="one backend only")
    parser.add_argument("--alerts", type=int, default=1000, help="alerts in the burst")
    parser.add_argument("--rows", type=int, default=1000, help="queued rows for the claims")
    parser.add_argument("--claims", type=int, default=200, help="timed calls of each kind")
    parser.add_argument("--failovers", type=int, default=3, help="kill -9 trials")
    args = parser.parse_args()
    for name in list(os.environ):  # the developer's own settings stay out of it
        if name.startswith("SRE_AGENT_") or name == "OLLAMA_HOST":
            del os.environ[name]
    backends = [b for b in ("sqlite", "postgres") if args.only in (None, b)]
    print(
        f"# burst: {args.alerts:,} new alerts in {GROUP}-alert groups from {CLIENTS} clients"
        f" while a model run is in progress (the model thinks {BURST_THINK:g} s);"
        " ack = POST to answer, client side; /healthz probed every 20 ms"
    )
    print(
        f"# claims: in-process Store on {args.rows:,} queued rows, {args.claims} calls each"
        f" | failover: 2 replicas, lease {LEASE:g} s, model {FAILOVER_THINK:g} s/answer,"
        f" {args.failovers} kill -9 trials (postgres only)"
    )
    with tempfile.TemporaryDirectory(prefix="bench-ha-") as tmp_name:
        tmp = Path(tmp_name)
        pg: PostgresServer | None = None
        try:
            if "postgres" in backends:
                pg = PostgresServer()
                pg.start()
            for backend in backends:
                if backend == "sqlite":
                    database_url = f"sqlite:///{tmp / 'burst.db'}"
                else:
                    assert pg is not None
                    database_url = pg.database()
                bench_burst(backend, database_url, tmp, args.alerts)
            for backend in backends:
                if backend == "sqlite":
                    location = f"sqlite:///{tmp / 'claims.db'}"
                else:
                    assert pg is not None
                    location = pg.database()
                bench_claims(backend, location, args.rows, args.claims)
            if pg is not None and args.failovers > 0:
                bench_failover(pg, tmp, args.failovers)
        finally:
            if pg is not None:
                pg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
