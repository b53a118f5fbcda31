"""The ranking of similar past investigations on a small labelled set
(tests/support/similar_set.py): the right one ranks first for each probe."""

from __future__ import annotations

import shutil
from pathlib import Path

from sre_agent.store import Store
from tests.support.similar_set import PROBES, build, probe


def test_similar_ranking_precision_at_1(tmp_path: Path):
    base = tmp_path / "past.db"
    store = Store(base)
    store.open()
    ids = build(store)
    store.close()
    names = {v: k for k, v in ids.items()}
    misses = []
    for n, case in enumerate(PROBES):
        copy = tmp_path / f"probe-{n}.db"  # each probe alone with the past: none sees another
        shutil.copy(base, copy)
        one = Store(copy)
        one.open()
        try:
            ident = probe(one, case)
            record = one.get(ident)
            ranked = [names.get(s.investigation_id, s.investigation_id) for s in record.similar]
        finally:
            one.close()
        if not ranked or ranked[0] != case.expected:
            misses.append(
                f"{case.labels['alertname']} ({case.why}): expected {case.expected}, got {ranked}"
            )
    precision = (len(PROBES) - len(misses)) / len(PROBES)
    print(f"similar-investigation ranking: precision@1 = {precision:.2f} on {len(PROBES)} probes")
    assert not misses, "\n".join(misses)
