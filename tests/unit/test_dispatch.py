"""The dispatcher's choice (pure): who the model runs next, who waits for a head, and
when nothing runs yet, on records as the store holds them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sre_agent import dispatch
from sre_agent.analysis import Analysis
from sre_agent.models import Investigation
from sre_agent.settings import load_settings
from tests.unit.test_incidents import T0, node_alert, pod_alert

SETTINGS = load_settings(incident_settle=15.0, storm_queue=10, kubeconfig=None)
LATER = T0 + timedelta(seconds=60)  # every incident below has settled by then


def incident(*members: Investigation, head: Investigation | None = None, **row: Any) -> dict:
    ident = "inc1"
    for m in members:
        m.incident_id = ident
    if head is not None:
        head.incident_id = ident
    return {
        ident: {
            "id": ident,
            "head_id": head.id if head else None,
            "updated_at": row.get("updated_at", T0.isoformat()),
        }
    }


def storm() -> tuple[Investigation, list[Investigation]]:
    node = node_alert("node-a", arrived=5)  # the node's alert comes in last
    pods = [
        pod_alert("shop", f"web-{n}", "node-a", rs="web-5d8f", group_key="{}:{alertname=x}")
        for n in range(3)
    ]
    return node, pods


def analysed(record: Investigation) -> Investigation:
    record.status = "completed"
    record.analysis = Analysis(summary="node-a is down: its kubelet stopped")
    return record


def test_the_node_heads_a_settled_incident_and_its_pods_wait_for_it() -> None:
    node, pods = storm()
    rows = incident(node, *pods)
    choice = dispatch.pick([*pods, node], rows, {}, (), SETTINGS, now=LATER)
    assert choice.ident == node.id and choice.head
    assert choice.set_head == ("inc1", node.id)  # recorded before the run starts
    assert choice.depth == {("warning", "head"): 1, ("warning", "waiting"): 3}


def test_nothing_runs_while_the_incident_settles() -> None:
    node, pods = storm()
    rows = incident(node, *pods, updated_at=(LATER - timedelta(seconds=5)).isoformat())
    choice = dispatch.pick([*pods, node], rows, {}, (), SETTINGS, now=LATER)
    assert choice.ident is None
    assert choice.wake_in == 10.0  # wakes when it has been quiet for incident_settle


def test_an_alert_still_gathering_holds_the_incident_it_may_join() -> None:
    node, pods = storm()
    rows = incident(*pods)  # last join at T0
    settled = load_settings(incident_settle=5.0, kubeconfig=None)
    before = (T0 + timedelta(seconds=2)).isoformat()  # came in while it settled
    after = (T0 + timedelta(seconds=30)).isoformat()  # came in once it had settled

    def pick(*pending: tuple[str | None, str]) -> str | None:
        return dispatch.pick(pods, rows, {}, (), settled, now=LATER, pending=pending).ident

    assert pick((pods[0].group_key, after)) is None  # its own group: the head may be that one
    assert pick(("{}:{alertname=KubeNodeNotReady}", before)) is None  # a node's slow walk
    assert pick(("{}:{other}", after)) in {p.id for p in pods}  # a newcomer does not hold it
    assert pick() in {p.id for p in pods}


def test_members_a_running_head_explains_wait_the_others_run() -> None:
    node, pods = storm()
    stranger = pod_alert("billing", "api-0", "node-b", rs="api-77c9")
    rows = incident(*pods, stranger, head=node)
    node.status = "running"
    choice = dispatch.pick([*pods, stranger], rows, {node.id: node}, {node.id}, SETTINGS, now=LATER)
    assert choice.ident == stranger.id and not choice.head  # not explained by the node
    assert choice.depth[("warning", "waiting")] == 3


def test_a_completed_head_relinks_what_it_explains() -> None:
    node, pods = storm()
    rows = incident(*pods, head=analysed(node))
    choice = dispatch.pick(pods, rows, {node.id: node}, (), SETTINGS, now=LATER)
    assert choice.ident is None and choice.relink == [node.id] * 3


def test_a_head_the_model_could_not_answer_does_not_hold_newcomers_forever() -> None:
    node, pods = storm()
    node.status, node.llm_retry = "degraded", True
    rows = incident(*pods, head=node)
    choice = dispatch.pick(pods, rows, {node.id: node}, (), SETTINGS, now=LATER)
    assert choice.ident in {p.id for p in pods} and choice.head  # one of them heads now


def test_under_a_storm_heads_come_before_a_more_critical_alert_of_its_own() -> None:
    node, _ = storm()
    node.status = "running"
    critical = pod_alert("billing", "api-0", "node-b", rs="api-77c9", severity="critical")
    rows = incident(critical, head=node)  # joined the node's incident, not explained by it
    heads = [node_alert(f"node-{n}", arrived=n) for n in range(SETTINGS.storm_queue)]
    running = {node.id: node}
    plain = dispatch.pick([heads[0], critical], rows, running, {node.id}, SETTINGS, now=LATER)
    assert plain.ident == critical.id and not plain.storm  # severity first
    stormy = dispatch.pick([*heads, critical], rows, running, {node.id}, SETTINGS, now=LATER)
    assert stormy.storm and stormy.ident == heads[0].id  # heads first, the earliest
