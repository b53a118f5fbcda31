"""Where an investigation's facts came from: per backend, whether it answered, and how a
person asks it again (the PromQL with a Prometheus graph link, the ``kubectl`` command).

:func:`compute_sources` is the one place that decides "answered / failed / not
configured / not consulted"; the report, Slack and the API read its result, so a
report can never sound surer than what its backends gave.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from sre_agent.models import Backend, BackendState, Evidence, Sources

#: Backend key -> (name shown, the agent tools that read it).
BACKENDS: dict[str, tuple[str, frozenset[str]]] = {
    "prometheus": ("Prometheus", frozenset({"promql_query", "promql_range"})),
    "kubernetes": ("Kubernetes", frozenset({"kubectl_describe", "kubectl_events"})),
    "logs": ("Logs", frozenset({"kubectl_logs"})),
}
ANSWERED: BackendState = "answered"
FAILED: BackendState = "failed"
NOT_CONFIGURED: BackendState = "not configured"
NOT_CONSULTED: BackendState = "not consulted"
#: Statuses of a call the backend answered (no data is an answer too).
_GOT = ("ok", "no_data")
_WHY_CHARS = 160
#: host[:port] as a link may carry it (names, IPv4, [IPv6]).
_HOST = re.compile(r"[A-Za-z0-9.\-]+(?::\d{1,5})?|\[[0-9A-Fa-f:.]+\](?::\d{1,5})?")


def backend_of(tool: str) -> str | None:
    for key, (_, tools) in BACKENDS.items():
        if tool in tools:
            return key
    return None


def compute_sources(
    evidence: Iterable[Evidence],
    *,
    prometheus: bool,
    kubernetes: bool,
    graph_base: str | None = None,
) -> Sources:
    """Each backend's state from the evidence items (the gatherer's findings and the
    agent's tool calls alike) and which backends are configured.

    A backend answered when at least one call got an answer (data or none); it failed
    when every call errored (``why``: the first error); it is not configured when its
    client is absent, and not consulted when nothing asked it.
    """
    configured = {"prometheus": prometheus, "kubernetes": kubernetes, "logs": kubernetes}
    calls: dict[str, list[Evidence]] = {key: [] for key in BACKENDS}
    for item in evidence:
        key = backend_of(item.tool)
        if key is not None:
            calls[key].append(item)
    backends: dict[str, Backend] = {}
    for key, (name, _) in BACKENDS.items():
        items = calls[key]
        got = [i for i in items if i.status in _GOT]
        errors = [i for i in items if i.status not in _GOT]
        if not configured[key]:
            state = NOT_CONFIGURED
        elif not items:
            state = NOT_CONSULTED
        elif got:
            state = ANSWERED
        else:
            state = FAILED
        backends[key] = Backend(
            name=name,
            state=state,
            why=_why(errors[0]) if errors and state == FAILED else None,
            answered=len(got),
            # Of those answers, how many had no data (an answer, but not a fact to rest on).
            no_data=sum(1 for i in got if i.status == "no_data"),
            errors=len(errors),
            ids=[i.id for i in got if i.id],
            graph_base=graph_base if key == "prometheus" and graph_base else None,
        )
    return Sources(backends=backends)


def without_status(text: str) -> str:
    """A tool's text without its ``status:`` line (the record keeps the status apart)."""
    if text.startswith("status: "):
        return text.split("\n", 1)[1] if "\n" in text else ""
    return text


def _why(item: Evidence) -> str:
    """The first line of an error, short (without the ``status: error`` line)."""
    text = without_status(item.output.strip()).strip()
    line = text.splitlines()[0].strip() if text else "no answer"
    return line if len(line) <= _WHY_CHARS else line[: _WHY_CHARS - 1] + "…"


