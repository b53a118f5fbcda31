"""Evidence ids, citations held to what was gathered, the Sources, and the cited report."""

import json

import pytest
from markdown_it import MarkdownIt

from sre_agent.analysis import (
    Analysis,
    CitationError,
    analysis_schema,
    check_citations,
    parse_analysis,
)
from sre_agent.findings import assign_ids, fit_budget
from sre_agent.findings import render as render_evidence
from sre_agent.models import Evidence, Sources
from sre_agent.notify import investigation_blocks
from sre_agent.report import render, telling_lines
from sre_agent.sources import compute_sources, graph_base, graph_url, rerun_command, warning
from tests.support.records import investigation, render_report

ALERT = {
    "labels": {"alertname": "KubePodCrashLooping", "severity": "warning", "namespace": "shop"},
    "annotations": {"summary": "Pod is crash looping.", "description": "cart restarted 9 times."},
    "startsAt": "2026-11-26T23:47:56Z",
    "generatorURL": "http://prom.example:9090/prom/graph?g0.expr=up&g0.tab=1",
}


def answer(**cause):
    return json.dumps({"summary": "cart crash-loops.", "root_causes": [{"cause": "c", **cause}]})


def finding(title, tool="kubectl_describe", status="ok", output="x", priority=0, **args):
    return Evidence(
        title=title,
        tool=tool,
        args=args,
        status=status,
        output=output,
        duration_ms=1.0,
        priority=priority,
    )


@pytest.mark.parametrize(
    ("cause", "ids"),
    [
        ({"evidence_ids": ["E3", "[E5]", "e7", "E03"]}, ["E3", "E5", "E7"]),
        ({"evidence_ids": "E2, E4"}, ["E2", "E4"]),
        ({"evidence": ["[E3] Last State: OOMKilled", "(E5, E6) restarts=9"]}, ["E3", "E5", "E6"]),
        ({"evidence": "[E1] FATAL: config", "evidence_ids": ["E1"]}, ["E1"]),
        ({"evidence": ["exit code 137 in E3 terms"]}, []),  # not bracketed: not a citation
        ({"evidence": ["E4: Last State: OOMKilled"], "evidence_ids": [3, "E3"]}, ["E3", "E4"]),
    ],
)
def test_ids_are_read_as_a_small_model_writes_them(cause, ids):
    assert parse_analysis(answer(**cause)).root_causes[0].evidence_ids == ids


def test_an_id_that_is_no_id_is_refused_with_the_field_named():
    with pytest.raises(ValueError, match="evidence_ids"):
        parse_analysis(answer(evidence_ids=["the pod log"]))


def test_the_schema_for_constrained_decoding_has_ids_and_not_our_own_mark():
    root = analysis_schema()["$defs"]["RootCause"]["properties"]
    assert root["evidence_ids"]["items"]["pattern"] == r"^E\d+$"
    assert "lowered_from" not in root


def test_an_id_never_gathered_is_named_with_those_that_exist():
    gathered = {f"E{n}": "ok" for n in range(1, 13)}
    analysis = parse_analysis(answer(evidence_ids=["E2", "E19"]))
    with pytest.raises(ValueError) as caught:
        check_citations(analysis, gathered)
    assert str(caught.value) == (
        "root_causes[0] cites E19, which was never gathered; the evidence ids are E1-E12"
    )


def test_with_nothing_gathered_any_citation_is_refused():
    with pytest.raises(ValueError, match="no evidence was gathered"):
        check_citations(parse_analysis(answer(evidence_ids=["E1"])), {})


@pytest.mark.parametrize(
    ("cited", "statuses", "confidence"),
    [
        ([], {"E1": "ok"}, "low"),
        (["E1"], {"E1": "error"}, "low"),
        (["E1"], {"E1": "no_data"}, "medium"),
        (["E1", "E2"], {"E1": "error", "E2": "ok"}, "high"),
    ],
)
def test_high_confidence_needs_a_cited_finding_that_answered(cited, statuses, confidence):
    analysis = parse_analysis(answer(evidence_ids=cited, confidence="high"))
    notes = check_citations(analysis, statuses)
    assert analysis.root_causes[0].confidence == confidence
    assert bool(notes) == (confidence != "high")


