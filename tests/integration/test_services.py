"""``open_services``: what the service, ``sre-agent investigate`` and the lab open, and
that all of it is closed again, on error too."""

from __future__ import annotations

import asyncio

import pytest

from sre_agent.alerts import load_alert_file
from sre_agent.services import open_services
from tests.conftest import EXAMPLES
from tests.support.model_scripts import investigator

FIRING = load_alert_file((EXAMPLES / "group-firing-homepage.json").read_text())


async def test_without_serving_nothing_runs_until_the_caller_drives_the_worker(
    make_settings, ollama
):
    ollama.default = investigator
    async with open_services(make_settings(), serve=False, concurrency=1) as services:
        record, created = services.store.create_or_get(FIRING.alerts[0], FIRING.groupKey)
        assert created and services.worker.depth == 0
        assert ollama.paths == []  # no readiness checks, no background worker
        await services.worker.process(record.id)
        done = services.store.get(record.id)
        assert done is not None and done.status == "completed"
        assert services.worker.investigator is services.investigator
    with pytest.raises(RuntimeError, match="not open"):
        services.store.list()


async def test_serving_resumes_what_the_last_run_left_and_stops_cleanly(make_settings, ollama):
    ollama.default = investigator
    settings = make_settings()
    async with open_services(settings, serve=False) as services:  # a run that died
        left, _ = services.store.create_or_get(FIRING.alerts[0], FIRING.groupKey)
    async with open_services(settings) as services:
        finished = await services.worker.wait(left.id, 60)
        assert finished is not None and finished.status == "completed"
        assert services.readiness.states()["ollama"]["ok"] is True
        assert {"dispatcher", "evidence-0", "readiness-ollama"} <= set(_background_tasks())
    with pytest.raises(RuntimeError, match="not open"):
        services.store.list()
    assert not _background_tasks()


async def test_an_error_inside_closes_everything_opened(make_settings, ollama):
    ollama.default = investigator
    with pytest.raises(ZeroDivisionError):
        async with open_services(make_settings()) as services:
            1 / 0  # noqa: B018
    with pytest.raises(RuntimeError, match="not open"):
        services.store.list()
    assert not _background_tasks()


def _background_tasks() -> list[str]:
    """The service's tasks still alive: its stages, re-investigation, readiness loops."""
    names = {t.get_name() for t in asyncio.all_tasks() if not t.done()}
    prefixes = ("dispatcher", "evidence-", "model-", "reinvestigate", "readiness-")
    return sorted(n for n in names if n.startswith(prefixes))
