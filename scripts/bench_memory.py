#!/usr/bin/env python3
"""``make bench``: what the alert's history costs the first prompt, and how well the
similar-investigation ranking does on the labelled set.

For each scenario, its alert is investigated twice through the real pipeline (the
scenario lab: the real Prometheus, the fake Kubernetes API, the scripted Ollama):
once into an empty store (no history: the block is absent), once into a store holding
six earlier firings of the same alert on the same object over 30 days (analyses, one
cause confirmed, one corrected, durations). Printed per scenario: the first prompt's
tokens without and with the history, the history block's own tokens, and its share of
the evidence budget (SRE_AGENT_EVIDENCE_BUDGET_TOKENS) and of the first prompt.

Then precision@1 of ``Store.similar`` on tests/support/similar_set.py, and the same
ranking by text alone (bm25), for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sre_agent import tokens  # noqa: E402
from sre_agent.prompts import load_prompts  # noqa: E402
from sre_agent.services import open_services  # noqa: E402
from sre_agent.store import Store  # noqa: E402
from sre_agent_lab.runs import scenario_alert  # noqa: E402
from sre_agent_lab.scenarios import load_scenarios  # noqa: E402
from tests.support.lab import open_lab  # noqa: E402
from tests.support.memory import ago, seed  # noqa: E402
from tests.support.model_scripts import investigator  # noqa: E402
from tests.support.similar_set import PROBES, build, probe  # noqa: E402

DEFAULT = [
    "crashloop-oomkilled",
    "crashloop-missing-config",
    "pv-filling-up",
    "hpa-maxed-out",
    "node-not-ready",
]


def seed_history(path: Path, labels: dict[str, str]) -> None:
    store = Store(path)
    store.open()
    try:
        ids = [
            seed(
                store,
                {k: v for k, v in labels.items() if k != "severity"},
                starts=ago(days=days),
                lasted=timedelta(minutes=minutes),
                cause=f"{labels.get('alertname')}: earlier cause number {n}, seen in the logs",
                lines=[f"an earlier evidence line {n}"],
            )
            for n, (days, minutes) in enumerate(
                [(1, 12), (3, 25), (6, 40), (11, 18), (19, 55), (27, 30)]
            )
        ]
        store.add_feedback(ids[1], "confirmed", author="alice")
        store.add_feedback(
            ids[3], "wrong", cause="the real cause, as the on-call found it", author="bob"
        )
    finally:
        store.close()


async def first_prompt(lab: Any, alert: Any, database: Path) -> tuple[int, int]:
    """(first prompt tokens, history block tokens) of one investigation into ``database``."""
    settings = lab.settings(database_url=f"sqlite:///{database}", incidents=False)
    before = len(lab.ollama.requests)
    async with open_services(
        settings, prompts=load_prompts(None), serve=False, concurrency=1
    ) as svc:
        record, _ = svc.store.create_or_get(alert)
        await svc.worker.process(record.id)
        record = svc.store.get(record.id) or record
    first = lab.ollama.requests[before]
    prompt = tokens.count_chat(first["messages"], first.get("tools") or [])
    block = next((e for e in record.evidence if e.tool == "history"), None)
    size = tokens.count(block.title) + tokens.count(block.output) + 8 if block else 0
    return prompt, size


def precision(text_only: bool) -> float:
    import sre_agent.store_memory as sm

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "past.db"
        store = Store(base)
        store.open()
        names = {v: k for k, v in build(store).items()}
        store.close()
        original = sm._match
        if text_only:
            sm._match = lambda a, b: 3  # every candidate alike: bm25 decides
        hits = 0
        try:
            for n, case in enumerate(PROBES):
                copy = Path(tmp) / f"p{n}.db"
                shutil.copy(base, copy)
                one = Store(copy)
                one.open()
                record = one.get(probe(one, case))
                one.close()
                top = (
                    names.get(record.similar[0].investigation_id)
                    if record and record.similar
                    else None
                )
                hits += top == case.expected
        finally:
            sm._match = original
        return hits / len(PROBES)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "scenarios", nargs="*", help=f"scenario names (default: {' '.join(DEFAULT)})"
    )
    args = parser.parse_args(argv)
    scenarios = load_scenarios(names=args.scenarios or DEFAULT)
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="sre-agent-bench-memory-") as tmp,
        open_lab(Path(tmp), scenarios) as lab,
    ):
        lab.ollama.default = investigator
        budget = lab.settings().evidence_budget_tokens
        for scenario in scenarios:
            alert = scenario_alert(scenario)
            empty = Path(tmp) / f"{scenario.name}-empty.db"
            known = Path(tmp) / f"{scenario.name}-history.db"
            seed_history(known, dict(alert.labels))
            without, none = await first_prompt(lab, alert, empty)
            with_history, block = await first_prompt(lab, alert, known)
            assert none == 0, "an empty store gave a history block"
            rows.append(
                (scenario.name, without, with_history, block, block / budget, block / with_history)
            )
    print(
        f"{'scenario':28} {'first prompt':>12} {'with history':>12} {'block':>6} {'of budget':>9} {'of prompt':>9}"
    )
    for name, without, with_history, block, of_budget, of_prompt in rows:
        print(
            f"{name:28} {without:>12} {with_history:>12} {block:>6} {of_budget:>9.1%} {of_prompt:>9.1%}"
        )
    print(
        f"(history block at most {0.15:.0%} of the evidence budget of {budget} tokens; Qwen2.5 tokenizer)"
    )
    print()
    print(f"similar investigations, precision@1 on {len(PROBES)} labelled probes:"
          f" ranking {precision(False):.2f}, text alone (bm25) {precision(True):.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
