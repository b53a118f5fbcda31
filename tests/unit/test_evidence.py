"""The pieces that keep evidence small: log reduction, the budget, event dedup."""

import pytest

from sre_agent import graph_relations as rel
from sre_agent import graph_text as facts
from sre_agent import tokens
from sre_agent.evidence import (
    Evidence,
    call_signature,
    fit_budget,
    other_events,
    own_series_first,
    reduce_log,
)
from sre_agent.graph import reduce_describe


def test_reduce_log_keeps_errors_and_tail():
    body = [f"level=info msg=step {i}" for i in range(100)]
    body[20] = "level=error msg=connection refused host=db"
    body[21] = "level=error msg=connection refused host=db"  # repeated: shown once
    text = "\n".join(["Logs of pod ns/p, container c (previous instance), last 200 lines:", *body])
    reduced = reduce_log(text).splitlines()
    assert reduced[0].startswith("Logs of pod ns/p")
    assert reduced.count("level=error msg=connection refused host=db") == 1
    assert reduced[-1] == "level=info msg=step 99"
    assert any("other lines omitted" in line for line in reduced)
    assert len(reduced) < 20


def test_short_logs_are_left_alone():
    text = "header\nline 1\nline 2"
    assert reduce_log(text) == text


def _finding(title: str, lines: int, priority: int) -> Evidence:
    output = "\n".join(
        f"Warning BackOff Pod/api-{i} restarting failed container" for i in range(lines)
    )
    return Evidence(
        title=title,
        tool="kubectl_describe",
        args={"name": title},
        output=output,
        duration_ms=1.0,
        priority=priority,
    )


def test_budget_keeps_priorities_whole_and_trims_the_rest():
    findings = [_finding("first", 100, 0), _finding("second", 100, 1), _finding("third", 100, 2)]
    one = tokens.count(findings[0].output)
    kept = fit_budget(findings, int(one * 1.6))
    assert [f.title for f in kept] == ["first", "second"]
    assert kept[0].output == findings[0].output
    assert "trimmed to fit the prompt budget" in kept[1].output
    used = sum(tokens.count(f.output) + tokens.count(f.title) for f in kept)
    assert one * 1.4 < used <= one * 1.6


def test_events_of_described_objects_are_not_repeated():
    text = (
        "Events (3, newest last; 2 Warning, 1 Normal):\n"
        "  Warning BackOff Pod/api-1 x5 last t: Back-off restarting\n"
        "  Normal  Pulled Pod/api-1 x1 last t: pulled\n"
        "  Warning FailedMount Pod/db-0 x2 last t: MountVolume failed\n"
    )
    assert other_events(text, {"api-1"}).splitlines()[1:] == [
        "  Warning FailedMount Pod/db-0 x2 last t: MountVolume failed"
    ]
    assert other_events(text, {"api-1", "db-0"}) == ""


def test_call_signature_ignores_empty_arguments_and_order():
    a = call_signature("kubectl_logs", {"pod": "p", "namespace": "n", "container": None})
    b = call_signature("kubectl_logs", {"namespace": "n", "pod": "p", "previous": False})
    assert a == b
    assert a != call_signature("kubectl_logs", {"pod": "p", "namespace": "n", "previous": True})


# -- the walk's pure parts (graph_relations) and the reductions ---------------------------


def test_reduce_log_folds_lines_that_differ_only_in_numbers():
    body = [f"INFO request {i} ok" for i in range(30)]
    body += [
        f"[ERROR] read udp 10.42.1.{i}:{4000 + i}->10.20.0.53:53: i/o timeout" for i in range(40)
    ]
    body += [f"INFO request {i} ok" for i in range(30)]
    reduced = reduce_log("\n".join(["header", *body]))
    errors = [line for line in reduced.splitlines() if "[ERROR]" in line]
    assert errors == ["[ERROR] read udp 10.42.1.39:4039->10.20.0.53:53: i/o timeout"]
    assert "39 similar lines folded" in reduced


