"""Authentication on everything but the probes (sre_agent/auth.py, api/login.py): what a
person, a script and an attacker each get, against the real app."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

from sre_agent.app import create_app
from sre_agent.auth import OPEN_PATHS, SESSION_COOKIE
from sre_agent.settings import Settings
from tests.conftest import settings_env
from tests.support.service import ServiceProcess

ALICE = "alice-" + secrets.token_urlsafe(24)
BOB = "bob-" + secrets.token_urlsafe(24)
HOOK = "hook-" + secrets.token_urlsafe(24)
TOKENS = f"alice={ALICE},bob={BOB}"

ALERT = {
    "version": "4",
    "status": "firing",
    "receiver": "sre-agent",
    "groupKey": '{}:{alertname="KubePodCrashLooping"}',
    "groupLabels": {},
    "commonLabels": {},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "KubePodCrashLooping",
                "severity": "warning",
                "namespace": "shop",
                "pod": "cart-1",
            },
            "annotations": {"summary": "cart is crash looping"},
            "startsAt": "2026-12-01T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": "aaaa0000bbbb1111",
        }
    ],
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def secured(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    settings = make_settings(api_tokens=TOKENS, webhook_token=HOOK, session_secret="k" * 32)
    with TestClient(create_app(settings)) as client:
        yield client


def _every_route(client: TestClient) -> list[tuple[str, str]]:
    """(method, path) of every route and mount the app has, documented or not: a route
    added tomorrow is in this table without anyone listing it."""
    found = []
    for route in _walk(client.app.routes):  # type: ignore[attr-defined]
        path = re.sub(r"\{[^}]+\}", "x", getattr(route, "path", ""))
        if isinstance(route, Mount):
            found.append(("GET", path + "/anything.css"))
        elif isinstance(route, APIRoute | Route):
            for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
                found.append((method, path))
    return found


def _walk(routes: list[Any]) -> Iterator[Any]:
    """Routes, with those of included routers (FastAPI keeps them behind a wrapper)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _walk(inner.routes)
        else:
            yield route


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith("/static/")


def test_every_route_but_the_probes_refuses_a_request_without_credentials(secured):
    routes = _every_route(secured)
    assert ("POST", "/investigations/x/chat") in routes and ("GET", "/docs") in routes
    protected = [(m, p) for m, p in routes if not _is_open(p)]
    assert len(protected) >= 8, protected
    for method, path in protected:
        answer = secured.request(method, path, json={"message": "hi"})
        assert answer.status_code == 401, (method, path, answer.status_code, answer.text)
        assert answer.json()["error"].startswith("authentication required")
        assert answer.headers["www-authenticate"] == "Bearer"
    # The open ones are exactly the probes, the webhook, the login page, Slack's clicks
    # (each verified by Slack's signature) and the assets.
    known = {"/healthz", "/readyz", "/metrics", "/webhook/alert", "/login", "/slack/interactions"}
    opened = {p for _, p in routes if _is_open(p)}
    assert known <= opened
    assert opened - known == {p for p in opened if p.startswith("/static/")}
    for path in ("/healthz", "/metrics"):
        assert secured.get(path).status_code == 200
    assert 'sre_agent_auth_failures_total{reason="missing"}' in secured.get("/metrics").text


