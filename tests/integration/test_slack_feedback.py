"""The feedback buttons on Slack, as the on-call engineer and an attacker meet them: a
Slack app's messages carry "Cause confirmed" / "Partly right" / "Wrong" under each
analysis; a click Slack signed stores the verdict by ``slack:<name>``; a forged,
unsigned or replayed click is refused and stores nothing.

The real service (TestClient), a scripted model, the fake Slack; requests are signed
here with hmac as Slack signs them, not by the code under test."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_plus

import pytest
from fastapi.testclient import TestClient

from sre_agent.app import create_app
from tests.conftest import EXAMPLES
from tests.support.fake_slack import TOKEN, FakeSlack
from tests.support.model_scripts import investigator

FIRING = json.loads((EXAMPLES / "group-firing-homepage.json").read_text())
SECRET = "8f742231b10e8888abcd99yyyzzz85a5" + secrets.token_hex(4)
ALICE = "alice-" + secrets.token_urlsafe(24)
INTERACTIONS = "/slack/interactions"
ACTIONS = {
    "sre_agent_feedback_confirmed": "Cause confirmed",
    "sre_agent_feedback_partial": "Partly right",
    "sre_agent_feedback_wrong": "Wrong",
}


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def _bot(slack: FakeSlack, **more: object) -> dict[str, object]:
    return {
        "slack_bot_token": TOKEN,
        "slack_channel": "#alerts",
        "slack_api_url": slack.api_url,
        "slack_signing_secret": SECRET,
        **more,
    }


def _crash_looping() -> str:
    body = copy.deepcopy(FIRING)
    body["alerts"] = [
        a for a in body["alerts"] if a["labels"]["alertname"] == "KubePodCrashLooping"
    ]
    return json.dumps(body)


def _investigate(client: TestClient, headers: dict[str, str] | None = None) -> str:
    answer = client.post(
        "/webhook/alert?wait=true",
        content=_crash_looping(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    assert answer.status_code == 200, answer.text
    (result,) = answer.json()["results"]
    assert result["status"] == "completed"
    return str(result["investigation_id"])


def _buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        element
        for block in message.get("blocks", [])
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def _click(ident: str, action: str = "sre_agent_feedback_confirmed", **user: str) -> dict[str, Any]:
    """A block_actions payload as Slack sends it for a button of ours (trimmed)."""
    return {
        "type": "block_actions",
        "user": user or {"id": "U024BE7LH", "username": "alice", "name": "alice", "team_id": "T0"},
        "api_app_id": "A0123",
        "token": "verification-token-unused",
        "container": {"type": "message", "message_ts": "1764201600.000001", "is_ephemeral": False},
        "trigger_id": "123.456.abc",
        "team": {"id": "T000", "domain": "example"},
        "channel": {"id": "CALERTS", "name": "alerts"},
        "message": {"type": "message", "text": "KubePodCrashLooping", "ts": "1764201600.000001"},
        "response_url": "",
        "actions": [
            {
                "type": "button",
                "block_id": "sre_agent_feedback",
                "action_id": action,
                "text": {"type": "plain_text", "text": ACTIONS.get(action, "?")},
                "value": ident,
                "action_ts": "1764201700.123456",
            }
        ],
    }


def _form(payload: dict[str, Any]) -> bytes:
    return ("payload=" + quote_plus(json.dumps(payload))).encode()


def _signed(body: bytes, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    """Slack's headers for ``body``: v0 HMAC-SHA256 of ``v0:{timestamp}:{body}``."""
    stamp = str(int(time.time() if at is None else at))
    base = b"v0:" + stamp.encode() + b":" + body
    mac = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={mac}",
    }


def _feedback(client: TestClient, ident: str, headers: dict[str, str] | None = None) -> dict:
    answer = client.get(f"/investigations/{ident}/feedback", headers=headers or {})
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_a_finished_investigations_message_carries_the_three_buttons(make_settings, ollama, slack):
    ollama.default = investigator
    with TestClient(create_app(make_settings(**_bot(slack, incidents=False)))) as client:
        ident = _investigate(client)
        (message,) = slack.wait_for(1)
    buttons = _buttons(message)
    assert [(b["action_id"], b["text"]["text"]) for b in buttons] == list(ACTIONS.items())
    assert all(b["type"] == "button" and b["value"] == ident for b in buttons)
    kinds = [block["type"] for block in message["blocks"]]
    assert kinds.index("actions") == len(kinds) - 2  # under the analysis, above the link line


def test_an_incidents_message_carries_the_buttons_for_its_head(make_settings, ollama, slack):
    ollama.default = investigator
    with TestClient(create_app(make_settings(**_bot(slack)))) as client:
        ident = _investigate(client)
        (incident,) = slack.wait_until(
            lambda ms: (
                any(_buttons(m) for m in ms if "thread_ts" not in m)
                and any(_buttons(m) for m in ms if "thread_ts" in m)
            )
        )[:1]
        record = client.get(f"/investigations/{ident}").json()
    assert record["incident_id"]
    assert [b["value"] for b in _buttons(incident)] == [ident] * 3  # the head's analysis
    (details,) = slack.replies(incident["ts"])  # the alert's details, in the thread
    assert [b["action_id"] for b in _buttons(details)] == list(ACTIONS)


