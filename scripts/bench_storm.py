#!/usr/bin/env python3
"""Storms, with incidents and without: alerts in, incidents out, model runs, the model
time spent until the head's analysis, and how soon each alert's evidence report is out.

    .venv/bin/python scripts/bench_storm.py [--seed 13] [--storm node-failure ...]

Each storm of ``storms/`` goes through the real Alertmanager (``prometheus-alertmanager``
on PATH) in a shuffled order to ``sre-agent serve`` against the lab's world (real
Prometheus, the fake Kubernetes API) and the scripted Ollama, three times: as
before incidents (``SRE_AGENT_INCIDENTS=false``: one model run per alert, and no read
cache), with the read cache alone, and as today. The scripted model answers at once, so the model time is the
equivalent on a consumer GPU: prompt tokens / 1500 + completion tokens / 50 seconds per
call, summed over the runs that ended up to the head's analysis (and over all runs). The service runs
with ``SRE_AGENT_INCIDENT_SETTLE=3`` (the default is 15): with incidents, the wall time
to the head's analysis is that wait plus the model's time. Prints; asserts nothing
(tests/integration/test_storms.py checks the incidents themselves). ``k8s reads``: the
requests the fake Kubernetes API served, with and without the few seconds' read cache.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "lab"))

from sre_agent_lab.storms import load_storms  # noqa: E402
from tests.support.lab import open_lab  # noqa: E402
from tests.support.model_scripts import investigator  # noqa: E402
from tests.support.storms import run_storm  # noqa: E402

#: (label, SRE_AGENT_INCIDENTS, SRE_AGENT_KUBE_READ_CACHE): before this release, the
#: read cache alone, and today.
MODES = (
    ("per alert, no cache", False, 0.0),
    ("per alert", False, 5.0),
    ("incidents", True, 5.0),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=13, help="the shuffle of the alerts")
    parser.add_argument("--storm", action="append", help="a storm's name (default: all)")
    args = parser.parse_args()
    storms = [s for s in load_storms() if not args.storm or s.name in args.storm]
    if not storms:
        sys.exit(f"no storm named {args.storm}")
    print(
        f"# storms (seed {args.seed}): model time = prompt/1500 + completion/50 s per call;"
        " incident settle 3 s"
    )
    print(
        f"{'storm':<16} {'mode':<18} {'alerts':>6} {'incid.':>6} {'LLM runs':>8}"
        f" {'model s to head':>15} {'model s all':>11} {'wall s to head':>14}"
        f" {'report p50/max s':>16}"
        f" {'k8s reads':>9}"
    )
    with (
        tempfile.TemporaryDirectory(prefix="bench-storm-") as tmp,
        open_lab(Path(tmp), [s.scene() for s in storms]) as lab,
    ):
        lab.ollama.default = investigator
        for storm in storms:
            for n, (label, incidents, cache) in enumerate(MODES):
                before = len(lab.kube.requests)
                run = run_storm(
                    lab,
                    storm,
                    Path(tmp) / f"{storm.name}-{n}",  # a fresh database each
                    seed=args.seed,
                    incidents=incidents,
                    kube_read_cache=cache,
                    timeout=300.0,
                )
                f = run.figures()
                reads = len(lab.kube.requests) - before
                print(
                    f"{storm.name:<16} {label:<18} {f['alerts']:>6} {f['incidents']:>6}"
                    f" {f['llm_runs']:>8} {f['model_s_to_head']:>15.1f}"
                    f" {f['model_s_total']:>11.1f}"
                    f" {f['wall_s_to_head']:>14.1f}"
                    f" {f['first_report_median_s']:>7.2f}/{f['first_report_max_s']:<8.2f}"
                    f" {reads:>9}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
