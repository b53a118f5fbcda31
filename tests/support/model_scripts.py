"""Scripted model behaviour for the fake Ollama: what a sane small model does.

``investigator`` is a reply *function* (request JSON -> reply): given evidence
in its prompt it answers the Analysis JSON at once, quoting the lines of
evidence it saw and citing the id of the block each line is from (``[E3]``, as
a good model does); without evidence it first calls the tools the alert's labels
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
_BLOCK = re.compile(r"^### \[(E\d+)\]")
_TOOL_ID = re.compile(r"^\[(E\d+)\] ")


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


def seen_lines(request: dict[str, Any]) -> list[tuple[str, str]]:
    """Each line of evidence and tool results with the id of the block it is in ("" if none)."""
    out: list[tuple[str, str]] = []
    for m in request["messages"]:
        content = m.get("content", "") or ""
        if m["role"] == "tool":
            found = _TOOL_ID.match(content)
            ident = found.group(1) if found else ""
            out += [(ident, line) for line in content.splitlines()]
        elif m["role"] == "user" and "## Evidence already gathered" in content:
            ident = ""
            for line in content.split("## Evidence already gathered", 1)[1].splitlines():
                header = _BLOCK.match(line)
                ident = header.group(1) if header else ident
                out.append((ident, line))
    return out


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
    lines = [(i, line.strip()) for i, line in seen_lines(request) if _DECISIVE.search(line)]
    # Like a careful reader: the line that explains a failure first, then the symptoms.
    chosen = sorted(lines, key=lambda item: 0 if _EXPLAINS.search(item[1]) else 1)[:4]
    evidence = [f"[{i}] {line}" if i else line for i, line in chosen]
    return {
        "summary": f"{labels.get('alertname', 'The alert')} fired in {labels.get('namespace', '?')}.",
        "root_causes": [
            {
                "cause": chosen[0][1] if chosen else "unknown",
                "evidence": evidence,
                "evidence_ids": list(dict.fromkeys(i for i, _ in chosen if i)),
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
