"""While Ollama is down, alerts get an evidence report; once it answers again
they are investigated again by the model (SRE_AGENT_REINVESTIGATE)."""

from __future__ import annotations

import copy
import json
import time

from fastapi.testclient import TestClient

from sre_agent.app import create_app
from tests.conftest import EXAMPLES
from tests.support.fake_ollama import fail, hang
from tests.support.model_scripts import investigator

FIRING = json.loads((EXAMPLES / "group-firing-homepage.json").read_text())
RESOLVED = json.loads((EXAMPLES / "group-resolved-homepage.json").read_text())


def wait_until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def by_name(client: TestClient) -> dict[str, dict]:
    listing = client.get("/investigations").json()["investigations"]
    records = {r["alertname"]: client.get(f"/investigations/{r['id']}").json() for r in listing}
    for record in records.values():  # the report a person reads: rendered when asked for
        url = f"/investigations/{record['id']}"
        record["report"] = client.get(url, params={"format": "markdown"}).text
    return records


def test_degraded_by_ollama_is_investigated_again_when_it_answers(make_settings, ollama):
    ollama.stop_accepting()  # Ollama is down
    settings = make_settings(reinvestigate_interval=0.3, incidents=False)
    with TestClient(create_app(settings)) as client:
        answer = client.post("/webhook/alert?wait=true", json=FIRING).json()
        # ?wait=true: the message says where they ended, as each result does.
        assert answer["message"] == "received 3 alert(s): 2 degraded, 1 skipped"
        assert sorted(r["status"] for r in answer["results"]) == ["degraded", "degraded", "skipped"]
        first = by_name(client)
        assert {r["status"] for r in first.values()} == {"degraded"}
        assert all(
            "investigate again when Ollama answers" in r["status_reason"] for r in first.values()
        )
        assert all("## Evidence gathered" in r["report"] for r in first.values())

        # One of the two alerts resolves meanwhile: its evidence report is what it keeps.
        resolved = copy.deepcopy(RESOLVED)
        resolved["alerts"] = [
            a for a in resolved["alerts"] if a["labels"]["alertname"] == "KubePodCrashLooping"
        ]
        client.post("/webhook/alert", json=resolved)

        ollama.default = investigator
        ollama.resume()  # Ollama is back
        assert wait_until(
            lambda: by_name(client)["KubeDeploymentReplicasMismatch"]["status"] == "completed"
        )
        again = by_name(client)
        mismatch = again["KubeDeploymentReplicasMismatch"]
        assert mismatch["attempts"] == 2
        assert mismatch["analysis"]["root_causes"]
        crash = again["KubePodCrashLooping"]
        assert crash["status"] == "degraded" and crash["attempts"] == 1
        # It resolved, so it is not run again, and its reason no longer promises it.
        assert "will investigate again" not in crash["status_reason"]
        assert crash["status_reason"].endswith("; not investigated again: the alert resolved")
        assert "LLM call failed" in crash["status_reason"]
        assert client.get("/investigations").json()["count"] == 2


def test_a_model_server_that_keeps_failing_is_not_retried_forever(make_settings, ollama):
    # It lists its models (so it looks up) but every chat fails.
    ollama.default = fail(500, "llama runner process has terminated")
    settings = make_settings(reinvestigate_interval=0.1)
    with TestClient(create_app(settings)) as client:
        client.post("/webhook/alert?wait=true", json=FIRING)
        assert wait_until(lambda: all(r["attempts"] == 3 for r in by_name(client).values()))
        time.sleep(0.6)
        records = by_name(client)
        assert {r["attempts"] for r in records.values()} == {3}
        assert {r["status"] for r in records.values()} == {"degraded"}
        # The last run says there will be no other, and why.
        for record in records.values():
            assert "will investigate again" not in record["status_reason"]
            assert record["status_reason"].endswith("; not investigated again: 3 runs made")


def test_reinvestigation_can_be_turned_off(make_settings, ollama):
    ollama.default = fail(500, "out of memory")
    settings = make_settings(reinvestigate=False, reinvestigate_interval=0.2)
    with TestClient(create_app(settings)) as client:
        client.post("/webhook/alert?wait=true", json=FIRING)
        ollama.default = investigator
        time.sleep(1.0)
        records = by_name(client)
        assert {r["status"] for r in records.values()} == {"degraded"}
        assert all(r["attempts"] == 1 for r in records.values())
        assert all("investigate again" not in r["status_reason"] for r in records.values())


def test_an_alert_that_resolves_during_the_failing_run_is_not_promised_another(
    make_settings, ollama
):
    """The model server fails after the alert resolved, while its run was under way: the
    run ends without the promise of another, and none is made."""
    ollama.default = hang(1.5, then=fail(500, "llama runner process has terminated"))
    settings = make_settings(reinvestigate_interval=0.1)
    crash_only = copy.deepcopy(FIRING)
    crash_only["alerts"] = [
        a for a in crash_only["alerts"] if a["labels"]["alertname"] == "KubePodCrashLooping"
    ]
    resolved = copy.deepcopy(RESOLVED)
    resolved["alerts"] = [
        a for a in resolved["alerts"] if a["labels"]["alertname"] == "KubePodCrashLooping"
    ]
    with TestClient(create_app(settings)) as client:
        client.post("/webhook/alert", json=crash_only)
        assert wait_until(lambda: by_name(client)["KubePodCrashLooping"]["status"] == "running")
        client.post("/webhook/alert", json=resolved)
        assert wait_until(
            lambda: by_name(client)["KubePodCrashLooping"]["status"] in ("degraded", "failed")
        )
        ollama.default = investigator  # it answers again: nothing is run again
        time.sleep(0.6)
        record = by_name(client)["KubePodCrashLooping"]
        assert record["attempts"] == 1
        assert record["status_reason"].endswith("; not investigated again: the alert resolved")
        assert "will investigate again" not in record["status_reason"]
