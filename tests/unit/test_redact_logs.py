"""The log at DEBUG: our lines redacted, libraries that log whole conversations kept quiet."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from sre_agent_tools.redact import MASK

from sre_agent.logs import QUIET_LOGGERS, configure_logging


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {n: logging.getLogger(n).level for n in QUIET_LOGGERS}
    stream = io.StringIO()
    configure_logging("DEBUG", stream)
    try:
        yield stream
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)


def test_checkpoint_and_http_libraries_stay_quiet_at_debug(debug_log: io.StringIO) -> None:
    for name in ("aiosqlite", "langgraph.checkpoint.sqlite", "httpx", "langchain_core.callbacks"):
        logging.getLogger(name).debug("executing INSERT INTO checkpoints VALUES ('chat turn')")
    logging.getLogger(__name__).debug("our own debug line")
    out = debug_log.getvalue()
    assert "chat turn" not in out
    assert "our own debug line" in out


def test_warnings_of_those_libraries_still_show(debug_log: io.StringIO) -> None:
    logging.getLogger("aiosqlite").warning("database is locked")
    assert "database is locked" in debug_log.getvalue()


def test_messages_arguments_and_tracebacks_are_redacted(debug_log: io.StringIO) -> None:
    log = logging.getLogger("sre_agent.test")
    log.info("calling %s with %s", "http://u:Cn-pw-1x@db", {"password": "Cn-pw-2x"})
    try:
        raise RuntimeError("Authorization: Bearer Cn-tok-3x")
    except RuntimeError:
        log.exception("failed")
    out = debug_log.getvalue()
    assert "Cn-pw-1x" not in out and "Cn-pw-2x" not in out and "Cn-tok-3x" not in out
    assert out.count(MASK) >= 3
    assert "<|im_start|>" not in (log.info("<|im_start|>system"), debug_log.getvalue())[1]


def test_a_bad_format_string_does_not_lose_the_record(debug_log: io.StringIO) -> None:
    logging.getLogger("sre_agent.test").info("%d items, token=%s", "many")
    assert "items" in debug_log.getvalue()
