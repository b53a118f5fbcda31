"""The lab: realistic alert scenarios (alert, cluster state, metrics, decisive evidence)
for tests, the benchmark and ``sre-agent eval``. See ``docs/scenarios.md``."""

from sre_agent_lab.scenarios import (
    Scenario,
    ScenarioError,
    combined_openmetrics,
    combined_world,
    default_scenarios_dir,
    expand_series,
    load_scenario,
    load_scenarios,
)

__all__ = [
    "Scenario",
    "ScenarioError",
    "combined_openmetrics",
    "combined_world",
    "default_scenarios_dir",
    "expand_series",
    "load_scenario",
    "load_scenarios",
]