def test_a_log_that_ends_mid_startup_keeps_its_last_line():
    body = [f"INFO preloading shard {i}/1200 into memory" for i in range(0, 400, 17)]
    reduced = reduce_log("\n".join(["header", *body, "INFO preloading shard 408/1200 into memory"]))
    assert reduced.splitlines()[-1] == "INFO preloading shard 408/1200 into memory"


def test_warnings_count_as_error_looking():
    assert facts.error_lines("h\nlevel=warn msg=rate limit reached\nlevel=info msg=ok") == [
        "level=warn msg=rate limit reached"
    ]


def test_describe_keeps_warnings_and_the_newest_normal_events():
    events = [f"  Normal  Pulled x1 last t: normal {i}" for i in range(8)]
    events.insert(2, "  Warning BackOff x5 last t: back-off restarting")
    text = "\n".join(["Pod ns/p", "Events (9, newest last; 1 Warning, 8 Normal):", *events])
    reduced = reduce_describe(text).splitlines()
    assert "  Warning BackOff x5 last t: back-off restarting" in reduced
    assert [line for line in reduced if "normal" in line] == [
        f"  Normal  Pulled x1 last t: normal {i}" for i in (5, 6, 7)
    ]
    assert "5 older Normal events left out" in reduced[1]


def test_own_series_first():
    text = 'x{namespace="a",pod="p"} => 1\nx{namespace="b",pod="p"} => 1\n… 3 more series'
    out = own_series_first(text, {"alertname": "A", "namespace": "b", "pod": "p"})
    assert out.splitlines()[0] == 'x{namespace="b",pod="p"} => 1'
    assert out.splitlines()[-1].startswith("…")


def _svc(name: str, ip: str = "") -> dict:
    return {"metadata": {"name": name}, "spec": {"clusterIP": ip}}


def test_names_in_facts_are_references_not_bare_words():
    services = [_svc("api"), _svc("ledger-db", "10.43.90.8"), _svc("redis")]
    assert facts.named_services("the api is slow", services) == []
    assert facts.named_services("GET http://api:8080/x", services) == ["api"]
    assert facts.named_services("DB_HOST=ledger-db", services) == ["ledger-db"]
    assert facts.named_services("DB_HOST=ledger-db-0", services) == []
    assert facts.named_services("dial tcp 10.43.90.8:5432: refused", services) == ["ledger-db"]
    assert facts.named_services("dial tcp 10.43.90.81:5432", services) == []
    assert facts.dns_services('Get "http://fx.lab.svc.cluster.local:80"') == [("lab", "fx")]
    assert facts.references("Labels: app=redis\nSelector: app=redis").strip() == ""


def test_webhook_and_quota_names_in_event_messages():
    message = 'Internal error occurred: failed calling webhook "inject.mesh.io": dial tcp'
    assert facts.webhooks_named(message) == ["inject.mesh.io"]
    assert facts.quotas_named("forbidden: exceeded quota: compute-resources, requested") == [
        "compute-resources"
    ]


def _pod(statuses: list[dict], init: list[dict] = (), phase: str = "Running") -> dict:  # type: ignore[assignment]
    return {
        "metadata": {"name": "p", "creationTimestamp": "t"},
        "spec": {
            "containers": [{"name": s["name"]} for s in statuses],
            "initContainers": [{"name": s["name"]} for s in init],
        },
        "status": {
            "phase": phase,
            "containerStatuses": statuses,
            "initContainerStatuses": list(init),
        },
    }


RUNNING = {"running": {}}


