"""Background tasks stop at shutdown even when one swallows a cancel."""

from __future__ import annotations

import asyncio
from typing import Any

from sre_agent.readiness import Readiness
from sre_agent.tasks import cancel_and_wait


def test_a_task_that_swallows_a_cancel_is_cancelled_again_until_it_ends() -> None:
    cancels = 0

    async def stubborn() -> None:
        nonlocal cancels
        while True:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancels += 1
                if cancels == 3:
                    raise  # the third cancel is obeyed

    async def scenario() -> bool:
        task = asyncio.create_task(stubborn())
        await asyncio.sleep(0)
        await asyncio.wait_for(cancel_and_wait([task], recancel_after=0.01), 10)
        return task.cancelled()

    assert asyncio.run(scenario()) is True
    assert cancels == 3


def test_readiness_stops_though_a_check_swallows_the_cancel() -> None:
    """A check (a client library) that catches CancelledError once must not keep the
    readiness loop, and so the service's shutdown, waiting."""
    swallowed = 0

    async def sticky() -> dict[str, Any]:
        nonlocal swallowed
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            swallowed += 1
            if swallowed > 1:
                raise
        return {"ok": True}

    readiness = Readiness({"sticky": sticky}, interval=0.01, timeout=60)

    async def scenario() -> None:
        readiness._tasks = [asyncio.create_task(readiness._watch("sticky"))]
        await asyncio.sleep(0.05)  # the watch is inside its check now
        await asyncio.wait_for(readiness.stop(), 10)

    asyncio.run(scenario())
    assert swallowed == 2
