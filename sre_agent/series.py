"""The alert's own series among the many an expression may return.

Many kubernetes-mixin rules have no namespace filter: their expr returns the
series of every namespace. These helpers find the alert's own series by its
labels, put it first, and build ``(expr) and on(labels) <vector of them>`` to
ask Prometheus for it alone.
"""

from __future__ import annotations

import re

from sre_agent_tools.promql_guard import escape_string

#: Labels that say which alert it is, not which series.
_NOT_IDENTITY = {"alertname", "severity", "prometheus", "alertgroup", "team"}


def identity(labels: dict[str, str]) -> dict[str, str]:
    return {
        k: v
        for k, v in labels.items()
        if k not in _NOT_IDENTITY and re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", k) and v
    }


def values(key: str, lines: list[str]) -> set[str]:
    pattern = re.compile(rf'\b{re.escape(key)}="((?:[^"\\]|\\.)*)"')
    return {m.group(1) for line in lines for m in pattern.finditer(line)}


def score(line: str, own: dict[str, str]) -> int:
    return sum(1 for k, v in own.items() if f'{k}="{escape_string(v)}"' in line)


def label_vector(own: dict[str, str]) -> str:
    """A one-series vector carrying exactly ``own`` (label_replace on vector(1))."""
    expr = "vector(1)"
    for key, value in own.items():
        expr = f'label_replace({expr}, "{key}", "{escape_string(value)}", "", "")'
    return expr


def own_series_first(text: str, labels: dict[str, str]) -> str:
    """The instant answer with the series that carry the most of the alert's labels first."""
    own = identity(labels)
    lines = text.splitlines()
    if len(lines) < 2 or not own:
        return text
    body = [line for line in lines if "=>" in line]
    rest = [line for line in lines if "=>" not in line]
    ordered = sorted(body, key=lambda line: -score(line, own))
    return "\n".join(ordered + rest)
