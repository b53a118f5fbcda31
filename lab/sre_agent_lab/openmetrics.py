"""OpenMetrics text for ``promtool tsdb create-blocks-from openmetrics``: the one writer
of backfilled history, for the scenarios and for the tests' hand-written series.

Families are grouped (one ``# TYPE`` line each, as the format requires) and
sorted, samples sorted by time, ``# EOF`` at the end. A counter's samples are
named ``<family>_total``: pass the sample name (``foo_total``) and the family
line is written for ``foo``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Series", "openmetrics_text"]


@dataclass
class Series:
    """One time series to backfill. ``points`` are (unix seconds, value)."""

    name: str
    labels: Mapping[str, str]
    points: Sequence[tuple[float, float]]
    type: str = "gauge"

    def selector(self) -> str:
        labels = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(self.labels.items()))
        return f"{self.name}{{{labels}}}" if labels else self.name


def openmetrics_text(series: Iterable[Series]) -> str:
    """A whole OpenMetrics document; ValueError if one family is given two types."""
    families: dict[str, tuple[str, list[Series]]] = {}
    for s in series:
        family = s.name.removesuffix("_total") if s.type == "counter" else s.name
        kind, members = families.setdefault(family, (s.type, []))
        if kind != s.type:
            raise ValueError(f"metric family {family} is both {kind} and {s.type}")
        members.append(s)
    out: list[str] = []
    for family in sorted(families):
        kind, members = families[family]
        out.append(f"# TYPE {family} {kind}\n")
        for s in sorted(members, key=Series.selector):
            selector = s.selector()
            out += [f"{selector} {_number(v)} {_number(ts)}\n" for ts, v in sorted(s.points)]
    out.append("# EOF\n")
    return "".join(out)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
