#!/usr/bin/env python3
"""The install's figures: the two wheels' sizes, a clean venv's install time and size (the
Dockerfile's builder steps, without bytecode), and how long ``sre-agent serve`` takes from
start to its first ``/healthz`` there, cold and warm.

    .venv/bin/python scripts/bench_wheel.py

Needs a package index for the venv's dependencies. Prints; asserts nothing (what the
wheels hold and that they run is tests/integration/test_deploy.py).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]


def run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True, timeout=900)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def megabytes(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def first_healthz(venv: Path, home: Path) -> float:
    """Seconds from starting ``sre-agent serve`` to its first 200 on /healthz."""
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "PYTHONDONTWRITEBYTECODE": "1",
        "SRE_AGENT_DATABASE_URL": f"sqlite:///{home / 'bench.db'}",
        "SRE_AGENT_OLLAMA_URL": f"http://127.0.0.1:{free_port()}",
        "SRE_AGENT_PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}",
        "SRE_AGENT_ALLOWED_HOSTS": "127.0.0.1",
    }
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(venv / "bin" / "sre-agent"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while proc.poll() is None and time.monotonic() - started < 300:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise SystemExit(f"sre-agent serve did not answer /healthz (exit {proc.poll()})")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "wheels"
        started = time.monotonic()
        run(*PIP, "wheel", "--no-deps", "--wheel-dir", str(out), str(ROOT), str(ROOT / "lab"))
        built = time.monotonic() - started
        [product] = out.glob("sre_agent-*.whl")
        [lab] = out.glob("sre_agent_lab-*.whl")
        print(f"wheels built in {built:.1f} s")
        for wheel in (product, lab):
            print(f"  {wheel.name}: {wheel.stat().st_size / 1024:.0f} KiB")

        venv = Path(tmp) / "venv"
        started = time.monotonic()
        run(sys.executable, "-m", "venv", "--without-pip", str(venv))
        python = str(venv / "bin" / "python")
        run(*PIP, "--python", python, "install", "--no-compile", str(product))
        installed = time.monotonic() - started
        print(
            f"clean venv, product wheel alone: installed in {installed:.1f} s,"
            f" {megabytes(venv):.0f} MB (no bytecode, no pip)"
        )
        cold = first_healthz(venv, Path(tmp))
        warm = first_healthz(venv, Path(tmp))
        print(f"sre-agent serve to first /healthz 200: {cold:.1f} s, then {warm:.1f} s")

        started = time.monotonic()
        run(*PIP, "--python", python, "install", "--no-compile", str(lab))
        print(
            f"adding the lab wheel: {time.monotonic() - started:.1f} s,"
            f" venv now {megabytes(venv):.0f} MB"
        )


if __name__ == "__main__":
    main()
