"""The HTTP edges of a real ``sre-agent serve``, reached with raw sockets the way
a slow, careless or hostile client reaches them: every such request gets a JSON
4xx it can read, within a bound, and leaves nothing stored."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from sre_agent.api.edge import host_allowed
from sre_agent.settings import load_settings
from tests.conftest import EXAMPLES
from tests.support.net import free_port
from tests.support.service import ServiceProcess

BOUND = 1.0  # SRE_AGENT_HEADER_TIMEOUT and SRE_AGENT_BODY_TIMEOUT in these tests
LIMIT = 64 * 1024  # SRE_AGENT_MAX_BODY_BYTES
FIRING = (EXAMPLES / "group-firing-homepage.json").read_bytes()
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    tmp = tmp_path_factory.mktemp("edges")
    env = {
        "SRE_AGENT_DATABASE_URL": f"sqlite:///{tmp / 'edges.db'}",
        "SRE_AGENT_OLLAMA_URL": f"http://127.0.0.1:{free_port()}",
        "SRE_AGENT_PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}",
        "SRE_AGENT_KUBECONFIG": str(tmp / "none"),
        "SRE_AGENT_SEVERITIES": "nothing-matches",  # accepted alerts start no work
        "SRE_AGENT_ALLOW_CUSTOM_SEVERITIES": "true",
        "SRE_AGENT_HEADER_TIMEOUT": str(BOUND),
        "SRE_AGENT_BODY_TIMEOUT": str(BOUND),
        "SRE_AGENT_MAX_BODY_BYTES": str(LIMIT),
    }
    with ServiceProcess(env, tmp / "service.log") as svc:
        yield svc


def _exchange(service: ServiceProcess, data: bytes, *, wait: float = 10 * BOUND) -> dict:
    """Send ``data``, then read until the server closes (or ``wait`` passes with the
    connection "still open"): what came back, and how it ended."""
    sock = socket.create_connection(("127.0.0.1", service.port))
    sock.settimeout(wait)
    received, ending = b"", "closed"
    try:
        sock.sendall(data)
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    except TimeoutError:
        ending = "still open"
    except ConnectionResetError:
        ending = "reset"
    finally:
        sock.close()
    return {"raw": received, "ending": ending}


def _response(raw: bytes) -> tuple[int, dict[str, str], dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


def _request(path: str, body: bytes = b"", method: str = "", **headers: str) -> bytes:
    fields = {"Host": "127.0.0.1", "Content-Length": str(len(body)), **headers}
    head = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in fields.items())
    method = method or ("POST" if body else "GET")
    return f"{method} {path} HTTP/1.1\r\n{head}\r\n".encode() + body


def _stored(service: ServiceProcess) -> int:
    return httpx.get(f"{service.url}/investigations").json()["count"]


def test_an_idle_connection_is_closed_within_the_bound(service):
    got = _exchange(service, b"")
    assert got["ending"] == "closed" and got["raw"] == b""  # nothing unsolicited


def test_headers_sent_a_byte_at_a_time_get_408_within_the_bound(service):
    sock = socket.create_connection(("127.0.0.1", service.port))
    sock.settimeout(10 * BOUND)
    started, received, cut = time.monotonic(), b"", False
    try:
        sock.sendall(b"POST /webhook/alert HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        while time.monotonic() - started < 10 * BOUND:  # slowloris: never finishes
            sock.sendall(b"X")
            time.sleep(BOUND / 5)
    except (BrokenPipeError, ConnectionResetError):
        cut = True
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    sock.close()
    assert cut, "the server held a connection that never finished its head"
    status, _, body = _response(received)
    assert status == 408 and "SRE_AGENT_HEADER_TIMEOUT" in body["error"]


def test_a_half_sent_body_gets_408_and_stores_nothing(service):
    before = _stored(service)
    head = _request("/webhook/alert", method="POST", Content_Type="application/json")
    head = head.replace(b"Content-Length: 0", f"Content-Length: {len(FIRING)}".encode())
    got = _exchange(service, head + FIRING[:100])
    assert got["ending"] == "closed"
    status, headers, body = _response(got["raw"])
    assert status == 408 and "SRE_AGENT_BODY_TIMEOUT" in body["error"]
    assert headers["connection"] == "close"
    assert _stored(service) == before


@pytest.mark.parametrize(
    ("name", "head"),
    [
        ("one 100 KB header", b"X-Big: " + b"a" * 100_000 + b"\r\n"),
        ("10,000 headers", b"X-A: b\r\n" * 10_000),
        ("200 small headers", b"".join(b"X-%d: b\r\n" % n for n in range(200))),
    ],
)
def test_oversized_headers_get_431(service, name, head):
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + head + b"\r\n"
    status, _, body = _response(_exchange(service, request)["raw"])
    assert status == 431, name
    assert "SRE_AGENT_MAX_HEADER" in body["error"]


def test_an_oversized_head_that_never_ends_gets_431_at_once(service):
    # No blank line: h11 must give up at its bound, not wait for the rest.
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100_000
    got = _exchange(service, request)
    status, _, body = _response(got["raw"])
    # 431, not the head deadline's 408: it gave up on the size, not waited out the time.
    assert status == 431 and "SRE_AGENT_MAX_HEADER_BYTES" in body["error"]


@pytest.mark.parametrize("size", [LIMIT + 1, 4 * LIMIT])
def test_a_body_over_the_limit_gets_a_413_the_client_reads(service, size):
    # The client writes its whole body, then reads: a server that closes with the body
    # unread makes the kernel reset the connection, and the 413 is lost.
    before = _stored(service)
    body = b'{"x": "' + b"a" * (size - 9) + b'"}'
    request = _request("/webhook/alert", body, Content_Type="application/json")
    got = _exchange(service, request)
    assert got["ending"] == "closed"
    status, _, answer = _response(got["raw"])
    assert status == 413 and f"limit of {LIMIT} bytes" in answer["error"]
    assert _stored(service) == before


def test_a_chunked_body_over_the_limit_gets_a_413_too(service):
    chunk = b"a" * 16_384
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(8)) + b"0\r\n\r\n"
    head = (
        b"POST /webhook/alert HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    got = _exchange(service, head + body)
    status, _, answer = _response(got["raw"])
    assert got["ending"] == "closed" and status == 413
    assert "SRE_AGENT_MAX_BODY_BYTES" in answer["error"]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None]
)
def test_only_json_is_accepted_so_a_browser_cannot_post_across_origins(service, content_type):
    # A cross-origin fetch() or form without preflight sends one of these (a Blob body
    # sends none); with no token set, accepting them would let any web page post alerts.
    before = _stored(service)
    headers = {"Content-Type": content_type} if content_type else {}
    response = httpx.post(f"{service.url}/webhook/alert", content=FIRING, headers=headers)
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]
    assert _stored(service) == before
    ok = httpx.post(
        f"{service.url}/webhook/alert",
        content=FIRING,
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert ok.status_code == 202


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("evil.example", False),
        ("localhost.evil.example:8080", False),
        ("127.0.0.1.nip.io", False),
        ("localhost", True),
        ("LOCALHOST:8080", True),
        ("127.0.0.1:8080", True),
        ("[::1]:8080", True),
        ("10.42.0.17:8080", True),  # the kubelet's probes and Prometheus use the pod IP
    ],
)
def test_the_host_header_is_checked_against_dns_rebinding(service, host, allowed):
    raw = _exchange(service, _request("/healthz", Host=host, Connection="close"))["raw"]
    status, _, body = _response(raw)
    if allowed:
        assert status == 200 and body == {"status": "ok"}
    else:
        assert status == 400 and "SRE_AGENT_ALLOWED_HOSTS" in body["error"]


def test_bad_requests_keep_the_connection_for_the_next_one(service):
    # Alertmanager reuses its connections: an answer to a bad body must not cost the
    # next delivery a reset.
    with httpx.Client(base_url=service.url) as http:
        headers = {"Content-Type": "application/json"}
        bad = http.post("/webhook/alert", content=b'{"version": "4", "alerts": [}', headers=headers)
        assert bad.status_code == 400
        worse = http.post(
            "/webhook/alert",
            content=FIRING.replace(b'"alertname": "', b'"alertname": "\\ud800'),
            headers=headers,
        )
        assert worse.status_code == 422 and "lone surrogate" in worse.json()["error"]
        good = http.post("/webhook/alert", content=FIRING, headers=headers)
        assert good.status_code == 202
        assert http.get("/healthz").status_code == 200


def test_the_deployed_settings_answer_to_the_names_alertmanager_and_kubelet_use():
    env = dict(
        line.split("=", 1) for line in (DEPLOY / "settings.env").read_text().splitlines() if line
    )
    allowed = load_settings(allowed_hosts=env["SRE_AGENT_ALLOWED_HOSTS"]).allowed_hosts
    values = yaml.safe_load((DEPLOY / "alertmanager" / "helmrelease-values.yaml").read_text())
    urls = [
        config["url"]
        for receiver in _find(values, "webhook_configs")
        for config in receiver
        if "url" in config
    ]
    assert urls
    for url in urls:
        assert host_allowed(httpx.URL(url).host, allowed), url
    assert host_allowed("localhost", allowed)  # kubectl port-forward
    assert host_allowed("10.42.0.17", allowed)  # probes, scrapes: the pod IP


def _find(tree: object, key: str) -> list:
    found = []
    if isinstance(tree, dict):
        for k, v in tree.items():
            found += [v] if k == key else _find(v, key)
    elif isinstance(tree, list):
        for item in tree:
            found += _find(item, key)
    return found


def test_an_exception_of_ours_is_a_json_500_that_keeps_the_connection():
    # A bug is the one thing no request can provoke on purpose: an app with one, behind
    # the same edge as the service.
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from sre_agent.api.edge import Edge

    buggy = FastAPI()

    @buggy.get("/bug")
    async def bug() -> None:
        raise KeyError("a bug of ours")

    buggy.add_middleware(  # where create_app puts it
        Edge,
        allowed_hosts=("testserver",),
        max_headers=100,
        max_header_bytes=32768,
        max_body_bytes=LIMIT,
        body_timeout=BOUND,
    )
    with TestClient(buggy, raise_server_exceptions=False) as client:
        response = client.get("/bug")
    assert response.status_code == 500
    assert response.json() == {"error": "internal error; see the service log"}
    assert response.headers.get("connection") != "close"


def _rejected(service: ServiceProcess) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{service.url}/metrics").text
    return {
        s.labels["reason"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "sre_agent_webhook_rejected_total"
    }


def test_edge_rejections_of_deliveries_are_logged_and_counted(service):
    """408 and 413 are made at the edge, before any route: the operator still sees them."""
    before = _rejected(service)
    marker = b'"body-marker-51c9"'
    head = _request("/webhook/alert", method="POST", Content_Type="application/json")
    slow = head.replace(b"Content-Length: 0", f"Content-Length: {len(FIRING)}".encode())
    assert _response(_exchange(service, slow + marker)["raw"])[0] == 408
    big = b'{"x": [' + b",".join([marker] * (LIMIT // len(marker) + 10)) + b"]}"
    too_big = _request("/webhook/alert", big, Content_Type="application/json")
    assert _response(_exchange(service, too_big)["raw"])[0] == 413
    after = _rejected(service)
    assert after["timeout"] == before["timeout"] + 1
    assert after["too_large"] == before["too_large"] + 1
    log = service.log()
    timeout = [line for line in log.splitlines() if "POST /webhook/alert: 408 timeout" in line][-1]
    assert "from 127.0.0.1:" in timeout and "bytes read" in timeout
    assert "POST /webhook/alert: 413 too_large from 127.0.0.1:" in log
    assert "body-marker-51c9" not in log


def test_a_head_refused_before_any_route_is_logged(service):
    head = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n"
    got = _exchange(service, head)  # never ends: h11 refuses it before the app sees it
    assert _response(got["raw"])[0] == 431
    assert "rejected a request: 431 headers_too_large from 127.0.0.1:" in service.log()
