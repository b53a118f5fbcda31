"""``sre-agent eval``: the scenarios through the real pipeline, against their worlds, scored.

Each scenario's alert is investigated as the service would (evidence first, then
the agent on ``ChatOllama``, into a throwaway SQLite store) against the fake
Kubernetes API and the real Prometheus serving the scenario worlds
(:mod:`sre_agent_lab.world`). What the model was sent is captured by a
LangChain callback on the chat model, so "did the decisive evidence reach the
model?" is answered from our side of the wire, for any Ollama.

Exit codes: 0 it ran (whatever the scores; ``--fail-under`` makes a low pass
rate exit 1), 2 bad arguments (unknown scenario, unreadable prompts), 3 Ollama
not usable, 4 the worlds could not be served (Prometheus missing or failing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sre_agent.errors import OllamaUnavailable
from sre_agent.settings import Settings

if TYPE_CHECKING:  # the pipeline is imported when the command runs, not for `--help`
    from sre_agent.prompts import Prompts
    from sre_agent_lab.runs import RunResult
    from sre_agent_lab.scenarios import Scenario


# ---------------------------------------------------------------- the table


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], *, numbers: bool = True
) -> str:
    """A plain text table: first column left-aligned, the others right-aligned (``numbers``)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        out = [row[0].ljust(widths[0])]
        out += [
            c.rjust(w) if numbers else c.ljust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    body = [line(r) for r in cells[1:]]
    if len(body) > 1 and rows and str(rows[-1][0]) == "total":
        body.insert(-1, rule)
    return "\n".join([line(cells[0]), rule, *body])


HEADERS = (
    "scenario",
    "decisive",
    "valid",
    "keywords",
    "cited",
    "prompt tok",
    "1st prompt",
    "LLM calls",
    "tools (model+evidence)",
    "time",
    "pass",
)


def _share(flags: Sequence[bool | None]) -> str:
    known = [f for f in flags if f is not None]
    if not known:
        return "-"
    if len(flags) == 1:
        return "yes" if known[0] else "no"
    return f"{sum(known)}/{len(known)}"


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _keywords(runs: Sequence[RunResult]) -> str:
    fractions = [r.keyword_fraction for r in runs if r.keyword_fraction is not None]
    return f"{_mean(fractions):.2f}" if fractions else "-"


def _cited(runs: Sequence[RunResult]) -> str:
    """Root causes that cite at least one gathered finding, of all root causes (k/n)."""
    return f"{sum(r.cited_causes for r in runs)}/{sum(r.causes for r in runs)}"


def table_rows(results: dict[str, list[RunResult]]) -> list[list[object]]:
    """One row per scenario (means over its repeats) and a totals row (sums, pass rate)."""
    rows: list[list[object]] = []
    for name, runs in results.items():
        rows.append(
            [
                name,
                _share([r.decisive_reached for r in runs]),
                _share([r.valid for r in runs]),
                _keywords(runs),
                _cited(runs),
                round(_mean([r.prompt_tokens for r in runs])),
                round(_mean([r.first_prompt_tokens for r in runs])),
                f"{_mean([r.llm_calls for r in runs]):g}",
                f"{_mean([r.model_tool_calls for r in runs]):g}"
                f"+{_mean([r.evidence_tool_calls for r in runs]):g}",
                f"{_mean([r.seconds for r in runs]):.1f}s",
                _share([r.passed for r in runs]),
            ]
        )
    every = [r for runs in results.values() for r in runs]
    passed = sum(r.passed for r in every)
    decisive = [r.decisive_reached for r in every if r.decisive_reached is not None]
    rows.append(
        [
            "total",
            f"{sum(decisive)}/{len(decisive)}",
            f"{sum(r.valid for r in every)}/{len(every)}",
            _keywords(every),
            _cited(every),
            sum(r.prompt_tokens for r in every),
            round(_mean([r.first_prompt_tokens for r in every])),
            sum(r.llm_calls for r in every),
            f"{sum(r.model_tool_calls for r in every)}+{sum(r.evidence_tool_calls for r in every)}",
            f"{sum(r.seconds for r in every):.1f}s",
            f"{passed}/{len(every)} ({pass_rate(every):.0%})",
        ]
    )
    return rows


def pass_rate(runs: Sequence[RunResult]) -> float:
    return sum(r.passed for r in runs) / len(runs) if runs else 0.0


# ---------------------------------------------------------------- the command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="default: all")
    parser.add_argument("--ollama-url", help="default: SRE_AGENT_OLLAMA_URL")
    parser.add_argument("--model", help="default: SRE_AGENT_MODEL")
    parser.add_argument(
        "--scenarios-dir",
        type=Path,
        help="default: the lab's own (an editable install: the checkout's scenarios/;"
        " an installed lab: the copy inside it)",
    )
    parser.add_argument("--prompts-dir", type=Path, help="default: SRE_AGENT_PROMPTS_DIR")
    parser.add_argument(
        "--repeat", type=int, default=1, metavar="N", help="runs per scenario (pass rate)"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every run's results")
    parser.add_argument(
        "--fail-under",
        type=float,
        metavar="PERCENT",
        help="exit 1 when fewer runs pass (default: exit 0 whenever it ran)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="the pipeline's own log")


def main(settings: Settings, args: argparse.Namespace) -> int:
    """``sre-agent eval``; returns the exit code (see the module docstring)."""
    from sre_agent.backends import require_ollama
    from sre_agent.prompts import load_prompts
    from sre_agent_lab.prometheus_world import PrometheusMissing
    from sre_agent_lab.scenarios import ScenarioError, load_scenarios

    if args.repeat < 1:
        return _fail("--repeat must be at least 1", 2)
    overrides = {
        key: value
        for key, value in (
            ("ollama_url", args.ollama_url and args.ollama_url.rstrip("/")),
            ("model", args.model),
            ("prompts_dir", args.prompts_dir),
        )
        if value
    }
    settings = settings.model_copy(update=overrides)
    try:
        scenarios = load_scenarios(args.scenarios_dir, args.scenarios or None)
        if not scenarios:
            return _fail(f"no scenarios found in {args.scenarios_dir}", 2)
        prompts = load_prompts(settings.prompts_dir)
    except (ScenarioError, OSError) as exc:
        return _fail(str(exc), 2)
    if not args.verbose:
        for name in ("sre_agent", "sre_agent_tools"):
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        asyncio.run(require_ollama(settings))
    except OllamaUnavailable as exc:
        return _fail(str(exc), 3)
    try:
        results = asyncio.run(_evaluate(settings, prompts, scenarios, args.repeat))
    except (PrometheusMissing, RuntimeError) as exc:
        return _fail(f"cannot serve the scenario worlds: {exc}", 4)
    every = [r for runs in results.values() for r in runs]
    print(
        f"model {settings.model} at {settings.llm_url}, prompts {prompts.version},"
        f" {len(scenarios)} scenario(s) x {args.repeat}"
    )
    print(format_table(HEADERS, table_rows(results)))
    if args.json:
        args.json.write_text(
            json.dumps(_document(settings, prompts, args.repeat, results), indent=2)
        )
        print(f"results written to {args.json}", file=sys.stderr)
    if args.fail_under is not None and pass_rate(every) * 100 < args.fail_under:
        return _fail(f"pass rate {pass_rate(every):.0%} is under {args.fail_under:g}%", 1)
    return 0


async def _evaluate(
    settings: Settings,
    prompts: Prompts,
    scenarios: list[Scenario],
    repeat: int,
    *,
    max_world_age: float | None = None,
) -> dict[str, list[RunResult]]:
    """Every scenario ``repeat`` times against the worlds; a world older than
    ``max_world_age`` seconds (default :data:`sre_agent_lab.world.MAX_AGE`) when a run
    starts is re-opened at a new "now" for the scenarios still to run, so a long run
    (a slow model) queries series that end where its alerts say."""
    from sre_agent_lab import world as worlds_module
    from sre_agent_lab.runs import run_alert, scenario_alert

    max_age = worlds_module.MAX_AGE if max_world_age is None else max_world_age
    results: dict[str, list[RunResult]] = {s.name: [] for s in scenarios}
    with tempfile.TemporaryDirectory(prefix="sre-agent-eval-") as tmp:
        print(f"serving {len(scenarios)} scenario world(s)...", file=sys.stderr)
        with worlds_module.FreshWorlds(Path(tmp), scenarios, max_age=max_age) as worlds:
            for n, scenario in enumerate(scenarios, 1):
                for attempt in range(1, repeat + 1):
                    world, replaced_age = worlds.fresh(scenarios[n - 1 :])
                    if replaced_age is not None:
                        print(
                            f"re-anchoring the scenario worlds at {world.now:%H:%M:%S} UTC"
                            f" (the last one was {replaced_age:.0f} s old)",
                            file=sys.stderr,
                        )
                    run = await run_alert(
                        scenario_alert(scenario, world.now),
                        world.settings(settings),
                        prompts,
                        Path(tmp) / "db",
                        scenario,
                    )
                    results[scenario.name].append(run)
                    which = f" run {attempt}/{repeat}" if repeat > 1 else ""
                    print(
                        f"[{n}/{len(scenarios)}] {scenario.name}{which}: {run.status},"
                        f" {'pass' if run.passed else 'FAIL'} in {run.seconds:.1f}s",
                        file=sys.stderr,
                    )
    return results


def _document(
    settings: Settings, prompts: Prompts, repeat: int, results: dict[str, list[RunResult]]
) -> dict[str, Any]:
    every = [r for runs in results.values() for r in runs]
    return {
        "model": settings.model,
        "ollama_url": settings.ollama_url,
        "llm_api": settings.llm_api,
        "llm_url": settings.llm_url,
        "prompt_version": prompts.version,
        "repeat": repeat,
        "scenarios": [
            {"name": name, "pass_rate": pass_rate(runs), "runs": [r.to_json() for r in runs]}
            for name, runs in results.items()
        ],
        "totals": {
            "runs": len(every),
            "passed": sum(r.passed for r in every),
            "pass_rate": pass_rate(every),
            "prompt_tokens": sum(r.prompt_tokens for r in every),
            "root_causes": sum(r.causes for r in every),
            "root_causes_citing_evidence": sum(r.cited_causes for r in every),
            "llm_calls": sum(r.llm_calls for r in every),
            "seconds": round(sum(r.seconds for r in every), 3),
        },
    }


def _fail(message: str, code: int) -> int:
    print(f"sre-agent: {message}", file=sys.stderr)
    return code
