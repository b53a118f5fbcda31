"""The scenario library loads, and the loader builds what its users feed to other programs."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sre_agent.alerts import parse_payload
from sre_agent_lab import (
    ScenarioError,
    combined_openmetrics,
    combined_world,
    default_scenarios_dir,
    expand_series,
    load_scenario,
    load_scenarios,
)

NOW = datetime(2026, 11, 27, 4, 0, 0, tzinfo=UTC)
SCENARIOS = load_scenarios()


def test_every_scenario_directory_loads_as_the_scenario_it_is_named_for() -> None:
    """A directory the loader skipped (no scenario.yaml, a typo) would drop out of eval."""
    root = default_scenarios_dir()
    directories = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name[0] not in "._")
    assert [s.name for s in SCENARIOS] == directories
    assert [s.path.parent for s in SCENARIOS] == [root / name for name in directories]


def test_the_library_covers_the_common_alerts() -> None:
    names = {s.alertname for s in SCENARIOS}
    assert {"KubePodCrashLooping", "KubeNodeNotReady", "TargetDown", "KubeJobFailed"} <= names


@pytest.mark.parametrize(
    ("notation", "expected"),
    [
        ("1+2x3", [1, 3, 5, 7]),
        ("5x2", [5, 5, 5]),
        ("10-1x3", [10, 9, 8, 7]),
        ("-2+1x2", [-2, -1, 0]),
        ("_x3", [None, None, None]),
        ("1 _ 3", [1, None, 3]),
        ("7", [7]),
        ("0.1+0.1x2", [0.1, 0.2, 0.3]),
        ("1e3x1 _x2 2", [1000, 1000, None, None, 2]),
    ],
)
def test_expand_series(notation: str, expected: list[float | None]) -> None:
    assert expand_series(notation) == expected


@pytest.mark.parametrize("notation", ["", "1+x3", "abc", "1+2", "_+1x2", "1x"])
def test_expand_series_rejects_bad_notation(notation: str) -> None:
    with pytest.raises(ValueError):
        expand_series(notation)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_webhook_body_is_a_valid_alertmanager_payload(scenario) -> None:
    payload = parse_payload(scenario.webhook_body(NOW))
    alert = payload.alerts[0]
    assert alert.name == scenario.alertname
    assert alert.expr == scenario.expr
    assert alert.startsAt < NOW and alert.ended_at is None
    assert re.fullmatch(r"[0-9a-f]{16}", alert.fingerprint)
    # kubernetes-mixin alerts link runbooks.prometheus-operator.dev; others their own rules page
    assert alert.annotations.get("runbook_url", "").startswith("https://")
    assert payload.commonLabels == alert.labels


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_decisive_strings_never_hold_a_planted_secret(scenario) -> None:
    assert scenario.decisive
    assert not [d for d in scenario.decisive if "CANARY" in d]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_openmetrics_is_well_formed(scenario) -> None:
    text = scenario.openmetrics(NOW)
    assert text.endswith("# EOF\n") and text.count("# EOF") == 1
    family = None
    seen: set[str] = set()
    for line in text.splitlines()[:-1]:
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ")
            assert family not in seen, f"family {family} split in two"
            seen.add(family)
            assert kind in ("gauge", "counter")
            continue
        name, value, ts = re.fullmatch(r"([^{ ]+)(?:\{.*\})? (\S+) (\d+)", line).groups()
        assert family is not None
        assert name == (f"{family}_total" if kind == "counter" else family)
        float(value)
        assert int(ts) <= NOW.timestamp()
    last = max(int(line.rsplit(" ", 1)[1]) for line in text.splitlines() if not line[0] == "#")
    assert last == int(NOW.timestamp())


def test_all_scenarios_load_together_without_clashes() -> None:
    world = combined_world(SCENARIOS, NOW)
    keys = [
        (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in world["objects"]
    ]
    assert len(keys) == len(set(keys))
    assert combined_openmetrics(SCENARIOS, NOW).endswith("# EOF\n")
    namespaces = [o["metadata"]["name"] for o in world["objects"] if o["kind"] == "Namespace"]
    assert len(namespaces) == len(set(namespaces))


def test_relative_times_in_the_world_are_resolved() -> None:
    world = combined_world(SCENARIOS, NOW)
    text = repr(world["objects"])
    assert not re.search(r"'-\d+[smhd]'", text)
    assert "2026-11-27T03:15:00Z" in text  # -45m: e.g. the crash-looping pod was created then


def test_a_clash_names_both_scenarios() -> None:
    one = SCENARIOS[0]
    with pytest.raises(ScenarioError, match=f"also defined by scenario {one.name}"):
        combined_world([one, one], NOW)
    with pytest.raises(ScenarioError, match="series .* also defined"):
        combined_openmetrics([one, one], NOW)


def _write(tmp_path: Path, text: str, name: str = "bad") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "scenario.yaml").write_text(text)
    return folder


GOOD = """\
name: bad
alert:
  labels: {alertname: X, severity: warning}
  expr: up == 0
metrics:
  series:
  - {name: up, labels: {job: a}, values: "1x3"}
decisive: ["up"]
"""


def test_a_minimal_scenario_loads(tmp_path: Path) -> None:
    scenario = load_scenario(_write(tmp_path, GOOD))
    assert scenario.expr == "up == 0"
    assert "g0.expr=up%20%3D%3D%200" in scenario.webhook_body(NOW)["alerts"][0]["generatorURL"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("decisive:", "colour: red\ndecisive:"), "unknown key.*colour"),
        (("severity: warning", "sev: warning"), "alertname and severity"),
        (('values: "1x3"', 'values: "1+x3"'), r"metrics.series\[0\] \(up\): bad series notation"),
        (('["up"]', '["CANARY-x"]'), "must not contain CANARY"),
        (("expr: up == 0", "startsAt: -5m"), "exactly one of expr or generatorURL"),
        (("name: bad", "name: other"), "differs from its directory"),
    ],
)
def test_errors_name_the_file_and_the_problem(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    folder = _write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ScenarioError, match=message) as info:
        load_scenario(folder)
    assert str(folder / "scenario.yaml") in str(info.value)


def test_unknown_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no scenario named nope"):
        load_scenarios(names=["nope"])
    assert [s.name for s in load_scenarios(names=[SCENARIOS[0].name])] == [SCENARIOS[0].name]
