"""The structured answer of an investigation, how we read it out of a model's
text, and how it reads as markdown."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class RootCause(BaseModel):
    model_config = ConfigDict(extra="ignore")

    cause: str = Field(description="What most likely went wrong, in one sentence.")
    evidence: list[str] = Field(
        default_factory=list,
        description="The observations (tool outputs, metrics, log lines) this rests on.",
    )
    confidence: Literal["high", "medium", "low"] = "medium"

    @field_validator("confidence", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


class Analysis(BaseModel):
    """What the on-call engineer reads first."""

    model_config = ConfigDict(extra="ignore")

    summary: str = Field(min_length=1, description="Two or three sentences: what is happening.")
    root_causes: list[RootCause] = Field(
        default_factory=list, description="Probable root causes, most likely first."
    )
    impact: str = Field(default="", description="Who or what is affected, and how badly.")
    mitigation: list[str] = Field(default_factory=list, description="Concrete next steps.")
    follow_up_queries: list[str] = Field(
        default_factory=list, description="PromQL queries worth running next."
    )
    follow_up_commands: list[str] = Field(
        default_factory=list, description="Read-only commands worth running (kubectl ...)."
    )

    @field_validator("mitigation", "follow_up_queries", "follow_up_commands", mode="before")
    @classmethod
    def _listify(cls, value: object) -> object:
        if isinstance(value, str):
            return [value] if value.strip() else []
        return value


def analysis_schema() -> dict[str, Any]:
    """JSON schema for Ollama's ``format`` (constrained decoding of the final answer)."""
    return Analysis.model_json_schema()


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)
_SURROGATE = re.compile("[\ud800-\udfff]")


def without_surrogates(value: Any) -> Any:
    """``value`` with every lone UTF-16 surrogate replaced by U+FFFD: JSON's ``\\ud800``
    makes them, and they can be neither encoded, stored nor validated as text."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {without_surrogates(k): without_surrogates(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [without_surrogates(v) for v in value]
    return value


def extract_json(text: str) -> Any:
    """The JSON object in a model's answer: bare, fenced, or surrounded by prose."""
    text = text.strip()
    candidates = [text, *_FENCE.findall(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            return without_surrogates(json.loads(candidate))
        except (json.JSONDecodeError, ValueError, RecursionError):
            continue
    raise ValueError("the answer contains no JSON object")


def parse_analysis(text: str) -> Analysis:
    """Validate a model's final answer; raises ValueError with a message fit to show the model."""
    data = extract_json(text)
    if isinstance(data, dict) and "analysis" in data and isinstance(data["analysis"], dict):
        data = data["analysis"]
    try:
        return Analysis.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['msg']}"
            for e in exc.errors()[:5]
        )
        raise ValueError(f"the JSON does not match the Analysis schema: {problems}") from None


def render_markdown(
    alert: dict[str, Any],
    analysis: Analysis | None,
    *,
    status: str,
    reason: str | None = None,
    raw_text: str | None = None,
    evidence: list[dict[str, Any]] | None = None,
) -> str:
    """The report a person reads: alert header, then the analysis (or what we have)."""
    labels = alert.get("labels", {})
    annotations = alert.get("annotations", {})
    lines = [f"# {labels.get('alertname', 'alert')} ({labels.get('severity', 'none')})", ""]
    where = ", ".join(f"{k}={v}" for k, v in labels.items() if k not in ("alertname", "severity"))
    if where:
        lines.append(f"**Labels:** {where}  ")
    lines.append(f"**Started:** {alert.get('startsAt', '?')}  ")
    if alert.get("resolved_at"):
        lines.append(f"**Resolved:** {alert['resolved_at']}  ")
    lines.append(f"**Investigation status:** {status}" + (f" — {reason}" if reason else ""))
    if annotations.get("summary") or annotations.get("description"):
        lines += ["", f"> {annotations.get('summary') or annotations.get('description')}"]
    if annotations.get("runbook_url"):
        lines += ["", f"Runbook: {annotations['runbook_url']}"]
    if analysis is not None:
        lines += ["", "## Summary", analysis.summary]
        if analysis.root_causes:
            lines += ["", "## Likely root cause"]
            for i, rc in enumerate(analysis.root_causes, 1):
                lines.append(f"{i}. **{rc.cause}** (confidence: {rc.confidence})")
                lines += [f"   - {ev}" for ev in rc.evidence]
        if analysis.impact:
            lines += ["", "## Impact", analysis.impact]
        if analysis.mitigation:
            lines += ["", "## Mitigation"] + [
                f"{i}. {m}" for i, m in enumerate(analysis.mitigation, 1)
            ]
        if analysis.follow_up_queries or analysis.follow_up_commands:
            lines += ["", "## Follow-up"]
            lines += [f"- `{q}`" for q in analysis.follow_up_queries]
            lines += [f"- `{c}`" for c in analysis.follow_up_commands]
    elif raw_text:
        lines += ["", "## Model output (not structured)", raw_text.strip()]
    if evidence and analysis is None:
        lines += ["", "## Evidence gathered"]
        for item in evidence:
            lines += [
                "",
                f"### {item.get('title', item.get('tool', 'evidence'))}",
                "```",
                str(item.get("output", "")).strip(),
                "```",
            ]
    return "\n".join(lines).rstrip() + "\n"


def render_record(record: dict[str, Any]) -> str:
    """The report of a stored investigation as it stands now (e.g. resolved since)."""
    analysis = Analysis.model_validate(record["analysis"]) if record.get("analysis") else None
    alert = {**record["alert"], "resolved_at": record.get("resolved_at")}
    return render_markdown(
        alert,
        analysis,
        status=record["status"],
        reason=record.get("status_reason"),
        raw_text=record.get("raw_text"),
        evidence=record.get("evidence") or None,
    )
