"""Parsing Alertmanager's v4 payload, with the real bodies in examples/alertmanager."""

import json
from pathlib import Path

import pytest

from sre_agent.alerts import load_alert_file, parse_payload
from sre_agent.errors import AlertPayloadError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "alertmanager"


def _example(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text())


def test_real_firing_body_parses():
    payload = parse_payload(_example("group-firing-homepage.json"))
    assert payload.status == "firing"
    assert [a.name for a in payload.alerts] == [
        "KubeDeploymentReplicasMismatch",
        "KubePodCrashLooping",
        "CPUThrottlingHigh",
    ]
    crash = payload.alerts[1]
    assert crash.severity == "warning"
    assert crash.namespace == "homepage"
    assert crash.ended_at is None
    assert crash.expr is not None and "kube_pod_container_status_waiting_reason" in crash.expr


def test_resolved_body_keeps_the_dedup_key():
    firing = parse_payload(_example("group-firing-homepage.json"))
    resolved = parse_payload(_example("group-resolved-homepage.json"))
    assert resolved.alerts[0].ended_at is not None
    assert resolved.alerts[0].dedup_key() == firing.alerts[0].dedup_key()


def test_unknown_keys_are_accepted():
    body = _example("group-firing-homepage.json")
    body["notification_reason"] = "new"
    body["alerts"][0]["routeLabels"] = {"x": "y"}
    assert len(parse_payload(body).alerts) == 3


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.update(version="3"), "unsupported payload version"),
        (lambda b: b.pop("alerts"), "alerts"),
        (lambda b: b["alerts"][0].pop("fingerprint"), "alerts.0.fingerprint"),
        (lambda b: b["alerts"][0]["labels"].pop("alertname"), "alertname"),
        (lambda b: b["alerts"][0].update(startsAt="yesterday"), "alerts.0.startsAt"),
        (lambda b: b["alerts"][0].update(status="exploded"), "alerts.0.status"),
    ],
)
def test_bad_bodies_say_what_is_wrong(mutate, message):
    body = _example("group-firing-homepage.json")
    mutate(body)
    with pytest.raises(AlertPayloadError) as info:
        parse_payload(body)
    assert message in str(info.value)


def test_a_single_alert_file_is_wrapped():
    alert = _example("group-firing-homepage.json")["alerts"][1]
    payload = load_alert_file(json.dumps(alert))
    assert payload.alerts[0].name == "KubePodCrashLooping"
    with pytest.raises(AlertPayloadError, match="not valid JSON"):
        load_alert_file("{nope")