@pytest.mark.parametrize("where", ["webhook", "no signing secret"])
def test_no_buttons_where_slack_could_not_send_us_the_click(make_settings, ollama, slack, where):
    ollama.default = investigator
    if where == "webhook":  # an incoming webhook belongs to no app that takes clicks
        values = {"slack_webhook_url": slack.webhook_url, "slack_signing_secret": SECRET}
    else:  # a bot, but nothing to check the clicks' signatures with
        values = {**_bot(slack), "slack_signing_secret": None}
    with TestClient(create_app(make_settings(incidents=False, **values))) as client:
        _investigate(client)
        (message,) = slack.wait_for(1)
        assert "*Root cause*" in json.dumps(message["blocks"])  # an analysis, no buttons
        assert _buttons(message) == []
        if where == "no signing secret":
            body = _form(_click("x"))
            refused = client.post(INTERACTIONS, content=body, headers=_signed(body))
            assert refused.status_code == 404
            assert "SRE_AGENT_SLACK_SIGNING_SECRET" in refused.json()["error"]


def test_a_signed_click_stores_the_verdict_by_its_slack_user(make_settings, ollama, slack):
    """Behind API tokens too: Slack sends none, its signature is what lets it in."""
    ollama.default = investigator
    settings = make_settings(**_bot(slack, incidents=False, api_tokens=f"alice={ALICE}"))
    bearer = {"Authorization": f"Bearer {ALICE}"}
    with TestClient(create_app(settings)) as client:
        ident = _investigate(client, bearer)
        (message,) = slack.wait_for(1)
        confirm = next(b for b in _buttons(message) if b["action_id"].endswith("confirmed"))

        click = _click(confirm["value"])
        click["response_url"] = slack.response_url
        body = _form(click)
        answer = client.post(INTERACTIONS, content=body, headers=_signed(body))
        assert answer.status_code == 200, answer.text
        stored = _feedback(client, ident, bearer)
        assert stored["verdict"] == "confirmed"
        (given,) = stored["feedback"]
        assert given["author"] == "slack:alice" and given["via"] == "slack"
        cause = client.get(f"/investigations/{ident}", headers=bearer).json()["analysis"]
        assert given["cause"] == cause["root_causes"][0]["cause"]
        (note,) = slack.wait_for_notes(1)  # only the person who clicked sees it
        assert note["response_type"] == "ephemeral" and note["replace_original"] is False
        assert "Recorded *Cause confirmed*" in note["text"] and ident in note["text"]

        # Someone else thinks otherwise: kept too, and the latest verdict is theirs.
        body = _form(_click(ident, "sre_agent_feedback_wrong", id="U0BOB"))
        headers = _signed(body)
        assert client.post(INTERACTIONS, content=body, headers=headers).status_code == 200
        stored = _feedback(client, ident, bearer)
        assert stored["verdict"] == "wrong"
        assert [(f["verdict"], f["author"]) for f in stored["feedback"]] == [
            ("confirmed", "slack:alice"),
            ("wrong", "slack:U0BOB"),
        ]
        # The same signed request captured and sent again: taken, and nothing stored.
        assert client.post(INTERACTIONS, content=body, headers=headers).status_code == 200
        assert len(_feedback(client, ident, bearer)["feedback"]) == 2


def test_forged_unsigned_and_stale_clicks_are_refused(make_settings, ollama, slack, caplog):
    ollama.default = investigator
    with TestClient(create_app(make_settings(**_bot(slack, incidents=False)))) as client:
        ident = _investigate(client)
        body = _form(_click(ident))
        attempts = {
            "forged": _signed(body, secret="not-" + SECRET),
            "unsigned": {"Content-Type": "application/x-www-form-urlencoded"},
            "stale": _signed(body, at=time.time() - 6 * 60),  # signed right, 6 minutes ago
            "tampered": _signed(_form(_click(ident, "sre_agent_feedback_wrong"))),
        }
        errors = {}
        for name, headers in attempts.items():
            with caplog.at_level(logging.WARNING, logger="sre_agent.api.slack"):
                caplog.clear()
                refused = client.post(INTERACTIONS, content=body, headers=headers)
            assert refused.status_code == 401, (name, refused.text)
            error = errors[name] = refused.json()["error"]
            assert error.startswith("refused: ") and "nothing was stored" in error, name
            if name != "tampered":  # as "forged" within a second: one line for both
                assert "refused" in caplog.text and INTERACTIONS in caplog.text, name
            assert SECRET not in caplog.text and SECRET not in refused.text
        assert "not signed" in errors["unsigned"]
        assert re.search(r"stale: .* 36\d s old, over 300 s", errors["stale"])  # what to fix
        assert "does not match" in errors["forged"] == errors["tampered"]
        assert _feedback(client, ident) == {
            "investigation_id": ident,
            "verdict": None,
            "feedback": [],
        }


def test_clicks_of_no_use_are_taken_and_store_nothing(make_settings, ollama, slack, caplog):
    """Slack retries anything but a 200, and shows a person nothing of a 4xx."""
    ollama.default = investigator
    with TestClient(create_app(make_settings(**_bot(slack, incidents=False)))) as client:
        ident = _investigate(client)
        missing = _click("no-such-investigation")
        missing["response_url"] = slack.response_url
        others = [
            missing,
            _click(ident, "someone_elses_button"),
            {"type": "view_submission", "user": {"id": "U1"}, "view": {}},
        ]
        for payload in others:
            body = _form(payload)
            answer = client.post(INTERACTIONS, content=body, headers=_signed(body))
            assert answer.status_code == 200, answer.text
        assert _feedback(client, ident)["feedback"] == []
        (note,) = slack.wait_for_notes(1)
        assert (
            note["text"].startswith(":warning: Not recorded") and "no investigation" in note["text"]
        )
    assert "not stored: no investigation with id 'no-such-investigation'" in caplog.text

    # Signed, but no interaction: a 400 saying so.
    with TestClient(create_app(make_settings(**_bot(slack, incidents=False)))) as client:
        body = b"hello=world"
        answer = client.post(INTERACTIONS, content=body, headers=_signed(body))
        assert answer.status_code == 400 and "payload" in answer.json()["error"]
