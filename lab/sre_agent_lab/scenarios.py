"""Scenarios: one alert, the world it fired in, and the evidence that explains it.

A scenario is a directory ``scenarios/<name>/scenario.yaml`` (format in
``docs/scenarios.md``). Times are relative to an anchor ``now`` chosen when the
scenario is used, so the same file serves a test today and a benchmark next
year: ``startsAt: -15m`` in the alert, ``-2h`` for any timestamp in the world,
and metric samples that end at ``now``.

Only the standard library, pyyaml and :mod:`sre_agent.alerts` are used, so the
tests, ``make bench`` and ``sre-agent eval`` can all load scenarios.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import yaml

FILE_NAME = "scenario.yaml"
#: Where ``generatorURL`` points when a scenario gives a plain ``expr``.
PROMETHEUS_URL = "http://prometheus.lab.local:9090"
ALERTMANAGER_URL = "http://alertmanager.lab.local:9093"
RECEIVER = "sre-agent"
ZERO_TIME = "0001-01-01T00:00:00Z"
#: A decisive string must never contain this: it marks planted secrets.
CANARY = "CANARY"

_TOP_KEYS = {
    "name",
    "description",
    "alert",
    "world",
    "metrics",
    "decisive",
    "root_cause_keywords",
    "queries",
}
_ALERT_KEYS = {"labels", "annotations", "startsAt", "generatorURL", "expr"}
_WORLD_KEYS = {"objects", "logs"}
_LOG_KEYS = {"namespace", "pod", "container", "previous", "text"}
_METRICS_KEYS = {"step", "series"}
_SERIES_KEYS = {"name", "labels", "type", "values"}
_TYPES = {"gauge", "counter"}
_RELATIVE = re.compile(r"^-(?:\d+[smhd])+$")
_DURATION_PART = re.compile(r"(\d+)([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_SEGMENT = re.compile(
    rf"^(?P<start>[-+]?{_NUMBER}|_)(?:(?P<op>[-+])(?P<delta>{_NUMBER}))?(?:x(?P<times>\d+))?$"
)
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class ScenarioError(ValueError):
    """A scenario file is missing, malformed or clashes with another scenario."""


# ---------------------------------------------------------------- notation


def expand_series(notation: str) -> list[float | None]:
    """Expand promtool's "expanding notation" into one value (or None for a gap) per step.

    ``1+2x3`` -> 1 3 5 7; ``5x2`` -> 5 5 5; ``10-1x3`` -> 10 9 8 7; ``_`` a gap,
    ``_x3`` three gaps; plain numbers; segments separated by spaces.
    """
    values: list[float | None] = []
    for segment in str(notation).split():
        match = _SEGMENT.match(segment)
        if not match:
            raise ValueError(f"bad series notation {segment!r} (use e.g. 1+2x3, 5x10, _x3, 7)")
        start, op, delta, times = match.group("start", "op", "delta", "times")
        if start == "_":
            if op:
                raise ValueError(f"bad series notation {segment!r}: a gap has no increment")
            values.extend([None] * (int(times) if times else 1))
            continue
        if op and times is None:
            raise ValueError(f"bad series notation {segment!r}: an increment needs xN")
        base = float(start)
        step = float(delta) * (-1 if op == "-" else 1) if op else 0.0
        count = int(times) + 1 if times is not None else 1
        values.extend(float(f"{base + i * step:.12g}") for i in range(count))
    if not values:
        raise ValueError("empty series notation")
    return values


def parse_duration(text: str) -> timedelta:
    """``30s``, ``15m``, ``1h30m``, ``2d`` -> a timedelta."""
    text = str(text).strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 15m, 1h30m)")
    return timedelta(seconds=sum(int(n) * _UNIT[u] for n, u in parts))


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _resolve_times(value: Any, now: datetime) -> Any:
    """Every string like ``-15m`` becomes the RFC 3339 time that long before ``now``."""
    if isinstance(value, dict):
        return {k: _resolve_times(v, now) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_times(v, now) for v in value]
    if isinstance(value, str) and _RELATIVE.match(value):
        return _rfc3339(now - parse_duration(value[1:]))
    return value


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
        query = urlsplit(str(self.alert.get("generatorURL", ""))).query
        values = parse_qs(query).get("g0.expr")
        return values[0] if values else None

    def generator_url(self) -> str:
        if self.alert.get("generatorURL"):
            return str(self.alert["generatorURL"])
        expr = quote(str(self.alert["expr"]), safe="")
        return f"{PROMETHEUS_URL}/graph?g0.expr={expr}&g0.tab=1"

    def starts_at(self, now: datetime) -> datetime:
        raw = str(self.alert.get("startsAt", "-15m"))
        if _RELATIVE.match(raw):
            return now - parse_duration(raw[1:])
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
                    "startsAt": _rfc3339(self.starts_at(now)),
                    "endsAt": ZERO_TIME,
                    "generatorURL": self.generator_url(),
                    "fingerprint": self.fingerprint(),
                }
            ],
        }

    def world_at(self, now: datetime) -> dict[str, Any]:
        """The world with relative timestamps (``-2h``) resolved against ``now``."""
        return {
            "objects": _resolve_times(copy.deepcopy(self.world.get("objects") or []), now),
            "logs": copy.deepcopy(self.world.get("logs") or []),
        }

    def series(
        self, now: datetime
    ) -> list[tuple[str, dict[str, str], str, list[tuple[int, float]]]]:
        """(name, labels, type, [(unix seconds, value)]) per series; the last sample is at ``now``."""
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
            out.append((s["name"], labels, s.get("type", "gauge"), points))
        return out

    def openmetrics(self, now: datetime) -> str:
        """OpenMetrics text for ``promtool tsdb create-blocks-from openmetrics``."""
        return _openmetrics(self.series(now))


# ---------------------------------------------------------------- OpenMetrics


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _openmetrics(series: Iterable[tuple[str, dict[str, str], str, list[tuple[int, float]]]]) -> str:
    families: dict[str, tuple[str, list[tuple[str, list[tuple[int, float]]]]]] = {}
    for name, labels, kind, points in series:
        family = name.removesuffix("_total") if kind == "counter" else name
        label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
        selector = f"{name}{{{label_text}}}" if label_text else name
        entry = families.setdefault(family, (kind, []))
        if entry[0] != kind:
            raise ScenarioError(f"metric family {family} is both {entry[0]} and {kind}")
        entry[1].append((selector, points))
    out: list[str] = []
    for family in sorted(families):
        kind, members = families[family]
        out.append(f"# TYPE {family} {kind}\n")
        for selector, points in sorted(members):
            out += [f"{selector} {_number(v)} {ts}\n" for ts, v in sorted(points)]
    out.append("# EOF\n")
    return "".join(out)


# ---------------------------------------------------------------- loading


def default_scenarios_dir() -> Path:
    """The scenarios shipped in the lab's wheel (``sre_agent_lab/scenarios``), else the
    repository's ``scenarios/`` (an editable install from a checkout)."""
    here = Path(__file__).resolve().parent
    shipped = here / "scenarios"
    return shipped if shipped.is_dir() else here.parent.parent / "scenarios"


