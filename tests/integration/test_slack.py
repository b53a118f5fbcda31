"""Slack as the on-call engineer sees it with incidents off (SRE_AGENT_INCIDENTS=false,
and rows from before incidents): one Block Kit message per finished investigation,
alerts of one group threaded, "resolved" replies, no secrets, and a Slack outage that
costs nothing but the message. One message per incident: test_slack_incidents.py."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from sre_agent.app import create_app
from tests.conftest import EXAMPLES
from tests.support.fake_ollama import answer_json
from tests.support.fake_slack import TOKEN, FakeSlack, api_error, rate_limited, server_error
from tests.support.model_scripts import investigator
from tests.support.net import free_port

JSON = {"Content-Type": "application/json"}
FIRING = json.loads((EXAMPLES / "group-firing-homepage.json").read_text())
RESOLVED = json.loads((EXAMPLES / "group-resolved-homepage.json").read_text())
PUBLIC = "https://sre-agent.example.com"
INVESTIGATED = ("KubeDeploymentReplicasMismatch", "KubePodCrashLooping")


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def _bot(slack: FakeSlack) -> dict[str, object]:
    return {
        "incidents": False,
        "slack_bot_token": TOKEN,
        "slack_channel": "#alerts",
        "slack_api_url": slack.api_url,
        "public_url": PUBLIC,
    }


def _only(name: str, body: dict = FIRING) -> str:
    body = copy.deepcopy(body)
    body["alerts"] = [a for a in body["alerts"] if a["labels"]["alertname"] == name]
    return json.dumps(body)


def _ids(response) -> dict[str, str]:
    return {r["alert_name"]: r["investigation_id"] for r in response.json()["results"]}


def _text(message: dict) -> str:
    return json.dumps(message["blocks"])


def _metric(client: TestClient, line_start: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{line_start} not in /metrics")


def test_incoming_webhook_gets_one_block_kit_message_per_investigation(
    make_settings, ollama, slack
):
    ollama.default = investigator
    settings = make_settings(
        slack_webhook_url=slack.webhook_url, public_url=PUBLIC, incidents=False
    )
    with TestClient(create_app(settings)) as client:
        ids = _ids(
            client.post("/webhook/alert?wait=true", content=json.dumps(FIRING), headers=JSON)
        )
        messages = slack.wait_for(2)
        assert len(messages) == 2  # CPUThrottlingHigh (info) was skipped: no message
        by_name = {m["blocks"][0]["text"]["text"].split(" [")[0]: m for m in messages}
        assert set(by_name) == set(INVESTIGATED)
        crash = by_name["KubePodCrashLooping"]
        record = client.get(f"/investigations/{ids['KubePodCrashLooping']}").json()
        assert record["status"] == "completed"
        header, fields, *sections, context = crash["blocks"]
        assert header == {
            "type": "header",
            "text": {"type": "plain_text", "text": "KubePodCrashLooping [warning]"},
        }
        field_text = " ".join(f["text"] for f in fields["fields"])
        assert "*Namespace*\nhomepage" in field_text
        assert "*Status*" in field_text and "completed" in field_text
        assert "*Started*" in field_text and "2026-11-26" in field_text
        body = "\n".join(s["text"]["text"] for s in sections)
        assert record["analysis"]["summary"] in body
        cause = record["analysis"]["root_causes"][0]
        assert "*Root cause* (confidence: medium)" in body
        assert cause["cause"][:40] in body.replace("&gt;", ">")
        assert "*Mitigation*\n1. Check the most recent rollout" in body
        link = f"{PUBLIC}/investigations/{ids['KubePodCrashLooping']}"  # the web page
        assert f"<{link}|Open the investigation>" in context["elements"][0]["text"]
        assert crash["text"].startswith("KubePodCrashLooping (warning): completed")
        # The link leads a browser to the investigation's page.
        report = client.get(link.removeprefix(PUBLIC), headers={"Accept": "text/html"})
        assert report.status_code == 200, report.text
        assert report.headers["content-type"].startswith("text/html")
        assert "KubePodCrashLooping" in report.text
        assert _metric(client, 'sre_agent_slack_notifications_total{status="sent"}') == 2


def test_bot_threads_a_group_and_replies_when_it_resolves(make_settings, ollama, slack):
    ollama.default = investigator
    with TestClient(create_app(make_settings(**_bot(slack)))) as client:
        client.post("/webhook/alert?wait=true", content=json.dumps(FIRING), headers=JSON)
        first, second = slack.wait_for(2)
        assert "thread_ts" not in first
        assert first["channel"] == "CALERTS"  # "#alerts" as Slack answers it: an ID
        assert second["thread_ts"] == first["ts"] and second["channel"] == first["channel"]
        assert all(r["headers"]["authorization"] == f"Bearer {TOKEN}" for r in slack.requests)

        client.post("/webhook/alert", content=json.dumps(RESOLVED), headers=JSON)
        messages = slack.wait_for(4)
        replies = messages[2:]
        assert len(replies) == 2
        for reply in replies:
            assert reply["thread_ts"] == first["ts"] and reply["channel"] == first["channel"]
            assert "resolved at" in reply["text"]
            assert "2026-11-27 00:04 UTC" in reply["text"]
        assert {r["text"].split("*")[1] for r in replies} == set(INVESTIGATED)

    # The thread outlives a restart: it is in the database.
    later = copy.deepcopy(FIRING)
    for alert in later["alerts"]:
        alert["startsAt"] = "2026-11-27T02:00:00Z"
    with TestClient(create_app(make_settings(**_bot(slack)))) as client:
        client.post(
            "/webhook/alert?wait=true", content=_only("KubePodCrashLooping", later), headers=JSON
        )
        newest = slack.wait_for(5)[4]
        assert newest["thread_ts"] == first["ts"]


def test_secrets_in_the_analysis_never_reach_slack(make_settings, ollama, slack):
    def leaky(request):
        reply = investigator(request)
        if reply.tool_calls:
            return reply
        analysis = json.loads(reply.content)
        analysis["summary"] += " The pod env has password=CANARY-slack-1 in it."
        analysis["root_causes"][0]["cause"] = "DB_PASSWORD: CANARY-slack-1 was rejected"
        analysis["mitigation"].insert(0, "rotate api_key=CANARY-slack-1 now")
        return answer_json(analysis)

    ollama.default = leaky
    with TestClient(create_app(make_settings(**_bot(slack)))) as client:
        client.post("/webhook/alert?wait=true", content=_only("KubePodCrashLooping"), headers=JSON)
        (message,) = slack.wait_for(1)
    sent = slack.text()
    assert "CANARY-slack-1" not in sent
    assert "password=***REDACTED***" in sent  # the rest of the sentence still arrives
    assert "rotate api_key=***REDACTED*** now" in _text(message)


def test_rate_limits_and_server_errors_are_retried(make_settings, ollama, slack):
    ollama.default = investigator
    slack.fail(rate_limited(retry_after=1), server_error(500), server_error(503))
    with TestClient(create_app(make_settings(**_bot(slack)))) as client:
        client.app.state.services.notifier.base_delay = 0.05
        started = time.monotonic()
        client.post("/webhook/alert?wait=true", content=_only("KubePodCrashLooping"), headers=JSON)
        (message,) = slack.wait_for(1)
        assert time.monotonic() - started >= 1.0  # Retry-After was honoured
        assert len(slack.requests) == 4  # 429, 500, 503, then delivered
        assert "KubePodCrashLooping" in _text(message)
        assert _metric(client, 'sre_agent_slack_notifications_total{status="sent"}') == 1
        assert _metric(client, 'sre_agent_slack_notifications_total{status="failed"}') == 0


def test_a_permanent_slack_error_is_not_retried(make_settings, ollama, slack):
    ollama.default = investigator
    slack.fail(api_error("channel_not_found"))
    with TestClient(create_app(make_settings(**_bot(slack)))) as client:
        ids = _ids(
            client.post(
                "/webhook/alert?wait=true", content=_only("KubePodCrashLooping"), headers=JSON
            )
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if _metric(client, 'sre_agent_slack_notifications_total{status="failed"}') == 1:
                break
            time.sleep(0.05)
        assert _metric(client, 'sre_agent_slack_notifications_total{status="failed"}') == 1
        assert len(slack.requests) == 1 and slack.messages == []
        record = client.get(f"/investigations/{ids['KubePodCrashLooping']}").json()
        assert record["status"] == "completed"


def test_slack_down_costs_only_the_message(make_settings, ollama, caplog):
    ollama.default = investigator
    nowhere = f"http://127.0.0.1:{free_port()}/services/T000/B000/XXXX"
    with TestClient(
        create_app(make_settings(slack_webhook_url=nowhere, incidents=False))
    ) as client:
        client.app.state.services.notifier.base_delay = 0.05
        response = client.post("/webhook/alert?wait=true", content=json.dumps(FIRING), headers=JSON)
        for ident in filter(None, _ids(response).values()):
            assert client.get(f"/investigations/{ident}").json()["status"] == "completed"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if _metric(client, 'sre_agent_slack_notifications_total{status="failed"}') == 2:
                break
            time.sleep(0.05)
        assert _metric(client, 'sre_agent_slack_notifications_total{status="failed"}') == 2
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        assert _metric(client, 'sre_agent_investigations_total{outcome="completed"}') == 2
    logged = caplog.text
    assert "Slack notification for investigation" in logged and "gave up after 4" in logged


def test_a_bot_token_without_a_channel_stops_start_up(make_settings):
    from sre_agent.errors import ConfigError

    with pytest.raises(ConfigError, match="^SRE_AGENT_SLACK_CHANNEL: .*SRE_AGENT_SLACK_BOT_TOKEN"):
        make_settings(slack_bot_token=TOKEN)
    with pytest.raises(ConfigError, match="^SRE_AGENT_PUBLIC_URL: "):
        make_settings(public_url="sre-agent.example.com")
