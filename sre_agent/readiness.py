"""Backend readiness, checked in the background so ``/readyz`` answers at once.

A readiness probe must answer within its own timeout (5 s in deploy/) whatever
Ollama, Prometheus or the Kubernetes API do, so ``/readyz`` never waits on
them: one task, started in the lifespan, checks every backend each
``interval`` seconds, each check bounded by ``timeout``, and ``/readyz`` serves
the last result with its time and age. A blocking check (the sync
``kubernetes`` client) runs in a daemon thread, at most one in flight: a hung
API server holds one thread, however many rounds or probes come. The same
loop keeps ``sre_agent_ollama_up`` fresh. ``/readyz``'s own database ping is
bounded the same way (:meth:`Readiness.database`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sre_agent_tools import ToolDeps

from sre_agent.backends import check_kubernetes, check_ollama, check_prometheus
from sre_agent.settings import Settings
from sre_agent.tasks import cancel_and_wait

log = logging.getLogger(__name__)

#: What to change when a backend is not usable: said at start and in ``/readyz``.
SETTINGS = {
    "ollama": "SRE_AGENT_OLLAMA_URL (or OLLAMA_HOST) and SRE_AGENT_MODEL",
    "prometheus": "SRE_AGENT_PROMETHEUS_URL",
    "kubernetes": "SRE_AGENT_KUBECONFIG (or KUBECONFIG), or run in-cluster",
}
#: The names a person knows them by, for the start-up lines.
TITLES = {"ollama": "Ollama", "prometheus": "Prometheus", "kubernetes": "Kubernetes"}

T = TypeVar("T")
Check = Callable[[], Awaitable[dict[str, Any]]]


class OneAtATime:
    """Runs a blocking call in a daemon thread, never more than one at a time.

    A caller that comes while the last call is still running waits for that
    one instead of starting another, so a call that hangs holds one thread,
    not one per caller. Daemon threads never hold up the process's exit.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._future: concurrent.futures.Future[Any] | None = None
        self._started = 0.0

    @property
    def running_for(self) -> float | None:
        """Seconds the call in flight has run, or None when none is."""
        if self._future is None or self._future.done():
            return None
        return time.monotonic() - self._started

    async def __call__(self, fn: Callable[[], T]) -> T:
        if self._future is None or self._future.done():
            future: concurrent.futures.Future[Any] = concurrent.futures.Future()
            future.set_running_or_notify_cancel()  # running: a waiter's cancel leaves it be

            def work() -> None:
                try:
                    future.set_result(fn())
                except BaseException as exc:
                    future.set_exception(exc)

            self._future, self._started = future, time.monotonic()
            threading.Thread(target=work, name=self.name, daemon=True).start()
        return await asyncio.wrap_future(self._future)  # type: ignore[no-any-return]


