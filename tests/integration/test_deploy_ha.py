"""What a user deploys for two replicas on Postgres: the Components in deploy/overlays/ha/
turned on in a copy of the base as its kustomization's comment says, rendered by the real
kustomize inside kubectl and validated against the Kubernetes JSON schemas.

The base itself (deploy/, one replica on SQLite) is tests/integration/test_deploy.py's;
here it only has to stay as it was.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from sre_agent.auth import check_bind
from sre_agent.settings import Settings, load_settings
from tests.integration.test_deploy import (
    API_TOKENS_SECRET,
    CLUSTER_SCOPED,
    COMPONENTS_OFF,
    DEPLOY,
    NAMESPACE,
    TOKEN_SECRET,
    _edited_copy,
    _one,
    _pod,
    _render,
)

DATABASE_SECRET = ("sre-agent-database", "url")
SESSION_SECRET = ("sre-agent-session-secret", "secret")
CNPG_API = "postgresql.cnpg.io/v1"
PLACEHOLDER_URL = (
    "postgresql://sre_agent:CHANGE-ME@postgres.example.internal:5432/sre_agent?sslmode=require"
)
#: What the HA components may change in the base's objects; everything else is the base's.
CHANGED = {("Deployment", "sre-agent"), ("ConfigMap", "sre-agent-settings")}

Objects = list[dict[str, Any]]


def _with_components(where: Path, *components: str) -> Objects:
    """The base with these components turned on, as README.md there says."""
    on = "components:\n" + "".join(f"  - {c}\n" for c in components)
    return _render(_edited_copy(where, COMPONENTS_OFF, on))


@pytest.fixture(scope="module")
def base() -> Objects:
    return _render(DEPLOY)


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Objects:
    """The HA component alone: the database Secret is created by hand."""
    return _with_components(tmp_path_factory.mktemp("ha"), "overlays/ha")


@pytest.fixture(scope="module")
def cnpg(tmp_path_factory: pytest.TempPathFactory) -> Objects:
    where = tmp_path_factory.mktemp("cnpg")
    return _with_components(where, "overlays/ha", "overlays/ha/cloudnative-pg")


@pytest.fixture(scope="module")
def external(tmp_path_factory: pytest.TempPathFactory) -> Objects:
    where = tmp_path_factory.mktemp("external")
    return _with_components(where, "overlays/ha", "overlays/ha/external-postgres")


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    """Kind and name without kustomize's hash suffix (generated names change with data)."""
    name = obj["metadata"]["name"]
    for generated in ("sre-agent-settings", "sre-agent-prompts", "sre-agent-database"):
        if name.startswith(generated + "-"):
            name = generated
    return obj["kind"], name


def _container(objects: Objects) -> dict[str, Any]:
    [container] = _pod(objects)["spec"]["containers"]
    return container


def _env(objects: Objects, name: str) -> dict[str, Any]:
    [entry] = [e for e in _container(objects)["env"] if e["name"] == name]
    return entry


def _secret_ref(objects: Objects, name: str) -> tuple[str, str]:
    entry = _env(objects, name)
    assert set(entry) == {"name", "valueFrom"}, f"{name} must come from a Secret: {entry}"
    ref = entry["valueFrom"]["secretKeyRef"]
    assert "optional" not in ref, f"{name}: a missing Secret must stop the pod"
    return ref["name"], ref["key"]


def _validate(objects: Objects) -> None:
    version = kubernetes_validate.latest_version()
    for obj in objects:
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "sre-agent", obj
        if obj["apiVersion"] == CNPG_API:
            continue  # a CRD: the Kubernetes schemas do not hold it (checked below)
        kubernetes_validate.validate(obj, version, strict=True)


# --- the HA component ------------------------------------------------------------------


def test_ha_renders_valid_objects_the_base_has_less_its_volume_claim_plus_a_pdb(base, ha):
    _validate(ha)
    expected = [_key(o) for o in base if o["kind"] != "PersistentVolumeClaim"]
    assert sorted(map(_key, ha)) == sorted([*expected, ("PodDisruptionBudget", "sre-agent")])
    assert "Secret" not in {o["kind"] for o in ha}, "the database Secret is created by hand"

    # Nothing else of the base changes: RBAC, Service, NetworkPolicy, prompts, namespace.
    before = {_key(o): o for o in base}
    for obj in ha:
        if _key(obj) not in CHANGED and obj["kind"] != "PodDisruptionBudget":
            assert obj == before[_key(obj)], _key(obj)