def test_a_browser_without_a_session_is_sent_to_the_login_page(secured):
    answer = secured.get(
        "/investigations/abc?format=json", headers={"Accept": "text/html"}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Finvestigations%2Fabc%3Fformat%3Djson"


def test_api_tokens_open_the_api_and_the_webhook_token_does_not(secured):
    assert secured.get("/investigations", headers=bearer(ALICE)).status_code == 200
    assert secured.get("/investigations", headers=bearer(BOB)).status_code == 200
    refused = secured.get("/investigations", headers=bearer(HOOK))
    assert refused.status_code == 401 and HOOK not in refused.text
    assert secured.get("/investigations", headers=bearer(ALICE[:-1])).status_code == 401
    assert secured.get("/investigations", headers={"Authorization": ALICE}).status_code == 401
    # ...and the webhook keeps its own token: an API token does not post alerts.
    assert secured.post("/webhook/alert", json=ALERT, headers=bearer(ALICE)).status_code == 401
    assert secured.post("/webhook/alert", json=ALERT, headers=bearer(HOOK)).status_code == 202
    metrics = secured.get("/metrics").text
    assert re.search(r'sre_agent_auth_failures_total\{reason="bad_token"\} 3\.0', metrics)


def test_a_bad_token_is_logged_without_the_token(secured, caplog):
    caplog.set_level("INFO", logger="sre_agent.auth")
    secured.get("/investigations", headers=bearer("not-a-token-" + "z" * 20))
    lines = [r.getMessage() for r in caplog.records if r.name == "sre_agent.auth"]
    assert any("bad_token" in line and "/investigations" in line for line in lines), lines
    assert not any("zzzz" in line for line in lines)


def _login(client: TestClient, token: str, next_: str = "/") -> httpx.Response:
    form = client.get(f"/login?next={next_}")
    assert form.status_code == 200, form.text
    csrf = re.search(r'name="csrf"[^>]*value="([^"]+)"', form.text) or re.search(
        r'value="([^"]+)"[^>]*name="csrf"', form.text
    )
    assert csrf, form.text
    return client.post(
        "/login",
        data={"token": token, "next": next_, "csrf": csrf.group(1)},
        follow_redirects=False,
    )


def _session_csrf(client: TestClient) -> str:
    page = client.get("/login")  # a logged-in user is sent on; read the token off a page
    assert page.status_code in (200, 303)
    from itsdangerous import URLSafeTimedSerializer

    cookie = client.cookies.get(SESSION_COOKIE)
    assert cookie
    data = URLSafeTimedSerializer("k" * 32, salt="sre-agent-session").loads(cookie)
    return str(data["c"])


def test_logging_in_with_a_token_sets_a_strict_http_only_session_and_logging_out_ends_it(
    secured,
):
    wrong = _login(secured, "wrong-" + "x" * 20)
    assert wrong.status_code == 401 and "not valid" in wrong.text
    answer = _login(secured, ALICE, "/investigations")
    assert answer.status_code == 303 and answer.headers["location"] == "/investigations"
    cookie = answer.headers["set-cookie"]
    assert f"{SESSION_COOKIE}=" in cookie and "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()
    assert "Secure" not in cookie  # plain http on loopback; https gets Secure (below)
    assert secured.get("/investigations").status_code == 200
    stolen = secured.cookies.get(SESSION_COOKIE)
    csrf = _session_csrf(secured)
    out = secured.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    secured.cookies.clear()
    assert secured.get("/investigations").status_code == 401
    # The old cookie, replayed after logout, is refused too.
    replay = secured.get("/investigations", headers={"Cookie": f"{SESSION_COOKIE}={stolen}"})
    assert replay.status_code == 401
    metrics = secured.get("/metrics").text
    assert 'sre_agent_auth_failures_total{reason="bad_login"} 1.0' in metrics
    assert 'sre_agent_auth_failures_total{reason="bad_session"} 1.0' in metrics


def test_a_session_cookie_is_secure_when_users_reach_the_service_over_https(make_settings):
    settings = make_settings(api_tokens=TOKENS, public_url="https://testserver")
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        answer = _login(client, ALICE)
        assert answer.status_code == 303
        assert "Secure" in answer.headers["set-cookie"]
        assert client.get("/investigations").status_code == 200
    # Over a port-forward to plain http the cookie cannot be Secure, or no login would work.
    with TestClient(create_app(settings), base_url="http://localhost") as client:
        answer = _login(client, ALICE)
        assert answer.status_code == 303 and "Secure" not in answer.headers["set-cookie"]


def test_login_goes_on_only_to_a_path_of_this_service(secured):
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        answer = _login(secured, ALICE, target)
        assert answer.status_code == 303 and answer.headers["location"] == "/", target
        secured.cookies.clear()


def test_a_session_must_send_its_csrf_token_to_change_anything(secured):
    assert _login(secured, ALICE).status_code == 303
    csrf = _session_csrf(secured)
    # No header: refused before anything runs (the id need not exist).
    refused = secured.post("/investigations/nope/chat", json={"message": "why?"})
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
    wrong = secured.post(
        "/investigations/nope/chat", json={"message": "why?"}, headers={"X-CSRF-Token": "x"}
    )
    assert wrong.status_code == 403
    passed = secured.post(
        "/investigations/nope/chat", json={"message": "why?"}, headers={"X-CSRF-Token": csrf}
    )
    assert passed.status_code == 404  # through auth, to the route
    # A cross-site form post (another site's page submitting to us) is refused...
    forged = secured.post(
        "/logout",
        data={"csrf": "guess"},
        headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
        follow_redirects=False,
    )
    assert forged.status_code == 403
    # ...and so is our own logout form without its token.
    assert secured.post("/logout", data={}, follow_redirects=False).status_code == 403
    assert secured.get("/investigations").status_code == 200  # still logged in


def test_the_login_form_itself_refuses_a_post_without_its_token(secured):
    answer = secured.post("/login", data={"token": ALICE, "next": "/"}, follow_redirects=False)
    assert answer.status_code == 403
    assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")


def test_a_bearer_token_needs_no_csrf_token(secured):
    answer = secured.post(
        "/investigations/nope/chat", json={"message": "why?"}, headers=bearer(ALICE)
    )
    assert answer.status_code == 404


def test_sessions_end_when_their_token_is_removed(make_settings):
    settings = make_settings(api_tokens=TOKENS, session_secret="k" * 32)
    with TestClient(create_app(settings)) as client:
        assert _login(client, ALICE).status_code == 303
        cookie = client.cookies.get(SESSION_COOKIE)
    rotated = make_settings(api_tokens=f"bob={BOB}", session_secret="k" * 32)
    with TestClient(create_app(rotated)) as client:
        assert (
            client.get(
                "/investigations", headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}
            ).status_code
            == 401
        )
    same = make_settings(api_tokens=TOKENS, session_secret="k" * 32)
    with TestClient(create_app(same)) as client:  # a restart with the same secret keeps it
        assert (
            client.get(
                "/investigations", headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}
            ).status_code
            == 200
        )


