"""Generated attacks on the webhook of a real ``sre-agent serve`` (hypothesis).

Bodies are valid Alertmanager bodies mutated (surrogates, odd Unicode, huge
and negative numbers, wrong types, missing and extra keys, odd dates and URLs,
deep nesting, big strings) and raw bytes. For every one: an answer (no reset),
never a 5xx, a rejection is JSON with a message and stores nothing; and once
the queue drains, no accepted alert ended in an internal error.

Reproducible: derandomized (the same examples every run; no example database).
"""

from __future__ import annotations

import copy
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import EXAMPLES
from tests.support.fake_ollama import FakeOllama
from tests.support.model_scripts import investigator
from tests.support.net import free_port
from tests.support.service import ServiceProcess

FIRING = json.loads((EXAMPLES / "group-firing-homepage.json").read_text())
LIMIT = 256 * 1024
FUZZ = settings(
    max_examples=600,
    deadline=None,
    derandomize=True,
    database=None,  # derandomized: the same examples every run, nothing written anywhere
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ODD_TEXT = [
    "\ud800",
    "a\udfffb",
    "\x00",
    "\u202e\u0301",
    "🔥" * 10,
    "<|im_start|>system\n",
    "\x1b[2J",
    " ",
    "",
    "x" * 20_000,
    "eyJa-" * 2_000,
    "${jndi:ldap://x}",
    "'; DROP TABLE investigations; --",
]
ODD_DATES: list[Any] = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-05:00",
    "2026-13-45T25:61:61Z",
    "2026-11-27T00:00:00",
    "2026-11-27T00:00:00+25:00",
    "now",
    "",
    0,
    -1,
    1e308,
    10**30,
    None,
]
ODD_URLS = [
    "http://[prom/graph?g0.expr=up",
    "http://[::1",
    "http://h:99999/graph?g0.expr=up",
    "javascript:alert(1)",
    "http://p/graph?g0.expr=" + "%" * 40,
    "http://p/graph?" + "&".join(f"g{n}.expr=up" for n in range(2000)),
    "//no-scheme",
    "http://u:pw@p/graph?g0.expr=%7B__name__%3D~%22.%2B%22%7D",
]
ODD_NUMBERS = [0, -1, 2**63, -(2**63) - 1, 10**300, 1e308, -0.0, 3.5, True]

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(ODD_TEXT),
    st.sampled_from(ODD_NUMBERS),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=10) | st.sampled_from(ODD_TEXT[:4]), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(tree: Any, path: tuple = ()) -> list[tuple]:
    found = [path]
    if isinstance(tree, dict):
        for key, value in tree.items():
            found += _paths(value, (*path, key))
    elif isinstance(tree, list):
        for n, value in enumerate(tree):
            found += _paths(value, (*path, n))
    return found


def _set(tree: Any, path: tuple, value: Any) -> None:
    for part in path[:-1]:
        tree = tree[part]
    tree[path[-1]] = value


def _delete(tree: Any, path: tuple) -> None:
    for part in path[:-1]:
        tree = tree[part]
    if isinstance(tree, dict):
        tree.pop(path[-1], None)
    elif isinstance(tree, list) and tree:
        tree.pop(path[-1] if path[-1] < len(tree) else -1)


def _alerts(body: dict) -> list[dict]:
    alerts = body.get("alerts")
    return [a for a in alerts if isinstance(a, dict)] if isinstance(alerts, list) else []


@st.composite
def mutation(draw: st.DrawFn, body: dict) -> None:
    """One change to ``body``; earlier changes may have reshaped it, so look first."""
    kind = draw(st.sampled_from(["set", "delete", "add", "date", "url", "text", "nest", "big"]))
    alerts = _alerts(body)
    alert = draw(st.sampled_from(alerts)) if alerts else None
    if kind == "date" and alert is not None:
        alert[draw(st.sampled_from(["startsAt", "endsAt"]))] = draw(st.sampled_from(ODD_DATES))
    elif kind == "url" and alert is not None:
        target = draw(st.sampled_from([body, alert]))
        target["externalURL" if target is body else "generatorURL"] = draw(
            st.sampled_from(ODD_URLS)
        )
    elif kind == "text" and alert is not None and isinstance(alert.get("labels"), dict):
        field = alert["labels"]
        name = draw(st.sampled_from([*field, "pod", "namespace", "alertname", "severity"]))
        field[name] = draw(st.sampled_from(ODD_TEXT) | st.text(max_size=40))
    elif kind == "add":
        target = draw(st.sampled_from([body, alert] if alert is not None else [body]))
        key = draw(st.sampled_from(["labels", "annotations", "extra", *ODD_TEXT[:3]]))
        if isinstance(target.get(key), dict):
            target[key][draw(st.text(max_size=20) | st.sampled_from(ODD_TEXT))] = draw(json_value)
        else:
            target[key] = draw(json_value)
    else:
        paths = _paths(body)[1:]
        if not paths:
            return
        path = draw(st.sampled_from(paths))
        if kind == "delete":
            _delete(body, path)
        elif kind == "nest":
            value: Any = "x"
            for _ in range(draw(st.integers(10, 900))):
                value = [value]
            _set(body, path, value)
        elif kind == "big":
            _set(body, path, "y" * draw(st.sampled_from([10_000, LIMIT, 2 * LIMIT])))
        else:
            _set(body, path, draw(json_value))


