"""The checks a scenario file passes before it is used: known keys only, an alert with
a name, a severity and its PromQL, a world of named objects, metrics in promtool's
notation, and decisive strings that never contain the canary.

Each problem is a :class:`ScenarioError` naming the file and the key, so a
typo in ``scenarios/`` fails at load time, not as a puzzling evaluation.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from sre_agent_tools.prom_parse import expr_from_generator_url, parse_duration

from sre_agent_lab.scenario_notation import expand_series, is_relative

__all__ = ["CANARY", "ScenarioError", "check_scenario", "fail"]

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
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class ScenarioError(ValueError):
    """A scenario file is missing, malformed or clashes with another scenario."""


def fail(path: Path, problem: str) -> ScenarioError:
    return ScenarioError(f"{path}: {problem}")


def _keys(path: Path, where: str, data: Any, allowed: set[str], required: set[str]) -> None:
    if not isinstance(data, dict):
        raise fail(path, f"{where} must be a mapping, not {type(data).__name__}")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise fail(path, f"unknown key(s) in {where}: {', '.join(unknown)}")
    missing = sorted(required - set(data))
    if missing:
        raise fail(path, f"missing key(s) in {where}: {', '.join(missing)}")


def _check_alert(path: Path, alert: Any) -> None:
    _keys(path, "alert", alert, _ALERT_KEYS, {"labels"})
    labels = alert["labels"]
    if not isinstance(labels, dict) or not labels.get("alertname") or not labels.get("severity"):
        raise fail(path, "alert.labels must include alertname and severity")
    if not isinstance(alert.get("annotations", {}), dict):
        raise fail(path, "alert.annotations must be a mapping")
    if bool(alert.get("expr")) == bool(alert.get("generatorURL")):
        raise fail(path, "alert needs exactly one of expr or generatorURL")
    if alert.get("generatorURL") and not expr_from_generator_url(str(alert["generatorURL"])):
        raise fail(path, "alert.generatorURL has no g0.expr parameter")
    starts = str(alert.get("startsAt", "-15m"))
    if not is_relative(starts):
        try:
            datetime.fromisoformat(starts.replace("Z", "+00:00"))
        except ValueError:
            raise fail(
                path, f"alert.startsAt {starts!r} is neither -15m style nor RFC 3339"
            ) from None


def _check_world(path: Path, world: Any) -> None:
    _keys(path, "world", world, _WORLD_KEYS, set())
    for i, obj in enumerate(world.get("objects") or []):
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        if not isinstance(meta, dict) or not obj.get("kind") or not obj.get("apiVersion"):
            raise fail(path, f"world.objects[{i}] needs apiVersion, kind and metadata")
        if not meta.get("name"):
            raise fail(path, f"world.objects[{i}] ({obj['kind']}) has no metadata.name")
    for i, entry in enumerate(world.get("logs") or []):
        _keys(path, f"world.logs[{i}]", entry, _LOG_KEYS, {"namespace", "pod", "container", "text"})


def _check_metrics(path: Path, metrics: Any) -> None:
    _keys(path, "metrics", metrics, _METRICS_KEYS, {"series"})
    try:
        parse_duration(metrics.get("step", "30s"))
    except ValueError as exc:
        raise fail(path, f"metrics.step: {exc}") from None
    for i, s in enumerate(metrics["series"] or []):
        where = f"metrics.series[{i}]"
        _keys(path, where, s, _SERIES_KEYS, {"name", "values"})
        name = str(s["name"])
        if not _METRIC_NAME.match(name):
            raise fail(path, f"{where}: bad metric name {name!r}")
        kind = s.get("type", "gauge")
        if kind not in _TYPES:
            raise fail(path, f"{where} ({name}): type must be gauge or counter, not {kind!r}")
        if kind == "counter" and not name.endswith("_total"):
            raise fail(path, f"{where} ({name}): a counter's name must end in _total")
        for label in s.get("labels") or {}:
            if not _LABEL_NAME.match(str(label)) or label == "__name__":
                raise fail(path, f"{where} ({name}): bad label name {label!r}")
        try:
            expand_series(s["values"])
        except ValueError as exc:
            raise fail(path, f"{where} ({name}): {exc}") from None


def check_scenario(path: Path, data: Any) -> None:
    """Everything :func:`~sre_agent_lab.scenarios.load_scenario` needs of a file's YAML."""
    _keys(path, "the scenario", data, _TOP_KEYS, {"name", "alert", "decisive"})
    if data["name"] != path.parent.name:
        raise fail(path, f"name {data['name']!r} differs from its directory {path.parent.name!r}")
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
        raise fail(path, "decisive must be a non-empty list of non-empty strings")
    leaked = [d for d in decisive if CANARY in d]
    if leaked:
        raise fail(path, f"decisive strings must not contain {CANARY}: {leaked}")
    keywords = data.get("root_cause_keywords") or []
    if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
        raise fail(path, "root_cause_keywords must be a list of strings")
    queries = data.get("queries") or []
    if not isinstance(queries, list) or not all(isinstance(q, str) and q for q in queries):
        raise fail(path, "queries must be a list of PromQL strings")
