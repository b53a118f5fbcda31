"""Feedback over the API and the CLI, as a user gives it to a running service: kept with
its author, shown on the record and its report, and read by the next investigation of
the same alert (its first prompt carries the corrected cause); runbook drafts and
retention from the same records."""

from __future__ import annotations

import copy
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from tests.conftest import EXAMPLES, settings_env
from tests.integration.test_cli import run_cli
from tests.support.model_scripts import investigator

FIRING = json.loads((EXAMPLES / "group-firing-homepage.json").read_text())
RESOLVED = json.loads((EXAMPLES / "group-resolved-homepage.json").read_text())
ALICE = "tok-alice-0123456789npqrsf"
BOB = "tok-bob-0123456789npqrsf00"
CORRECTED = "the api ConfigMap lost its DATABASE_URL key in the last Flux sync"


def _crash(body: dict, starts: datetime | None = None) -> dict:
    """The group with only its KubePodCrashLooping alert (startsAt moved: a new firing; a
    resolved one ends half an hour after it)."""
    body = copy.deepcopy(body)
    body["alerts"] = [
        a for a in body["alerts"] if a["labels"]["alertname"] == "KubePodCrashLooping"
    ]
    if starts is not None:
        for alert in body["alerts"]:
            alert["startsAt"] = starts.isoformat().replace("+00:00", "Z")
            if alert["status"] == "resolved":
                ends = starts + timedelta(minutes=30)
                alert["endsAt"] = ends.isoformat().replace("+00:00", "Z")
    return body