@pytest.mark.parametrize(
    ("cited", "statuses", "confidence"),
    [
        ([], {"E1": "ok"}, "low"),
        (["E1"], {"E1": "timeout"}, "low"),
        (["E1"], {"E1": "no_data"}, "medium"),
    ],
)
def test_a_claim_citing_nothing_that_answered_is_a_guess(cited, statuses, confidence):
    analysis = parse_analysis(answer(evidence_ids=cited, confidence="medium"))
    check_citations(analysis, statuses)
    cause = analysis.root_causes[0]
    assert cause.confidence == confidence
    assert cause.lowered_from == ("medium" if confidence == "low" else None)


def test_the_model_cannot_claim_it_was_lowered_nor_escape_lowering():
    analysis = parse_analysis(answer(confidence="high", lowered_from=None, evidence_ids=[]))
    check_citations(analysis, {})
    assert analysis.root_causes[0].lowered_from == "high"
    claimed = parse_analysis(answer(confidence="low", lowered_from="high"))
    assert claimed.root_causes[0].lowered_from is None


def test_ids_follow_the_prompt_order_and_survive_the_budget():
    findings = [finding(f"f{n}", output="line\n" * 400, priority=n) for n in range(5)]
    assert assign_ids(findings) == 6
    kept = fit_budget(findings, 700)
    assert [f.id for f in kept] == [f.id for f in findings[: len(kept)]]
    assert len(kept) < len(findings)
    assert render_evidence(kept).startswith("### [E1] f0\n")


def test_a_stored_item_comes_back_as_the_finding_it_was():
    original = finding("pod shop/cart", status="error", output="gone", name="cart")
    original.id = "E4"
    back = Evidence.model_validate_json(original.model_dump_json())
    assert (back.id, back.status, back.args, back.output) == (
        "E4",
        "error",
        {"name": "cart"},
        "gone",
    )
    old = Evidence.model_validate({"title": "old", "output": "x"})  # an old row
    assert (old.id, old.status, old.in_prompt) == ("", "ok", True)


def test_rerun_commands_are_shell_safe():
    assert rerun_command(
        "kubectl_describe", {"kind": "pod", "name": "cart-1", "namespace": "shop"}
    ) == ("kubectl describe pod cart-1 -n shop")
    logs = rerun_command(
        "kubectl_logs", {"pod": "cart-1", "namespace": "shop", "container": "app", "previous": True}
    )
    assert logs == "kubectl logs cart-1 -n shop -c app --previous"
    events = rerun_command("kubectl_events", {"namespace": "shop", "kind": "pod", "name": "cart-1"})
    assert events == "kubectl events -n shop --for pod/cart-1"
    hostile = rerun_command(
        "kubectl_describe", {"kind": "pod", "name": "x; rm -rf /", "namespace": "a"}
    )
    assert hostile == "kubectl describe pod 'x; rm -rf /' -n a"
    assert rerun_command("promql_query", {"query": 'up{job="x"}'}) == 'up{job="x"}'


@pytest.mark.parametrize(
    ("external", "generator", "base"),
    [
        (None, "http://prom.example:9090/prom/graph?g0.expr=up", "http://prom.example:9090/prom"),
        ("https://prom.corp/", "http://prom.example:9090/graph", "https://prom.corp"),
        (None, "javascript:alert(1)//graph", None),
        (None, "http://user:pw@prom.example/graph?g0.expr=up", "http://prom.example"),
        (None, "not a url", None),
        (None, "http://a)b/graph", None),
        (None, "http://prom:9090/a)(b/graph", "http://prom:9090/a%29%28b"),
        # Not Prometheus's graph page (vmalert, Grafana): no link is guessed from it.
        (None, "http://vmalert:8880/vmalert/alert?group_id=1", None),
        (None, "https://grafana.corp/alerting/grafana/abc/view", None),
        ("https://prom.corp/prefix/", None, "https://prom.corp/prefix"),
        (None, None, None),
    ],
)
def test_the_graph_base_comes_from_the_setting_else_the_generator_url(external, generator, base):
    assert graph_base(external, generator) == base


def test_graph_links_encode_the_query():
    url = graph_url("http://p:9090", 'rate(x{a="b c"}[5m]) > 0 & 1')
    assert (
        url
        == "http://p:9090/graph?g0.expr=rate%28x%7Ba%3D%22b%20c%22%7D%5B5m%5D%29%20%3E%200%20%26%201&g0.tab=0"
    )


