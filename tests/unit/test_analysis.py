"""Reading the model's final answer and rendering the report."""

import json

import pytest

from sre_agent.analysis import parse_analysis
from tests.support.records import render_report

GOOD = {
    "summary": "api crash-loops since 23:47 because a required setting is missing.",
    "root_causes": [
        {
            "cause": "SITE_API_UPSTREAM_URL unset in release 1.8.2",
            "evidence": ["FATAL: config: required setting SITE_API_UPSTREAM_URL is missing"],
            "confidence": "High",
        }
    ],
    "impact": "1 of 3 replicas down",
    "mitigation": "Roll back to 1.8.1",
    "follow_up_queries": ["kube_deployment_status_replicas_available"],
}


@pytest.mark.parametrize(
    "wrap",
    [
        lambda s: s,
        lambda s: f"```json\n{s}\n```",
        lambda s: f"Here is my analysis:\n{s}\nHope this helps.",
    ],
)
def test_json_is_found_however_it_is_wrapped(wrap):
    analysis = parse_analysis(wrap(json.dumps(GOOD)))
    assert analysis.root_causes[0].confidence == "high"
    assert analysis.mitigation == ["Roll back to 1.8.1"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("I think it is the database.", "no JSON object"),
        (json.dumps({"root_causes": []}), "summary"),
        (json.dumps({"summary": "x", "root_causes": [{"evidence": []}]}), "root_causes.0.cause"),
    ],
)
def test_invalid_answers_explain_why(text, message):
    with pytest.raises(ValueError, match=message):
        parse_analysis(text)


def test_markdown_report_has_the_sections():
    alert = {
        "labels": {
            "alertname": "KubePodCrashLooping",
            "severity": "warning",
            "namespace": "homepage",
        },
        "annotations": {"runbook_url": "https://runbooks/x", "summary": "Pod is crash looping."},
        "startsAt": "2026-11-26T23:47:56Z",
    }
    md = render_report(alert, parse_analysis(json.dumps(GOOD)), status="completed")
    for needle in (
        "# KubePodCrashLooping (warning)",
        "## Summary",
        "## Likely root cause",
        "SITE_API_UPSTREAM_URL",
        "## Mitigation",
        "1. Roll back to 1.8.1",
        "Runbook: https://runbooks/x",
    ):
        assert needle in md


def test_degraded_report_shows_raw_text_and_evidence():
    alert = {"labels": {"alertname": "X"}, "annotations": {}, "startsAt": "t"}
    md = render_report(
        alert,
        None,
        status="degraded",
        reason="no valid analysis",
        raw_text="the model rambled",
        evidence=[{"title": "kubectl_describe(kind='pod')", "output": "Restart Count: 14"}],
    )
    assert "degraded — no valid analysis" in md
    assert "the model rambled" in md
    assert "Restart Count: 14" in md