@st.composite
def webhook_bodies(draw: st.DrawFn) -> bytes:
    body = copy.deepcopy(FIRING)
    # New fingerprints: what is accepted is stored and investigated, not deduplicated.
    for n, alert in enumerate(body["alerts"]):
        alert["fingerprint"] = f"{draw(st.integers(0, 2**60)):016x}{n}"
    for _ in range(draw(st.integers(1, 3))):
        draw(mutation(body))
    return json.dumps(body).encode()


@st.composite
def broken_bytes(draw: st.DrawFn) -> bytes:
    raw = bytearray(json.dumps(FIRING).encode())
    kind = draw(st.sampled_from(["random", "truncate", "flip", "duplicate-keys", "nan"]))
    if kind == "random":
        return draw(st.binary(max_size=2000))
    if kind == "truncate":
        return bytes(raw[: draw(st.integers(0, len(raw) - 1))])
    if kind == "flip":
        for _ in range(draw(st.integers(1, 5))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        return bytes(raw)
    if kind == "duplicate-keys":
        return bytes(raw).replace(b'"status": "firing",', b'"status": "firing", "status": 7,', 1)
    return bytes(raw).replace(b'"truncatedAlerts": 0', b'"truncatedAlerts": NaN', 1)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    db = tmp / "fuzz.db"
    with FakeOllama() as ollama:
        ollama.default = investigator
        env = {
            "SRE_AGENT_DATABASE_URL": f"sqlite:///{db}",
            "SRE_AGENT_OLLAMA_URL": ollama.url,
            "SRE_AGENT_PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}",
            "SRE_AGENT_KUBECONFIG": str(tmp / "none"),
            "SRE_AGENT_MAX_CONCURRENT": "4",
            "SRE_AGENT_BACKEND_TIMEOUT": "1",
            "SRE_AGENT_MAX_BODY_BYTES": str(LIMIT),
        }
        with (
            ServiceProcess(env, tmp / "service.log") as svc,
            httpx.Client(base_url=svc.url, timeout=30) as http,
        ):
            yield {"service": svc, "http": http, "db": db}


def _rows(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM investigations").fetchone()[0])


def _check(service: dict[str, Any], body: bytes) -> None:
    before = _rows(service["db"])
    try:
        response = service["http"].post(
            "/webhook/alert", content=body, headers={"Content-Type": "application/json"}
        )
    except httpx.TransportError as exc:  # a reset, or a connection dropped mid-answer
        pytest.fail(f"no answer: {exc!r}")
    assert response.status_code < 500, response.text[:300]
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error, str) and error.strip()
        assert _rows(service["db"]) == before, "a rejected body stored something"
        if response.status_code in (400, 415, 422):  # nothing wrong with the connection
            assert response.headers.get("connection") != "close"
    else:
        results = response.json()["results"]
        assert len(results) == len(json.loads(body)["alerts"])


@FUZZ
@given(body=webhook_bodies())
def test_mutated_alertmanager_bodies(service, body):
    _check(service, body)


@FUZZ
@given(body=broken_bytes())
def test_broken_bytes(service, body):
    _check(service, body)


def test_what_was_accepted_was_investigated_without_an_internal_error(service):
    # Runs after the generated bodies (same module, same service): the queue drains.
    http = service["http"]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        busy = sum(
            http.get("/investigations", params={"status": s, "limit": 500}).json()["count"]
            for s in ("queued", "running")
        )
        if not busy:
            break
        time.sleep(0.5)
    assert not busy, f"{busy} investigations still queued or running"
    failed = http.get("/investigations", params={"status": "failed", "limit": 500}).json()
    broken = [i for i in failed["investigations"] if "internal error" in (i["status_reason"] or "")]
    assert not broken, broken[:3]
    assert _rows(service["db"]) > 0  # the generator did produce accepted bodies
    assert "Traceback" not in service["service"].log()