def items(*specs):
    return [
        Evidence(id=f"E{n}", tool=tool, status=status, output=output)
        for n, (tool, status, output) in enumerate(specs, 1)
    ]


def test_sources_say_what_answered_failed_or_was_absent():
    evidence = items(
        ("promql_query", "error", "Prometheus unreachable at http://127.0.0.1:1: refused."),
        ("promql_range", "error", "Prometheus unreachable again"),
        ("kubectl_describe", "error", "Kubernetes is not configured"),
    )
    got = compute_sources(evidence, prometheus=True, kubernetes=False).backends
    assert got["prometheus"].state == "failed"
    assert got["prometheus"].why == "Prometheus unreachable at http://127.0.0.1:1: refused."
    assert got["kubernetes"].state == "not configured"
    assert got["logs"].state == "not configured"
    line = warning(Sources(backends=got))
    assert line.startswith("⚠ Prometheus did not answer (Prometheus unreachable")
    assert "Kubernetes is not configured" in line and "Logs" not in line
    assert line.endswith("rests on the alert's text alone.")


def test_a_backend_that_answered_once_answered_and_the_gap_is_named():
    evidence = items(
        ("promql_query", "no_data", "No series matched"),
        ("kubectl_describe", "ok", "Name: cart"),
        ("kubectl_logs", "error", "Kubernetes API unreachable at https://k: timeout"),
    )
    got = compute_sources(evidence, prometheus=True, kubernetes=True)
    assert [b.state for b in got.backends.values()] == ["answered", "answered", "failed"]
    assert got.backends["kubernetes"].ids == ["E2"]
    assert warning(got) == (
        "⚠ Logs did not answer (Kubernetes API unreachable at https://k: timeout)"
        " — this analysis rests on the alert and Prometheus, Kubernetes only."
    )
    everything = compute_sources(evidence[:2], prometheus=True, kubernetes=True)
    assert warning(everything) is None  # logs not consulted: nothing was missing


def test_nothing_consulted_is_said_too():
    got = compute_sources([], prometheus=True, kubernetes=True)
    assert (
        warning(got) == "⚠ no source was consulted — this analysis rests on the alert's text alone."
    )


def test_the_report_shows_each_cited_finding_beside_its_claim():
    evidence = items(
        ("kubectl_logs", "ok", "starting\nFATAL: config: CART_DB_URL is missing\nexit 1"),
        ("promql_query", "ok", "kube_pod_container_status_restarts_total => 9"),
        ("kubectl_describe", "ok", "Name: other"),
    )
    evidence[0].args = {"pod": "cart-1", "namespace": "shop", "previous": True}
    evidence[1].args = {"query": "kube_pod_container_status_restarts_total"}
    evidence[0].title = "logs of shop/cart-1 (previous)"
    sources = compute_sources(
        evidence,
        prometheus=True,
        kubernetes=True,
        graph_base=graph_base(None, ALERT["generatorURL"]),
    )
    analysis = parse_analysis(
        answer(
            evidence=["[E1] FATAL: config: CART_DB_URL is missing"],
            evidence_ids=["E2"],
            confidence="high",
        )
    )
    check_citations(analysis, {i.id: i.status for i in evidence})
    md = render_report(
        ALERT,
        analysis,
        status="completed",
        evidence=evidence,
        sources=sources,
        usage={
            "model": "m",
            "prompt_version": "v1",
            "calls": 1,
            "seconds": 2.5,
            "evidence_seconds": 0.4,
        },
        duration_s=3.2,
    )
    assert "**[E1] logs of shop/cart-1 (previous)**" in md
    assert "     FATAL: config: CART_DB_URL is missing" in md
    assert "starting" not in md  # only the quoted line, not the whole log
    assert "Re-run: `kubectl logs cart-1 -n shop --previous`" in md
    assert (
        "[Prometheus graph](http://prom.example:9090/prom/graph?"
        "g0.expr=kube_pod_container_status_restarts_total&g0.tab=0)"
    ) in md
    assert "Name: other" not in md  # not cited
    assert "(confidence: high)" in md
    assert "> cart restarted 9 times." in md and "> Pod is crash looping." in md
    assert "Alert source: http://prom.example:9090/prom/graph" in md
    assert "model m · prompts v1 · evidence 0.4 s · LLM 2.5 s in 1 call(s) · total 3.2 s" in md
    assert "   - *Cited evidence:*" in md
    assert "## Sources" in md and "**Kubernetes**: answered — 1 answer(s) (E3)" in md
    assert "⚠" not in md


