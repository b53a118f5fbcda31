#!/usr/bin/env python3
"""Webhook ack latency under the delivery patterns Alertmanager really produces.

Starts a real ``sre-agent serve`` on loopback (SQLite in a temporary
directory; Ollama, Prometheus and Kubernetes pointed at closed ports, so the
workers fail fast and no LLM work competes with intake beyond what a down
model server costs), then measures, from the client side, the time from
sending a POST to reading its answer:

- ``same group``: 20 concurrent clients post one 5-alert group 500 times in
  all (an HA pair of Alertmanagers with retries: every post after the first
  is a duplicate);
- ``new fingerprints``: the same, but each post carries 5 new alerts;
- ``1,000-alert group``: one group of 1,000 new alerts, posted 5 times.

While each runs, a probe sends ``GET /healthz`` every 20 ms and reports its
latency too: it answers from the event loop, so it shows how much the
intake blocks everything else (chat, ``/readyz``, the workers).

Prints one line per figure; nothing is asserted. To compare against another
tree, run it with ``PYTHONPATH=/path/to/tree:/path/to/tree/tools``: the
service subprocess inherits it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alert(fingerprint: str, n: int) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {
            "alertname": "KubePodCrashLooping",
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


def _group(fingerprints: list[str]) -> dict[str, Any]:
    return {
        "version": "4",
        "status": "firing",
        "receiver": "ai-agent-webhook",
        "groupKey": '{}:{alertname="KubePodCrashLooping"}',
        "truncatedAlerts": 0,
        "groupLabels": {"alertname": "KubePodCrashLooping"},
        "commonLabels": {"alertname": "KubePodCrashLooping"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [_alert(fp, n) for n, fp in enumerate(fingerprints)],
    }


def _new_fingerprints(count: int) -> list[str]:
    return [uuid.uuid4().hex[:16] for _ in range(count)]


def _figures(name: str, samples: list[float]) -> str:
    if not samples:
        return f"{name:<34} no samples"
    ms = sorted(s * 1000 for s in samples)
    q = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
    return (
        f"{name:<34} n={len(ms):<5} p50 {q[49]:8.1f} ms  p95 {q[94]:8.1f} ms"
        f"  p99 {q[98]:8.1f} ms  max {ms[-1]:8.1f} ms"
    )


async def _probe(url: str, stop: asyncio.Event, samples: list[float]) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        while not stop.is_set():
            started = time.perf_counter()
            await http.get(f"{url}/healthz")
            samples.append(time.perf_counter() - started)
            await asyncio.sleep(0.02)


async def _post_many(
    url: str, bodies: list[bytes], clients: int
) -> tuple[list[float], dict[int, int]]:
    """``clients`` concurrent keep-alive connections share the bodies; latency per post."""
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

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, codes


async def _phase(url: str, name: str, bodies: list[bytes], clients: int) -> None:
    stop, probe = asyncio.Event(), []
    prober = asyncio.create_task(_probe(url, stop, probe))
    started = time.perf_counter()
    latencies, codes = await _post_many(url, bodies, clients)
    wall = time.perf_counter() - started
    stop.set()
    await prober
    print(_figures(f"{name}: ack", latencies))
    print(_figures(f"{name}: /healthz meanwhile", probe))
    print(f"{'':<34} {len(bodies)} posts in {wall:.2f} s, answers {codes}")


def _start(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SRE_AGENT_")}
    env.update(
        SRE_AGENT_DATABASE_URL=f"sqlite:///{tmp / 'bench.db'}",
        SRE_AGENT_OLLAMA_URL=f"http://127.0.0.1:{_free_port()}",
        SRE_AGENT_PROMETHEUS_URL=f"http://127.0.0.1:{_free_port()}",
        SRE_AGENT_KUBECONFIG=str(tmp / "no-kubeconfig"),
        SRE_AGENT_REINVESTIGATE="false",
        SRE_AGENT_LOG_LEVEL="WARNING",
    )
    log = open(tmp / "service.log", "wb")  # noqa: SIM115 - lives as long as the process
    cmd = [sys.executable, "-m", "sre_agent.cli", "serve", "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"sre-agent exited:\n{(tmp / 'service.log').read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("sre-agent did not answer /healthz in 30 s")


async def _run(url: str, posts: int, clients: int, big: int, big_posts: int) -> None:
    import json

    same = json.dumps(_group(_new_fingerprints(5))).encode()
    await _phase(url, f"same 5-alert group x{posts}", [same] * posts, clients)
    fresh = [json.dumps(_group(_new_fingerprints(5))).encode() for _ in range(posts)]
    await _phase(url, f"new fingerprints x{posts}", fresh, clients)
    large = [json.dumps(_group(_new_fingerprints(big))).encode() for _ in range(big_posts)]
    await _phase(url, f"{big:,}-alert group x{big_posts}", large, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=500)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--big", type=int, default=1000, help="alerts in the large group")
    parser.add_argument("--big-posts", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-webhook-") as tmp:
        port = _free_port()
        proc = _start(Path(tmp), port)
        try:
            print(f"sre-agent serve on 127.0.0.1:{port}, {args.clients} clients")
            asyncio.run(
                _run(f"http://127.0.0.1:{port}", args.posts, args.clients, args.big, args.big_posts)
            )
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
