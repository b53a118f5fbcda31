"""``sre-agent investigate`` as a user runs it from a shell."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tests.conftest import EXAMPLES, settings_env
from tests.support.model_scripts import investigator
from tests.support.net import free_port

FIRING = EXAMPLES / "group-firing-homepage.json"


def run_cli(*args: str, env: dict[str, str], stdin: str | None = None, timeout: float = 90):
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SRE_AGENT_")}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "sre_agent.cli", *args],
        env=full_env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_investigate_prints_a_report(make_settings, ollama, prometheus):
    ollama.default = investigator
    env = settings_env(make_settings(prometheus_url=prometheus.url))
    proc = run_cli("investigate", str(FIRING), env=env)
    assert proc.returncode == 0, proc.stderr
    # Two alerts are critical/warning; the info one is not investigated.
    assert proc.stdout.startswith("# KubeDeploymentReplicasMismatch (warning)\n")
    assert "# CPUThrottlingHigh" not in proc.stdout
    assert "skipping CPUThrottlingHigh: severity 'info'" in proc.stderr
    assert "# KubePodCrashLooping (warning)" in proc.stdout
    assert "SITE_API_UPSTREAM_URL" in proc.stdout
    assert "[2/2] investigating KubePodCrashLooping" in proc.stderr  # progress on stderr
    assert "CANARY" not in proc.stdout + proc.stderr


def test_investigate_json_from_stdin(make_settings, ollama):
    ollama.default = investigator
    alert = json.loads(FIRING.read_text())["alerts"][1]
    proc = run_cli(
        "investigate", "-", "--json", env=settings_env(make_settings()), stdin=json.dumps(alert)
    )
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["status"] == "completed"
    assert record["alertname"] == "KubePodCrashLooping"
    assert record["analysis"]["root_causes"]


def test_investigate_fails_fast_without_ollama(make_settings):
    url = f"http://127.0.0.1:{free_port()}"
    env = settings_env(make_settings(ollama_url=url))
    started = time.monotonic()
    proc = run_cli("investigate", str(FIRING), env=env)
    assert time.monotonic() - started < 15
    assert proc.returncode == 3
    assert url in proc.stderr and "SRE_AGENT_OLLAMA_URL" in proc.stderr
    assert proc.stdout == ""


def test_investigate_names_a_missing_model(make_settings):
    env = settings_env(make_settings(model="llama9:70b"))
    proc = run_cli("investigate", str(FIRING), env=env)
    assert proc.returncode == 3
    assert "ollama pull llama9:70b" in proc.stderr


def test_investigate_rejects_bad_files(make_settings, tmp_path):
    env = settings_env(make_settings())
    missing = run_cli("investigate", str(tmp_path / "nope.json"), env=env)
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": "4", "status": "firing", "alerts": [{"labels": {}}]}')
    invalid = run_cli("investigate", str(bad), env=env)
    assert invalid.returncode == 2 and "alertname" in invalid.stderr
    assert "Traceback" not in missing.stderr + invalid.stderr