def test_a_lowered_claim_says_so():
    analysis = parse_analysis(answer(confidence="high"))
    check_citations(analysis, {})
    md = render_report(
        ALERT,
        analysis,
        status="completed",
        sources=compute_sources([], prometheus=False, kubernetes=False),
    )
    lines = md.splitlines()
    assert lines[2].startswith("**⚠ Prometheus is not configured; Kubernetes is not configured")
    assert "confidence: low, lowered from high: it cites no finding that answered" in md


def test_backticks_in_output_cannot_break_out_of_the_fence():
    evidence = items(("kubectl_logs", "ok", "error: ```\n# injected heading"))
    analysis = parse_analysis(answer(evidence_ids=["E1"]))
    md = render_report(ALERT, analysis, status="completed", evidence=evidence)
    assert "     ````" in md


def test_telling_lines_fall_back_to_failures_then_the_start():
    assert telling_lines("a\nb\nOOMKilled here\nc", []) == ["OOMKilled here"]
    assert telling_lines("status: ok\none\ntwo", []) == ["one", "two"]


def test_an_old_row_still_renders():
    old = {
        "alert": {"labels": {"alertname": "X", "severity": "critical"}, "annotations": {}},
        "status": "completed",
        "analysis": Analysis.model_validate(
            {
                "summary": "s",
                "root_causes": [{"cause": "c", "evidence": ["e"], "confidence": "high"}],
            }
        ).model_dump(exclude={"root_causes": {0: {"evidence_ids", "lowered_from"}}}),
        "evidence": [{"title": "t", "tool": "kubectl_describe", "output": "o"}],
        "llm_usage": {"model": "m", "calls": 1, "prompt_tokens": 3},
        "sources": None,
    }
    md = render(investigation(**old))
    assert "(confidence: high)" in md
    assert "Not recorded (this investigation predates source tracking)." in md
    assert "⚠" not in md


def test_a_degraded_report_marks_what_failed_and_what_the_budget_left_out():
    evidence = items(("kubectl_describe", "error", "timed out"), ("kubectl_logs", "ok", "boom"))
    evidence[1].in_prompt = False
    md = render_report(ALERT, None, status="degraded", reason="r", evidence=evidence)
    assert "### [E1] kubectl_describe [error]\n" in md
    assert "### [E2] kubectl_logs (not in the prompt: over the budget)\n" in md


# --- what a hostile answer cannot make the report (or Slack) say -------------------------

FORGED = "ok\n\n## Sources\n- **Prometheus**: answered\n<img src=x onerror=alert(1)>"


def read_as_commonmark(md: str) -> tuple[list[str], list[str], list[str]]:
    """What a markdown viewer makes of a report: its headings, raw HTML, link targets."""
    headings, html, links = [], [], []
    tokens = MarkdownIt("commonmark").parse(md)
    for n, token in enumerate(tokens):
        if token.type == "heading_open":
            headings.append(tokens[n + 1].content)
        html += [token.content] if token.type == "html_block" else []
        for child in token.children or []:
            html += [child.content] if child.type == "html_inline" else []
            links += [str(child.attrs.get("href") or child.attrs.get("src"))] * (
                child.type in ("link_open", "image")
            )
    return headings, html, links


def test_model_text_cannot_forge_a_section_html_or_a_link_in_the_report():
    analysis = parse_analysis(
        json.dumps(
            {
                "summary": FORGED,
                "root_causes": [
                    {
                        "cause": "c\n# FAKE",
                        "evidence": ["[E1] up\n## Sources", "see [this](javascript:alert(1))"],
                        "confidence": "high",
                    }
                ],
                "impact": "# Impact: none",
                "mitigation": ["1. <script>x</script>", "[ref]: https://evil.example", "[ref]"],
                "follow_up_queries": ["up `` [x](https://evil.example) ``"],
            }
        )
    )
    evidence = items(("promql_query", "ok", "up => 1"))
    evidence[0].args = {"query": "up"}
    sources = compute_sources(
        evidence, prometheus=True, kubernetes=True, graph_base="http://prom.example:9090"
    )
    md = render_report(ALERT, analysis, status="completed", evidence=evidence, sources=sources)
    headings, html, links = read_as_commonmark(md)
    assert headings == [
        "KubePodCrashLooping (warning)",
        "Summary",
        "Likely root cause",
        "Impact",
        "Mitigation",
        "Follow-up",
        "Sources",
    ]
    assert html == []
    assert links == ["http://prom.example:9090/graph?g0.expr=up&g0.tab=0"]  # ours alone
    # The whole follow-up is one code span: no run of backticks inside can close it.
    assert "- ``` up `` [x](https://evil.example) `` ```" in md


