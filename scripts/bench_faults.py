#!/usr/bin/env python3
"""The figures the fault tests used to bound with wall-clock limits, as figures: while
the model server hangs, how fast ``sre-agent serve`` answers ``/healthz`` and ``/readyz``,
and how far past its deadline each investigation ends.

    .venv/bin/python scripts/bench_faults.py [--deadline 4] [--seconds 12]

``sre-agent serve`` runs as a real process against the scripted Ollama (every reply hangs
for a minute) and the fake Kubernetes API; Prometheus is unreachable. Prints; asserts
nothing (tests/integration/test_faults_*.py check the same behaviour by its outcomes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.fake_kube import WORLD_HOMEPAGE, FakeKube  # noqa: E402
from tests.support.fake_ollama import FakeOllama, hang  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.service import ServiceProcess  # noqa: E402

BODY = (ROOT / "examples" / "alertmanager" / "group-firing-homepage.json").read_bytes()


def figures(name: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    return (
        f"{name:<22} n={len(ms):<4} median {statistics.median(ms):6.1f} ms"
        f"  p95 {p95:6.1f} ms  max {ms[-1]:6.1f} ms"
    )


def probe(url: str, stop: threading.Event, samples: dict[str, list[float]]) -> None:
    with httpx.Client(timeout=10) as http:
        while not stop.is_set():
            for path in samples:
                started = time.perf_counter()
                http.get(url + path)
                samples[path].append(time.perf_counter() - started)
            stop.wait(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deadline", type=float, default=4.0, help="investigation_timeout")
    parser.add_argument("--seconds", type=float, default=12.0, help="how long to probe")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, FakeOllama() as ollama, FakeKube() as kube:
        ollama.default = hang(60)
        kube.load_file(WORLD_HOMEPAGE)
        env = {
            "SRE_AGENT_OLLAMA_URL": ollama.url,
            "SRE_AGENT_PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}",
            "SRE_AGENT_KUBECONFIG": str(kube.write_kubeconfig(Path(tmp) / "kubeconfig")),
            "SRE_AGENT_DATABASE_URL": f"sqlite:///{Path(tmp) / 'bench.db'}",
            "SRE_AGENT_INVESTIGATION_TIMEOUT": str(int(args.deadline)),
            "SRE_AGENT_REINVESTIGATE": "false",
            "SRE_AGENT_ALLOWED_HOSTS": "127.0.0.1",
        }
        with ServiceProcess(env, Path(tmp) / "service.log") as service:
            samples: dict[str, list[float]] = {"/healthz": [], "/readyz": []}
            stop = threading.Event()
            prober = threading.Thread(target=probe, args=(service.url, stop, samples))
            prober.start()
            posted = httpx.post(
                f"{service.url}/webhook/alert",
                content=BODY,
                headers={"Content-Type": "application/json"},
                timeout=10,
            ).json()
            idents = [r["investigation_id"] for r in posted["results"] if r["investigation_id"]]
            time.sleep(args.seconds)
            stop.set()
            prober.join()
            records = [httpx.get(f"{service.url}/investigations/{i}").json() for i in idents]
    print(f"the model hangs for 60 s; investigation deadline {args.deadline:g} s")
    for path, values in samples.items():
        print(figures(f"{path} meanwhile", values))
    for record in records:
        late = (record.get("duration_s") or 0) - args.deadline
        print(
            f"{record['alert']['labels']['alertname']:<34} {record['status']:<9}"
            f" ended {late:+.2f} s after the deadline"
        )
    if not records:
        print("no investigation was created:", json.dumps(posted)[:300])


if __name__ == "__main__":
    main()
