"""The webhook on a slow or briefly unreachable Postgres, behind the real
Alertmanager: acknowledgements stay bounded and the event loop free while the
database is slow; while it is down the answer is 503 (never a 4xx), with a clear log
line, so Alertmanager sends again; once it is back, the alert is stored once."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import settings_env
from tests.support.alertmanager import BINARY, AlertmanagerServer, am_alert
from tests.support.model_scripts import investigator
from tests.support.net import wait_for
from tests.support.service import ServiceProcess
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.skipif(BINARY is None, reason="prometheus-alertmanager not installed")


def _alert(name: str, pod: str) -> dict:
    return {
        "status": "firing",
        "labels": {"alertname": name, "namespace": "shop", "pod": pod, "severity": "critical"},
        "annotations": {"summary": f"{pod} is down"},
        "startsAt": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": f"{name}-{pod}",
    }


def _group(*alerts: dict) -> dict:
    return {
        "version": "4",
        "groupKey": '{}:{namespace="shop"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "agent",
        "groupLabels": {"namespace": "shop"},
        "commonLabels": {"namespace": "shop"},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": list(alerts),
    }


def test_the_webhook_on_a_slow_then_unreachable_database(
    tmp_path, make_settings, ollama, postgres_url
):
    ollama.default = investigator
    real = urlsplit(postgres_url)
    proxy = TcpProxy("127.0.0.1", real.port or 5432).start()
    proxied = postgres_url.replace(f":{real.port}/", f":{proxy.port}/")
    env = settings_env(make_settings(database_url=proxied, lease_seconds=5))
    service = ServiceProcess(env, tmp_path / "service.log")
    try:
        with service:
            # Slow: every chunk each way waits 50 ms.
            proxy.delay = 0.05
            beats: list[float] = []
            stop = threading.Event()

            def heartbeat() -> None:
                while not stop.is_set():
                    started = time.monotonic()
                    httpx.get(f"{service.url}/healthz", timeout=10)
                    beats.append(time.monotonic() - started)
                    time.sleep(0.05)

            beat = threading.Thread(target=heartbeat)
            beat.start()
            acks = []
            for n in range(3):
                started = time.monotonic()
                answer = httpx.post(
                    f"{service.url}/webhook/alert",
                    json=_group(*(_alert("Slow", f"p{n}-{k}") for k in range(4))),
                    timeout=30,
                )
                acks.append(time.monotonic() - started)
                assert answer.status_code == 202, answer.text
            stop.set()
            beat.join()
            proxy.delay = 0.0
            assert max(acks) < 10, acks
            # The event loop never waited on the database: /healthz answered at once.
            assert beats and max(beats) < 2.0, max(beats)

            # Down: 503 with Retry-After, a log line, never a 4xx.
            proxy.down()
            started = time.monotonic()
            answer = httpx.post(
                f"{service.url}/webhook/alert", json=_group(_alert("Down", "direct")), timeout=30
            )
            assert answer.status_code == 503, answer.text
            assert answer.headers.get("retry-after")
            assert "nothing was stored" in answer.text, answer.text
            assert time.monotonic() - started < 10
            assert "answered 503, Alertmanager retries" in service.log()

            with AlertmanagerServer(tmp_path / "am", f"{service.url}/webhook/alert") as am:
                am.post(
                    [
                        am_alert(
                            {"alertname": "WhileDown", "namespace": "shop", "severity": "critical"},
                            starts_at=datetime.now(UTC) - timedelta(minutes=1),
                        )
                    ]
                )
                wait_for(
                    lambda: service.log().count("answered 503") >= 2,
                    30,
                    "Alertmanager's delivery to be refused with 503",
                )
                proxy.up()

                def stored() -> list:
                    try:
                        got = httpx.get(
                            f"{service.url}/investigations",
                            params={"alertname": "WhileDown"},
                            timeout=10,
                        )
                    except httpx.HTTPError:
                        return []
                    return got.json()["investigations"] if got.status_code == 200 else []

                found = wait_for(stored, 60, "Alertmanager's retry to be stored")
                time.sleep(2)  # more retries or repeats do not make a second one
                assert len(stored()) == 1 == len(found)
            listed = httpx.get(
                f"{service.url}/investigations", params={"alertname": "Slow", "limit": 100}
            ).json()
            assert listed["count"] == 12  # nothing acknowledged was lost
            log = service.log()
            assert " 400 " not in log and " 422 " not in log
    finally:
        proxy.stop()