def test_unstructured_model_output_is_shown_as_it_was_written_not_as_markdown():
    md = render_report(
        ALERT,
        None,
        status="degraded",
        raw_text=FORGED,
        sources=compute_sources([], prometheus=False, kubernetes=False),
    )
    headings, html, _ = read_as_commonmark(md)
    assert headings.count("Sources") == 1 and html == []
    assert "\nok\n\n## Sources\n- **Prometheus**: answered\n" in md  # verbatim, in a fence


def test_the_alert_cannot_forge_the_report_either():
    alert = {
        **ALERT,
        "labels": {"alertname": "A\n# Sources", "severity": "x", "pod": "p\n## Summary"},
        "annotations": {"summary": "# fine", "runbook_url": "[r](javascript:alert(1))"},
        "generatorURL": "javascript:alert(1)//<a href=x>",
    }
    headings, html, links = read_as_commonmark(render_report(alert, None, status="failed"))
    assert headings == ["A # Sources (x)", "Sources"]
    assert html == [] and links == []


def test_an_id_too_long_to_be_one_is_refused_not_ignored():
    analysis = parse_analysis(answer(evidence=["[E999999999999] proof"], confidence="high"))
    assert analysis.root_causes[0].evidence_ids == ["E999999999999"]
    with pytest.raises(CitationError, match=r"cites E9999999999…, which was never gathered"):
        check_citations(analysis, {"E1": "ok"})


def test_sources_say_when_answers_had_no_data():
    evidence = items(("promql_query", "no_data", ""), ("promql_range", "no_data", ""))
    sources = compute_sources(evidence, prometheus=True, kubernetes=True)
    assert sources.backends["prometheus"].no_data == 2
    md = render_report(ALERT, None, status="degraded", sources=sources)
    assert "**Prometheus**: answered — 2 answer(s) (E1, E2), none with data" in md


def test_slack_says_a_claim_was_lowered_too():
    analysis = parse_analysis(answer(confidence="high"))
    check_citations(analysis, {})
    record = investigation(ALERT, analysis.model_dump())
    text = json.dumps(investigation_blocks(record, None))
    assert "(confidence: low, lowered from high)" in text


def test_labels_and_summaries_read_as_written_not_as_markdown():
    """Issue 10: a `|` or backticks in a label, a multi-line summary with raw HTML, a
    model's emphasis: a viewer shows them as written — no table, code, bold or HTML."""
    alert = {
        **ALERT,
        "labels": {"alertname": "Probe|Down", "severity": "warning", "path": "`/x|y` *z*"},
        "annotations": {"summary": "line one\nline two <script>alert(1)</script> a\\b"},
    }
    analysis = parse_analysis(answer(cause="**very** `bad`", confidence="low"))
    md = render_report(alert, analysis, status="completed")
    text = text_of_commonmark(md)
    assert "path=`/x|y` *z*" in text
    assert "line one line two <script>alert(1)</script> a\\b" in text
    assert "**very** `bad`" in text
    assert text.splitlines()[0] == "Probe|Down (warning)"  # the title, one heading
    headings, html, links = read_as_commonmark(md)
    assert len([h for h in headings if "Probe" in h]) == 1
    assert html == [] and links == []


def text_of_commonmark(md: str) -> str:
    """The text a viewer shows, inline by inline."""
    return "\n".join(
        "".join(child.content for child in token.children or [])
        for token in MarkdownIt("commonmark").parse(md)
        if token.type == "inline"
    )


def test_a_time_or_a_number_at_the_start_of_a_line_is_not_escaped_needlessly():
    md = render_report({**ALERT, "startsAt": "2026-11-26T10:00:00Z"}, None, status="failed")
    assert "**Started:** 2026-11-26T10:00:00Z" in md
    assert (
        render_report(
            {**ALERT, "annotations": {"summary": "1. step one"}}, None, status="failed"
        ).count("1\\. step one")
        == 1
    )
