"""Kubernetes configuration as a user has it: ``KUBECONFIG`` (a list, as kubectl
merges it), ``SRE_AGENT_KUBECONFIG`` over it, and a broken one named with what is
wrong, at start and in what the tools say. At start one line per backend, and
``/readyz`` reporting each and ``degraded`` while staying 200."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from sre_agent_tools import kubernetes as k8s

from sre_agent.backends import check_kubernetes, make_deps
from sre_agent.settings import load_settings
from tests.conftest import EXAMPLES
from tests.support.net import free_port
from tests.support.service import ServiceProcess


def _kubeconfig(path: Path, server: str, context: str = "fake") -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": context,
        "clusters": [{"name": context, "cluster": {"server": server}}],
        "users": [{"name": context, "user": {}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
    }
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def reach(monkeypatch):
    """Settings from the given variables (as a user sets them); the Kubernetes check."""

    def check(**env: str) -> dict:
        with monkeypatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            deps = make_deps(load_settings(backend_timeout=2.0))
        try:
            return asyncio.run(check_kubernetes(deps, 2.0)) | {"problem": deps.kube_problem}
        finally:
            if deps.kube is not None:
                deps.kube.close()

    return check


def test_kubeconfig_variable_is_honoured(kube, tmp_path, reach):
    good = kube.write_kubeconfig(tmp_path / "config")
    state = reach(KUBECONFIG=str(good))
    assert state["ok"], state
    assert state["url"] == kube.url


def test_a_kubeconfig_list_skips_missing_files_like_kubectl(kube, tmp_path, reach):
    good = kube.write_kubeconfig(tmp_path / "config")
    state = reach(KUBECONFIG=f"{tmp_path / 'missing'}:{good}")
    assert state["ok"], state


def test_an_empty_file_in_a_list_is_skipped_like_kubectl(kube, tmp_path, reach):
    empty = tmp_path / "empty"
    empty.write_text("")  # `touch ~/.kube/config` is common; kubectl reads past it
    good = kube.write_kubeconfig(tmp_path / "config")
    state = reach(KUBECONFIG=f"{empty}:{good}")
    assert state["ok"] and state["url"] == kube.url, state


def test_in_a_list_the_first_current_context_wins(kube, tmp_path, reach):
    first = _kubeconfig(tmp_path / "first", kube.url, "here")
    second = _kubeconfig(tmp_path / "second", f"http://127.0.0.1:{free_port()}", "there")
    state = reach(KUBECONFIG=f"{first}:{second}")
    assert state["ok"] and state["url"] == kube.url, state


def test_sre_agent_kubeconfig_wins_over_kubeconfig(kube, tmp_path, reach):
    good = kube.write_kubeconfig(tmp_path / "config")
    state = reach(KUBECONFIG=str(tmp_path / "missing"), SRE_AGENT_KUBECONFIG=str(good))
    assert state["ok"], state


@pytest.mark.parametrize(
    ("make", "what"),
    [
        (lambda d: d / "nope.yaml", "no such file"),
        (lambda d: d, "is a directory"),
        (lambda d: (d / "bad.yaml").write_text("clusters: [\n  - {name: x") and d / "bad.yaml",
         "not valid YAML"),
        (lambda d: (d / "empty.yaml").write_text("") or d / "empty.yaml", "is empty"),
        (lambda d: (d / "list.yaml").write_text("- a\n- b\n") and d / "list.yaml",
         "not a kubeconfig"),
        (lambda d: (d / "noctx.yaml").write_text("apiVersion: v1\nclusters: []\n")
         and d / "noctx.yaml", "cannot be used"),
    ],
    ids=["missing", "directory", "bad-yaml", "empty", "not-a-mapping", "no-context"],
)  # fmt: skip
def test_an_unusable_kubeconfig_is_named_with_what_is_wrong(tmp_path, make, what, reach):
    path = make(tmp_path)
    state = reach(KUBECONFIG=str(path))
    assert not state["ok"]
    assert str(path) in state["error"] and what in state["error"], state
    # The tools (and so the evidence and the model) are told the same, not "not configured".
    deps = make_deps(load_settings(kubeconfig=str(path)))
    result = asyncio.run(k8s.describe(deps, "pod", "api-0", "homepage"))
    assert result.status == "error"
    assert str(path) in result.text and what in result.text


def test_a_credential_plugin_that_is_not_installed_is_named(kube, tmp_path, reach):
    """A laptop's EKS/GKE kubeconfig in a container without the cloud CLI: the client
    only logs the plugin's error and goes on anonymously (``/version`` still answers),
    so every lookup would fail with 401 and no word of why."""
    config = json.loads(kube.write_kubeconfig(tmp_path / "config").read_text())
    config["users"][0]["user"] = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "/nonexistent/aws-iam-authenticator",
            "interactiveMode": "Never",
        }
    }
    (tmp_path / "config").write_text(json.dumps(config))
    state = reach(KUBECONFIG=str(tmp_path / "config"))
    assert not state["ok"], state
    assert "'/nonexistent/aws-iam-authenticator'" in state["error"]
    assert "not installed" in state["error"] and str(tmp_path / "config") in state["error"]


def test_start_says_one_line_per_backend_and_readyz_is_degraded_not_down(ollama, kube, tmp_path):
    prometheus = f"http://127.0.0.1:{free_port()}"  # nothing listens: down
    env = {
        "SRE_AGENT_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "SRE_AGENT_OLLAMA_URL": ollama.url,
        "SRE_AGENT_PROMETHEUS_URL": prometheus,
        "KUBECONFIG": f"{tmp_path / 'missing'}:{kube.write_kubeconfig(tmp_path / 'config')}",
        "SRE_AGENT_READINESS_CHECK_TIMEOUT": "1",
    }
    with ServiceProcess(env, tmp_path / "service.log") as service:
        ready = httpx.get(f"{service.url}/readyz", timeout=5)
        accepted = httpx.post(
            f"{service.url}/webhook/alert",
            content=(EXAMPLES / "group-firing-homepage.json").read_bytes(),
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        log = service.log()
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready" and body["degraded"] is True
    assert body["degraded_components"] == ["prometheus"]
    assert body["prometheus"]["setting"] == "SRE_AGENT_PROMETHEUS_URL"
    assert body["ollama"]["ok"] and body["kubernetes"]["ok"]
    assert accepted.status_code == 202  # degraded still takes alerts in
    lines = log.splitlines()
    assert sum("Ollama reachable at " + ollama.url in line for line in lines) == 1
    assert sum("Kubernetes reachable at " + kube.url in line for line in lines) == 1
    [prom] = [line for line in lines if "Prometheus not usable at " + prometheus in line]
    assert "set SRE_AGENT_PROMETHEUS_URL" in prom


def test_readyz_is_not_degraded_when_every_backend_answers(make_settings, ollama, prometheus):
    from fastapi.testclient import TestClient

    from sre_agent.app import create_app

    with TestClient(create_app(make_settings(prometheus_url=prometheus.url))) as client:
        body = client.get("/readyz").json()
    assert body["degraded"] is False and body["degraded_components"] == []
    assert all(body[name]["ok"] for name in ("database", "ollama", "prometheus", "kubernetes"))


def test_a_kubeconfig_whose_exec_plugin_hangs_does_not_hold_start_up(ollama, kube, tmp_path):
    """kubectl-style credentials from a cloud CLI: one that hangs costs Kubernetes, bounded."""
    config = json.loads(kube.write_kubeconfig(tmp_path / "config").read_text())
    config["users"][0]["user"] = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "sleep",
            "args": ["60"],
            "interactiveMode": "Never",
        }
    }
    (tmp_path / "config").write_text(json.dumps(config))
    env = {
        "SRE_AGENT_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "SRE_AGENT_OLLAMA_URL": ollama.url,
        "SRE_AGENT_PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}",
        "SRE_AGENT_KUBECONFIG": str(tmp_path / "config"),
        "SRE_AGENT_BACKEND_TIMEOUT": "1",
        "SRE_AGENT_READINESS_CHECK_TIMEOUT": "1",
    }
    service = ServiceProcess(env, tmp_path / "service.log")
    service.start(timeout=40)  # the plugin would hold it 60 s; a loaded machine needs ~15
    try:
        state = httpx.get(f"{service.url}/readyz", timeout=5).json()
    finally:
        service.stop()
    assert state["status"] == "ready" and "kubernetes" in state["degraded_components"]
    assert "not loaded within 1 s" in state["kubernetes"]["error"]
