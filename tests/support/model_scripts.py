"""Scripted model behaviour for the fake Ollama: what a sane small model does.

``investigator`` is a reply *function* (request JSON -> reply): given evidence
in its prompt it answers the Analysis JSON at once, quoting the lines of
evidence it saw; without evidence it first calls the tools the alert's labels
point at. ``react_investigator`` always calls tools first (a plain ReAct
agent). Both are stateless, so they serve any number of alerts in any order.
"""

from __future__ import annotations

import re
from typing import Any

from tests.support.fake_ollama import Say, answer_json, calls

_LABEL = re.compile(r'(\w+)="([^"]*)"')
_EXPLAINS = re.compile(r"FATAL|panic|OOMKilled|Insufficient|ErrImagePull|not found|NotReady")
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


def seen_text(request: dict[str, Any]) -> str:
    """The evidence in the prompt plus every tool result so far."""
    parts = []
    for m in request["messages"]:
        if m["role"] == "tool":
            parts.append(m.get("content", ""))
        elif m["role"] == "user" and "## Evidence already gathered" in m.get("content", ""):
            parts.append(m["content"].split("## Evidence already gathered", 1)[1])
    return "\n".join(parts)


def has_evidence(request: dict[str, Any]) -> bool:
    """Evidence in the prompt, or tool results: something to answer from."""
    if any(m["role"] == "tool" for m in request["messages"]):
        return True
    for m in request["messages"]:
        content = m.get("content", "")
        if m["role"] == "user" and "## Evidence already gathered" in content:
            return not content.split("## Evidence already gathered", 1)[1].strip().startswith("(")
    return False


def analysis_from(request: dict[str, Any]) -> dict[str, Any]:
    labels = alert_labels(request)
    tool_text = seen_text(request)
    lines = [line.strip() for line in tool_text.splitlines() if _DECISIVE.search(line)]
    # Like a careful reader: the line that explains a failure first, then the symptoms.
    evidence = sorted(lines, key=lambda line: 0 if _EXPLAINS.search(line) else 1)[:4]
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
    """Answers from the evidence it was given; calls tools first only when it has none."""
    if request.get("format") or has_evidence(request):
        return answer_json(analysis_from(request))
    return calls(first_tool_calls(alert_labels(request)))


def react_investigator(request: dict[str, Any]) -> Say:
    """A plain ReAct model: always looks things up itself before answering."""
    if request.get("format") or any(m["role"] == "tool" for m in request["messages"]):
        return answer_json(analysis_from(request))
    return calls(first_tool_calls(alert_labels(request)))
