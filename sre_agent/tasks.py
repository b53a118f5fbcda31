"""Stopping background tasks so that they stay stopped.

A task may swallow one cancel (on Python 3.11 ``asyncio.wait_for`` drops a cancel that
arrives as its inner work ends; a broad ``except`` in a library does the same), so a
single ``cancel()`` and an unbounded ``gather`` can wait for ever at shutdown. Here each
task is cancelled again until it ends, and one that takes long is named in the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

log = logging.getLogger(__name__)

#: Seconds between cancels of a task that has not ended.
RECANCEL_AFTER = 2.0


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[None]], recancel_after: float = RECANCEL_AFTER
) -> None:
    """Cancel ``tasks`` and wait until every one has ended, cancelling again as needed."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=recancel_after)
        for task in pending:
            log.warning("task %s has not stopped yet: cancelling it again", task.get_name())