def _wait(client: httpx.Client, ident: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = client.get(f"/investigations/{ident}").json()
        if record["status"] not in ("queued", "running"):
            return record
        time.sleep(0.2)
    raise AssertionError(f"{ident} did not finish")


def _prompts_about(ollama, pod: str) -> list[str]:
    return [
        m["content"]
        for r in ollama.requests
        for m in r.get("messages", [])
        if m["role"] == "user" and pod in m["content"]
    ]


def test_feedback_from_api_and_cli_reaches_the_next_investigation(make_settings, ollama, tmp_path):
    from tests.support.service import ServiceProcess

    ollama.default = investigator
    settings = make_settings(incidents=False, api_tokens=f"alice={ALICE},bob={BOB}")
    env = settings_env(settings)
    with ServiceProcess(env, tmp_path / "svc.log") as svc:
        alice = httpx.Client(
            base_url=svc.url, headers={"Authorization": f"Bearer {ALICE}"}, timeout=30
        )
        # The first firing an hour ago (not the example's date: "the last 7 days" moves on).
        began = datetime.now(UTC) - timedelta(hours=1)
        first = alice.post("/webhook/alert?wait=true", json=_crash(FIRING, began)).json()
        [result] = first["results"]
        ident = result["investigation_id"]
        record = _wait(alice, ident)
        assert record["status"] == "completed" and record["verdict"] is None
        pod = record["alert"]["labels"]["pod"]
        said = record["analysis"]["root_causes"][0]["cause"]

        # Bad input: a clear 4xx, nothing stored.
        assert (
            alice.post(f"/investigations/{ident}/feedback", json={"verdict": "maybe"}).status_code
            == 422
        )
        assert (
            alice.post("/investigations/nope/feedback", json={"verdict": "wrong"}).status_code
            == 404
        )
        # JSON sent as text/plain (what a cross-site form can send): not ours.
        plain = alice.post(f"/investigations/{ident}/feedback", content='{"verdict": "wrong"}',
                           headers={"Content-Type": "text/plain"})  # fmt: skip
        assert plain.status_code == 415
        assert alice.get(f"/investigations/{ident}/feedback").json()["feedback"] == []

        # Over the API: wrong, with the cause it really was (a secret in the note is masked).
        given = alice.post(
            f"/investigations/{ident}/feedback",
            json={
                "verdict": "wrong",
                "cause": CORRECTED,
                "note": "fixed with password=hunter2hunter2",
            },
        )
        assert given.status_code == 201, given.text
        stored = given.json()
        assert stored["author"] == "alice" and stored["via"] == "token"
        assert stored["cause"] == CORRECTED and stored["analysis_cause"] == said
        assert "hunter2" not in stored["note"]

        # Over the CLI, as bob: partly right (the author is the token's user).
        cli_env = {**env, "SRE_AGENT_URL": svc.url, "SRE_AGENT_API_TOKEN": BOB}
        partial = run_cli("feedback", ident, "--partial", "--note", "restart helped", env=cli_env)
        assert partial.returncode == 0, partial.stderr
        assert partial.stdout.startswith(f"{ident}: partial by bob")
        unknown = run_cli("feedback", "nope", "--confirm", env=cli_env)
        assert unknown.returncode == 2 and "no investigation with id 'nope'" in unknown.stderr
        listed = alice.get(f"/investigations/{ident}/feedback").json()
        assert [f["author"] for f in listed["feedback"]] == ["alice", "bob"]
        assert listed["verdict"] == "partial"
        report = alice.get(f"/investigations/{ident}", params={"format": "markdown"}).text
        assert "## Feedback" in report and CORRECTED in report and "by bob" in report

        # Alice's word is the correction; bob's "partial" is the latest: it stands with the
        # analysis' cause. Make the correction the latest word, then the alert resolves.
        alice.post(
            f"/investigations/{ident}/feedback", json={"verdict": "wrong", "cause": CORRECTED}
        )
        alice.post("/webhook/alert", json=_crash(RESOLVED, began))

        # It fires again, an hour later: the first prompt carries what was learned.
        again = alice.post(
            "/webhook/alert?wait=true",
            json=_crash(FIRING, datetime.now(UTC) + timedelta(seconds=5)),
        ).json()
        second = _wait(alice, again["results"][0]["investigation_id"])
        assert second["id"] != ident
        prompt = _prompts_about(ollama, pod)[-1]
        assert "Corrected (by alice" in prompt and CORRECTED in prompt
        history = next(e for e in second["evidence"] if e["tool"] == "history")
        assert f"[{history['id']}] History of this alert" in prompt
        assert "fired 1 time(s) in the last 7 days" in history["output"]
        # "Seen before": the first investigation, same alert and object, its corrected cause.
        [seen] = [s for s in second["similar"] if s["investigation_id"] == ident]
        assert seen["match"] == "same alert and object" and seen["cause"] == CORRECTED
        assert second["similar"][0]["investigation_id"] == ident
        report = alice.get(f"/investigations/{second['id']}", params={"format": "markdown"}).text
        assert "## Seen before" in report and f"(/investigations/{ident})" in report
        # A verdict given after the list was made shows in it.
        alice.post(
            f"/investigations/{ident}/feedback", json={"verdict": "confirmed", "cause": "x" * 20}
        )
        now = alice.get(f"/investigations/{second['id']}").json()["similar"][0]
        assert now["verdict"] == "confirmed" and now["cause"] == "x" * 20
        alice.post(
            f"/investigations/{ident}/feedback", json={"verdict": "wrong", "cause": CORRECTED}
        )

        # The runbook draft names the corrected cause, over the API and the CLI.
        book = alice.get("/runbooks/KubePodCrashLooping").json()
        assert book["draft"] is True and [c["cause"] for c in book["causes"]] == [CORRECTED]
        shown = run_cli("runbook", "KubePodCrashLooping", env=cli_env)
        assert shown.returncode == 0 and shown.stdout.startswith(
            "# Runbook draft: KubePodCrashLooping"
        )
        assert CORRECTED in shown.stdout
        none = alice.get("/runbooks/NoSuchAlert")
        assert none.status_code == 404 and "no runbook for 'NoSuchAlert'" in none.json()["error"]


def test_feedback_on_a_running_investigation_is_refused(make_settings, ollama, tmp_path: Path):
    from fastapi.testclient import TestClient

    from sre_agent.app import create_app
    from tests.support.fake_ollama import hang

    ollama.default = hang(30)
    with TestClient(create_app(make_settings(incidents=False))) as client:
        ident = client.post("/webhook/alert", json=_crash(FIRING)).json()["results"][0][
            "investigation_id"
        ]
        answer = client.post(f"/investigations/{ident}/feedback", json={"verdict": "confirmed"})
        assert answer.status_code == 409 and "still" in answer.json()["error"]
        assert client.get(f"/investigations/{ident}/feedback").json()["feedback"] == []
