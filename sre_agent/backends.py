"""Clients for Ollama, Prometheus and Kubernetes, built from settings, and
the reachability checks :mod:`sre_agent.readiness` and the CLI use."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
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


class KubeConfigProblem(Exception):
    """The Kubernetes configuration named cannot be used; the message says where and why."""


def _kubeconfig_context(
    files: tuple[Path, ...], named: str
) -> tuple[list[Path], str | None, str | None]:
    """The files that exist, checked readable and YAML; the current context as kubectl
    picks it (the first file that sets one: the client would take the last); and the
    command of its user's credential plugin (``exec``), if it has one."""
    found = [f for f in files if f.exists()]
    if not found:
        shown = ", ".join(str(f) for f in files)
        raise KubeConfigProblem(f"{named} names {shown}: no such file")
    current, usable, configs = None, [], []
    for path in found:
        if path.is_dir():
            raise KubeConfigProblem(f"{named}: {path} is a directory, not a kubeconfig file")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise KubeConfigProblem(f"{named}: cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise KubeConfigProblem(f"{named}: {path} is not UTF-8 text") from None
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            line = f" (line {where.line + 1})" if where is not None else ""
            raise KubeConfigProblem(f"{named}: {path} is not valid YAML{line}") from None
        if data is None:
            continue  # an empty file in a list: kubectl and the client skip it
        if not isinstance(data, dict):
            raise KubeConfigProblem(f"{named}: {path} is not a kubeconfig (a YAML mapping)")
        if current is None and data.get("current-context"):
            current = str(data["current-context"])
        usable.append(path)
        configs.append(data)
    if not usable:
        shown = ", ".join(str(f) for f in found)
        raise KubeConfigProblem(f"{named}: {shown} {'is' if len(found) == 1 else 'are'} empty")
    return usable, current, _plugin(configs, current)


def _plugin(configs: list[dict[str, Any]], context: str | None) -> str | None:
    """The ``exec`` command of ``context``'s user (the first file naming each wins)."""

    def named(kind: str, name: object) -> dict[str, Any]:
        for data in configs:
            for entry in data.get(kind) or ():
                if isinstance(entry, dict) and entry.get("name") == name:
                    return entry
        return {}

    try:
        user = named("contexts", context).get("context", {}).get("user")
        command = named("users", user).get("user", {}).get("exec", {}).get("command")
    except AttributeError:  # not a kubeconfig's shape: the client says what is wrong
        return None
    return str(command) if command else None


def load_kube(settings: Settings) -> Any:
    """A ``kubernetes`` ApiClient: the configured kubeconfig file(s), in-cluster, or
    ~/.kube/config. Raises KubeConfigProblem naming the file and what is wrong, or
    returns None when nothing is configured at all."""
    from kubernetes import client, config

    configuration = client.Configuration()
    files = settings.kubeconfig_files
    if files:
        named = "SRE_AGENT_KUBECONFIG (or KUBECONFIG)"
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            config.load_incluster_config(client_configuration=configuration)
        except Exception as exc:
            raise KubeConfigProblem(
                f"in-cluster configuration unusable: {redact(str(exc))[:300]}"
                " (the pod's service account token; or set SRE_AGENT_KUBECONFIG)"
            ) from None
        files, named = (), ""
    elif (Path.home() / ".kube" / "config").is_file():
        files, named = (Path.home() / ".kube" / "config",), "~/.kube/config"
    else:
        return None
    if files:
        found, current, plugin = _kubeconfig_context(files, named)
        try:
            config.load_kube_config(
                config_file=os.pathsep.join(map(str, found)),
                context=current,
                client_configuration=configuration,
                persist_config=False,  # read-only: never write a refreshed token back
            )
        except Exception as exc:
            shown = ", ".join(map(str, found))
            raise KubeConfigProblem(
                f"{named}: {shown} cannot be used: {redact(str(exc))[:300]}"
            ) from None
        # A plugin that fails is only logged by the client, which goes on without
        # credentials: every lookup would be a 401 (a laptop's EKS or GKE kubeconfig in
        # a container without the cloud CLI).
        if plugin and not configuration.api_key.get("BearerToken") and not configuration.cert_file:
            why = (
                "is not installed here (not on PATH)"
                if shutil.which(plugin) is None
                else "gave no credentials (its error is logged just before)"
            )
            raise KubeConfigProblem(
                f"{named}: {', '.join(map(str, found))}: the credential plugin {plugin!r}"
                f" (users[].user.exec) {why}:"
                " install it where sre-agent runs, or use a kubeconfig with a token"
            )
    configuration.retries = NO_RETRIES
    return client.ApiClient(configuration)


def make_kube(settings: Settings) -> tuple[Any | None, str | None]:
    """The client, or None and why (logged once here, and told by the tools)."""
    try:
        kube = load_kube(settings)
    except KubeConfigProblem as exc:
        return None, f"Kubernetes configuration unusable: {exc}"
    except Exception as exc:  # a broken kubeconfig degrades the tools, not the service
        return None, f"Kubernetes configuration unusable: {exc.__class__.__name__}: {exc}"
    if kube is None:
        return None, (
            "Kubernetes is not configured (no SRE_AGENT_KUBECONFIG or KUBECONFIG,"
            " not in a cluster, no ~/.kube/config)"
        )
    return kube, None


def make_deps(settings: Settings, kube: tuple[Any | None, str | None] | None = None) -> ToolDeps:
    """The tools' clients; ``kube``: a client (or None and why) made already."""
    from sre_agent_tools.prometheus import make_prometheus
    from sre_agent_tools.read_cache import ReadCache

    kube, problem = kube or make_kube(settings)  # the problem is logged by the caller, once
    return ToolDeps(
        prometheus=make_prometheus(settings.prometheus_url, settings.backend_timeout),
        kube=kube,
        kube_problem=problem,
        output_limit=settings.tool_output_limit,
        timeout=settings.backend_timeout,
        promql_max_range=settings.promql_max_range,
        promql_max_series=settings.promql_max_series,
        reads=ReadCache(settings.kube_read_cache) if settings.kube_read_cache > 0 else None,
    )


async def check_ollama(settings: Settings, timeout: float = 3.0) -> dict[str, Any]:
    """Reachability of the model server and whether it has the configured model
    (Ollama's ``/api/tags``, or an OpenAI-compatible server's ``/models``)."""
    openai = settings.llm_api == "openai"
    url = f"{settings.llm_url}/models" if openai else f"{settings.ollama_url}/api/tags"
    key = settings.openai_api_key
    headers = {"Authorization": f"Bearer {key.get_secret_value()}"} if openai and key else {}
    try:
        async with httpx.AsyncClient(timeout=timeout) as http:
            response = await http.get(url, headers=headers)
            response.raise_for_status()
            body = response.json()
            if openai:
                models = [str(m.get("id", "")) for m in body.get("data", [])]
            else:
                models = [m.get("name", "") for m in body.get("models", [])]
    except (httpx.HTTPError, ValueError, AttributeError, TypeError) as exc:
        return _unreachable(settings.llm_url, exc)
    wanted = settings.model if ":" in settings.model else f"{settings.model}:latest"
    has_model = wanted in models or settings.model in models
    result: dict[str, Any] = {
        "ok": has_model,
        "url": redact(settings.llm_url),
        "model": settings.model,
    }
    if not has_model and openai:
        shown = ", ".join(repr(m) for m in models[:5]) or "none"
        result["error"] = (
            f"model {settings.model!r} is not served there (it serves {shown}): set"
            " SRE_AGENT_MODEL to one of them"
        )
    elif not has_model:
        result["error"] = (
            f"model {settings.model!r} is not pulled on this Ollama"
            f" (run `ollama pull {settings.model}`)"
        )
    return result


async def require_ollama(settings: Settings) -> None:
    """Fail fast, naming the URL tried and the setting to change."""
    status = await check_ollama(settings)
    if not status["ok"]:
        if settings.llm_api == "openai":
            raise OllamaUnavailable(
                f"the model server is not usable at {redact(settings.llm_url)}:"
                f" {status['error']}. Start it there, or point SRE_AGENT_OPENAI_BASE_URL"
                " at yours (and SRE_AGENT_MODEL at a model it serves)."
            )
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
        return _unreachable(settings.prometheus_url, exc)


def _unreachable(url: str, exc: Exception) -> dict[str, Any]:
    """A failed HTTP check's result: the URL tried (redacted) and the error."""
    # httpx's message repeats the URL, and a URL may carry a password.
    return {"ok": False, "url": redact(url), "error": redact(f"{exc.__class__.__name__}: {exc}")}


async def check_kubernetes(
    deps: ToolDeps,
    timeout: float = 3.0,
    run: Callable[[Callable[[], Any]], Awaitable[Any]] = asyncio.to_thread,
) -> dict[str, Any]:
    """The API server's version; the sync client call goes through ``run`` (a thread)."""
    if deps.kube is None:
        return {"ok": False, "error": deps.kube_problem or "not configured"}
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