def warning(sources: Sources | None) -> str | None:
    """The line a report opens with when a source failed or is absent; None when all
    that was needed answered (or for an old record without sources)."""
    backends = sources.backends if sources is not None else {}
    if not backends:
        return None
    kube = backends.get("kubernetes")
    missing = []
    for key, entry in backends.items():
        state = entry.state
        if key == "logs" and kube is not None and state == kube.state and state != ANSWERED:
            continue  # logs come from Kubernetes: one mention says it
        if state == FAILED:
            missing.append(f"{entry.name} did not answer ({entry.why})")
        elif state == NOT_CONFIGURED:
            missing.append(f"{entry.name} is not configured")
    answered = [e for e in backends.values() if e.state == ANSWERED]
    if not answered:
        if not missing:
            missing.append("no source was consulted")
        return f"⚠ {'; '.join(missing)} — this analysis rests on the alert's text alone."
    if not missing:
        return None
    names = ", ".join(e.name for e in answered)
    return f"⚠ {'; '.join(missing)} — this analysis rests on the alert and {names} only."


def summary_line(sources: Sources | None) -> str:
    """One line: each backend and its state (Slack, the top of a report's Sources)."""
    backends = sources.backends if sources is not None else {}
    if not backends:
        return "Sources: not recorded"
    parts = []
    for entry in backends.values():
        part = f"{entry.name} {entry.state}"
        if entry.state == ANSWERED:
            part += f" ({entry.answered})"
        parts.append(part)
    return "Sources: " + " · ".join(parts)


# ------------------------------------------------------------ asking again


def graph_base(external_url: str | None, generator_url: str | None) -> str | None:
    """The Prometheus web UI to link to: the setting, else the scheme, host and path
    prefix of the alert's ``generatorURL`` (http(s) only: it comes from outside)."""
    for url in (external_url, generator_url):
        if not url:
            continue
        try:
            parts = urlsplit(str(url).strip())
        except ValueError:
            continue
        netloc = parts.netloc.rsplit("@", 1)[-1]  # never a user:password@ in a link
        if parts.scheme not in ("http", "https") or not _HOST.fullmatch(netloc):
            continue
        path = parts.path
        if url is generator_url:  # Prometheus's is <its UI>/graph?g0.expr=...
            if not path.rstrip("/").endswith("/graph"):
                continue  # not Prometheus's graph page (vmalert, Grafana...): no guess
            path = path.rstrip("/")[: -len("/graph")]
        path = quote(path.rstrip("/"), safe="/%-._~")  # nothing that ends a markdown link
        return f"{parts.scheme}://{netloc}{path}"
    return None


def graph_url(base: str, query: str) -> str:
    """A Prometheus graph page showing ``query``."""
    return f"{base}/graph?g0.expr={quote(query, safe='')}&g0.tab=0"


def rerun_command(tool: str, args: Mapping[str, Any]) -> str | None:
    """How a person runs the same lookup: the PromQL, or the ``kubectl`` command."""
    a = {k: v for k, v in args.items() if v not in (None, "")}
    ns = ["-n", str(a["namespace"])] if a.get("namespace") else []
    if tool in ("promql_query", "promql_range"):
        return str(a["query"]) if a.get("query") else None
    if tool == "kubectl_describe" and a.get("kind") and a.get("name"):
        return _shell(["kubectl", "describe", str(a["kind"]), str(a["name"]), *ns])
    if tool == "kubectl_logs" and a.get("pod"):
        words = ["kubectl", "logs", str(a["pod"]), *ns]
        if a.get("container"):
            words += ["-c", str(a["container"])]
        if a.get("previous") is True:
            words.append("--previous")
        if isinstance(a.get("tail_lines"), int):
            words.append(f"--tail={a['tail_lines']}")
        return _shell(words)
    if tool == "kubectl_events" and ns:
        words = ["kubectl", "events", *ns]
        if a.get("kind") and a.get("name"):
            words += ["--for", f"{a['kind']}/{a['name']}"]
        elif a.get("name"):
            words = ["kubectl", "get", "events", *ns]
            words += ["--field-selector", f"involvedObject.name={a['name']}"]
        return _shell(words)
    return None


def _shell(words: list[str]) -> str:
    return " ".join(shlex.quote(w) for w in words)
