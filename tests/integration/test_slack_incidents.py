"""One Slack message per incident, as the on-call engineer sees it: posted once, edited
in place as alerts join and the analysis arrives, the alerts' details in its thread; an
incoming webhook (which cannot edit) gets a message per stage, not one per alert.

Real store (the incidents are joined by its own rule), real HTTP to the fake Slack."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest

from sre_agent.alerts import Alert
from sre_agent.analysis import Analysis, RootCause
from sre_agent.metrics import Metrics
from sre_agent.models import Evidence, Incident, Investigation, LlmUsage, Sources, WalkedObject
from sre_agent.notify import Notifier
from sre_agent.settings import Settings, load_settings
from sre_agent.store import Store
from tests.support.fake_slack import TOKEN, FakeSlack, rate_limited

PUBLIC = "https://sre-agent.example.com"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "sre-agent.db")
    store.open()
    yield store
    store.close()


def _settings(tmp_path: Path, slack: FakeSlack, mode: str = "bot") -> Settings:
    values: dict[str, object] = {"database_url": f"sqlite:///{tmp_path / 'x.db'}"}
    values["public_url"] = PUBLIC
    if mode == "bot":
        values.update(slack_bot_token=TOKEN, slack_channel="#alerts", slack_api_url=slack.api_url)
    else:
        values["slack_webhook_url"] = slack.webhook_url
    return load_settings(**values)


@pytest.fixture
async def notifier(tmp_path: Path, slack: FakeSlack, store: Store) -> AsyncIterator[Notifier]:
    notifier = Notifier(_settings(tmp_path, slack), store, Metrics(), base_delay=0.05)
    await notifier.start()
    yield notifier
    await notifier.stop()


async def _settle(notifier: Notifier) -> None:
    """Every message queued so far has gone out (stop waits for them); then on again."""
    await notifier.stop(grace=20)
    await notifier.start()


def _alert(name: str, labels: dict[str, str], severity: str = "warning") -> Alert:
    return Alert.model_validate(
        {
            "status": "firing",
            "labels": {"alertname": name, "severity": severity, **labels},
            "annotations": {"summary": f"{name} fired"},
            "startsAt": "2026-12-02T10:00:00Z",
            "fingerprint": f"{name}-{sorted(labels.items())}",
        }
    )


def _resolved(alert: Alert) -> Alert:
    body = alert.model_dump()
    body.update(status="resolved", endsAt="2026-12-02T10:30:00Z")
    return Alert.model_validate(body)


NODE = _alert("KubeNodeNotReady", {"node": "n1"}, "critical")
NODE_OBJECTS = [WalkedObject(kind="node", name="n1", why="Named by the alert")]
NODE_EVIDENCE = [
    Evidence(
        id="E1",
        title="Node n1",
        tool="kubectl_describe",
        output="Ready: Unknown\nKubelet stopped posting node status.",
    ),
    Evidence(id="E2", title="Events", tool="kubectl_events", status="error", output="timeout"),
]


def _pod(n: int) -> tuple[Alert, list[WalkedObject]]:
    pod = WalkedObject(kind="pod", name=f"web-{n}", namespace="shop", why="Named by the alert")
    node = WalkedObject(kind="node", name="n1", depth=1, why="Node of the pod", parent=pod.key())
    return _alert("KubePodNotReady", {"namespace": "shop", "pod": f"web-{n}"}), [pod, node]


def _arrive(
    store: Store, alert: Alert, objects: list[WalkedObject], evidence: Sequence[Evidence] = ()
) -> Investigation:
    """Intake, the evidence report, the join: as the worker's evidence stage does them."""
    [(ident, _, _)], _ = store.create_group([alert])
    store.save_evidence(ident, list(evidence), [], Sources(), objects, LlmUsage())
    record = store.join_incident(ident, 900)
    assert record is not None and record.incident_id is not None
    return record


def _incident(store: Store, record: Investigation) -> Incident:
    assert record.incident_id is not None
    incident = store.get_incident(record.incident_id)
    assert incident is not None
    return incident