def _fail(path: Path, problem: str) -> ScenarioError:
    return ScenarioError(f"{path}: {problem}")


def _check_keys(path: Path, where: str, data: Any, allowed: set[str], required: set[str]) -> None:
    if not isinstance(data, dict):
        raise _fail(path, f"{where} must be a mapping, not {type(data).__name__}")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise _fail(path, f"unknown key(s) in {where}: {', '.join(unknown)}")
    missing = sorted(required - set(data))
    if missing:
        raise _fail(path, f"missing key(s) in {where}: {', '.join(missing)}")


def _check_alert(path: Path, alert: Any) -> None:
    _check_keys(path, "alert", alert, _ALERT_KEYS, {"labels"})
    labels = alert["labels"]
    if not isinstance(labels, dict) or not labels.get("alertname") or not labels.get("severity"):
        raise _fail(path, "alert.labels must include alertname and severity")
    if not isinstance(alert.get("annotations", {}), dict):
        raise _fail(path, "alert.annotations must be a mapping")
    if bool(alert.get("expr")) == bool(alert.get("generatorURL")):
        raise _fail(path, "alert needs exactly one of expr or generatorURL")
    if alert.get("generatorURL") and "g0.expr=" not in str(alert["generatorURL"]):
        raise _fail(path, "alert.generatorURL has no g0.expr parameter")
    starts = str(alert.get("startsAt", "-15m"))
    if not _RELATIVE.match(starts):
        try:
            datetime.fromisoformat(starts.replace("Z", "+00:00"))
        except ValueError:
            raise _fail(
                path, f"alert.startsAt {starts!r} is neither -15m style nor RFC 3339"
            ) from None


