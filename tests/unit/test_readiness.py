"""The background readiness checks: answers at once, bounded checks, one thread per hang."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from sre_agent.readiness import OneAtATime, Readiness


def test_a_hung_blocking_call_holds_one_thread_however_often_it_is_asked() -> None:
    release = threading.Event()
    calls: list[float] = []

    def blocking() -> str:
        calls.append(time.monotonic())
        release.wait(30)
        return "done"

    runner = OneAtATime("test-check")

    async def ask_often() -> list[Any]:
        outcomes: list[Any] = []
        for _ in range(5):  # five probe rounds, each giving up after a moment
            try:
                outcomes.append(await asyncio.wait_for(runner(blocking), 0.05))
            except TimeoutError:
                outcomes.append("timed out")
        assert runner.running_for is not None
        joined = asyncio.ensure_future(runner(blocking))
        await asyncio.sleep(0)  # it joins the call in flight
        release.set()
        outcomes.append(await asyncio.wait_for(joined, 5))  # that call's own answer
        outcomes.append(await asyncio.wait_for(runner(blocking), 5))  # then a new call
        return outcomes

    threads_before = threading.active_count()
    outcomes = asyncio.run(ask_often())
    assert outcomes == ["timed out"] * 5 + ["done", "done"]
    assert len(calls) == 2  # the hung call once, then one after it finished
    assert threading.active_count() <= threads_before + 1


def test_states_are_served_without_waiting_on_a_hung_check() -> None:
    never = asyncio.Event()

    async def hung() -> dict[str, Any]:
        await never.wait()
        return {"ok": True}

    async def fine() -> dict[str, Any]:
        return {"ok": True, "url": "http://x"}

    seen: list[tuple[str, bool]] = []
    readiness = Readiness(
        {"hung": hung, "fine": fine},
        interval=0.05,
        timeout=0.05,
        on_result=lambda name, result: seen.append((name, bool(result["ok"]))),
    )

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        before = readiness.states()
        await readiness.start()
        await asyncio.sleep(0.5)  # a few background rounds
        states = readiness.states()  # not a coroutine: it cannot wait on the hung check
        await readiness.stop()
        return before, states

    before, states = asyncio.run(scenario())
    assert before["hung"] == {
        "ok": False,
        "error": "not checked yet",
        "checked_at": None,
        "age_s": None,
    }
    assert states["hung"]["ok"] is False and "no answer within" in states["hung"]["error"]
    assert states["fine"]["ok"] is True and states["fine"]["checked_at"]
    assert states["fine"]["age_s"] < 0.5  # refreshed in the background
    assert seen.count(("fine", True)) >= 3 and ("hung", False) in seen


def test_a_check_that_raises_is_reported_and_the_loop_goes_on() -> None:
    rounds = 0

    async def broken() -> dict[str, Any]:
        nonlocal rounds
        rounds += 1
        raise RuntimeError("bug")

    readiness = Readiness({"broken": broken}, interval=0.02, timeout=1)

    async def scenario() -> dict[str, Any]:
        await readiness.start()
        await asyncio.sleep(0.2)
        await readiness.stop()
        return readiness.state("broken")

    state = asyncio.run(scenario())
    assert state["ok"] is False and state["error"] == "check failed: RuntimeError"
    assert rounds >= 3


def test_start_lines_say_what_works_and_which_setting_fixes_the_rest() -> None:
    async def ollama() -> dict[str, Any]:
        return {"ok": True, "url": "http://gpu:11434", "model": "qwen2.5:7b-instruct"}

    async def prometheus() -> dict[str, Any]:
        return {"ok": False, "url": "http://prom:9090", "error": "ConnectError: refused"}

    async def kubernetes() -> dict[str, Any]:
        await asyncio.sleep(5)  # hangs: cut at the bound
        return {"ok": True}

    readiness = Readiness(
        {"ollama": ollama, "prometheus": prometheus, "kubernetes": kubernetes},
        interval=60,
        timeout=0.1,
    )

    async def scenario() -> list[tuple[bool, str]]:
        await readiness.start()
        await readiness.stop()
        return readiness.describe()

    lines = asyncio.run(scenario())
    # Start-up is not held by the hung backend: its line says it was cut at the bound.
    assert lines == [
        (True, "Ollama reachable at http://gpu:11434, model qwen2.5:7b-instruct"),
        (
            False,
            "Prometheus not usable at http://prom:9090: ConnectError: refused;"
            " set SRE_AGENT_PROMETHEUS_URL",
        ),
        (
            False,
            "Kubernetes not usable: no answer within 1.1 s;"
            " set SRE_AGENT_KUBECONFIG (or KUBECONFIG), or run in-cluster",
        ),
    ]
    assert readiness.state("prometheus")["setting"] == "SRE_AGENT_PROMETHEUS_URL"
    assert "setting" not in readiness.state("ollama")