def _counted(notifier: Notifier, status: str) -> float | None:
    """sre_agent_slack_notifications_total{status=...}, as /metrics shows it."""
    name, labels = "sre_agent_slack_notifications_total", {"status": status}
    return notifier.metrics.registry.get_sample_value(name, labels)


def _blocks(message: dict) -> str:
    return json.dumps(message["blocks"], ensure_ascii=False)


def _analyse(store: Store, head: Investigation) -> tuple[Investigation, list[Investigation]]:
    """The head's run completes with an analysis; the members it explains are linked."""
    assert store.claim(head.id) is not None
    analysis = Analysis(
        summary="Node n1 stopped reporting; its pods went with it.",
        root_causes=[RootCause(cause="The kubelet on n1 stopped.", confidence="high")],
        mitigation=["Restart the kubelet on n1", "Cordon n1"],
    )
    running = store.get(head.id)
    assert running is not None
    store.finish(running.model_copy(update={"status": "completed", "analysis": analysis}))
    linked = store.head_finished(head.id)
    done = store.get(head.id)
    assert done is not None
    return done, linked


async def test_a_burst_of_joins_is_one_message_edited_a_few_times(store, slack, notifier):
    node = _arrive(store, NODE, NODE_OBJECTS, NODE_EVIDENCE)
    notifier.incident_changed(_incident(store, node))
    for n in range(30):  # each join announced, as the worker does, while Slack works
        alert, objects = _pod(n)
        record = await asyncio.to_thread(_arrive, store, alert, objects)
        assert record.incident_id == node.incident_id
        notifier.incident_changed(_incident(store, record))
    await _settle(notifier)

    assert len(slack.calls("chat.postMessage")) == 1
    assert len(slack.calls("chat.update")) < 10  # the latest state wins, not 30 edits
    (message,) = slack.channel_messages()
    text = _blocks(message)
    assert message["blocks"][0]["text"]["text"] == _incident(store, node).title
    assert "31 alerts: 31 waiting" in text
    assert "Evidence report — analysis pending" in text
    assert "*KubeNodeNotReady* [critical] on node n1" in text
    assert "*Node n1*: Ready: Unknown · Kubelet stopped posting node status." in text
    assert "timeout" not in text  # a lookup that failed is no finding
    assert text.count("• *KubePodNotReady* · pod shop/web-") == 7  # 8 listed in all
    assert "+23 more" in text
    link = f"<{PUBLIC}/incidents/{node.incident_id}|Open the incident>"
    assert link in message["blocks"][-1]["elements"][0]["text"]
    assert store.incident_slack(node.incident_id) == (message["channel"], message["ts"])

    store.set_head(node.incident_id, node.id)
    notifier.incident_changed(_incident(store, node))
    await _settle(notifier)
    (message,) = slack.channel_messages()
    assert "31 alerts: 1 head, 30 waiting" in _blocks(message)
    assert "• *KubeNodeNotReady* · node n1 · head" in _blocks(message)


async def test_the_analysis_replaces_the_report_and_alerts_reply_in_the_thread(
    store, slack, notifier
):
    node = _arrive(store, NODE, NODE_OBJECTS, NODE_EVIDENCE)
    pods = [_arrive(store, *_pod(n)) for n in range(4)]
    store.set_head(node.incident_id, node.id)
    notifier.incident_changed(_incident(store, node))
    head, linked = _analyse(store, node)
    assert {r.id for r in linked} == {p.id for p in pods}
    notifier.incident_changed(_incident(store, head))
    notifier.investigation_finished(head)  # has an incident: a reply, not a message
    for record in linked:
        notifier.alert_reported(record)
    await _settle(notifier)

    (message,) = slack.channel_messages()
    text = _blocks(message)
    assert "5 alerts: 1 head, 4 linked" in text
    assert "*Root cause* (confidence: high)\\nThe kubelet on n1 stopped." in text
    assert "1. Restart the kubelet on n1" in text and "Cordon" not in text  # the top step
    assert "Evidence report" not in text
    details, *lines = slack.replies(message["ts"])
    assert details["blocks"][0]["text"]["text"] == "KubeNodeNotReady [critical]"
    assert "Cordon n1" in _blocks(details)  # the details: every step
    assert all(r["channel"] == message["channel"] for r in [details, *lines])
    said = "\n".join(r["blocks"][0]["text"]["text"] for r in lines)
    for n in range(4):
        assert f"*KubePodNotReady* (pod shop/web-{n}) explained by *KubeNodeNotReady*" in said
    assert len(lines) <= 2  # reported together: one reply, not one each


