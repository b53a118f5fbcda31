"""scripts/test-alert-webhook.sh against a running ``sre-agent serve``, as an operator
runs it after deploying: three 2xx answers, then two investigations to read."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import settings_env
from tests.support.model_scripts import investigator
from tests.support.service import ServiceProcess

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "test-alert-webhook.sh"
TOKEN = "tok-" + "s" * 28

pytestmark = pytest.mark.skipif(not shutil.which("curl"), reason="the script needs curl")


@pytest.fixture
def service(make_settings, ollama, tmp_path):
    ollama.default = investigator
    env = settings_env(make_settings(webhook_token=TOKEN))
    with ServiceProcess(env, tmp_path / "service.log") as service:
        yield service


def _run_script(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SRE_AGENT_")}
    return subprocess.run(
        ["bash", str(SCRIPT)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _answers(stdout: str) -> list[tuple[str, int, dict]]:
    """(title, HTTP code, JSON body) for each ``== title: HTTP code`` block."""
    blocks = re.findall(r"^== (.+): HTTP (\d{3})\n(.*)$", stdout, re.M)
    return [(title, int(code), json.loads(body)) for title, code, body in blocks]


def test_script_sends_warning_critical_and_resolution_and_service_records_them(service):
    # A wrong token: the first answer is a 401, the script stops there and says why.
    run = _run_script({"SERVICE_URL": service.url, "SRE_AGENT_WEBHOOK_TOKEN": "wrong"})
    assert run.returncode != 0
    assert "== warning alert firing: HTTP 401" in run.stdout
    assert "got 401" in run.stderr
    assert "critical alert firing" not in run.stdout
    assert httpx.get(f"{service.url}/investigations", timeout=5).json()["count"] == 0

    run = _run_script({"SERVICE_URL": service.url, "SRE_AGENT_WEBHOOK_TOKEN": TOKEN})
    assert run.returncode == 0, run.stdout + run.stderr

    answers = _answers(run.stdout)
    assert [(title, code) for title, code, _ in answers] == [
        ("warning alert firing", 202),
        ("critical alert firing", 202),
        ("warning alert resolved", 202),
    ]
    [warning], [critical], [resolved] = (body["results"] for _, _, body in answers)
    assert (warning["alert_name"], warning["severity"]) == ("SreAgentTestWarning", "warning")
    assert (critical["alert_name"], critical["severity"]) == ("SreAgentTestCritical", "critical")
    assert {warning["status"], critical["status"]} <= {"queued", "running"}
    assert resolved["status"] == "resolved"
    assert resolved["investigation_id"] == warning["investigation_id"]
    assert TOKEN not in run.stdout + run.stderr

    listed = httpx.get(f"{service.url}/investigations", timeout=5).json()
    assert listed["count"] == 2
    by_name = {i["alertname"]: i for i in listed["investigations"]}
    assert by_name["SreAgentTestWarning"]["alert_status"] == "resolved"
    assert by_name["SreAgentTestCritical"]["alert_status"] == "firing"

    # The critical one is investigated to the end by the (scripted) model.
    ident = critical["investigation_id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        record = httpx.get(f"{service.url}/investigations/{ident}", timeout=5).json()
        if record["status"] not in ("queued", "running"):
            break
        time.sleep(0.2)
    assert record["status"] == "completed", record.get("status_reason")


def test_script_fails_when_nothing_listens():
    from tests.support.net import free_port

    run = _run_script({"SERVICE_URL": f"http://127.0.0.1:{free_port()}"})
    assert run.returncode != 0
    assert "cannot reach" in run.stderr
