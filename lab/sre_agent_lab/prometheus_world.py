"""The real Prometheus, run on 127.0.0.1, optionally pre-filled with backfilled history.

History is written as OpenMetrics text and turned into TSDB blocks with
``promtool tsdb create-blocks-from openmetrics`` before the server starts; it
ends at (or a few seconds before) "now", so queries relative to now see it.
The tests and ``sre-agent eval`` serve the scenario metrics with it; both
programs come from Debian's ``prometheus`` package and are found on PATH.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sre_agent_lab.net import free_port

READY_TIMEOUT = 15.0


class PrometheusMissing(RuntimeError):
    """``prometheus`` or ``promtool`` is not on PATH."""


def prometheus_available() -> bool:
    return bool(shutil.which("prometheus") and shutil.which("promtool"))


def require_prometheus() -> None:
    """Fail with what to install when the programs are missing."""
    missing = [name for name in ("prometheus", "promtool") if not shutil.which(name)]
    if missing:
        raise PrometheusMissing(
            f"{' and '.join(missing)} not found on PATH: the scenario worlds need the real"
            " Prometheus (Debian/Ubuntu: `apt-get install prometheus`, which ships both"
            " programs; or put the official release's binaries on PATH)"
        )


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
        require_prometheus()
        if self.openmetrics:
            started = time.monotonic()
            source = self.workdir / "backfill.om"
            source.write_text(self.openmetrics)
            run = subprocess.run(
                [
                    shutil.which("promtool") or "promtool",
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
        log_file = getattr(self, "_log", None)
        if log_file is not None:
            log_file.close()
            del self._log