def _replay(client: TestClient, cookie: str | None) -> int:
    return client.get(
        "/investigations", headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}
    ).status_code


def test_a_logged_out_session_stays_ended_after_a_restart(make_settings):
    settings = make_settings(api_tokens=TOKENS, session_secret="k" * 32)
    with TestClient(create_app(settings)) as client:
        assert _login(client, ALICE).status_code == 303
        cookie = client.cookies.get(SESSION_COOKIE)
        csrf = _session_csrf(client)
        out = client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
        assert out.status_code == 303
    with TestClient(create_app(settings)) as client:  # the same database, a new process
        assert _replay(client, cookie) == 401


def test_the_session_cookie_does_not_carry_a_guessable_hash_of_the_token(secured):
    import hashlib

    from itsdangerous import URLSafeTimedSerializer

    assert _login(secured, ALICE).status_code == 303
    cookie = secured.cookies.get(SESSION_COOKIE)
    data = URLSafeTimedSerializer("k" * 32, salt="sre-agent-session").loads(cookie)
    assert ALICE not in str(data)
    plain = hashlib.sha256(ALICE.encode()).hexdigest()
    assert all(str(v)[:12] not in plain for v in data.values())


@pytest.fixture
def proxied(make_settings, tmp_path) -> Callable[[str], ServiceProcess]:
    """The real service behind a (pretend) auth proxy at the given trusted CIDR."""
    started: list[ServiceProcess] = []

    def start(cidrs: str) -> ServiceProcess:
        settings = make_settings(
            auth_proxy_header="X-Forwarded-User",
            auth_proxy_cidrs=cidrs,
            allowed_hosts="localhost,127.0.0.1",
        )
        service = ServiceProcess(settings_env(settings), tmp_path / f"log-{len(started)}")
        started.append(service.start())
        return service

    yield start
    for service in started:
        service.stop()


