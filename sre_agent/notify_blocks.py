"""The Slack messages (Block Kit) :mod:`sre_agent.notify` posts: an investigation's,
an incident's (updated in place as alerts join and the analysis arrives), and the short
lines of an incident's thread. With a Slack app (bot token and signing secret) a message
that carries an analysis has the feedback buttons under it, whose clicks
:mod:`sre_agent.api.slack` takes.

Texts were redacted where they entered; here they are only escaped for mrkdwn.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from sre_agent import sources
from sre_agent.analysis import Analysis
from sre_agent.models import Incident, IncidentAlert, Investigation, Verdict

STATUS_MARK = {"completed": ":mag:", "degraded": ":warning:", "failed": ":x:"}
#: Alerts an incident message lists by name; the rest are counted.
LISTED = 8
#: Findings of an evidence report shown before the analysis arrives.
FINDINGS = 3
ROLE_ORDER = ("head", "own", "waiting", "linked")
#: The feedback buttons, action_id -> (verdict, label); each button's value is the
#: investigation's id.
FEEDBACK_ACTIONS: dict[str, tuple[Verdict, str]] = {
    "sre_agent_feedback_confirmed": ("confirmed", "Cause confirmed"),
    "sre_agent_feedback_partial": ("partial", "Partly right"),
    "sre_agent_feedback_wrong": ("wrong", "Wrong"),
}
_STYLE = {"confirmed": "primary", "wrong": "danger"}


def escape(text: str) -> str:
    """Slack mrkdwn control characters; see "Escaping text" in Slack's formatting docs."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clean(text: object, limit: int = 2900) -> str:
    return clip(escape(str(text)), limit)


def slack_date(iso: str | None) -> str:
    """Slack's ``<!date^...>`` (shown in the reader's timezone), with a UTC fallback."""
    if not iso:
        return "?"
    try:
        when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return escape(iso)
    fallback = when.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": clip(text or "?", 150)}}


def _context(*texts: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": t} for t in texts if t]}


def analysis_sections(analysis: Analysis | None, steps: int = 3) -> list[dict[str, Any]]:
    """Summary, top root cause with its confidence, the first ``steps`` mitigations."""
    if analysis is None:
        return []
    out = []
    if analysis.summary:
        out.append(section(f"*Summary*\n{clean(analysis.summary)}"))
    if analysis.root_causes:
        top = analysis.root_causes[0]
        confidence = clean(top.confidence, 20)
        if top.lowered_from:  # as the report says it: lowered, not the model's own
            confidence += f", lowered from {clean(top.lowered_from, 20)}"
        out.append(section(f"*Root cause* (confidence: {confidence})\n{clean(top.cause)}"))
    chosen = [s for s in analysis.mitigation if s.strip()][:steps]
    if chosen:
        lines = "\n".join(f"{n}. {clean(step, 900)}" for n, step in enumerate(chosen, 1))
        out.append(section(f"*Mitigation*\n{lines}"))
    return out


def feedback_buttons(ident: str) -> dict[str, Any]:
    """The ``actions`` block a person judges an analysis with (its verdict is stored as
    ``POST /investigations/{id}/feedback`` stores one)."""
    elements = [
        {
            "type": "button",
            "action_id": action,
            "text": {"type": "plain_text", "text": label},
            "value": ident,
            **({"style": _STYLE[verdict]} if verdict in _STYLE else {}),
        }
        for action, (verdict, label) in FEEDBACK_ACTIONS.items()
    ]
    return {"type": "actions", "block_id": "sre_agent_feedback", "elements": elements}


def investigation_blocks(
    inv: Investigation, link: str | None, *, buttons: bool = False
) -> list[dict[str, Any]]:
    """The Block Kit message of one finished investigation; ``buttons``: the feedback
    buttons under its analysis, when it has one."""
    status = inv.status
    blocks: list[dict[str, Any]] = [
        _header(f"{inv.alertname} [{inv.severity}]"),
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Namespace*\n{clean(inv.namespace or '-')}"},
                {"type": "mrkdwn", "text": f"*Status*\n{STATUS_MARK.get(status, '')} {status}"},
                {"type": "mrkdwn", "text": f"*Started*\n{slack_date(inv.alert.startsAt)}"},
            ],
        },
    ]
    caveat = sources.warning(inv.sources)
    if caveat:  # what the analysis rests on comes before what it says
        blocks.append(section(clean(caveat)))
    blocks += analysis_sections(inv.analysis)
    if status != "completed" and inv.status_reason:
        blocks.append(section(f"*Why {status}*\n{clean(inv.status_reason)}"))
    if buttons and inv.analysis is not None:
        blocks.append(feedback_buttons(inv.id))
    where = f"investigation `{inv.id}`"
    if link:
        where = f"<{link}|Open the investigation> · {where}"
    blocks.append(_context(where, clean(sources.summary_line(inv.sources))))
    return blocks


