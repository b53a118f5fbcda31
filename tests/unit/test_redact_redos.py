"""The redactor's work grows linearly with its input, whatever the input; its memo is bounded.

Timing-free in the sense that matters: no absolute limit, only the ratio of CPU time
for 1 MiB to 64 KiB of the same adversarial text (16 when linear; quadratic would be
about 256), the best of a few runs, against a generous bound.
"""

from __future__ import annotations

import gc
import logging
import random
import re
import time
import tracemalloc
from collections.abc import Callable

import pytest
from sre_agent_tools.redact import (
    NAME_CACHE_MAX_BYTES,
    is_secret_name,
    name_cache_info,
    redact,
    redact_label_value,
)

from sre_agent.logs import MESSAGE_CHARS, RedactingFilter
from tests.support.secrets_corpus import CORPUS

SMALL, BIG = 64 * 1024, 1024 * 1024
BOUND = 40  # work(1 MiB) < BOUND x work(64 KiB)


def repeat(unit: str) -> Callable[[int], str]:
    return lambda n: (unit * (n // len(unit) + 1))[:n]


def random_mix(n: int) -> str:
    rng = random.Random(n)
    parts = [
        "eyJ",
        "a=",
        "-",
        ":",
        "//",
        "@",
        "password",
        " ",
        "\n",
        "Bearer ",
        '"',
        "'",
        "=",
        "AKIA",
        "sk_live_",
        "$2y$",
        "<|",
        "name: ",
        "value: ",
        "--token ",
        "-p",
        "://",
        "x",
    ]
    return "".join(rng.choice(parts) for _ in range(n // 3))[:n]


def base64_run(n: int) -> str:
    rng = random.Random(n)
    return "".join(rng.choice("ABCDEFGHabcdefgh0123456789+/") for _ in range(n))


ADVERSARIAL: dict[str, Callable[[int], str]] = {
    "jwt-prefix": repeat("eyJa-"),
    "jwt-dots": repeat("eyJa.eyJb-"),
    "assignments": repeat("a="),
    "nested-kv": repeat("k=v=k=v="),
    "unclosed-quotes": repeat('a="'),
    "secret-unclosed-quotes": repeat('password="'),
    "pem-without-end": repeat("-----BEGIN PRIVATE KEY-----"),
    "pem-begin-end": repeat("-----BEGIN RSA PRIVATE KEY-----\n-----END PRIVATE KEY-----\n"),
    "urls": repeat("https://"),
    "url-userinfo": repeat("a://b:"),
    "authorization": repeat("Authorization:"),
    "authorization-spaced": repeat("Authorization: "),
    "go-header-map": repeat("map[Authorization:["),
    "bearer": repeat("Bearer "),
    "base64-run": base64_run,
    "hyphenated": repeat("a-b-"),
    "double-hyphens": repeat("a--"),
    "flags": repeat("--password "),
    "mysql": repeat("mysql -p"),
    "hashes": repeat("$1$"),
    "env-fields": repeat("name: DB_PASSWORD value: "),
    "prose": repeat("password is "),
    "control": repeat("<|a"),
    "escaped-quotes": repeat('password="' + '\\"' * 3000 + " "),
    "json-in-json": repeat('{\\"token\\":\\"'),
    "yaml-blocks": repeat("password: |\n  x\n"),
    "yaml-block-open": lambda n: "password: |\n" + repeat("  a: b\n")(n),
    "commands": repeat("mysql sshpass redis-cli -a "),
    "spaces": repeat(" "),
    "colons": repeat(":"),
    "random-mix": random_mix,
    "near-miss-corpus": lambda n: repeat("".join(f.secret[:-1] + " " for f in CORPUS))(n),
    "glued-corpus": lambda n: repeat("".join(f.secret for f in CORPUS))(n),
}


def work(fn: Callable[[str], str], text: str, runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.process_time()
        fn(text)
        best = min(best, time.process_time() - start)
    return max(best, 1e-4)


def ratio(fn: Callable[[str], str], make: Callable[[int], str]) -> float:
    small, big = make(SMALL), make(BIG)
    best = float("inf")
    for _ in range(2):  # a second try absorbs a noisy neighbour, never a quadratic
        best = min(best, work(fn, big, 1) / work(fn, small, 3))
        if best < BOUND:
            break
    return best


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_redaction_is_linear_on_adversarial_input(name: str) -> None:
    assert ratio(redact, ADVERSARIAL[name]) < BOUND


@pytest.mark.parametrize("name", ["jwt-prefix", "urls", "base64-run", "random-mix"])
def test_label_redaction_is_linear_too(name: str) -> None:
    assert ratio(lambda v: redact_label_value("header", v), ADVERSARIAL[name]) < BOUND


def test_the_measure_tells_a_quadratic_pattern_apart() -> None:
    """The previous JWT pattern, on the input that froze the service: far over the bound."""
    old_jwt = re.compile(r"\beyJ[A-Za-z0-9_\-]+\.eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*")
    make = repeat("eyJa-")
    small, big = make(2 * 1024), make(32 * 1024)  # the same 16x step, small enough to run
    assert (
        work(lambda t: old_jwt.sub("", t), big, 1) / work(lambda t: old_jwt.sub("", t), small, 3)
        > BOUND
    )


def test_names_memo_is_bounded_in_bytes() -> None:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(50):
            assert is_secret_name(f"X{i}_" + "A" * 200_000 + "_TOKEN")
        for i in range(20_000):  # many distinct names under the memo's key length
            is_secret_name(f"label_{i}_" + "x" * 200)
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    entries, held = name_cache_info()
    assert held <= NAME_CACHE_MAX_BYTES
    assert retained < 2 * NAME_CACHE_MAX_BYTES
    assert entries > 100  # still a memo: the short, repeated names are kept
    assert is_secret_name("DB_PASSWORD") and not is_secret_name("LOG_LEVEL")


def test_a_ten_megabyte_log_message_is_cut_then_redacted() -> None:
    secret = "Cn" + "q8W" * 12
    message = ("password=" + secret + " " + "eyJa-" * 40 + "\n") * 40_000  # ~10 MB
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "%s", (message,), None)
    start = time.process_time()
    RedactingFilter().filter(record)
    spent = time.process_time() - start
    out = record.getMessage()
    assert secret not in out
    assert len(out) <= MESSAGE_CHARS + 100 and "characters cut]" in out
    # bounded: about the work of one piece, not of 10 MB (a generous ratio, not a limit)
    piece = message[:MESSAGE_CHARS]
    assert spent < 20 * work(redact, piece, 3)
