"""The browser test's world: a real ``sre-agent serve`` with API tokens and a webhook token,
investigating against the scripted Ollama and the fake Kubernetes API, and Debian's
chromium driven by Playwright. ``tests/integration/test_browser.py`` and
``scripts/screenshots.py`` both use it, so the screenshots show what the test checked.

Nothing is downloaded: Playwright launches ``/usr/bin/chromium`` (``make system-deps``
installs it), never a browser of its own (``playwright install`` is not needed).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright

from tests.support.fake_kube import WORLD_HOMEPAGE, FakeKube
from tests.support.fake_ollama import FakeOllama, Say, Wire, WireWriter, answer_json
from tests.support.model_scripts import alert_labels, analysis_from, has_evidence, investigator
from tests.support.net import free_port
from tests.support.service import ServiceProcess

CHROMIUM = Path("/usr/bin/chromium")
#: Headless, and quiet: no update checks, sync, field trials or QUIC probes of its own, so
#: the network log holds only what the pages ask for.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Per step, in milliseconds: Playwright's default 30 s would hide a hung page for long.
STEP_MS = 10_000
FINAL = ("completed", "degraded", "failed", "cancelled")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "alertmanager"
HOMEPAGE = json.loads((EXAMPLES / "group-firing-homepage.json").read_text())
#: An alert in a second namespace, one the fake cluster knows nothing about.
CHECKOUT = {
    "status": "firing",
    "labels": {
        "alertname": "KubePodCrashLooping",
        "container": "checkout",
        "job": "kube-state-metrics",
        "namespace": "payments",
        "pod": "checkout-5f6d7c8b9-k2m4p",
        "reason": "CrashLoopBackOff",
        "severity": "critical",
    },
    "annotations": {
        "description": "Pod payments/checkout-5f6d7c8b9-k2m4p (checkout) is in waiting state.",
        "summary": "Pod is crash looping.",
    },
    "startsAt": "2026-11-27T00:02:11.006Z",
    "endsAt": "0001-01-01T00:00:00Z",
    "generatorURL": "http://prometheus-k8s.monitoring.svc:9090/graph?g0.expr=up&g0.tab=1",
    "fingerprint": "7a1c0e55d2b94f10",
}


def launch(playwright: Playwright) -> Browser:
    """Debian's chromium, headless, with a fresh profile; a clear failure when it is missing."""
    if not CHROMIUM.exists():
        raise RuntimeError(
            f"{CHROMIUM} is missing: run `make system-deps` (installs Debian's chromium "
            "and chromium-driver); the browser test never downloads a browser"
        )
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def group(alerts: list[dict[str, Any]], namespace: str) -> dict[str, Any]:
    """An Alertmanager webhook body for ``alerts``, grouped by namespace."""
    return {
        **HOMEPAGE,
        "alerts": alerts,
        "groupLabels": {"namespace": namespace},
        "commonLabels": {"namespace": namespace},
        "groupKey": f'{{}}:{{namespace="{namespace}"}}',
    }


def slow_answer(words: list[str], pause: float = 0.4) -> Wire:
    """A model that streams its answer a word at a time, ``pause`` seconds apart, so a page
    can be seen mid-answer (the fake's own streaming is over in a few milliseconds)."""

    def write(wire: WireWriter, request: dict[str, Any]) -> None:
        wire.headers()
        for word in words:
            wire.line(wire.chunk(request, word + " "))
            if wire.stopped.wait(pause):
                return
        wire.line(
            wire.chunk(
                request,
                done=True,
                done_reason="stop",
                prompt_eval_count=400,
                eval_count=len(words) * 2,
                total_duration=10**9,
                eval_duration=10**9,
            )
        )
        wire.end()

    return Wire(write)


def without_cause(alertname: str) -> Callable[[dict[str, Any]], Say]:
    """The scripted investigator, except that its analysis of ``alertname`` names no root
    cause (a page then has nothing for "Cause confirmed" to confirm)."""

    def reply(request: dict[str, Any]) -> Say:
        mine = alert_labels(request).get("alertname") == alertname
        if mine and (request.get("format") or has_evidence(request)):
            return answer_json({**analysis_from(request), "root_causes": []})
        return investigator(request)

    return reply