def fallback_text(inv: Investigation) -> str:
    """The notification text (push, screen readers) next to the blocks."""
    summary = (inv.analysis.summary if inv.analysis else None) or inv.status_reason or ""
    text = f"{inv.alertname} ({inv.severity}): {inv.status}"
    return clip(f"{text}. {summary}".strip(), 300)


# --- incidents -------------------------------------------------------------------
def object_of(record: Investigation | None) -> str:
    """What the alert is about, as a person names it: "pod shop/web-1", "node n1"."""
    if record is None:
        return ""
    for obj in record.objects:
        if obj.depth == 0 and obj.origin != "warned":
            where = f"{obj.namespace}/" if obj.namespace else ""
            return f"{obj.kind} {where}{obj.name}"
    return f"namespace {record.namespace}" if record.namespace else ""


def role_counts(alerts: list[IncidentAlert]) -> str:
    """ "32 alerts: 1 head, 29 linked, 2 own" (roles with none left out)."""
    counts: Counter[str] = Counter(a.role for a in alerts)
    parts = [f"{counts[role]} {role}" for role in ROLE_ORDER if counts[role]]
    noun = "alert" if len(alerts) == 1 else "alerts"
    return f"{len(alerts)} {noun}: " + ", ".join(parts) if parts else f"0 {noun}"


def listed_alerts(incident: Incident) -> list[IncidentAlert]:
    """The alerts an incident message names: head first, then those with runs of their
    own, those waiting, those linked; oldest first within each."""
    ranked = sorted(
        incident.alerts, key=lambda a: (ROLE_ORDER.index(a.role), a.created_at, a.investigation_id)
    )
    return ranked[:LISTED]


def incident_blocks(
    incident: Incident,
    head: Investigation | None,
    records: dict[str, Investigation],
    link: str | None,
    *,
    buttons: bool = False,
) -> list[dict[str, Any]]:
    """The incident's one channel message: status, alerts by role, the head's analysis
    (or, before it, the head's evidence report), the alerts it holds, a link.
    ``records``: the listed alerts' investigations (for the objects they are about);
    ``buttons``: the feedback buttons under the head's analysis, once there is one."""
    if incident.status == "resolved":
        status = f":white_check_mark: resolved at {slack_date(incident.resolved_at)}"
    else:
        status = f":rotating_light: open since {slack_date(incident.opened_at)}"
    blocks: list[dict[str, Any]] = [
        _header(incident.title or (head.alertname if head else "Incident")),
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Status*\n{status}"},
                {"type": "mrkdwn", "text": f"*Alerts*\n{role_counts(incident.alerts)}"},
            ],
        },
    ]
    if head is not None and sources.warning(head.sources):  # what the report rests on
        blocks.append(section(clean(sources.warning(head.sources))))
    if incident.analysis is not None:
        blocks += analysis_sections(incident.analysis, steps=1)
        if buttons and incident.head_id:
            blocks.append(feedback_buttons(incident.head_id))
    elif head is not None:
        blocks += evidence_report(head)
    blocks.append(section(_alert_lines(incident, records)))
    where = f"incident `{incident.id}`"
    if link:
        where = f"<{link}|Open the incident> · {where}"
    if head is not None and head.evidence_at is not None:  # the sources the report shows
        blocks.append(_context(where, clean(sources.summary_line(head.sources))))
    else:
        blocks.append(_context(where))
    return blocks


