"""A small labelled set for the ranking of similar past investigations (``Store.similar``):
past investigations, and probes that each name the one a person would want first.

Written apart from the ranking: each probe says why its answer is the right one. The
probes cover the ranking's rules (what the alerts share first, then a confirmed cause,
then text) and the traps between them (the same alert elsewhere, the same words on
another object, a newer guess beside an older confirmed cause).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sre_agent.store import Store
from tests.support.memory import ago, seed


@dataclass
class Past:
    key: str
    labels: dict[str, str]
    days: float
    cause: str
    lines: list[str]
    confirmed: bool = False


@dataclass
class Probe:
    labels: dict[str, str]
    lines: list[str]
    expected: str
    why: str
    cause: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def _pod(alert: str, ns: str, pod: str, **more: str) -> dict[str, str]:
    return {"alertname": alert, "namespace": ns, "pod": pod, **more}


PAST = [
    Past("web-oom", _pod("KubePodCrashLooping", "shop", "web-7d9f8b6c5-bcdfg", container="web"), 3,
         "web is OOMKilled under the nightly import", ["Last State: Terminated Reason: OOMKilled Exit Code: 137"], True),
    Past("web-oom-guess", _pod("KubePodCrashLooping", "shop", "web-7d9f8b6c5-bbbbb", container="web"), 1,
         "web crashes because of a bad feature flag", ["panic: feature flag checkout_v2 not found"]),
    Past("cart-config", _pod("KubePodCrashLooping", "shop", "cart-55d9c8b7f-ccccc", container="cart"), 6,
         "cart cannot read its config: the ConfigMap key REDIS_URL is missing",
         ["Error: configmap cart-config has no key REDIS_URL", "Back-off restarting failed container"], True),
    Past("cart-redis", _pod("KubePodCrashLooping", "shop", "cart-55d9c8b7f-ddddd", container="cart"), 12,
         "cart cannot reach redis: connection refused on redis-master:6379",
         ["dial tcp 10.0.3.7:6379: connect: connection refused", "redis-master endpoints: none"]),
    Past("web-replicas", {"alertname": "KubeDeploymentReplicasMismatch", "namespace": "shop", "deployment": "web"}, 8,
         "web's new ReplicaSet cannot schedule: Insufficient memory on every node",
         ["0/3 nodes are available: 3 Insufficient memory", "FailedScheduling"], True),
    Past("pvc-full", {"alertname": "KubePersistentVolumeFillingUp", "namespace": "data",
                      "persistentvolumeclaim": "data-postgres-0"}, 4,
         "postgres WAL archiving stopped, so pg_wal filled the volume",
         ["archive_command failed with exit code 1", "kubelet_volume_stats_available_bytes => 1.2e+08"], True),
    Past("cert-expired", {"alertname": "TargetDown", "namespace": "monitoring", "job": "blackbox",
                          "service": "blackbox-exporter"}, 15,
         "the scrape fails because the target's TLS certificate expired",
         ["x509: certificate has expired or is not yet valid", "up{job=\"blackbox\"} => 0"], True),
    Past("node-disk", {"alertname": "KubeNodeNotReady", "node": "node-2"}, 9,
         "node-2's kubelet stopped: the root disk is full (DiskPressure)",
         ["DiskPressure True: kubelet has disk pressure", "evicting pods: ephemeral-storage"], True),
    Past("node-net", {"alertname": "KubeNodeNotReady", "node": "node-3"}, 20,
         "node-3 lost its network: the CNI pod crashed",
         ["NetworkUnavailable True", "calico-node-x7f2k: CrashLoopBackOff"], True),
    Past("api-dns", _pod("KubePodCrashLooping", "payments", "api-6b7c8d9f2-hjklm", container="api"), 7,
         "payments api cannot resolve the database host after a DNS change",
         ["dial tcp: lookup db.payments.svc: no such host"], True),
    Past("job-oom", {"alertname": "KubeJobFailed", "namespace": "batch", "job_name": "nightly-report-28890"}, 2,
         "the nightly report job is OOMKilled on the large month-end export",
         ["Reason: OOMKilled", "BackoffLimitExceeded"], True),
    Past("hpa-max", {"alertname": "KubeHpaMaxedOut", "namespace": "shop", "horizontalpodautoscaler": "web"}, 5,
         "the web HPA is at its maximum during the marketing campaign traffic spike",
         ["current replicas 10 = max replicas 10", "requests per second 4x the usual"]),
]  # fmt: skip

PROBES = [
    Probe(_pod("KubePodCrashLooping", "shop", "web-7d9f8b6c5-zzzzz", container="web"),
          ["Back-off restarting failed container web"], "web-oom",
          "same alert, same workload: the confirmed cause outranks the newer guess"),
    Probe(_pod("KubePodCrashLooping", "shop", "cart-55d9c8b7f-b2c4d", container="cart"),
          ["dial tcp 10.0.3.9:6379: connect: connection refused"], "cart-config",
          "same alert and workload: the confirmed cause first, though the words match the redis guess"),
    Probe({"alertname": "KubeDeploymentReplicasMismatch", "namespace": "shop", "deployment": "web"},
          ["0/3 nodes are available: 3 Insufficient memory"], "web-replicas",
          "the same alert on the same deployment"),
    Probe(_pod("KubePodNotReady", "shop", "web-7d9f8b6c5-xxxxx"),
          ["Readiness probe failed: HTTP probe failed with statuscode: 503"], "web-oom",
          "another alert on the same workload (web's pods): the same object first"),
    Probe({"alertname": "KubePersistentVolumeFillingUp", "namespace": "data",
           "persistentvolumeclaim": "data-postgres-0"},
          ["kubelet_volume_stats_available_bytes => 9.0e+07"], "pvc-full", "the same claim"),
    Probe({"alertname": "KubeNodeNotReady", "node": "node-5"},
          ["DiskPressure True: kubelet has disk pressure", "evicting pods: ephemeral-storage"], "node-disk",
          "the same alert on another node: the words tell which past one"),
    Probe({"alertname": "KubeJobFailed", "namespace": "etl", "job_name": "import-28891"},
          ["x509: certificate has expired or is not yet valid"], "cert-expired",
          "nothing shared but the words of the failure"),
    Probe(_pod("KubePodCrashLooping", "checkout", "worker-5f6g7h8j9-wwwww", container="worker"),
          ["dial tcp: lookup db.checkout.svc: no such host"], "api-dns",
          "the same alert elsewhere, no object shared: the DNS failure's words"),
    Probe(_pod("KubePodCrashLooping", "batch", "nightly-report-28891-npqrs", container="report"),
          ["Reason: OOMKilled", "Exit Code: 137"], "job-oom",
          "another alert of the same job family in its namespace; OOMKilled like it"),
    Probe({"alertname": "KubeHpaMaxedOut", "namespace": "shop", "horizontalpodautoscaler": "web"},
          ["current replicas 10 = max replicas 10"], "hpa-max", "the same HPA, never judged"),
]  # fmt: skip


def build(store: Store) -> dict[str, str]:
    """The past investigations in ``store``: key -> id."""
    ids = {}
    for past in PAST:
        ids[past.key] = seed(
            store, past.labels, starts=ago(days=past.days), cause=past.cause, lines=past.lines
        )
        if past.confirmed:
            store.add_feedback(ids[past.key], "confirmed", author="oncall")
    return ids


def probe(store: Store, case: Probe) -> str:
    """The probe as a new investigation with its evidence report in (no analysis yet)."""
    return seed(
        store, case.labels, starts=ago(minutes=2), lasted=None, cause=case.cause, lines=case.lines
    )
