"""Storms: many alerts at once over one world, and the incidents a person would make of them.

A storm is a directory ``storms/<name>/storm.yaml`` (format in ``docs/storms.md``). Its
world and metrics are written as a scenario's (:mod:`sre_agent_lab.scenarios`: relative
times, promtool's series notation) and served the same way, so the lab's world opens a
storm unchanged (:meth:`Storm.scene`). Its alerts go through the real Alertmanager, as
Prometheus posts them (:meth:`StormAlert.posted`), in a shuffled order; ``delay`` holds
one back, as a late, unrelated alert arrives after an incident settled. ``expect`` says
what the incidents must be: each one's head and its members (by labels, or a count),
and how many model runs the whole storm may take.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sre_agent_tools.prom_parse import parse_duration

from sre_agent_lab.scenario_checks import (
    _check_alert,
    _check_metrics,
    _check_world,
    _keys,
    fail,
)
from sre_agent_lab.scenario_notation import ago, is_relative, rfc3339
from sre_agent_lab.scenarios import PROMETHEUS_URL, Scenario, ScenarioError, read_yaml

__all__ = [
    "ExpectedIncident",
    "Storm",
    "StormAlert",
    "default_storms_dir",
    "load_storm",
    "load_storms",
]

FILE_NAME = "storm.yaml"
_TOP_KEYS = {"name", "description", "alertmanager", "world", "metrics", "alerts", "expect"}
_AM_KEYS = {"group_by"}
_EXPECT_KEYS = {"incidents", "max_llm_runs"}
_INCIDENT_KEYS = {"head", "members", "count"}


@dataclass
class StormAlert:
    """One alert of a storm; ``delay``: seconds after the storm begins that it is posted."""

    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str
    expr: str
    delay: float = 0.0

    @property
    def alertname(self) -> str:
        return self.labels["alertname"]

    def matches(self, wanted: dict[str, str]) -> bool:
        """Whether its labels include all of ``wanted`` (alertname + distinguishing labels)."""
        return all(self.labels.get(k) == v for k, v in wanted.items())

    def posted(self, now: datetime) -> dict[str, Any]:
        """The alert as Prometheus posts it to Alertmanager's ``/api/v2/alerts``."""
        starts = ago(self.starts_at, now) if is_relative(self.starts_at) else now
        return {
            "labels": self.labels,
            "annotations": self.annotations,
            "startsAt": rfc3339(starts),
            "generatorURL": f"{PROMETHEUS_URL}/graph?g0.expr={quote(self.expr, safe='')}&g0.tab=1",
        }


@dataclass
class ExpectedIncident:
    """An incident the storm must become: its head's labels (any alert carrying them may
    head it) and its members' (or how many)."""

    head: dict[str, str]
    members: list[dict[str, str]]
    count: int

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.head.items())


@dataclass
class Storm:
    name: str
    description: str
    path: Path
    group_by: list[str]
    world: dict[str, Any]
    metrics: dict[str, Any]
    alerts: list[StormAlert]
    incidents: list[ExpectedIncident]
    max_llm_runs: int

    def scene(self) -> Scenario:
        """The storm's world as a scenario's, for :func:`sre_agent_lab.world.open_world`
        (its alert, the storm's first, is never sent: the storm posts its own)."""
        first = self.alerts[0]
        return Scenario(
            name=self.name,
            description=self.description,
            path=self.path,
            alert={"labels": first.labels, "expr": first.expr},
            world=self.world,
            metrics=self.metrics,
            decisive=[],
        )

    def schedule(self, seed: int) -> list[StormAlert]:
        """The order of posting: shuffled with ``seed``, then by ``delay`` (stable)."""
        order = list(self.alerts)
        random.Random(seed).shuffle(order)
        return sorted(order, key=lambda a: a.delay)

    def expected_of(self, labels: dict[str, str]) -> ExpectedIncident | None:
        """The expected incident an alert with these labels belongs to."""
        alert = StormAlert(labels, {}, "", "")
        for incident in self.incidents:
            if incident.members and any(alert.matches(m) for m in incident.members):
                return incident
        counted = [i for i in self.incidents if not i.members]
        return counted[0] if len(counted) == 1 else None


# ---------------------------------------------------------------- loading


def default_storms_dir() -> Path:
    """The repository's ``storms/`` (beside ``scenarios/``)."""
    return Path(__file__).resolve().parent.parent.parent / "storms"


def _labels(path: Path, where: str, value: Any) -> dict[str, str]:
    """Labels an alert must carry (any alert carrying them matches): at least one."""
    if not isinstance(value, dict) or not value:
        raise fail(path, f"{where} must be a mapping of labels (at least one)")
    return {str(k): str(v) for k, v in value.items()}


