"""Scenarios: one alert, the world it fired in, and the evidence that explains it.

A scenario is a directory ``scenarios/<name>/scenario.yaml`` (format in
``docs/scenarios.md``). Times are relative to an anchor ``now`` chosen when the
scenario is used, so the same file serves a test today and a benchmark next
year: ``startsAt: -15m`` in the alert, ``-2h`` for any timestamp in the world,
and metric samples that end at ``now``.

Only the standard library, pyyaml and :mod:`sre_agent_tools.prom_parse` are
used, so the tests, ``make bench`` and ``sre-agent eval`` can all load
scenarios. This module holds the scenario and its loading; the file's checks
are :mod:`sre_agent_lab.scenario_checks`, its notation
:mod:`sre_agent_lab.scenario_notation`, the metrics writer
:mod:`sre_agent_lab.openmetrics`.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from sre_agent_tools.prom_parse import expr_from_generator_url, parse_duration

from sre_agent_lab.openmetrics import Series, openmetrics_text
from sre_agent_lab.scenario_checks import CANARY, ScenarioError, check_scenario, fail
from sre_agent_lab.scenario_notation import (
    ago,
    expand_series,
    is_relative,
    resolve_times,
    rfc3339,
)

__all__ = [
    "CANARY",
    "Scenario",
    "ScenarioError",
    "combined_openmetrics",
    "combined_world",
    "default_scenarios_dir",
    "expand_series",
    "load_scenario",
    "load_scenarios",
]

FILE_NAME = "scenario.yaml"
#: Where ``generatorURL`` points when a scenario gives a plain ``expr``.
PROMETHEUS_URL = "http://prometheus.lab.local:9090"
ALERTMANAGER_URL = "http://alertmanager.lab.local:9093"
RECEIVER = "sre-agent"
ZERO_TIME = "0001-01-01T00:00:00Z"


# ---------------------------------------------------------------- scenario


@dataclass
class Scenario:
    """One alert and its world. ``alert`` keeps the file's relative times."""

    name: str
    description: str
    path: Path
    alert: dict[str, Any]
    world: dict[str, Any]
    metrics: dict[str, Any]
    decisive: list[str]
    root_cause_keywords: list[str] = field(default_factory=list)
    #: Further PromQL a person would run (the alert's own expr is always implied).
    queries: list[str] = field(default_factory=list)

    @property
    def alertname(self) -> str:
        return str(self.alert["labels"]["alertname"])

    @property
    def expr(self) -> str | None:
        """The alert rule's PromQL (given as ``expr`` or inside ``generatorURL``)."""
        if self.alert.get("expr"):
            return str(self.alert["expr"])
        return expr_from_generator_url(str(self.alert.get("generatorURL", "")))

    def generator_url(self) -> str:
        if self.alert.get("generatorURL"):
            return str(self.alert["generatorURL"])
        expr = quote(str(self.alert["expr"]), safe="")
        return f"{PROMETHEUS_URL}/graph?g0.expr={expr}&g0.tab=1"

    def starts_at(self, now: datetime) -> datetime:
        raw = str(self.alert.get("startsAt", "-15m"))
        if is_relative(raw):
            return ago(raw, now)
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))

    def fingerprint(self) -> str:
        blob = json.dumps(self.alert["labels"], sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def webhook_body(self, now: datetime) -> dict[str, Any]:
        """The Alertmanager v4 body that would deliver this alert at ``now``."""
        labels = {k: str(v) for k, v in self.alert["labels"].items()}
        annotations = {k: str(v) for k, v in (self.alert.get("annotations") or {}).items()}
        group = {"alertname": labels["alertname"]}
        if "namespace" in labels:
            group["namespace"] = labels["namespace"]
        group_key = "{}:{" + ", ".join(f'{k}="{v}"' for k, v in sorted(group.items())) + "}"
        return {
            "version": "4",
            "groupKey": group_key,
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": RECEIVER,
            "groupLabels": group,
            "commonLabels": labels,
            "commonAnnotations": annotations,
            "externalURL": ALERTMANAGER_URL,
            "alerts": [
                {
                    "status": "firing",
                    "labels": labels,
                    "annotations": annotations,
                    "startsAt": rfc3339(self.starts_at(now)),
                    "endsAt": ZERO_TIME,
                    "generatorURL": self.generator_url(),
                    "fingerprint": self.fingerprint(),
                }
            ],
        }

    def world_at(self, now: datetime) -> dict[str, Any]:
        """The world with relative timestamps (``-2h``) resolved against ``now``."""
        return {
            "objects": resolve_times(copy.deepcopy(self.world.get("objects") or []), now),
            "logs": copy.deepcopy(self.world.get("logs") or []),
        }

    def series(self, now: datetime) -> list[Series]:
        """The metrics as series; the last sample of each is at ``now``."""
        if not self.metrics:
            return []
        step = parse_duration(self.metrics.get("step", "30s")).total_seconds()
        end = int(now.timestamp())
        out = []
        for s in self.metrics.get("series") or []:
            values = expand_series(s["values"])
            first = end - step * (len(values) - 1)
            points = [(int(first + i * step), v) for i, v in enumerate(values) if v is not None]
            labels = {k: str(v) for k, v in (s.get("labels") or {}).items()}
            out.append(Series(s["name"], labels, points, s.get("type", "gauge")))
        return out

    def openmetrics(self, now: datetime) -> str:
        """OpenMetrics text for ``promtool tsdb create-blocks-from openmetrics``."""
        return _openmetrics(self.series(now))


def _openmetrics(series: Iterable[Series]) -> str:
    try:
        return openmetrics_text(series)
    except ValueError as exc:  # one family given two types
        raise ScenarioError(str(exc)) from None


# ---------------------------------------------------------------- loading


def default_scenarios_dir() -> Path:
    """The scenarios shipped in the lab's wheel (``sre_agent_lab/scenarios``), else the
    repository's ``scenarios/`` (an editable install from a checkout)."""
    here = Path(__file__).resolve().parent
    shipped = here / "scenarios"
    return shipped if shipped.is_dir() else here.parent.parent / "scenarios"


def read_yaml(path: str | Path, file_name: str) -> tuple[Path, Any]:
    """The file (``file_name`` in ``path`` when it is a directory) and its YAML, or a
    :class:`ScenarioError` naming it (a scenario's or a storm's)."""
    path = Path(path)
    if path.is_dir():
        path = path / file_name
    try:
        return path, yaml.safe_load(path.read_text())
    except OSError as exc:
        raise fail(path, f"cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise fail(path, f"not valid YAML: {exc}") from None


def load_scenario(path: str | Path) -> Scenario:
    """Load and check one scenario: a ``scenario.yaml`` or the directory holding it."""
    path, data = read_yaml(path, FILE_NAME)
    check_scenario(path, data)
    return Scenario(
        name=data["name"],
        description=str(data.get("description") or ""),
        path=path,
        alert=data["alert"],
        world=data.get("world") or {},
        metrics=data.get("metrics") or {},
        decisive=data["decisive"],
        root_cause_keywords=data.get("root_cause_keywords") or [],
        queries=data.get("queries") or [],
    )


def load_scenarios(root: Path | None = None, names: list[str] | None = None) -> list[Scenario]:
    """Every scenario under ``root`` (default: the repo's ``scenarios/``), sorted by name,
    or just those in ``names`` (an unknown name is an error)."""
    root = Path(root) if root is not None else default_scenarios_dir()
    found = sorted(p.parent.name for p in root.glob(f"*/{FILE_NAME}"))
    if names is not None:
        unknown = sorted(set(names) - set(found))
        if unknown:
            raise ScenarioError(
                f"{root}: no scenario named {', '.join(unknown)} (have: {', '.join(found)})"
            )
        found = [n for n in found if n in names]
    return [load_scenario(root / name / FILE_NAME) for name in found]


# ---------------------------------------------------------------- all at once


def _object_key(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = obj["metadata"]
    group = str(obj["apiVersion"]).rpartition("/")[0]
    return group, obj["kind"], meta.get("namespace", ""), meta["name"]


def combined_world(scenarios: Iterable[Scenario], now: datetime | None = None) -> dict[str, Any]:
    """All worlds in one (``FakeKube.load_file`` shape); two scenarios defining the same
    object or log raise :class:`ScenarioError`."""
    now = now or datetime.now(UTC)
    objects: list[dict[str, Any]] = []
    logs: list[dict[str, Any]] = []
    owners: dict[tuple[Any, ...], str] = {}
    for sc in scenarios:
        world = sc.world_at(now)
        keyed: list[tuple[tuple[Any, ...], dict[str, Any], list[dict[str, Any]]]] = [
            (("object", *_object_key(o)), o, objects) for o in world["objects"]
        ]
        keyed += [
            (("log", e["namespace"], e["pod"], e["container"], bool(e.get("previous"))), e, logs)
            for e in world["logs"]
        ]
        for key, item, into in keyed:
            if key in owners:
                raise ScenarioError(
                    f"{sc.path}: {' '.join(map(str, key))} is also defined by scenario "
                    f"{owners[key]}"
                )
            owners[key] = sc.name
            into.append(item)
    return {"objects": objects, "logs": logs}


def combined_openmetrics(scenarios: Iterable[Scenario], now: datetime) -> str:
    """All scenarios' series in one OpenMetrics document; a series defined twice raises."""
    owners: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
    series = []
    for sc in scenarios:
        for item in sc.series(now):
            key = (item.name, tuple(sorted(item.labels.items())))
            if key in owners:
                raise ScenarioError(
                    f"{sc.path}: series {item.name}{dict(key[1])} is also defined by scenario "
                    f"{owners[key]}"
                )
            owners[key] = sc.name
            series.append(item)
    return _openmetrics(series)
