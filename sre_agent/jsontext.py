"""JSON a model wrote amid prose: bare, in a Markdown fence, or between words.

Small models wrap the JSON they are asked for (a final analysis, a tool call
written as text) in explanations and code fences; the analysis parser and the
text-tool-call guard both read it with :func:`first_json`.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["first_json"]

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def first_json(text: str) -> Any:
    """The first JSON value found, trying the whole text, each fenced block, then the
    span from the first ``{`` to the last ``}``; ValueError when none parses.

    Nesting too deep for the parser counts as not JSON, never as a crash.
    """
    text = text.strip()
    candidates = [text, *_FENCE.findall(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except (ValueError, RecursionError):
            continue
    raise ValueError("the answer contains no JSON object")
