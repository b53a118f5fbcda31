"""``open_services(settings)``: what a running sre-agent holds -- the store, the tools'
clients, the investigator and its worker, the notifier, chat, the readiness checks and
the web pages' live feed -- opened in one place and closed in reverse order.

The FastAPI lifespan (``sre-agent serve``), ``sre-agent investigate`` and the lab all
open it, so the three cannot drift apart; they differ only in whether the background
parts run (``serve``): the worker's loops, Slack, readiness checks, chat's database and
the live feed's poller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sre_agent_tools import ToolDeps

from sre_agent import tokens
from sre_agent.agent import Investigator
from sre_agent.backends import make_deps, make_kube
from sre_agent.chat import ChatService
from sre_agent.metrics import Metrics
from sre_agent.models import Investigation
from sre_agent.notify import Notifier
from sre_agent.prompts import Prompts, load_prompts
from sre_agent.readiness import OneAtATime, Readiness
from sre_agent.retention import Retention
from sre_agent.settings import Settings
from sre_agent.store import Store
from sre_agent.web.feed import Feed
from sre_agent.worker import Worker

log = logging.getLogger(__name__)

__all__ = ["Services", "load_kube", "open_services"]


@dataclass
class Services:
    """The open parts; routes reach them through the narrow dependencies of api/deps.py."""

    settings: Settings
    store: Store
    deps: ToolDeps
    prompts: Prompts
    investigator: Investigator
    worker: Worker
    metrics: Metrics
    notifier: Notifier
    chat: ChatService
    readiness: Readiness
    #: The web pages' live feed (its poller runs with ``serve``).
    feed: Feed
    #: Prunes old investigations (SRE_AGENT_RETENTION_DAYS; runs with ``serve``).
    retention: Retention


async def load_kube(settings: Settings) -> tuple[Any | None, str | None]:
    """The Kubernetes client, bounded: a kubeconfig's exec plugin (a cloud CLI fetching
    a token) may hang, and must not hold start-up. In a daemon thread, never joined."""
    bound = settings.backend_timeout
    try:
        async with asyncio.timeout(bound):
            return await OneAtATime("kubeconfig-load")(lambda: make_kube(settings))
    except TimeoutError:
        return None, (
            f"Kubernetes configuration not loaded within {bound:g} s"
            " (SRE_AGENT_BACKEND_TIMEOUT; an exec plugin in the kubeconfig that does not"
            " answer?); restart once it does"
        )


@asynccontextmanager
async def open_services(
    settings: Settings,
    *,
    prompts: Prompts | None = None,
    serve: bool = True,
    concurrency: int | None = None,
) -> AsyncIterator[Services]:
    """Open everything, yield it, close it in reverse order (also on error).

    ``serve``: start the background parts (the worker's loops and re-investigation,
    Slack, the readiness checks, chat's checkpoints); without it the caller drives the
    worker itself (``await services.worker.process(id)``) and nothing is posted.
    ``concurrency`` defaults to SRE_AGENT_MAX_CONCURRENT.
    """
    async with AsyncExitStack() as stack:
        store = Store(settings.database_url)
        store.open()
        stack.callback(store.close)
        deps = make_deps(settings, await load_kube(settings))
        if deps.kube is not None:
            stack.callback(deps.kube.close)
        prompts = prompts or load_prompts(settings.prompts_dir)
        metrics = Metrics()  # per service: tests build many in one process
        notifier = Notifier(settings, store, metrics)

        async def on_finished(record: Investigation) -> None:
            metrics.observe_investigation(record)
            notifier.investigation_finished(record)  # a background task: never delays

        async def on_incident(incident_id: str) -> None:
            if notifier.mode is None:
                return
            incident = await asyncio.to_thread(store.get_incident, incident_id)
            if incident is not None:
                notifier.incident_changed(incident)  # coalesced, in the background

        investigator = Investigator(settings, prompts, deps)
        worker = Worker(
            store,
            investigator,
            concurrency=concurrency or settings.max_concurrent,
            timeout=settings.investigation_timeout,
            on_finished=on_finished if serve else None,
            on_incident=on_incident if serve else None,
            metrics=metrics,
        )
        metrics.track_queue(lambda: worker.depth)
        chat = ChatService(settings, prompts, deps, store)
        # /readyz serves these states; the checks run in the background (readiness.py).
        readiness = Readiness.for_service(
            settings, deps, on_result=metrics.record_backend, ping=store.ping
        )
        services = Services(
            settings,
            store,
            deps,
            prompts,
            investigator,
            worker,
            metrics,
            notifier,
            chat,
            readiness,
            Feed(store),
            Retention(settings, store, chat.forget),
        )
        if serve:
            await _start(services, stack)
        yield services


async def _start(services: Services, stack: AsyncExitStack) -> None:
    """The background parts, each stopped (in reverse) by ``stack``."""
    stack.push_async_callback(services.chat.close)  # first: a half-open chat is closed too
    await services.chat.open()
    # One round of checks (each bounded by SRE_AGENT_READINESS_CHECK_TIMEOUT, blocking
    # calls in threads), then one line per backend: what works, what to change.
    await services.readiness.start()
    stack.push_async_callback(services.readiness.stop)
    for ok, line in services.readiness.describe():
        if ok:
            log.info("%s", line)
        else:
            log.warning("%s. Alerts are still accepted and stored.", line)
    # The tokenizer loads in about a second: here, in a thread, not on the event loop
    # under the first investigation (every request would wait for it).
    await asyncio.to_thread(tokens.count, "warm up")
    await services.notifier.start()
    stack.push_async_callback(services.notifier.stop)
    await services.worker.start()
    stack.push_async_callback(services.worker.stop)
    await services.retention.start()
    stack.push_async_callback(services.retention.stop)
    # Last to start, first to stop: its open streams end before anything they read closes.
    await services.feed.start()
    stack.push_async_callback(services.feed.stop)
