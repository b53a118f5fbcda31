"""Clients for Ollama, Prometheus and Kubernetes, built from settings, and
the reachability checks :mod:`sre_agent.readiness` and the CLI use."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from sre_agent_tools import ToolDeps
from sre_agent_tools.redact import redact
from urllib3.util.retry import Retry

from sre_agent.errors import OllamaUnavailable
from sre_agent.settings import Settings

log = logging.getLogger(__name__)

#: The ``kubernetes`` client's policy: one attempt per request. urllib3's default
#: (``Retry(3)``) re-sends a timed-out read three times, so a hung API server costs
#: four timeouts per call and logs a "Retrying" warning for each. A lookup that fails
#: is reported to the model (or the evidence) once, and the caller decides what next.
NO_RETRIES = Retry(total=0, connect=0, read=0, redirect=0, status=0, other=0)


def make_kube(settings: Settings) -> Any | None:
    """A ``kubernetes`` ApiClient: the configured kubeconfig, in-cluster, or ~/.kube/config."""
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        if settings.kubeconfig is not None:
            config.load_kube_config(
                config_file=str(settings.kubeconfig), client_configuration=configuration
            )
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)
        elif (Path.home() / ".kube" / "config").is_file():
            config.load_kube_config(client_configuration=configuration)
        else:
            log.warning(
                "Kubernetes is not configured (no SRE_AGENT_KUBECONFIG, not in a cluster,"
                " no ~/.kube/config): Kubernetes tools will report that"
            )
            return None
    except Exception as exc:  # a broken kubeconfig degrades the tools, not the service
        log.warning("Kubernetes configuration unusable: %s", exc)
        return None
    configuration.retries = NO_RETRIES
    return client.ApiClient(configuration)


def make_deps(settings: Settings) -> ToolDeps:
    from sre_agent_tools.prometheus import make_prometheus

    return ToolDeps(
        prometheus=make_prometheus(settings.prometheus_url, settings.backend_timeout),
        kube=make_kube(settings),
        output_limit=settings.tool_output_limit,
        timeout=settings.backend_timeout,
        promql_max_range=settings.promql_max_range,
        promql_max_series=settings.promql_max_series,
    )


async def check_ollama(settings: Settings, timeout: float = 3.0) -> dict[str, Any]:
    """Reachability of Ollama and whether it has the configured model."""
    url = f"{settings.ollama_url}/api/tags"
    try:
        async with httpx.AsyncClient(timeout=timeout) as http:
            response = await http.get(url)
            response.raise_for_status()
            models = [m.get("name", "") for m in response.json().get("models", [])]
    except (httpx.HTTPError, ValueError) as exc:
        return {
            "ok": False,
            "url": redact(settings.ollama_url),
            "error": f"{exc.__class__.__name__}: {exc}",
        }
    wanted = settings.model if ":" in settings.model else f"{settings.model}:latest"
    has_model = wanted in models or settings.model in models
    result: dict[str, Any] = {
        "ok": has_model,
        "url": redact(settings.ollama_url),
        "model": settings.model,
    }
    if not has_model:
        result["error"] = (
            f"model {settings.model!r} is not pulled on this Ollama"
            f" (run `ollama pull {settings.model}`)"
        )
    return result


async def require_ollama(settings: Settings) -> None:
    """Fail fast, naming the URL tried and the setting to change."""
    status = await check_ollama(settings)
    if not status["ok"]:
        raise OllamaUnavailable(
            f"Ollama is not usable at {settings.ollama_url}: {status['error']}. "
            "Start Ollama there, or point SRE_AGENT_OLLAMA_URL at yours "
            "(and SRE_AGENT_MODEL at a model it has)."
        )


async def check_prometheus(settings: Settings, timeout: float = 3.0) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(timeout=timeout) as http:
            response = await http.get(f"{settings.prometheus_url}/-/ready")
        ok = response.status_code == 200
        return {
            "ok": ok,
            "url": redact(settings.prometheus_url),
            **({} if ok else {"error": f"HTTP {response.status_code}"}),
        }
    except httpx.HTTPError as exc:
        return {
            "ok": False,
            "url": redact(settings.prometheus_url),
            "error": f"{exc.__class__.__name__}: {exc}",
        }


async def check_kubernetes(
    deps: ToolDeps,
    timeout: float = 3.0,
    run: Callable[[Callable[[], Any]], Awaitable[Any]] = asyncio.to_thread,
) -> dict[str, Any]:
    """The API server's version; the sync client call goes through ``run`` (a thread)."""
    if deps.kube is None:
        return {"ok": False, "error": "not configured"}
    from kubernetes import client

    host = deps.kube.configuration.host
    version = client.VersionApi(deps.kube)
    try:
        info = await run(lambda: version.get_code(_request_timeout=timeout))
        return {"ok": True, "url": redact(host), "version": info.git_version}
    except Exception as exc:
        cause = getattr(exc, "reason", None)  # urllib3 wraps the error in MaxRetryError
        reason = cause if isinstance(cause, BaseException) else exc
        return {
            "ok": False,
            "url": redact(host),
            "error": redact(f"{reason.__class__.__name__}: {str(reason)[:200]}"),
        }