def evidence_report(head: Investigation) -> list[dict[str, Any]]:
    """What fired and the telling findings, shown until the analysis replaces them."""
    if head.final:
        mark = f"Evidence report — no analysis ({clean(head.status, 20)})"
    else:
        mark = "Evidence report — analysis pending"
    fired = f"*{clean(head.alertname, 200)}* [{clean(head.severity, 30)}]"
    about = object_of(head)
    if about:
        fired += f" on {clean(about, 300)}"
    fired += f", firing since {slack_date(head.alert.startsAt)}"
    note = next(
        (
            head.alert.annotations[k]
            for k in ("summary", "description", "message")
            if head.alert.annotations.get(k)
        ),
        "",
    )
    lines = [f":hourglass_flowing_sand: *{mark}*", fired]
    if note:
        lines.append(f"_{clean(note, 400)}_")
    out = [section("\n".join(lines))]
    findings = [e for e in head.evidence if e.status == "ok" and e.output.strip()][:FINDINGS]
    if findings:
        text = "\n".join(
            f"• *{clean(e.title, 200)}*: {clean(_excerpt(e.output), 300)}" for e in findings
        )
        out.append(section(f"*Findings*\n{text}"))
    if head.final and head.status_reason:
        out.append(section(f"*Why {clean(head.status, 20)}*\n{clean(head.status_reason, 900)}"))
    return out


def _excerpt(output: str, limit: int = 200) -> str:
    """The first lines of a finding, on one line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return clip(" · ".join(lines[:3]), limit)


def _alert_lines(incident: Incident, records: dict[str, Investigation]) -> str:
    listed = listed_alerts(incident)
    lines = []
    for alert in listed:
        about = object_of(records.get(alert.investigation_id))
        parts = [f"*{clean(alert.alertname, 200)}*", clean(about, 300) if about else "", alert.role]
        lines.append("• " + " · ".join(p for p in parts if p))
    more = len(incident.alerts) - len(listed)
    if more > 0:
        lines.append(f"+{more} more")
    return "\n".join(lines) or "no alerts yet"


def incident_text(incident: Incident) -> str:
    """The notification text beside an incident's blocks."""
    state = "resolved" if incident.status == "resolved" else "open"
    summary = incident.analysis.summary if incident.analysis else ""
    text = f"{incident.title or 'Incident'}: {state}, {role_counts(incident.alerts)}."
    return clip(f"{text} {summary}".strip(), 300)


def linked_line(record: Investigation, head_name: str) -> str:
    """A linked alert's line in its incident's thread: what explains it, why it joined."""
    about = object_of(record)
    line = f":link: *{clean(record.alertname, 200)}*"
    if about:
        line += f" ({clean(about, 300)})"
    line += f" explained by *{clean(head_name, 200)}*"
    if record.joined:
        line += f": {clean(record.joined[0].reason, 600)}"
    return line


def resolved_line(record: Investigation) -> str:
    return (
        f":white_check_mark: *{escape(record.alertname or '?')}* resolved at"
        f" {slack_date(record.resolved_at)}"
    )


def chunks(lines: list[str], limit: int) -> list[str]:
    """The lines joined into texts of at most ``limit`` characters (a longer line alone)."""
    out: list[str] = []
    for line in lines:
        if out and len(out[-1]) + 1 + len(line) <= limit:
            out[-1] += "\n" + line
        else:
            out.append(clip(line, limit))
    return out
