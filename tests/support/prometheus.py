"""The real Prometheus for tests, optionally pre-filled with hours of backfilled history.

History is written as OpenMetrics text and turned into TSDB blocks with
``promtool tsdb create-blocks-from openmetrics`` before the server starts; it
ends a few seconds before "now", so queries relative to now see it.
"""

from __future__ import annotations

import math
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

READY_TIMEOUT = 15.0

# ---------------------------------------------------------------- OpenMetrics


@dataclass
class Series:
    """One time series to backfill. ``points`` are (unix seconds, value)."""

    name: str
    labels: Mapping[str, str]
    points: Sequence[tuple[float, float]]
    type: str = "gauge"


def timeline(
    value: Callable[[float], float | None],
    *,
    span: float = 7200,
    step: float = 30,
    end: float | None = None,
) -> list[tuple[float, float]]:
    """Points every ``step`` seconds over the last ``span`` seconds up to ``end`` (default now-5s).

    ``value(age)`` gets the sample's age in seconds before ``end``; None leaves a gap.
    """
    end = math.floor(time.time()) - 5 if end is None else end
    points = []
    for i in range(int(span // step), -1, -1):
        age = i * step
        v = value(age)
        if v is not None:
            points.append((end - age, float(v)))
    return points


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def openmetrics_series(
    name: str,
    labels: Mapping[str, str],
    points: Iterable[tuple[float, float]],
    type: str = "gauge",
) -> str:
    """One series as an OpenMetrics family: its ``# TYPE`` line and samples, no ``# EOF``."""
    return openmetrics_text([Series(name, labels, list(points), type)]).removesuffix("# EOF\n")


def openmetrics_text(series: Iterable[Series]) -> str:
    """A whole OpenMetrics document: families grouped, samples sorted, ``# EOF`` at the end.

    A counter's samples must be named ``<family>_total``: pass the sample name
    (``foo_total``) and the family line is written for ``foo``.
    """
    families: dict[str, list[Series]] = {}
    for s in series:
        families.setdefault(s.name, []).append(s)
    out: list[str] = []
    for name, members in families.items():
        kind = members[0].type
        family = name.removesuffix("_total") if kind == "counter" else name
        out.append(f"# TYPE {family} {kind}\n")
        for s in members:
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(s.labels.items()))
            selector = f"{name}{{{labels}}}" if labels else name
            for ts, value in sorted(s.points):
                out.append(f"{selector} {_number(value)} {_number(ts)}\n")
    out.append("# EOF\n")
    return "".join(out)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# ---------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PrometheusServer:
    """A Prometheus process on 127.0.0.1, as a context manager.

    ``scrape_targets`` maps job name to ``host:port`` targets; ``alertmanagers``
    lists ``host:port`` of Alertmanagers to send alerts to.
    """

    workdir: Path
    openmetrics: str | None = None
    scrape_targets: Mapping[str, Sequence[str]] = field(default_factory=dict)
    rule_files: Sequence[Path] = ()
    alertmanagers: Sequence[str] = ()
    scrape_interval: str = "1s"
    evaluation_interval: str = "1s"
    retention: str = "30d"
    lookback_delta: str | None = None
    extra_args: Sequence[str] = ()
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    backfill_seconds: float = field(default=0.0, init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _config(self) -> str:
        lines = [
            "global:",
            f"  scrape_interval: {self.scrape_interval}",
            f"  evaluation_interval: {self.evaluation_interval}",
        ]
        if self.rule_files:
            lines.append("rule_files:")
            lines += [f"  - {Path(p).resolve()}" for p in self.rule_files]
        if self.alertmanagers:
            lines += ["alerting:", "  alertmanagers:", "    - static_configs:"]
            lines.append(f"        - targets: [{', '.join(repr(a) for a in self.alertmanagers)}]")
        lines.append("scrape_configs:" if self.scrape_targets else "scrape_configs: []")
        for job, targets in self.scrape_targets.items():
            lines += [
                f"  - job_name: {job!r}",
                "    static_configs:",
                f"      - targets: [{', '.join(repr(t) for t in targets)}]",
            ]
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        storage = self.workdir / "data"
        storage.mkdir(exist_ok=True)
        if self.openmetrics:
            started = time.monotonic()
            source = self.workdir / "backfill.om"
            source.write_text(self.openmetrics)
            run = subprocess.run(
                [
                    "promtool",
                    "tsdb",
                    "create-blocks-from",
                    "openmetrics",
                    str(source),
                    str(storage),
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            if run.returncode != 0:
                raise RuntimeError(f"promtool backfill failed:\n{run.stderr[-2000:]}")
            self.backfill_seconds = time.monotonic() - started
        config = self.workdir / "prometheus.yml"
        config.write_text(self._config())
        if not self.port:
            self.port = free_port()
        args = [
            shutil.which("prometheus") or "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={storage}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--storage.tsdb.retention.time={self.retention}",
            *([f"--query.lookback-delta={self.lookback_delta}"] if self.lookback_delta else []),
            *self.extra_args,
        ]
        self._log = open(self.workdir / "prometheus.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        code = self.process.poll() if self.process else None
        self.stop()
        state = f"exited with {code}" if code is not None else f"not ready in {READY_TIMEOUT:g}s"
        raise RuntimeError(f"Prometheus {state} on {self.url}; log tail:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        path = self.workdir / "prometheus.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None


# ---------------------------------------------------------------- homepage scenario

KSM = {"job": "kube-state-metrics", "instance": "10.0.0.5:8080"}
CADVISOR = {
    "job": "kubelet",
    "metrics_path": "/metrics/cadvisor",
    "instance": "10.0.0.11:10250",
    "node": "node-1",
    "namespace": "homepage",
}
API_POD = "bruno-site-api-7d9f8c6b5-x2x4q"
WEB_POD = "bruno-site-web-6b8c9d7f5-q9w8e"
DB_POD = "homepage-db-0"
#: The api deployment lost a replica this long before the data ends.
DROP_AGE = 40 * 60
#: Pods with a kube_pod_status_phase series each (5 phases per pod): more series than a cap.
PHASE_PODS = [f"filler-{i}" for i in range(8)]
PHASES = ["Pending", "Running", "Succeeded", "Failed", "Unknown"]


def homepage_series(end: float | None = None) -> list[Series]:
    """Two hours of a kube-prometheus-like cluster where bruno-site-api crash-loops.

    Matches /work/shared/examples/alertmanager/group-firing-homepage.json:
    KubeDeploymentReplicasMismatch (3 wanted, 2 available for 40 min),
    KubePodCrashLooping (api container) and CPUThrottlingHigh (web, ~41%).
    """
    end = math.floor(time.time()) - 5 if end is None else end

    def line(fn: Callable[[float], float | None]) -> list[tuple[float, float]]:
        return timeline(fn, end=end)

    def deploy(name: str) -> dict[str, str]:
        return {**KSM, "namespace": "homepage", "deployment": name}

    api = {**KSM, "namespace": "homepage", "pod": API_POD, "container": "api"}
    web = {**CADVISOR, "pod": WEB_POD, "container": "web"}
    out = [
        Series("up", KSM, line(lambda age: 1)),
        Series(
            "up", {k: CADVISOR[k] for k in ("job", "metrics_path", "instance")}, line(lambda a: 1)
        ),
        Series("kube_deployment_spec_replicas", deploy("bruno-site-api"), line(lambda a: 3)),
        Series(
            "kube_deployment_status_replicas_available",
            deploy("bruno-site-api"),
            line(lambda age: 3 if age > DROP_AGE else 2),
        ),
        Series(
            "kube_deployment_status_replicas_updated", deploy("bruno-site-api"), line(lambda a: 3)
        ),
        Series("kube_deployment_spec_replicas", deploy("bruno-site-web"), line(lambda a: 2)),
        Series(
            "kube_deployment_status_replicas_available", deploy("bruno-site-web"), line(lambda a: 2)
        ),
        Series(
            "kube_deployment_status_replicas_updated", deploy("bruno-site-web"), line(lambda a: 2)
        ),
        Series(
            "kube_pod_container_status_restarts_total",
            api,
            # Restarts start with the drop and keep coming, one every 5 minutes.
            line(lambda age: 0 if age > DROP_AGE else 1 + (DROP_AGE - age) // 300),
            type="counter",
        ),
        Series(
            "kube_pod_container_status_waiting_reason",
            {**api, "reason": "CrashLoopBackOff"},
            line(lambda age: 1 if age <= DROP_AGE - 120 else None),
        ),
        # CFS periods are 100 ms: 300 per 30 s, 41% of them throttled.
        Series(
            "container_cpu_cfs_periods_total",
            web,
            line(lambda age: 1_000_000 + (7200 - age) * 10),
            type="counter",
        ),
        Series(
            "container_cpu_cfs_throttled_periods_total",
            web,
            line(lambda age: 400_000 + (7200 - age) * 4.1),
            type="counter",
        ),
    ]
    memory = {
        (API_POD, "api"): 180e6,
        (WEB_POD, "web"): 250e6,
        (DB_POD, "postgres"): 512e6,
    }
    for (pod, container), base in memory.items():
        labels = {**CADVISOR, "pod": pod, "container": container}
        out.append(
            Series(
                "container_memory_working_set_bytes",
                labels,
                line(lambda age, base=base: round(base + 5e6 * math.sin(age / 600))),
            )
        )
    for pod in PHASE_PODS:
        for phase in PHASES:
            labels = {**KSM, "namespace": "filler", "pod": pod, "phase": phase}
            out.append(
                Series(
                    "kube_pod_status_phase",
                    labels,
                    line(lambda a, phase=phase: 1 if phase == "Running" else 0),
                )
            )
    return out


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterable[PrometheusServer]:
    """A real Prometheus holding two hours of the homepage scenario (see ``homepage_series``).

    The lookback is widened to 30 min so "now" queries still see the backfilled
    data (which ends at fixture start) however long the session runs.
    """
    if not (shutil.which("prometheus") and shutil.which("promtool")):
        pytest.skip("prometheus/promtool not installed")
    workdir = tmp_path_factory.mktemp("prometheus")
    text = openmetrics_text(homepage_series())
    server = PrometheusServer(workdir, openmetrics=text, lookback_delta="30m")
    with server:
        yield server
