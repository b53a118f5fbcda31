"""What makes two firings "the same alert" (sre_agent.memory.subject), and how ALERTS
is read for it."""

from __future__ import annotations

import json
import re

from sre_agent.memory import alerts_selector, episodes, merged, subject, subject_key

CRASH = {"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": "web-7d9f8b6c5-x2x4k",
         "container": "web", "job": "kube-state-metrics", "instance": "10.0.0.5:8080",
         "service": "kps-kube-state-metrics"}  # fmt: skip


def test_a_pod_stands_for_its_workload():
    assert subject(CRASH) == {"namespace": "shop", "container": "web", "workload": "web"}
    # Another pod of another ReplicaSet of the same Deployment: the same subject.
    assert subject_key({**CRASH, "pod": "web-5c4b7d29f-bcdfg"}) == subject_key(CRASH)
    # The exporter's own job, instance and Service say nothing of the pod in trouble.
    assert json.loads(subject_key(CRASH)) == subject(CRASH)
    # A StatefulSet's, a DaemonSet's, a CronJob's pods; a pod of no known pattern.
    for pod, workload in [("db-0", "db"), ("agent-x7f2k", "agent"),
                          ("backup-28391234-x7f2k", "backup"), ("debug", "debug"),
                          ("api-worker-x2x4k", "api-worker")]:  # fmt: skip
        assert subject({**CRASH, "pod": pod})["workload"] == workload, pod


def test_a_job_stands_for_its_cronjob_and_a_workload_label_for_itself():
    failed = {"alertname": "KubeJobFailed", "namespace": "ops", "job_name": "backup-28391234",
              "job": "kube-state-metrics"}  # fmt: skip
    assert subject(failed) == {"namespace": "ops", "workload": "backup"}
    assert subject({**failed, "job_name": "backup-28391290"}) == subject(failed)
    mismatch = {
        "alertname": "KubeDeploymentReplicasMismatch",
        "namespace": "shop",
        "deployment": "web",
    }
    assert subject(mismatch) == {"namespace": "shop", "workload": "web"}


def test_node_exporter_alerts_keep_their_host_not_the_exporters_pod():
    labels = {"alertname": "NodeFilesystemSpaceFillingUp", "namespace": "monitoring",
              "pod": "kps-prometheus-node-exporter-x7f2k", "container": "kube-rbac-proxy",
              "service": "kps-prometheus-node-exporter", "job": "node-exporter",
              "instance": "node-a", "mountpoint": "/var", "device": "/dev/sda1"}  # fmt: skip
    assert subject(labels) == {"instance": "node-a", "mountpoint": "/var", "device": "/dev/sda1"}
    assert subject({**labels, "instance": "node-b"}) != subject(labels)
    assert 'instance="node-a"' in alerts_selector(labels)


def test_other_alerts_keep_the_labels_that_name_their_object():
    node = {"alertname": "KubeNodeNotReady", "node": "node-3", "job": "kube-state-metrics"}
    assert subject(node) == {"node": "node-3"}
    pvc = {"alertname": "KubePersistentVolumeFillingUp", "namespace": "data",
           "persistentvolumeclaim": "data-pg-0", "job": "kubelet", "instance": "10.0.0.9:10250"}  # fmt: skip
    assert subject(pvc) == {"namespace": "data", "persistentvolumeclaim": "data-pg-0"}
    quota = {"alertname": "KubeQuotaAlmostFull", "namespace": "shop", "resourcequota": "q1",
             "job": "kube-state-metrics", "instance": "10.0.0.5:8080"}  # fmt: skip
    assert subject(quota) == {"namespace": "shop", "resourcequota": "q1"}
    target = {
        "alertname": "TargetDown",
        "namespace": "monitoring",
        "job": "blackbox",
        "service": "bb",
    }
    assert subject(target) == {"namespace": "monitoring", "service": "bb", "job": "blackbox"}


def test_alerts_selector_matches_the_workloads_pods_only_and_escapes_values():
    selector = alerts_selector(CRASH)
    assert selector.startswith('ALERTS{alertname="KubePodCrashLooping", alertstate="firing"')
    import re2  # Prometheus' regex engine (RE2), as it matches the selector

    pod = re.search(r'pod=~"([^"]*)"', selector).group(1).replace("\\\\", "\\")
    for name, matches in [("web-7d9f8b6c5-x2x4k", True), ("web-0", True), ("web", True),
                          ("web-api-7d9f8b6c5-x2x4k", False), ("web-worker-x2x4k", False)]:  # fmt: skip
        assert bool(re2.fullmatch(pod, name)) is matches, name
    odd = alerts_selector({"alertname": 'X"} or vector(1) #', "namespace": "a\\b"})
    assert 'alertname="X\\"} or vector(1) #"' in odd and 'namespace="a\\\\b"' in odd


def test_episodes_are_runs_of_samples_merged_across_series():
    step = 240
    assert episodes([0, 240, 480, 2000, 2240, 10000], step) == [
        (0, 480),
        (2000, 2240),
        (10000, 10000),
    ]
    assert episodes([], step) == []
    # Two pods firing at once, then one later: two firings.
    assert merged([(0, 500), (300, 900), (5000, 5100)]) == [(0, 900), (5000, 5100)]
