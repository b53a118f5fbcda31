"""Run the real Alertmanager (Debian's ``prometheus-alertmanager``) on loopback."""

from __future__ import annotations

import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tests.support.net import free_port

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


class AlertmanagerServer:
    """Routes every alert to our webhook with a bearer token and ``send_resolved``."""

    def __init__(
        self,
        workdir: Path,
        webhook_url: str,
        token: str | None = None,
        group_by: tuple[str, ...] = ("namespace",),
        group_wait: str = "1s",
        group_interval: str = "2s",
        repeat_interval: str = "1h",
        also: tuple[str, ...] = (),
    ) -> None:
        """``also``: more webhook URLs the receiver sends every notification to (each
        replica of an HA sre-agent, as a receiver with two webhook_configs does)."""
        if BINARY is None:
            raise RuntimeError("prometheus-alertmanager is not installed (make system-deps)")
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        auth = (
            (
                f"      http_config:\n        authorization:\n          type: Bearer\n"
                f"          credentials: {token}\n"
            )
            if token
            else ""
        )
        self.config = (
            "route:\n"
            "  receiver: agent\n"
            f"  group_by: [{', '.join(group_by)}]\n"
            f"  group_wait: {group_wait}\n"
            f"  group_interval: {group_interval}\n"
            f"  repeat_interval: {repeat_interval}\n"
            "receivers:\n"
            "  - name: agent\n"
            "    webhook_configs:\n"
            + "".join(
                f"    - url: {url}\n      send_resolved: true\n" + auth
                for url in (webhook_url, *also)
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AlertmanagerServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "alertmanager.yml"
        config.write_text(self.config)
        self._log = open(self.workdir / "alertmanager.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                BINARY,
                f"--config.file={config}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                f"--web.external-url={self.url}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            "Alertmanager did not start:\n"
            + (self.workdir / "alertmanager.log").read_text(errors="replace")
        )

    def post(self, alerts: list[dict[str, Any]]) -> None:
        """What Prometheus does: push alerts to ``/api/v2/alerts``."""
        response = httpx.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=5)
        response.raise_for_status()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self._log.close()

    def __enter__(self) -> AlertmanagerServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def am_alert(
    labels: dict[str, str],
    annotations: dict[str, str] | None = None,
    *,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    generator_url: str = "",
) -> dict[str, Any]:
    """An alert as Prometheus posts it to Alertmanager."""
    body: dict[str, Any] = {
        "labels": labels,
        "annotations": annotations or {},
        "generatorURL": generator_url,
    }
    body["startsAt"] = (starts_at or datetime.now(UTC)).isoformat()
    if ends_at is not None:
        body["endsAt"] = ends_at.isoformat()
    return body