def test_two_replicas_roll_one_at_a_time_with_one_always_serving(ha):
    spec = _one(ha, "Deployment", "sre-agent")["spec"]
    assert spec["replicas"] == 2
    # Replaces the base's Recreate (and nothing of it is left over).
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    container = _container(ha)
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"  # gates the roll


def test_no_volume_claim_and_data_is_a_scratch_empty_dir(base, ha):
    assert [o for o in ha if o["kind"] == "PersistentVolumeClaim"] == []
    pod = _pod(ha)["spec"]
    assert [v for v in pod["volumes"] if "persistentVolumeClaim" in v] == []
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(volumes["data"]) == {"name", "emptyDir"}
    # The root filesystem stays read-only, so /data is still mounted writable.
    container = _container(ha)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts == {m["name"]: m for m in _container(base)["volumeMounts"]}
    assert mounts["data"]["mountPath"] == "/data" and not mounts["data"].get("readOnly")


def test_pdb_keeps_one_of_the_deployments_pods(ha):
    pdb = _one(ha, "PodDisruptionBudget")
    deployment = _one(ha, "Deployment", "sre-agent")
    assert pdb["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert set(pdb["spec"]) == {"minAvailable", "selector"}
    assert pdb["spec"]["minAvailable"] == 1 < deployment["spec"]["replicas"]
    selector = pdb["spec"]["selector"]
    assert set(selector) == {"matchLabels"}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector["matchLabels"] and selector["matchLabels"].items() <= labels.items()
    assert selector == deployment["spec"]["selector"]


def test_replicas_prefer_different_nodes_without_refusing_one_node(ha):
    pod = _pod(ha)
    labels = pod["metadata"]["labels"]
    [spread] = pod["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["maxSkew"] == 1
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
    assert spread["labelSelector"]["matchLabels"].items() <= labels.items()

    affinity = pod["spec"]["affinity"]
    assert set(affinity) == {"podAntiAffinity"}
    anti = affinity["podAntiAffinity"]
    assert set(anti) == {"preferredDuringSchedulingIgnoredDuringExecution"}  # never required
    [term] = anti["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"].items() <= labels.items()


def test_database_url_comes_from_a_secret_and_never_from_the_settings(base, ha):
    assert _secret_ref(ha, "SRE_AGENT_DATABASE_URL") == DATABASE_SECRET
    # Replicas sign web logins with one key, or one replica refuses the other's cookies.
    assert _secret_ref(ha, "SRE_AGENT_SESSION_SECRET") == SESSION_SECRET
    # The base's Secrets are still read the same way.
    assert _secret_ref(ha, "SRE_AGENT_WEBHOOK_TOKEN") == (TOKEN_SECRET, "token")
    assert _secret_ref(ha, "SRE_AGENT_API_TOKENS") == (API_TOKENS_SECRET, "tokens")

    # No SQLite fallback in the settings the pods load (envFrom) ...
    settings = _one(ha, "ConfigMap", "sre-agent-settings")
    [source] = _container(ha)["envFrom"]
    assert source == {"configMapRef": {"name": settings["metadata"]["name"]}}
    data = settings["data"]
    assert "SRE_AGENT_DATABASE_URL" not in data
    assert not [v for v in data.values() if "sqlite" in v or "postgres" in v]
    # ... while every other setting of the base is kept as it was.
    kept = dict(_one(base, "ConfigMap", "sre-agent-settings")["data"])
    del kept["SRE_AGENT_DATABASE_URL"]
    assert data == {**kept, "SRE_AGENT_MAX_CONCURRENT_TOTAL": "1"}
    known = {f"SRE_AGENT_{name.upper()}" for name in Settings.model_fields}
    assert set(data) <= known, f"unknown settings: {set(data) - known}"
    # The settings changed, so the name (and the pods' template) changed with them.
    assert (
        settings["metadata"]["name"]
        != _one(base, "ConfigMap", "sre-agent-settings")["metadata"]["name"]
    )


def test_settings_with_the_secrets_are_what_the_service_accepts(ha, monkeypatch):
    """The pod's environment: the ConfigMap (envFrom), then the Secrets' values (env)."""
    for name, value in _one(ha, "ConfigMap", "sre-agent-settings")["data"].items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SRE_AGENT_DATABASE_URL", PLACEHOLDER_URL)
    monkeypatch.setenv("SRE_AGENT_SESSION_SECRET", "s" * 64)
    monkeypatch.setenv("SRE_AGENT_API_TOKENS", "oncall=" + "x" * 43)
    settings = load_settings()
    assert settings.database_url == PLACEHOLDER_URL
    assert settings.max_concurrent == 1
    assert settings.max_concurrent_total == 1  # one model run across both replicas
    assert check_bind(settings, "0.0.0.0") is None
    # CloudNativePG's uri: no sslmode, the operator's -rw Service.
    cnpg_uri = "postgresql://sre_agent:pw@sre-agent-db-rw.agent-sre:5432/sre_agent"
    monkeypatch.setenv("SRE_AGENT_DATABASE_URL", cnpg_uri)
    assert load_settings().database_url == cnpg_uri


def test_ha_and_the_ingress_example_together(tmp_path):
    both = _with_components(tmp_path, "ingress-example", "overlays/ha")
    _validate(both)
    assert _one(both, "Deployment", "sre-agent")["spec"]["replicas"] == 2
    assert _one(both, "Ingress")
    assert _secret_ref(both, "SRE_AGENT_DATABASE_URL") == DATABASE_SECRET
    data = _one(both, "ConfigMap", "sre-agent-settings")["data"]
    assert "SRE_AGENT_AUTH_PROXY_HEADER" in data and "SRE_AGENT_DATABASE_URL" not in data
    ref = _env(both, "SRE_AGENT_API_TOKENS")["valueFrom"]["secretKeyRef"]
    assert ref["optional"] is True  # the ingress example's, kept


# --- where the database comes from -----------------------------------------------------


def test_cloudnative_pg_example_points_the_pods_at_the_operators_secret(ha, cnpg):
    _validate(cnpg)
    assert sorted(map(_key, cnpg)) == sorted([*map(_key, ha), ("Cluster", "sre-agent-db")])
    cluster = _one(cnpg, "Cluster")
    assert cluster["apiVersion"] == CNPG_API
    assert cluster["spec"]["instances"] == 2
    assert cluster["spec"]["bootstrap"]["initdb"] == {"database": "sre_agent", "owner": "sre_agent"}
    assert cluster["metadata"]["namespace"] == _one(cnpg, "Deployment")["metadata"]["namespace"]
    # CloudNativePG writes the connection URL to <cluster>-app, key uri.
    app_secret = cluster["metadata"]["name"] + "-app"
    assert _secret_ref(cnpg, "SRE_AGENT_DATABASE_URL") == (app_secret, "uri")
    assert "Secret" not in {o["kind"] for o in cnpg}, "the operator makes the Secret"
    # Only the database's Secret differs from the HA component alone.
    assert _secret_ref(cnpg, "SRE_AGENT_SESSION_SECRET") == SESSION_SECRET
    assert _pod(cnpg)["spec"]["volumes"] == _pod(ha)["spec"]["volumes"]


def test_external_postgres_example_is_a_placeholder_secret_the_pods_read(ha, external):
    _validate(external)
    assert sorted(map(_key, external)) == sorted([*map(_key, ha), ("Secret", DATABASE_SECRET[0])])
    secret = _one(external, "Secret")
    name, key = _secret_ref(external, "SRE_AGENT_DATABASE_URL")
    assert name == secret["metadata"]["name"]  # the generated (hash-suffixed) name
    assert set(secret["data"]) == {key} and key == DATABASE_SECRET[1]
    url = base64.b64decode(secret["data"][key]).decode()
    assert url == PLACEHOLDER_URL
    assert "CHANGE-ME" in url and "example.internal" in url  # never a real password or host


def test_components_render_the_same_from_a_kustomization_outside_the_checkout(cnpg, tmp_path):
    """Flux's spec.components, or a kustomization in your own repo: no edit of deploy/."""
    mine = tmp_path / "mine"
    mine.mkdir()
    up = os.path.relpath(DEPLOY, mine)
    (mine / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [up],
                "components": [f"{up}/overlays/ha", f"{up}/overlays/ha/cloudnative-pg"],
            }
        )
    )
    assert sorted(_render(mine), key=_key) == sorted(cnpg, key=_key)


# --- the base is left as it was --------------------------------------------------------


def test_base_still_runs_one_replica_on_its_volume(base):
    assert COMPONENTS_OFF in (DEPLOY / "kustomization.yaml").read_text(), "components off"
    deployment = _one(base, "Deployment", "sre-agent")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert _one(base, "PersistentVolumeClaim", "sre-agent-data")
    kinds = {o["kind"] for o in base}
    assert not kinds & {"PodDisruptionBudget", "Cluster", "Secret"}
    data = _one(base, "ConfigMap", "sre-agent-settings")["data"]
    assert data["SRE_AGENT_DATABASE_URL"] == "sqlite:////data/sre-agent.db"
    assert "topologySpreadConstraints" not in _pod(base)["spec"]