def _check_world(path: Path, world: Any) -> None:
    _check_keys(path, "world", world, _WORLD_KEYS, set())
    for i, obj in enumerate(world.get("objects") or []):
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        if not isinstance(meta, dict) or not obj.get("kind") or not obj.get("apiVersion"):
            raise _fail(path, f"world.objects[{i}] needs apiVersion, kind and metadata")
        if not meta.get("name"):
            raise _fail(path, f"world.objects[{i}] ({obj['kind']}) has no metadata.name")
    for i, entry in enumerate(world.get("logs") or []):
        _check_keys(
            path, f"world.logs[{i}]", entry, _LOG_KEYS, {"namespace", "pod", "container", "text"}
        )


def _check_metrics(path: Path, metrics: Any) -> None:
    _check_keys(path, "metrics", metrics, _METRICS_KEYS, {"series"})
    try:
        parse_duration(metrics.get("step", "30s"))
    except ValueError as exc:
        raise _fail(path, f"metrics.step: {exc}") from None
    for i, s in enumerate(metrics["series"] or []):
        where = f"metrics.series[{i}]"
        _check_keys(path, where, s, _SERIES_KEYS, {"name", "values"})
        name = str(s["name"])
        if not _METRIC_NAME.match(name):
            raise _fail(path, f"{where}: bad metric name {name!r}")
        kind = s.get("type", "gauge")
        if kind not in _TYPES:
            raise _fail(path, f"{where} ({name}): type must be gauge or counter, not {kind!r}")
        if kind == "counter" and not name.endswith("_total"):
            raise _fail(path, f"{where} ({name}): a counter's name must end in _total")
        for label in s.get("labels") or {}:
            if not _LABEL_NAME.match(str(label)) or label == "__name__":
                raise _fail(path, f"{where} ({name}): bad label name {label!r}")
        try:
            expand_series(s["values"])
        except ValueError as exc:
            raise _fail(path, f"{where} ({name}): {exc}") from None


def load_scenario(path: str | Path) -> Scenario:
    """Load and check one scenario: a ``scenario.yaml`` or the directory holding it."""
    path = Path(path)
    if path.is_dir():
        path = path / FILE_NAME
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise _fail(path, f"cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise _fail(path, f"not valid YAML: {exc}") from None
    _check_keys(path, "the scenario", data, _TOP_KEYS, {"name", "alert", "decisive"})
    if data["name"] != path.parent.name:
        raise _fail(path, f"name {data['name']!r} differs from its directory {path.parent.name!r}")
    _check_alert(path, data["alert"])
    _check_world(path, data.get("world") or {})
    if data.get("metrics"):
        _check_metrics(path, data["metrics"])
    decisive = data["decisive"]
    if (
        not isinstance(decisive, list)
        or not decisive
        or not all(isinstance(d, str) and d for d in decisive)
    ):
        raise _fail(path, "decisive must be a non-empty list of non-empty strings")
    leaked = [d for d in decisive if CANARY in d]
    if leaked:
        raise _fail(path, f"decisive strings must not contain {CANARY}: {leaked}")
    keywords = data.get("root_cause_keywords") or []
    if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
        raise _fail(path, "root_cause_keywords must be a list of strings")
    queries = data.get("queries") or []
    if not isinstance(queries, list) or not all(isinstance(q, str) and q for q in queries):
        raise _fail(path, "queries must be a list of PromQL strings")
    return Scenario(
        name=data["name"],
        description=str(data.get("description") or ""),
        path=path,
        alert=data["alert"],
        world=data.get("world") or {},
        metrics=data.get("metrics") or {},
        decisive=decisive,
        root_cause_keywords=keywords,
        queries=queries,
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
            key = (item[0], tuple(sorted(item[1].items())))
            if key in owners:
                raise ScenarioError(
                    f"{sc.path}: series {item[0]}{dict(key[1])} is also defined by scenario "
                    f"{owners[key]}"
                )
            owners[key] = sc.name
            series.append(item)
    return _openmetrics(series)
