"""The pieces that keep evidence small: log reduction, the budget, event dedup."""

from sre_agent import tokens
from sre_agent.evidence import Finding, call_signature, fit_budget, other_events, reduce_log


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


def _finding(title: str, lines: int, priority: int) -> Finding:
    output = "\n".join(
        f"Warning BackOff Pod/api-{i} restarting failed container" for i in range(lines)
    )
    return Finding(title, "kubectl_describe", {"name": title}, "ok", output, 1.0, priority)


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
