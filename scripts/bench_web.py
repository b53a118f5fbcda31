#!/usr/bin/env python3
"""The web pages' figures: the investigation page's weight (HTML + CSS + JS, raw and
gzipped) and the list's time to first render with 1,000 investigations stored, in
Debian's Chromium (headless), against the real ``sre-agent serve``.

    .venv/bin/python scripts/bench_web.py [--records 1000] [--runs 10]

One investigation is run for real (scripted Ollama, fake Kubernetes); the other records
are copies of it under other alerts, written through the store. Prints; asserts nothing
(tests/integration/test_browser.py checks what the pages do).
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sre_agent.alerts import parse_payload  # noqa: E402
from sre_agent.app import create_app  # noqa: E402
from sre_agent.settings import load_settings  # noqa: E402
from sre_agent.store import Store  # noqa: E402
from tests.conftest import settings_env  # noqa: E402
from tests.support.browser import launch  # noqa: E402
from tests.support.fake_kube import WORLD_HOMEPAGE, FakeKube  # noqa: E402
from tests.support.fake_ollama import FakeOllama  # noqa: E402
from tests.support.model_scripts import investigator  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.service import ServiceProcess  # noqa: E402

FIRING = json.loads((ROOT / "examples" / "alertmanager" / "group-firing-homepage.json").read_text())
#: When the page first painted content, and when its DOM was ready (ms from navigation).
FIRST_PAINT = """() => new Promise((resolve) => {
  const dcl = performance.getEntriesByType("navigation")[0].domContentLoadedEventEnd;
  new PerformanceObserver((list, observer) => {
    const entry = list.getEntriesByName("first-contentful-paint")[0];
    if (entry) { observer.disconnect(); resolve({fcp: entry.startTime, dcl}); }
  }).observe({type: "paint", buffered: true});
})"""


def seed(store: Store, template_id: str, count: int) -> None:
    """``count - 1`` more finished investigations shaped like ``template_id``'s."""
    template = store.get(template_id)
    assert template is not None
    namespaces = ["homepage", "shop", "payments", "search", "monitoring"]
    names = ["KubePodCrashLooping", "TargetDown", "KubeDeploymentReplicasMismatch"]
    body = FIRING["alerts"][0]
    for n in range(count - 1):
        raw = copy.deepcopy(body)
        raw["labels"] |= {
            "alertname": names[n % len(names)],
            "namespace": namespaces[n % len(namespaces)],
            "pod": f"pod-{n}",
        }
        raw["fingerprint"] = f"{n:016x}"
        alert = parse_payload({**FIRING, "alerts": [raw]}).alerts[0]
        record, _ = store.create_or_get(alert)
        store.claim(record.id)
        store.finish(template.model_copy(update={"id": record.id}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    token = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory() as tmp, FakeOllama() as ollama, FakeKube() as kube:
        kube.load_file(WORLD_HOMEPAGE)
        ollama.default = investigator
        settings = load_settings(
            ollama_url=ollama.url,
            prometheus_url=f"http://127.0.0.1:{free_port()}",
            kubeconfig=kube.write_kubeconfig(Path(tmp) / "kubeconfig"),
            database_url=f"sqlite:///{Path(tmp) / 'bench.db'}",
            backend_timeout=2.0,
            allowed_hosts="testserver,127.0.0.1,localhost",
            api_tokens=f"bench={token}",
        )
        with TestClient(create_app(settings)) as client:
            results = client.post("/webhook/alert?wait=true", json=FIRING).json()["results"]
        [ident] = [
            r["investigation_id"] for r in results if r["alert_name"] == "KubePodCrashLooping"
        ]
        store = Store(settings.database_path)
        store.open()
        started = time.perf_counter()
        seed(store, ident, args.records - len(results) + 1)
        store.close()
        print(f"seeded {args.records} investigations in {time.perf_counter() - started:.1f} s")

        service = ServiceProcess(settings_env(settings), Path(tmp) / "serve.log").start()
        try:
            auth = {"Authorization": f"Bearer {token}"}
            page = httpx.get(
                f"{service.url}/investigations/{ident}", headers={**auth, "Accept": "text/html"}
            )
            assets = {}
            for ref in ("app.css", "app.js"):
                assets[ref] = httpx.get(f"{service.url}/static/web/{ref}").content
            raw = len(page.content) + sum(map(len, assets.values()))
            zipped = len(gzip.compress(page.content)) + sum(
                len(gzip.compress(a)) for a in assets.values()
            )
            print(
                f"investigation page weight: HTML {len(page.content) / 1024:.1f} KiB"
                f" + CSS {len(assets['app.css']) / 1024:.1f} KiB + JS {len(assets['app.js']) / 1024:.1f} KiB"
                f" = {raw / 1024:.1f} KiB ({zipped / 1024:.1f} KiB gzipped)"
            )
            server = []
            for _ in range(args.runs):
                t = time.perf_counter()
                listed = httpx.get(f"{service.url}/", headers={**auth, "Accept": "text/html"})
                server.append(time.perf_counter() - t)
                assert listed.status_code == 200, listed.text[:200]
            searched = []
            for _ in range(args.runs):
                t = time.perf_counter()
                httpx.get(f"{service.url}/?text=pod-999", headers={**auth, "Accept": "text/html"})
                searched.append(time.perf_counter() - t)
            print(
                f"GET / over {args.records} records (first page of 50): median"
                f" {statistics.median(server) * 1000:.0f} ms, max {max(server) * 1000:.0f} ms;"
                f" with a text filter: median {statistics.median(searched) * 1000:.0f} ms"
            )
            with sync_playwright() as pw:
                browser = launch(pw)  # Debian's chromium, as the browser test runs it
                context = browser.new_context(extra_http_headers=auth)
                paints, loaded = [], []
                for _ in range(args.runs):
                    tab = context.new_page()  # a fresh tab: each load paints first once
                    tab.goto(f"{service.url}/", wait_until="load")
                    timing = tab.evaluate(FIRST_PAINT)
                    paints.append(timing["fcp"])
                    loaded.append(timing["dcl"])
                    tab.close()
                browser.close()
            print(
                f"list in Chromium over {args.records} records: first contentful paint median"
                f" {statistics.median(paints):.0f} ms (max {max(paints):.0f}),"
                f" DOMContentLoaded median {statistics.median(loaded):.0f} ms"
            )
        finally:
            service.stop()


if __name__ == "__main__":
    main()
