#!/usr/bin/env python3
"""Regenerate the README's screenshots of the web pages:

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

writes ``list.png`` (the investigations list) and ``investigation.png`` (one investigation,
a cited finding opened and one chat question answered), 1280 pixels wide. The world is the
browser test's (tests/support/browser.py): a real ``sre-agent serve`` investigating the
homepage example group and one alert in a second namespace, against Debian's Prometheus
holding the homepage scenario's history, the fake Kubernetes API and the scripted Ollama,
shown by Debian's chromium (``make system-deps`` installs them). Nothing leaves the machine.

The model is scripted: its analysis cites the evidence the service really gathered, in
words written here.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.support.browser import (  # noqa: E402
    CHECKOUT,
    HOMEPAGE,
    STEP_MS,
    WebLab,
    launch,
    slow_answer,
)
from tests.support.fake_ollama import answer_json  # noqa: E402
from tests.support.model_scripts import alert_labels, investigator  # noqa: E402
from tests.support.prometheus import (  # noqa: E402
    PrometheusServer,
    homepage_series,
    openmetrics_text,
    prometheus_available,
)

QUESTION = "Why does it crash, and what should I change?"
ANSWER = (
    "The api container exits right after it starts: its previous log says "
    "SITE_API_UPSTREAM_URL is missing. Set it in the bruno-site-api deployment's env (or its "
    "ConfigMap) and roll the deployment; the crash loop ends with the next restart."
)
#: What a good model writes about the homepage crash loop, on top of the scripted causes.
WORDS = {
    "KubePodCrashLooping": {
        "summary": "The api container of bruno-site-api crash-loops: it exits at start "
        "because its configuration lacks SITE_API_UPSTREAM_URL.",
        "impact": "One of the two api replicas is down, so the homepage's API runs on half "
        "its capacity; a second crash would take it down.",
        "mitigation": [
            "Set SITE_API_UPSTREAM_URL in the deployment's env and roll it out",
            "Or roll back to the previous ReplicaSet until the setting is fixed",
        ],
    },
}


def writer(request: dict[str, Any]) -> Any:
    """The scripted investigator, with a summary, impact and mitigation in plain words."""
    reply = investigator(request)
    words = WORDS.get(alert_labels(request).get("alertname", ""))
    if not words or reply.tool_calls:
        return reply
    return answer_json({**json.loads(reply.content), **words})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        prometheus_url = None
        if prometheus_available():
            history = openmetrics_text(homepage_series())
            prometheus = PrometheusServer(
                workdir / "prometheus", openmetrics=history, lookback_delta="30m"
            )
            prometheus_url = stack.enter_context(prometheus).url
        else:
            print("prometheus is not installed (make system-deps): the reports say so")
        web = stack.enter_context(WebLab(workdir, prometheus_url))
        web.ollama.default = writer
        homepage = web.post(HOMEPAGE["alerts"], "homepage")
        records = web.wait_final(homepage + web.post([CHECKOUT], "payments"))
        [crash] = [
            i
            for i, r in records.items()
            if r["alert"]["labels"]["alertname"] == "KubePodCrashLooping"
            and r["alert"]["labels"]["namespace"] == "homepage"
        ]
        with sync_playwright() as playwright:
            browser = launch(playwright)
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.set_default_timeout(STEP_MS)
            page = context.new_page()
            web.login(page)
            page.wait_for_selector(f"#inv-{crash}")
            page.set_viewport_size({"width": 1280, "height": 360})  # no empty space below
            page.screenshot(path=args.out / "list.png", full_page=True)
            page.set_viewport_size({"width": 1280, "height": 800})

            page.goto(f"{web.url}/investigations/{crash}")
            page.click("li.cause details.finding >> nth=0 >> summary")
            web.ollama.enqueue(slow_answer(ANSWER.split(" "), pause=0.02))
            page.fill("#chat-form textarea[name=message]", QUESTION)
            page.click("#chat-form button[type=submit]")
            page.wait_for_selector("#chat-log .msg.assistant.done")
            page.evaluate("() => window.scrollTo(0, 0)")
            page.screenshot(path=args.out / "investigation.png", full_page=True)
            browser.close()
    for name in ("list.png", "investigation.png"):
        print(args.out / name)


if __name__ == "__main__":
    main()