class WebLab:
    """The service and its fakes, in ``workdir``; a context manager.

    ``token`` logs a person in (named ``oncall``); ``webhook_token`` is Alertmanager's.
    """

    def __init__(self, workdir: Path, prometheus_url: str | None = None) -> None:
        self.workdir = workdir
        #: Unset: a port nobody listens on (the reports then say Prometheus did not answer).
        self.prometheus_url = prometheus_url or f"http://127.0.0.1:{free_port()}"
        self.token = secrets.token_urlsafe(24)[:32]
        self.webhook_token = "am-" + secrets.token_urlsafe(24)
        self.ollama = FakeOllama()
        self.kube = FakeKube()
        self.service: ServiceProcess | None = None

    @property
    def url(self) -> str:
        assert self.service is not None, "the lab is not started"
        return self.service.url

    @property
    def netloc(self) -> str:
        return urlsplit(self.url).netloc

    def __enter__(self) -> WebLab:
        self.ollama.start()
        self.ollama.default = investigator
        self.kube.start()
        self.kube.load_file(WORLD_HOMEPAGE)
        env = {
            "SRE_AGENT_DATABASE_URL": f"sqlite:///{self.workdir / 'web.db'}",
            "SRE_AGENT_API_TOKENS": f"oncall={self.token}",
            "SRE_AGENT_WEBHOOK_TOKEN": self.webhook_token,
            "SRE_AGENT_OLLAMA_URL": self.ollama.url,
            "SRE_AGENT_PROMETHEUS_URL": self.prometheus_url,
            "SRE_AGENT_KUBECONFIG": str(self.kube.write_kubeconfig(self.workdir / "kubeconfig")),
            "SRE_AGENT_BACKEND_TIMEOUT": "2",
            # The pages of one investigation each: the homepage group is one incident,
            # whose page tests/integration/test_web_incident.py reads.
            "SRE_AGENT_INCIDENTS": "false",
        }
        self.service = ServiceProcess(env, self.workdir / "service.log")
        try:
            self.service.start()
        except BaseException:
            self.kube.stop()
            self.ollama.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.service is not None:
            self.service.stop()
        self.kube.stop()
        self.ollama.stop()

    # --- the API, as a program uses it --------------------------------------------------

    def api(self, path: str, **params: str) -> Any:
        response = httpx.get(
            self.url + path,
            params=params,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()

    def post(self, alerts: list[dict[str, Any]], namespace: str) -> list[str]:
        """Alertmanager posts ``alerts``; the ids of the investigations they started."""
        response = httpx.post(
            f"{self.url}/webhook/alert",
            json=group(alerts, namespace),
            headers={"Authorization": f"Bearer {self.webhook_token}"},
            timeout=10,
        )
        assert response.status_code == 202, response.text
        return [r["investigation_id"] for r in response.json()["results"] if r["investigation_id"]]

    def wait_final(self, ids: list[str], timeout: float = 30.0) -> dict[str, dict[str, Any]]:
        """Each investigation's record once all of ``ids`` have finished."""
        deadline = time.monotonic() + timeout
        while True:
            records = {i: self.api(f"/investigations/{i}") for i in ids}
            if all(r["status"] in FINAL for r in records.values()):
                return records
            if time.monotonic() > deadline:
                states = {i: r["status"] for i, r in records.items()}
                raise AssertionError(f"investigations not finished in {timeout} s: {states}")
            time.sleep(0.2)

    def give_feedback(self, ident: str, verdict: str, **fields: str) -> dict[str, Any]:
        """A verdict through the API with the person's bearer token (no CSRF: no browser)."""
        response = httpx.post(
            f"{self.url}/investigations/{ident}/feedback",
            json={"verdict": verdict, **fields},
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def session(self) -> tuple[httpx.Client, str]:
        """A person's web session over plain HTTP, made by the login form as a browser
        makes one: a client holding the session cookie, and the CSRF token its pages carry
        (for the ``X-CSRF-Token`` header of a fetch). The caller closes the client."""
        client = httpx.Client(base_url=self.url, timeout=10, headers={"Accept": "text/html"})
        form = client.get("/login")
        login_csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert login_csrf, form.text
        done = client.post(
            "/login", data={"token": self.token, "next": "/", "csrf": login_csrf.group(1)}
        )
        assert done.status_code == 303, done.text
        page = client.get("/")
        csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
        assert csrf, page.text[:500]
        return client, csrf.group(1)

    # --- the browser --------------------------------------------------------------------

    def login(self, page: Page, path: str = "/") -> None:
        """Log in through the form the way a person does: asked for a page, sent to /login."""
        page.goto(self.url + path)
        page.wait_for_url(f"{self.url}/login?**")
        page.fill("#login input[name=token]", self.token)
        page.click("#login button[type=submit]")
        page.wait_for_url(self.url + path)


class NetworkLog:
    """Every request a browser context makes (``foreign``: those not to the service), and
    what its pages complained of: console errors (a CSP violation is one) and uncaught
    script errors."""

    def __init__(self, context: BrowserContext, netloc: str) -> None:
        self.netloc = netloc
        self.urls: list[str] = []
        self.errors: list[str] = []
        context.on("request", lambda request: self.urls.append(request.url))
        context.on("console", self._console)
        context.on("weberror", lambda error: self.errors.append(f"uncaught: {error.error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text} ({message.location.get('url')})")

    def foreign(self) -> list[str]:
        return [
            u
            for u in self.urls
            if not u.startswith("data:")
            and (urlsplit(u).scheme != "http" or urlsplit(u).netloc != self.netloc)
        ]


#: The page's background as the eye sees it: the body's, else the root's, else white.
BACKGROUND_JS = """() => {
  for (const node of [document.body, document.documentElement]) {
    const c = getComputedStyle(node).backgroundColor;
    if (c && c !== "transparent" && !/rgba\\(.*,\\s*0\\)$/.test(c)) return c;
  }
  return "rgb(255, 255, 255)";
}"""


def luminance(css_color: str) -> float:
    """Relative luminance (WCAG) of an ``rgb(...)``/``rgba(...)`` colour, 0 (black) to 1."""
    inside = css_color[css_color.index("(") + 1 : css_color.rindex(")")]
    red, green, blue = (float(v) / 255 for v in inside.replace("/", ",").split(",")[:3])

    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * linear(red) + 0.7152 * linear(green) + 0.0722 * linear(blue)


def overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than its viewport (0: no sideways scrolling)."""
    return int(page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth"))