def test_log_targets_follow_restarts_init_containers_and_unready_containers():
    restarted = _pod([{"name": "app", "ready": False, "restartCount": 3, "state": RUNNING}])
    assert rel.log_targets(restarted, None) == [("app", True), ("app", False)]
    healthy = _pod([{"name": "app", "ready": True, "restartCount": 0, "state": RUNNING}])
    assert rel.log_targets(healthy, None) == [("app", False)]
    initing = _pod(
        [{"name": "app", "ready": False, "state": {"waiting": {"reason": "PodInitializing"}}}],
        [{"name": "wait-db", "ready": False, "restartCount": 0, "state": RUNNING}],
        phase="Pending",
    )
    assert rel.log_targets(initing, None) == [("wait-db", False)]
    sidecar = _pod(
        [
            {"name": "app", "ready": True, "restartCount": 0, "state": RUNNING},
            {"name": "proxy", "ready": False, "restartCount": 1, "state": RUNNING},
        ]
    )
    assert rel.log_targets(sidecar, None) == [("proxy", True), ("proxy", False)]


def test_pick_pods_takes_one_of_each_trouble_first():
    def p(name: str, reason: str | None, phase: str) -> dict:
        status = {"phase": phase, **({"reason": reason} if reason else {})}
        return {"metadata": {"name": name, "creationTimestamp": name}, "status": status}

    pods = [p(f"pending-{i}", None, "Pending") for i in range(20)]
    pods += [p("evicted-1", "Evicted", "Failed"), p("ok", None, "Succeeded")]
    chosen = [x["metadata"]["name"] for x in rel.pick_pods(pods, 3)]
    assert "evicted-1" in chosen and "ok" not in chosen and len(chosen) == 3
    assert [echo for _, echo in rel.with_echoes(rel.pick_pods(pods, 3))].count(True) == 1


def test_controller_for_an_event_component():
    deps = [
        {"metadata": {"name": "cert-manager", "labels": {}}},
        {"metadata": {"name": "cert-manager-webhook", "labels": {}}},
        {"metadata": {"name": "x", "labels": {"app.kubernetes.io/name": "flux-helm"}}},
    ]
    assert rel.controller_for("cert-manager-certificates-issuing", deps) is deps[0]
    assert rel.controller_for("cert-manager-webhook", deps) is deps[1]
    assert rel.controller_for("flux-helm-controller", deps) is deps[2]
    assert rel.controller_for("kubelet", deps) is None
    assert rel.controller_for("replicaset-controller", deps) is None


@pytest.mark.parametrize(
    ("selector", "labels", "selected"),
    [
        ({}, {"app": "x"}, True),  # an empty podSelector selects every pod
        (None, {}, True),
        ({"matchLabels": {"app": "pg"}}, {"app": "pg", "tier": "db"}, True),
        ({"matchLabels": {"app": "pg"}}, {"app": "api"}, False),
        (
            {"matchExpressions": [{"key": "app", "operator": "In", "values": ["pg", "mysql"]}]},
            {"app": "mysql"},
            True,
        ),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["pg"]}]}, {}, False),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["pg"]}]}, {}, True),
        (
            {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["pg"]}]},
            {"app": "pg"},
            False,
        ),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {"tier": "db"}, True),
        (
            {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]},
            {"tier": "db"},
            False,
        ),
        (
            {"matchExpressions": [{"key": "tier", "operator": "Gt", "values": ["1"]}]},
            {"tier": "2"},
            False,
        ),
        (
            {
                "matchLabels": {"app": "pg"},
                "matchExpressions": [{"key": "role", "operator": "Exists"}],
            },
            {"app": "pg"},
            False,
        ),
    ],
)
def test_label_selectors_select_as_the_api_server_does(selector, labels, selected) -> None:
    assert rel.selects(selector, labels) is selected


@pytest.mark.parametrize(
    "line",
    [
        "upstream psp-gateway returned 502 Bad Gateway",
        '{"msg":"GET /ready","status":503}',
        "status=500 path=/v1/charge",
        "proxy: 504 Gateway Timeout from orders:8080",
    ],
)
def test_http_server_errors_are_error_looking_lines(line: str) -> None:
    assert facts.error_lines(f"header\n{line}") == [line]


def test_a_5xx_looking_number_in_a_path_is_not_an_error_line() -> None:
    assert facts.error_lines("header\nPOST /charge/502 200 dur=3ms") == []
