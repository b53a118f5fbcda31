#!/usr/bin/env python3
"""The redactor's figures: throughput on ordinary logs and on adversarial input, and how many
of the secrets corpus an earlier redactor (``git show REF:...``; default: the one
before the rewrite for issue 8) let through.

    .venv/bin/python scripts/bench_redact.py [--mb 4] [--old-ref REF]

Prints; asserts nothing (the linearity test is tests/unit/test_redact_redos.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sre_agent_tools import redact as current  # noqa: E402

from tests.support.secrets_corpus import CORPUS, LOOKALIKES  # noqa: E402

rng = random.Random(42)
PODS = ["api-7d9f8b6c5-x2x4k", "worker-5f8b9c7d4-qwz9p", "web-6b8f9c7d5-m2n3p"]
PATHS = ["/api/v1/orders", "/healthz", "/static/app.js", "/api/v1/users/42", "/metrics"]


def json_line() -> str:
    return json.dumps(
        {
            "ts": f"2026-11-27T03:20:11.{rng.randrange(1000):03d}Z",
            "level": rng.choice(["info", "warn", "error", "debug"]),
            "logger": "shop.orders",
            "msg": rng.choice(["order created", "payment declined", "cache miss", "retrying"]),
            "order_id": rng.randrange(10**6),
            "trace_id": f"{rng.getrandbits(128):032x}",
            "duration_ms": round(rng.random() * 300, 2),
            "pod": rng.choice(PODS),
        }
    )


def klog_line() -> str:
    return (
        f"I1127 03:20:{rng.randrange(60):02d}.{rng.randrange(10**6):06d}       1 "
        f'controller.go:{rng.randrange(900)}] "Successfully synced" '
        f'key="shop/{rng.choice(PODS)}" resourceVersion="{rng.randrange(10**8)}"'
    )


def access_line() -> str:
    return (
        f"10.0.{rng.randrange(255)}.{rng.randrange(255)} - - [27/Nov/2026:03:20:11 +0000] "
        f'"GET {rng.choice(PATHS)}?page={rng.randrange(9)} HTTP/1.1" {rng.choice([200, 200, 404, 500])} '
        f'{rng.randrange(10**5)} "-" "Mozilla/5.0 (X11; Linux x86_64)" {rng.random():.3f}'
    )


def stack_trace() -> str:
    frames = "\n".join(
        f"\tat com.shop.orders.OrderService$Handler{i}.handle(OrderService.java:{rng.randrange(900)})"
        for i in range(12)
    )
    return f"java.lang.IllegalStateException: connection pool exhausted (db:5432)\n{frames}"


def ordinary_logs(size: int) -> str:
    makers = [json_line, klog_line, access_line, access_line, klog_line, stack_trace]
    parts: list[str] = []
    total = 0
    while total < size:
        line = rng.choice(makers)()
        parts.append(line)
        total += len(line) + 1
    return "\n".join(parts)[:size]


def repeat(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


ADVERSARIAL: dict[str, Callable[[int], str]] = {
    "eyJa- x N": lambda n: repeat("eyJa-", n),
    "a= x N": lambda n: repeat("a=", n),
    "BEGIN PRIVATE KEY, no END": lambda n: repeat("-----BEGIN PRIVATE KEY-----", n),
    "https:// x N": lambda n: repeat("https://", n),
    "Authorization: x N": lambda n: repeat("Authorization: ", n),
    "base64 run": lambda n: "".join(rng.choice("ABCabc0123+/") for _ in range(n)),
    "hyphenated words": lambda n: repeat("a-b-", n),
    "k=v=k=v": lambda n: repeat("k=v=", n),
    'a=" (unclosed quotes)': lambda n: repeat('a="', n),
}


def throughput(fn: Callable[[str], str], text: str, rounds: int = 3) -> float:
    best = min(_timed(fn, text) for _ in range(rounds))
    return len(text.encode()) / best / 1e6


def _timed(fn: Callable[[str], str], text: str) -> float:
    start = time.process_time()
    fn(text)
    return time.process_time() - start


def load_old(ref: str) -> object | None:
    try:
        source = subprocess.run(
            ["git", "show", f"{ref}:tools/sre_agent_tools/redact.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (subprocess.CalledProcessError, FileNotFoundError):
        return None
    path = Path(tempfile.mkdtemp()) / "old_redact.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_redact", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def missed(redact: Callable[[str], str]) -> list[str]:
    out = []
    for form in CORPUS:
        text = redact(form.text)
        if form.secret in text or form.tail in text:
            out.append(form.name)
    return out


#: The last commit with the redactor as it was before issue 8's rewrite.
BEFORE_REWRITE = "08f2c07"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=4.0, help="size of the ordinary-log sample")
    parser.add_argument(
        "--old-ref",
        default=BEFORE_REWRITE,
        help="git ref of the redactor to compare (default: the last one before issue 8)",
    )
    args = parser.parse_args()

    logs = ordinary_logs(int(args.mb * 1024 * 1024))
    print(
        f"ordinary logs ({args.mb:g} MB, JSON/klog/access/stack traces): "
        f"{throughput(current.redact, logs):.1f} MB/s"
    )
    print("adversarial input (1 MiB; ratio = time(1 MiB) / time(64 KiB), 16 is linear):")
    for name, make in ADVERSARIAL.items():
        small, big = make(64 * 1024), make(1024 * 1024)
        t_small = min(_timed(current.redact, small) for _ in range(3))
        t_big = min(_timed(current.redact, big) for _ in range(2))
        print(
            f"  {name:28s} {len(big) / t_big / 1e6:6.1f} MB/s   ratio {t_big / max(t_small, 1e-6):5.1f}"
        )

    keep = sum(current.redact(t) == t for t in LOOKALIKES)
    print(
        f"corpus: {len(CORPUS)} secret forms; current redactor misses {len(missed(current.redact))};"
        f" look-alikes kept {keep}/{len(LOOKALIKES)}"
    )
    old = load_old(args.old_ref)
    if old is None:
        print(f"old redactor: {args.old_ref}:tools/sre_agent_tools/redact.py not readable")
        return
    gone = missed(old.redact)  # type: ignore[attr-defined]
    old_keep = sum(old.redact(t) == t for t in LOOKALIKES)  # type: ignore[attr-defined]
    print(
        f"old redactor ({args.old_ref}): misses {len(gone)} of {len(CORPUS)} forms; "
        f"look-alikes kept {old_keep}/{len(LOOKALIKES)}"
    )
    print("  missed: " + ", ".join(gone))
    sample = repeat("eyJa-", 50 * 1024)
    print(
        f"old redactor on eyJa- x 50 KiB: {_timed(old.redact, sample):.2f} s "  # type: ignore[attr-defined]
        f"(current {_timed(current.redact, sample) * 1000:.1f} ms)"
    )


if __name__ == "__main__":
    main()
