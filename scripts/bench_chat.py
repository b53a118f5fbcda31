#!/usr/bin/env python3
"""Follow-up chat's own overhead: over many long turns (a large tool result now and then,
the prompt held to its budget), each turn's wall time minus the model's time, as the API
reports it in ``usage.seconds``.

    .venv/bin/python scripts/bench_chat.py [--turns 16] [--budget 4000]

The app runs in process (starlette's TestClient) against the scripted Ollama and the fake
Kubernetes API. Prints; asserts nothing (tests/integration/test_chat.py checks that the
prompt stays within the budget).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sre_agent.app import create_app  # noqa: E402
from sre_agent.settings import load_settings  # noqa: E402
from tests.support.fake_kube import WORLD_HOMEPAGE, FakeKube  # noqa: E402
from tests.support.fake_ollama import FakeOllama, call, say  # noqa: E402
from tests.support.model_scripts import investigator  # noqa: E402
from tests.support.net import free_port  # noqa: E402

FIRING = json.loads((ROOT / "examples" / "alertmanager" / "group-firing-homepage.json").read_text())
POD = "bruno-site-api-7d9f8c6b5-x2x4q"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=16)
    parser.add_argument("--budget", type=int, default=4000, help="prompt_budget_tokens")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, FakeOllama() as ollama, FakeKube() as kube:
        kube.load_file(WORLD_HOMEPAGE)
        settings = load_settings(
            ollama_url=ollama.url,
            prometheus_url=f"http://127.0.0.1:{free_port()}",
            kubeconfig=kube.write_kubeconfig(Path(tmp) / "kubeconfig"),
            database_url=f"sqlite:///{Path(tmp) / 'bench.db'}",
            backend_timeout=2.0,
            allowed_hosts="testserver",
            prompt_budget_tokens=args.budget,
        )
        with TestClient(create_app(settings)) as client:
            ollama.default = investigator
            results = client.post("/webhook/alert?wait=true", json=FIRING).json()["results"]
            [ident] = [
                r["investigation_id"] for r in results if r["alert_name"] == "KubePodCrashLooping"
            ]
            overhead = []
            for turn in range(args.turns):
                count = 120 if turn == 7 else 25
                words = " ".join(
                    f"pod-{turn}-{i} restarted at 03:{i % 60:02d}" for i in range(count)
                )
                if turn % 4 == 1:  # now and then a large tool result
                    ollama.enqueue(
                        call("kubectl_logs", namespace="homepage", pod=POD, tail_lines=400)
                    )
                ollama.enqueue(say(f"Answer {turn}: {words} {words}"))
                started = time.perf_counter()
                body = client.post(
                    f"/investigations/{ident}/chat",
                    json={"message": f"Question {turn}: {words}"[:4000]},
                ).json()
                overhead.append(time.perf_counter() - started - body["usage"]["seconds"])
    overhead.sort()
    print(
        f"chat turn overhead (wall - model) over {len(overhead)} long turns,"
        f" prompt budget {args.budget} tokens:"
        f" median {statistics.median(overhead) * 1000:.0f} ms,"
        f" max {overhead[-1] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
