"""Scripted model behaviour for the fake Ollama: what a sane small model does.

``investigator`` is a reply *function* (request JSON -> reply): on the first
turn it calls the tools the alert's labels point at; once it has tool results
it answers the Analysis JSON, quoting the lines of evidence it saw. It is
stateless, so it serves any number of alerts in any order.
"""

from __future__ import annotations

import re
from typing import Any

from tests.support.fake_ollama import Say, answer_json, calls

_LABEL = re.compile(r'(\w+)="([^"]*)"')
_DECISIVE = re.compile(r"FATAL|panic|OOMKilled|Error|CrashLoopBackOff|Back-off|replicas|=>")


def alert_labels(request: dict[str, Any]) -> dict[str, str]:
    for message in request["messages"]:
        if message["role"] == "user":
            for line in message["content"].splitlines():
                if line.startswith("Labels:"):
                    return dict(_LABEL.findall(line))
    return {}


def first_tool_calls(labels: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    ns = labels.get("namespace", "default")
    if "pod" in labels:
        return [
            ("kubectl_describe", {"kind": "pod", "name": labels["pod"], "namespace": ns}),
            (
                "kubectl_logs",
                {
                    "pod": labels["pod"],
                    "namespace": ns,
                    "container": labels.get("container"),
                    "previous": True,
                },
            ),
        ]
    if "deployment" in labels:
        return [
            (
                "kubectl_describe",
                {"kind": "deployment", "name": labels["deployment"], "namespace": ns},
            )
        ]
    return [("promql_query", {"query": f'ALERTS{{alertname="{labels.get("alertname", "")}"}}'})]


def analysis_from(request: dict[str, Any]) -> dict[str, Any]:
    labels = alert_labels(request)
    tool_text = "\n".join(m.get("content", "") for m in request["messages"] if m["role"] == "tool")
    evidence = [line.strip() for line in tool_text.splitlines() if _DECISIVE.search(line)][:4]
    return {
        "summary": f"{labels.get('alertname', 'The alert')} fired in {labels.get('namespace', '?')}.",
        "root_causes": [
            {
                "cause": evidence[0] if evidence else "unknown",
                "evidence": evidence,
                "confidence": "medium",
            }
        ],
        "impact": "See the evidence.",
        "mitigation": ["Check the most recent rollout"],
        "follow_up_queries": ["up"],
        "follow_up_commands": [f"kubectl -n {labels.get('namespace', 'default')} get pods"],
    }


def investigator(request: dict[str, Any]) -> Say:
    if request.get("format") or any(m["role"] == "tool" for m in request["messages"]):
        return answer_json(analysis_from(request))
    return calls(first_tool_calls(alert_labels(request)))