def test_the_proxy_header_is_trusted_only_from_the_proxy_addresses(proxied):
    trusted = proxied("127.0.0.1/32")
    answer = httpx.get(
        f"{trusted.url}/investigations", headers={"X-Forwarded-User": "carol@example.com"}
    )
    assert answer.status_code == 200
    assert httpx.get(f"{trusted.url}/investigations").status_code == 401
    # A proxy's user changes nothing without the CSRF token its pages carry.
    carol = {"X-Forwarded-User": "carol@example.com"}
    chat = f"{trusted.url}/investigations/nope/chat"
    assert httpx.post(chat, json={"message": "why?"}, headers=carol).status_code == 403
    page = httpx.get(f"{trusted.url}/", headers={**carol, "Accept": "text/html"}).text
    token = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert token, page[:500]
    passed = httpx.post(
        chat, json={"message": "why?"}, headers={**carol, "X-CSRF-Token": token.group(1)}
    )
    assert passed.status_code == 404  # through auth, to the route
    # Two values (a proxy that appends its header to the client's): refused, not guessed.
    doubled = httpx.get(
        f"{trusted.url}/investigations",
        headers=[("X-Forwarded-User", "mallory"), ("X-Forwarded-User", "carol@example.com")],
    )
    assert doubled.status_code == 401
    elsewhere = proxied("10.0.0.0/8")  # the proxy lives elsewhere: loopback forged it
    forged = httpx.get(
        f"{elsewhere.url}/investigations", headers={"X-Forwarded-User": "carol@example.com"}
    )
    assert forged.status_code == 401
    metrics = httpx.get(f"{elsewhere.url}/metrics").text
    assert 'sre_agent_auth_failures_total{reason="untrusted_proxy_header"} 1.0' in metrics
    assert "untrusted_proxy_header" in elsewhere.log()


def _serve(env: dict[str, str], host: str) -> subprocess.CompletedProcess[str]:
    """``sre-agent serve`` on ``host``, expected to refuse before it binds anything."""
    return subprocess.run(
        [sys.executable, "-m", "sre_agent.cli", "serve", "--host", host, "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serving_every_interface_with_no_authentication_is_refused(make_settings):
    env = {"PATH": "/usr/bin:/bin", **settings_env(make_settings())}
    refused = _serve(env, "0.0.0.0")
    assert refused.returncode == 2, refused.stderr
    message = refused.stderr
    for name in ("SRE_AGENT_API_TOKENS", "SRE_AGENT_AUTH_PROXY_HEADER", "ALLOW_ANONYMOUS"):
        assert name in message
    assert "Traceback" not in message


def test_the_cli_sends_its_api_token(make_settings, tmp_path):
    settings = make_settings(api_tokens=TOKENS, allowed_hosts="localhost,127.0.0.1")
    service = ServiceProcess(settings_env(settings), tmp_path / "log").start()
    try:
        base = {"PATH": "/usr/bin:/bin", "SRE_AGENT_URL": service.url}
        without = subprocess.run(
            [sys.executable, "-m", "sre_agent.cli", "list"],
            env=base,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert without.returncode == 2
        assert "needs an API token: set SRE_AGENT_API_TOKEN" in without.stderr
        assert "/login" not in without.stderr  # the service's words for browsers
        wrong = subprocess.run(
            [sys.executable, "-m", "sre_agent.cli", "list"],
            env={**base, "SRE_AGENT_API_TOKEN": "wrong-" + "w" * 20},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert wrong.returncode == 2 and "refused SRE_AGENT_API_TOKEN" in wrong.stderr
        assert "wwww" not in wrong.stderr
        listed = subprocess.run(
            [sys.executable, "-m", "sre_agent.cli", "list"],
            env={**base, "SRE_AGENT_API_TOKEN": BOB},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listed.returncode == 0, listed.stderr
    finally:
        service.stop()
