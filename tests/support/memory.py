"""Past investigations for the memory tests: each one goes through the store as the
service's would (intake, claim, finish with an analysis, resolved, indexed), then is
dated back to when it fired, as if it had been stored then."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sre_agent.alerts import parse_payload
from sre_agent.models import Analysis, Evidence, RootCause
from sre_agent.store import Store


def body(
    labels: Mapping[str, str], starts: datetime, ends: datetime | None = None
) -> dict[str, Any]:
    """An Alertmanager v4 body of one alert."""
    status = "resolved" if ends is not None else "firing"
    return {
        "version": "4",
        "status": status,
        "receiver": "sre-agent",
        "groupKey": "{}:{alertname=" + json.dumps(labels.get("alertname", "")) + "}",
        "groupLabels": {"alertname": labels.get("alertname", "")},
        "commonLabels": dict(labels),
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": status,
                "labels": {"severity": "warning", **labels},
                "annotations": {"summary": f"{labels.get('alertname')} on {labels.get('pod', '')}"},
                "startsAt": starts.isoformat().replace("+00:00", "Z"),
                "endsAt": (
                    ends.isoformat().replace("+00:00", "Z") if ends else "0001-01-01T00:00:00Z"
                ),
                "generatorURL": "",
                "fingerprint": f"{abs(hash((tuple(sorted(labels.items())), starts))):016x}"[:16],
            }
        ],
    }


def seed(
    store: Store,
    labels: Mapping[str, str],
    *,
    starts: datetime,
    lasted: timedelta | None = timedelta(minutes=20),
    cause: str | None = None,
    summary: str | None = None,
    lines: Sequence[str] = (),
    query: str | None = None,
    mitigation: Sequence[str] = (),
) -> str:
    """One finished past investigation; its analysis (when ``cause``) cites one finding
    holding ``lines`` (the PromQL ``query``'s answer when given, else a pod description)."""
    payload = parse_payload(body(labels, starts))
    [(ident, _, _)], _ = store.create_group(payload.alerts, group_key=payload.groupKey)
    record = store.claim(ident)
    assert record is not None
    evidence = [
        Evidence(
            id="E1",
            title="The alert's expression now" if query else "Pod description",
            tool="promql_query" if query else "kubectl_describe",
            args={"query": query} if query else {"kind": "pod", "name": labels.get("pod", "")},
            output="\n".join(lines) or "nothing of note",
        )
    ]
    analysis = None
    if cause:
        analysis = Analysis(
            summary=summary or cause,
            root_causes=[
                RootCause(
                    cause=cause, evidence=list(lines[:1]), evidence_ids=["E1"], confidence="medium"
                )
            ],
            mitigation=list(mitigation),
        )
    store.finish(
        record.model_copy(
            update={
                "status": "completed" if analysis else "degraded",
                "evidence": evidence,
                "tool_calls": [e.tool_call() for e in evidence],
                "analysis": analysis,
            }
        )
    )
    if lasted is not None:
        ended = parse_payload(body(labels, starts, starts + lasted))
        store.create_group([], ended.alerts)
    with store._tx() as db:  # stored when it fired, not now
        db.execute(
            "UPDATE investigations SET created_at=? WHERE id=?",
            (starts.isoformat(timespec="milliseconds"), ident),
        )
    store.remember(ident)
    return ident


def suffix(n: int) -> str:
    """A pod name suffix as Kubernetes makes them (its safe alphabet), the n-th."""
    return "".join("bcdfghjklmnpqrstvwxz2456789"[int(c)] for c in f"{n:05d}")


#: A pod's labels for the memory tests: web's container in shop (add its ``pod``).
WEB = {"alertname": "KubePodCrashLooping", "namespace": "shop", "container": "web"}


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An open store, once on each backend: SQLite in the test's directory
    (``sre-agent.db``, as the service names it), and a database of its own on the
    session's real Postgres server (tests/support/postgres.py)."""
    if request.param == "postgres":
        opened = Store(request.getfixturevalue("postgres_url"))
    else:
        opened = Store(tmp_path / "sre-agent.db")
    opened.open()
    yield opened
    opened.close()


def ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)