async def test_resolving_edits_the_message_and_notes_each_alert_in_the_thread(
    store, slack, notifier
):
    node = _arrive(store, NODE, NODE_OBJECTS, NODE_EVIDENCE)
    pod_alert, objects = _pod(1)
    pod = _arrive(store, pod_alert, objects)
    notifier.incident_changed(_incident(store, node))
    await _settle(notifier)
    _, [gone_node, gone_pod] = store.create_group([], [_resolved(NODE), _resolved(pod_alert)])
    assert gone_node is not None and gone_pod is not None
    incident = _incident(store, pod)
    assert incident.status == "resolved"
    notifier.incident_changed(incident)
    notifier.alert_resolved(gone_node)
    notifier.alert_resolved(gone_pod)
    await _settle(notifier)

    (message,) = slack.channel_messages()
    assert ":white_check_mark: resolved at" in _blocks(message)
    assert message["edits"] == 1
    said = " ".join(r["text"] for r in slack.replies(message["ts"]))
    assert "*KubeNodeNotReady* resolved at" in said and "*KubePodNotReady* resolved at" in said


async def test_a_deleted_incident_message_is_posted_again(store, slack, notifier):
    node = _arrive(store, NODE, NODE_OBJECTS, NODE_EVIDENCE)
    notifier.incident_changed(_incident(store, node))
    await _settle(notifier)
    (first,) = slack.channel_messages()
    slack.delete(first["ts"])  # someone removed it from the channel
    slack.fail(rate_limited(retry_after=0.2))  # and Slack is busy: retried, not lost
    notifier.incident_changed(_incident(store, _arrive(store, *_pod(1))))
    await _settle(notifier)

    (again,) = slack.channel_messages()
    assert again["ts"] != first["ts"] and "2 alerts" in _blocks(again)
    assert store.incident_slack(node.incident_id) == (again["channel"], again["ts"])
    assert [r["payload"]["ts"] for r in slack.calls("chat.update")] == [first["ts"]] * 2
    assert _counted(notifier, "sent") == 2 and _counted(notifier, "failed") == 0


async def test_a_webhook_gets_the_evidence_report_the_analysis_and_the_end(tmp_path, store, slack):
    notifier = Notifier(_settings(tmp_path, slack, "webhook"), store, Metrics())
    await notifier.start()
    try:
        node = _arrive(store, NODE, NODE_OBJECTS, NODE_EVIDENCE)
        notifier.incident_changed(_incident(store, node))
        pods = [_arrive(store, *_pod(n)) for n in range(3)]
        for pod in pods:  # joins change nothing a webhook's reader has not seen
            notifier.incident_changed(_incident(store, pod))
        await _settle(notifier)
        (report,) = slack.messages
        assert "Evidence report — analysis pending" in _blocks(report)

        store.set_head(node.incident_id, node.id)
        head, linked = _analyse(store, node)
        notifier.incident_changed(_incident(store, head))
        notifier.investigation_finished(head)
        for record in linked:
            notifier.alert_reported(record)
        await _settle(notifier)
        report, analysis = slack.messages
        assert "4 alerts: 1 head, 3 linked" in _blocks(analysis)
        assert "The kubelet on n1 stopped." in _blocks(analysis)

        alerts = [NODE] + [_pod(n)[0] for n in range(3)]
        _, gone = store.create_group([], [_resolved(a) for a in alerts])
        notifier.incident_changed(_incident(store, head))
        for record in gone:
            assert record is not None
            notifier.alert_resolved(record)
        await _settle(notifier)
        *_, end = slack.messages
        assert len(slack.messages) == 3  # and none per alert
        assert "resolved at" in end["text"] and _incident(store, head).title in end["text"]
    finally:
        await notifier.stop()