class Readiness:
    """The last known state of each backend, refreshed in the background from :meth:`start`."""

    def __init__(
        self,
        checks: dict[str, Check],
        *,
        interval: float,
        timeout: float,
        on_result: Callable[[str, dict[str, Any]], None] | None = None,
        ping: Callable[[], None] | None = None,
    ) -> None:
        self.checks = checks
        self.interval = interval
        self.timeout = timeout
        self.on_result = on_result
        self._ping = ping
        #: The model server's API ("ollama", "openai"): what to call it in messages.
        self.llm_api = "ollama"
        self._ping_thread = OneAtATime("readyz-db-ping")
        self._states: dict[str, dict[str, Any]] = {
            name: {"ok": False, "error": "not checked yet"} for name in checks
        }
        self._checked: dict[str, tuple[datetime, float]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def for_service(
        cls,
        settings: Settings,
        deps: ToolDeps,
        *,
        on_result: Callable[[str, dict[str, Any]], None] | None = None,
        ping: Callable[[], None] | None = None,
    ) -> Readiness:
        """Ollama, Prometheus and Kubernetes, as the service reaches them."""
        timeout = min(settings.readiness_check_timeout, settings.backend_timeout)
        kube_thread = OneAtATime("readyz-kubernetes")
        checks: dict[str, Check] = {
            "ollama": lambda: check_ollama(settings, timeout),
            "prometheus": lambda: check_prometheus(settings, timeout),
            "kubernetes": lambda: check_kubernetes(deps, timeout, run=kube_thread),
        }
        readiness = cls(
            checks,
            interval=settings.readiness_interval,
            timeout=timeout,
            on_result=on_result,
            ping=ping,
        )
        readiness.llm_api = settings.llm_api
        return readiness

    async def refresh(self) -> None:
        """Check every backend once (concurrently); at most ``timeout`` plus a little."""
        await asyncio.gather(*(self._check(name) for name in self.checks))

    async def _check(self, name: str) -> None:
        previous = self._states[name]
        try:
            # A check bounded here even if its client's own timeout does not hold
            # (a server that drips a byte at a time resets a per-read timeout).
            # asyncio.timeout, not wait_for: on 3.11 wait_for drops a cancel that comes as
            # the check ends, and stop() would then wait for a loop that goes on.
            async with asyncio.timeout(self.timeout + 1):
                result = await self.checks[name]()
        except TimeoutError:
            result = {"ok": False, "error": f"no answer within {self.timeout + 1:g} s"}
            if "url" in previous:
                result = {"ok": False, "url": previous["url"], "error": result["error"]}
        except Exception as exc:  # a check's own bug must not end the loop
            log.exception("readiness check of %s failed", name)
            result = {"ok": False, "error": f"check failed: {exc.__class__.__name__}"}
        if not result.get("ok") and name in SETTINGS:
            setting = SETTINGS[name]
            if name == "ollama" and self.llm_api == "openai":
                setting = "SRE_AGENT_OPENAI_BASE_URL and SRE_AGENT_MODEL"
            result = {**result, "setting": setting}
        if name in self._checked:  # the first result is said once for all by describe()
            if not result.get("ok") and previous.get("ok"):
                log.warning("%s is not reachable: %s", name, result.get("error"))
            elif result.get("ok") and not previous.get("ok"):
                log.info("%s is reachable again", name)
        self._states[name] = result
        self._checked[name] = (datetime.now(UTC), time.monotonic())
        if self.on_result is not None:
            self.on_result(name, result)

    def states(self) -> dict[str, dict[str, Any]]:
        """Each backend's last result, with when it was checked and how long ago."""
        out = {}
        for name, result in self._states.items():
            state = dict(result)
            if name in self._checked:
                at, mono = self._checked[name]
                state["checked_at"] = at.isoformat(timespec="milliseconds")
                state["age_s"] = round(time.monotonic() - mono, 1)
            else:
                state["checked_at"] = None
                state["age_s"] = None
            out[name] = state
        return out

    def state(self, name: str) -> dict[str, Any]:
        return self.states()[name]

    def describe(self) -> list[tuple[bool, str]]:
        """One line per backend, as the last check saw it: reachable, or what failed and
        which setting to change."""
        lines = []
        for name, state in self._states.items():
            title = TITLES.get(name, name)
            if name == "ollama" and self.llm_api == "openai":
                title = "The model server"
            where = f" at {state['url']}" if state.get("url") else ""
            if state.get("ok"):
                extra = "".join(
                    f", {key} {state[key]}" for key in ("model", "version") if state.get(key)
                )
                lines.append((True, f"{title} reachable{where}{extra}"))
            else:
                fix = f"; set {state['setting']}" if state.get("setting") else ""
                error = str(state.get("error") or "unknown")
                if not error.startswith(title):  # "Kubernetes is not configured (...)"
                    error = f"{title} not usable{where}: {error}"
                lines.append((False, f"{error}{fix}"))
        return lines

    async def database(self, timeout: float) -> dict[str, Any]:
        """The database ping, in a thread and bounded: a stuck writer cannot stall a probe."""
        if self._ping is None:
            return {"ok": False, "error": "no database"}
        try:
            async with asyncio.timeout(timeout):
                await self._ping_thread(self._ping)
        except TimeoutError:
            return {"ok": False, "error": f"no answer within {timeout:g} s"}
        except Exception as exc:  # the detail (a server's address, a user) to the log only
            log.warning("readiness: the database did not answer: %s: %s", type(exc).__name__, exc)
            return {"ok": False, "error": f"{exc.__class__.__name__} (the log has the detail)"}
        return {"ok": True}

    async def _watch(self, name: str) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self._check(name)

    async def start(self) -> None:
        """One round now (so the first ``/readyz`` has answers), then each backend on its
        own loop: a hung one does not hold up the others' refreshes."""
        await self.refresh()
        self._tasks = [
            asyncio.create_task(self._watch(name), name=f"readiness-{name}") for name in self.checks
        ]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []
