"""The text side of the evidence walk: names and addresses found in facts (R11, R12),
and logs cut to what a prompt needs.

A fact is text a tool returned (a log line, an event message, an env var); the
walk follows what it names. Pure functions, so each rule is tested on its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

Obj = dict[str, Any]

# -- names and addresses in facts (R11, R12) ------------------------------------------

_DNS = re.compile(r"\b([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.svc\b")
_IPV4 = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d.])")
_WEBHOOK = re.compile(r'failed calling webhook "([^"]{1,253})"')
_HOST_BEFORE = ("//", "=", "@", '"', "'")
_HOST_AFTER = re.compile(r":\d|\.[a-z]| \(")
_QUOTA = re.compile(r"exceeded quota: ([a-z0-9][-a-z0-9.]{0,252})")


_OWN_METADATA = re.compile(
    r"^\s*(Labels|Selector|Annotations|Controlled By|Node-Selectors):.*$", re.M
)


def references(text: str) -> str:
    """The text without the lines that describe an object's own metadata (its labels
    and selector name itself and its siblings, not what it depends on)."""
    return _OWN_METADATA.sub("", text)


def dns_services(text: str) -> list[tuple[str, str]]:
    """(namespace, service) of every ``<svc>.<ns>.svc`` name in the text."""
    return list(dict.fromkeys((m.group(3), m.group(1)) for m in _DNS.finditer(text)))


def named_services(text: str, services: Iterable[Obj]) -> list[str]:
    """Services of one namespace a text names as a host: ``svc:port``, ``//svc``,
    ``=svc`` (an env var), ``svc.`` or ``svc (`` — or by ClusterIP. A bare word
    that happens to equal a Service's name is not a reference."""
    ips = set(_IPV4.findall(text))
    found = []
    for svc in services:
        name = svc["metadata"]["name"]
        ip = (svc.get("spec") or {}).get("clusterIP")
        if ip and ip in ips:
            found.append(name)
            continue
        for match in re.finditer(rf"(?<![a-z0-9.-]){re.escape(name)}(?![a-z0-9-])", text):
            before = text[max(0, match.start() - 2) : match.start()]
            after = text[match.end() : match.end() + 2]
            if before.endswith(_HOST_BEFORE) or _HOST_AFTER.match(after):
                found.append(name)
                break
    return list(dict.fromkeys(found))


def webhooks_named(text: str) -> list[str]:
    return list(dict.fromkeys(_WEBHOOK.findall(text)))


def quotas_named(text: str) -> list[str]:
    return list(dict.fromkeys(q.rstrip(".,") for q in _QUOTA.findall(text)))


def lines_naming(text: str, names: Iterable[str], limit: int = 12) -> str:
    """The lines of a log that name one of ``names`` (the header kept), newest last."""
    lines = text.splitlines()
    if not lines:
        return ""
    wanted = [n for n in names if n]
    hits = [line for line in lines[1:] if any(n in line for n in wanted)]
    if not hits:
        return ""
    omitted = len(hits) - limit
    note = [f"[{omitted} earlier matching lines omitted]"] if omitted > 0 else []
    return "\n".join([lines[0], *note, *hits[-limit:]])


# -- logs -----------------------------------------------------------------------------

_ERROR_LINE = re.compile(
    r"FATAL|ERROR|CRIT|panic|Exception|Traceback|\bfail(ed|ure)?\b|refused|denied|"
    r"timed? ?out|OOM|Killed|\bexit(ed)?\b|not found|missing|invalid|unable|cannot|"
    r"\bWARN(ING)?\b|level=warn|"
    # HTTP server errors, as access logs and clients print them
    r"Bad Gateway|Service Unavailable|Internal Server Error|Gateway Time-?out|status\W{0,3}5\d\d\b",
    re.IGNORECASE,
)


_NUMBERS = re.compile(r"\d+")


def _newest_per_template(lines: list[str]) -> tuple[list[str], int]:
    """Of lines that differ only in their numbers (a retry loop, a progress counter),
    the newest one each, in order; and how many were folded away."""
    last = {_NUMBERS.sub("#", line): i for i, line in enumerate(lines)}
    keep = sorted(last.values())
    return [lines[i] for i in keep], len(lines) - len(keep)


def reduce_log(text: str, error_lines: int = 12, tail: int = 10) -> str:
    """Logs for a prompt: the header, the error-looking lines, then the tail.

    Lines that repeat but for their numbers (ports, counters, timestamps) are shown
    once, the newest; a log that ends mid-start-up without an error keeps its tail."""
    lines = text.splitlines()
    if len(lines) <= 1 + error_lines + tail:
        return text
    header, body = lines[0], lines[1:]
    last, folded_tail = _newest_per_template(body[-tail:])
    errors = [line for line in body[:-tail] if _ERROR_LINE.search(line)]
    unique, folded = _newest_per_template(errors)
    unique = unique[-error_lines:]
    skipped = len(body) - len(last) - len(unique)
    parts = [header]
    if unique:
        similar = f"; {folded} similar lines folded" if folded else ""
        parts += [f"[error-looking lines{similar}]", *unique]
    parts += [f"[last {len(last)} lines; {skipped} other lines omitted]", *last]
    return "\n".join(parts)


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines()[1:] if _ERROR_LINE.search(line)]