def _alert(path: Path, i: int, raw: Any) -> StormAlert:
    if not isinstance(raw, dict):
        raise fail(path, f"alerts[{i}] must be a mapping")
    body = {k: v for k, v in raw.items() if k != "delay"}
    try:
        _check_alert(path, body)
    except ScenarioError as exc:
        raise fail(path, f"alerts[{i}]: {str(exc).removeprefix(f'{path}: ')}") from None
    if not body.get("expr"):
        raise fail(path, f"alerts[{i}]: a storm's alert gives its expr (no generatorURL)")
    try:
        delay = parse_duration(str(raw.get("delay", "0s"))).total_seconds()
    except ValueError as exc:
        raise fail(path, f"alerts[{i}].delay: {exc}") from None
    return StormAlert(
        labels={str(k): str(v) for k, v in body["labels"].items()},
        annotations={str(k): str(v) for k, v in (body.get("annotations") or {}).items()},
        starts_at=str(body.get("startsAt", "-15m")),
        expr=str(body["expr"]),
        delay=delay,
    )


def _incident(path: Path, i: int, raw: Any, alerts: list[StormAlert]) -> ExpectedIncident:
    where = f"expect.incidents[{i}]"
    _keys(path, where, raw, _INCIDENT_KEYS, {"head"})
    if ("members" in raw) == ("count" in raw):
        raise fail(path, f"{where} needs exactly one of members or count")
    head = _labels(path, f"{where}.head", raw["head"])
    members = [
        _labels(path, f"{where}.members[{j}]", m) for j, m in enumerate(raw.get("members") or [])
    ]
    for wanted in [head, *members]:
        if not any(a.matches(wanted) for a in alerts):
            raise fail(path, f"{where}: no alert has the labels {wanted}")
    count = int(raw.get("count", len(members)))
    if count < 1:
        raise fail(path, f"{where}.count must be at least 1")
    return ExpectedIncident(head, members, count)


def _check_expect(path: Path, incidents: list[ExpectedIncident], alerts: list[StormAlert]) -> None:
    """Every alert belongs to exactly one expected incident, and the counts add up."""
    if sum(i.count for i in incidents) != len(alerts):
        raise fail(
            path,
            f"expect.incidents count {sum(i.count for i in incidents)} alerts,"
            f" the storm has {len(alerts)}",
        )
    if len([i for i in incidents if not i.members]) > 1:
        raise fail(path, "expect.incidents: at most one incident may give a count")
    for alert in alerts:
        owners = [i for i in incidents if any(alert.matches(m) for m in i.members)]
        if len(owners) > 1:
            raise fail(path, f"alert {alert.labels} matches members of several incidents")


def load_storm(path: str | Path) -> Storm:
    """Load and check one storm: a ``storm.yaml`` or the directory holding it."""
    path, data = read_yaml(path, FILE_NAME)
    _keys(path, "the storm", data, _TOP_KEYS, {"name", "alertmanager", "alerts", "expect"})
    if data["name"] != path.parent.name:
        raise fail(path, f"name {data['name']!r} differs from its directory {path.parent.name!r}")
    _keys(path, "alertmanager", data["alertmanager"], _AM_KEYS, {"group_by"})
    group_by = data["alertmanager"]["group_by"]
    if (
        not isinstance(group_by, list)
        or not group_by
        or not all(isinstance(g, str) for g in group_by)
    ):
        raise fail(path, "alertmanager.group_by must be a non-empty list of label names")
    _check_world(path, data.get("world") or {})
    if data.get("metrics"):
        _check_metrics(path, data["metrics"])
    if not isinstance(data["alerts"], list) or not data["alerts"]:
        raise fail(path, "alerts must be a non-empty list")
    alerts = [_alert(path, i, a) for i, a in enumerate(data["alerts"])]
    seen: set[tuple[tuple[str, str], ...]] = set()
    for alert in alerts:
        key = tuple(sorted(alert.labels.items()))
        if key in seen:
            raise fail(path, f"two alerts have the same labels {alert.labels}")
        seen.add(key)
    expect = data["expect"]
    _keys(path, "expect", expect, _EXPECT_KEYS, {"incidents", "max_llm_runs"})
    if not isinstance(expect["incidents"], list) or not expect["incidents"]:
        raise fail(path, "expect.incidents must be a non-empty list")
    incidents = [_incident(path, i, raw, alerts) for i, raw in enumerate(expect["incidents"])]
    _check_expect(path, incidents, alerts)
    if not isinstance(expect["max_llm_runs"], int) or expect["max_llm_runs"] < len(incidents):
        raise fail(path, "expect.max_llm_runs must be a whole number, at least one per incident")
    return Storm(
        name=data["name"],
        description=str(data.get("description") or ""),
        path=path,
        group_by=group_by,
        world=data.get("world") or {},
        metrics=data.get("metrics") or {},
        alerts=alerts,
        incidents=incidents,
        max_llm_runs=expect["max_llm_runs"],
    )


def load_storms(root: Path | None = None, names: list[str] | None = None) -> list[Storm]:
    """Every storm under ``root`` (default: the repo's ``storms/``), sorted by name, or
    just those in ``names`` (an unknown name is an error)."""
    root = Path(root) if root is not None else default_storms_dir()
    found = sorted(p.parent.name for p in root.glob(f"*/{FILE_NAME}"))
    if names is not None:
        unknown = sorted(set(names) - set(found))
        if unknown:
            raise ScenarioError(
                f"{root}: no storm named {', '.join(unknown)} (have: {', '.join(found)})"
            )
        found = [n for n in found if n in names]
    return [load_storm(root / name / FILE_NAME) for name in found]
