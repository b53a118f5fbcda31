"""Refusing an analysis that only repeats what we told the model.

A small model, asked for JSON in a given shape, often answers with the shape itself:
``"cause": "the most likely cause, one sentence"``, ``"summary": "2-3 sentences: what is
happening and since when"``. Such an answer validates against the schema, and
schema-constrained decoding makes it more likely, not less. :func:`check_echo` holds an
analysis to two rules:

1. No field repeats an instruction: the phrases of the prompts (the answer format's
   placeholders among them) and the schema's field descriptions, compared after
   normalising case, punctuation and evidence ids, and by similarity, so a lightly
   edited copy is caught too.
2. It says something the instructions did not: at least one word of its summary, causes
   or impact comes from the alert or the evidence and from none of the prompts.

A placeholder list item (``"..."``) is dropped, not refused: it claims nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

from sre_agent.analysis import Analysis

#: How alike a field and an instruction phrase must be to count as a copy (difflib's ratio).
SIMILAR = 0.8
#: Fields shorter than this (normalised) are not compared by similarity, only for equality.
MIN_COMPARED = 8
#: A field that starts with this share of an instruction phrase (and this many
#: characters of it) copied it, whatever follows.
PREFIX_SHARE = 0.6
PREFIX_MIN = 20
#: List items that are placeholders, not claims.
PLACEHOLDERS = {"", "...", "…", "etc", "n/a", "none", "tbd"}

_ID = re.compile(r"\[?\bE\d+\b\]?", re.IGNORECASE)
_NON_WORD = re.compile(r"[^0-9a-z]+")
_QUOTED = re.compile(r'"([^"\n]{6,})"')
#: A token: a name, an address, a number (``10.0.3.7:8080``, ``report-worker-7b9c``);
#: its parts between ``/ : - _`` count too (``10.0.3.7``, ``8080``, ``report``).
_WORD = re.compile(r"[0-9a-z][0-9a-z_.\-/:]*[0-9a-z]|[0-9a-z]")
_PARTS = re.compile(r"[/:\-_]+")


class EchoError(ValueError):
    """The analysis repeats the instructions instead of saying what the evidence shows."""


def normalise(text: str) -> str:
    return " ".join(_NON_WORD.sub(" ", _ID.sub(" ", text.lower())).split())


def words(text: str) -> set[str]:
    """The tokens of ``text`` worth comparing (three characters or more, or with a digit),
    whole and in their parts."""
    found = set()
    for token in _WORD.findall(text.lower()):
        for word in (token, *_PARTS.split(token)):
            word = word.strip("._-/:")
            if len(word) >= 3 or any(c.isdigit() for c in word):
                found.add(word)
    return found


@dataclass(frozen=True)
class Instructions:
    """What the model was told: the phrases an answer must not repeat, and their words."""

    phrases: tuple[str, ...]
    vocabulary: frozenset[str]

    @classmethod
    def of(cls, texts: Iterable[str], schema: dict[str, Any] | None = None) -> Instructions:
        """From prompt texts (their quoted strings and lines are phrases) and a JSON
        schema (its field descriptions)."""
        texts = list(texts)
        phrases: list[str] = []
        for text in texts:
            phrases += _QUOTED.findall(text)
            phrases += [line for line in text.splitlines() if len(line.strip()) >= MIN_COMPARED]
        descriptions = list(_descriptions(schema or {}))
        phrases += descriptions
        # "high | medium | low" and the like: each alternative is its own phrase.
        phrases += [p for phrase in list(phrases) for p in phrase.split("|")]
        # A word or two ("high", "status error") is an answer, not a copy of one.
        normalised = {n for n in map(normalise, phrases) if n.count(" ") >= 2}
        vocabulary = set()
        for text in [*texts, *descriptions]:
            vocabulary |= words(text)
        return cls(tuple(sorted(p for p in normalised if p)), frozenset(vocabulary))

    def echoed(self, text: str, named: frozenset[str] = frozenset()) -> str | None:
        """The instruction phrase ``text`` repeats, if it repeats one. A text that names
        one of ``named`` (facts of the alert and its evidence) says something of its own:
        only an exact copy counts then ("The most likely cause is that the container
        exceeds its 256Mi limit" starts like the format's placeholder, and is no copy)."""
        mine = normalise(text)
        if not mine:
            return None
        own = bool(words(text) & named)
        for phrase in self.phrases:
            if mine == phrase:
                return phrase
            if own or len(mine) < MIN_COMPARED or len(phrase) < MIN_COMPARED:
                continue
            if _copied_start(mine, phrase):  # the instruction, then a ramble of its own
                return phrase
            # The ratio is at most 2*min/(sum) of the lengths: most pairs end here, so a
            # long answer costs little (this runs on the event loop).
            if 2 * min(len(mine), len(phrase)) < SIMILAR * (len(mine) + len(phrase)):
                continue
            matcher = SequenceMatcher(None, mine, phrase, autojunk=False)
            if matcher.quick_ratio() >= SIMILAR and matcher.ratio() >= SIMILAR:
                return phrase
        return None


def _copied_start(mine: str, phrase: str) -> bool:
    """Whether ``mine`` begins with most of ``phrase`` (PREFIX_SHARE of it, PREFIX_MIN
    characters at least): "2 3 sentences what is happening and how badly and ..."."""
    shared = len(os.path.commonprefix([mine, phrase]))
    return shared >= PREFIX_MIN and shared >= PREFIX_SHARE * len(phrase)


def _descriptions(schema: dict[str, Any]) -> Iterable[str]:
    for key, value in schema.items():
        if key == "description" and isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            yield from _descriptions(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    yield from _descriptions(item)


def _fields(analysis: Analysis) -> Iterable[tuple[str, str]]:
    yield "summary", analysis.summary
    for n, cause in enumerate(analysis.root_causes):
        yield f"root_causes[{n}].cause", cause.cause
        for m, observation in enumerate(cause.evidence):
            yield f"root_causes[{n}].evidence[{m}]", observation
    yield "impact", analysis.impact
    for name in ("mitigation", "follow_up_queries", "follow_up_commands"):
        for m, item in enumerate(getattr(analysis, name)):
            yield f"{name}[{m}]", item


def drop_placeholders(analysis: Analysis) -> None:
    """List items that are placeholders (``"..."``) go: they claim nothing."""
    for cause in analysis.root_causes:
        cause.evidence = [e for e in cause.evidence if normalise(e) not in PLACEHOLDERS]
    for name in ("mitigation", "follow_up_queries", "follow_up_commands"):
        items = getattr(analysis, name)
        setattr(analysis, name, [i for i in items if normalise(i) not in PLACEHOLDERS])


def check_echo(analysis: Analysis, told: Instructions, facts: str) -> None:
    """Raise :class:`EchoError` (its message fit for the retry) when the analysis repeats
    the instructions, or names nothing of ``facts`` (the alert and the evidence) that the
    instructions do not also say."""
    drop_placeholders(analysis)
    named = frozenset(words(facts) - told.vocabulary)
    copied: list[tuple[str, str]] = []
    for name, text in _fields(analysis):
        phrase = told.echoed(text, named)
        if phrase:
            copied.append((name, phrase))
    if copied:
        shown = ", ".join(name for name, _ in copied[:4]) + (" …" if len(copied) > 4 else "")
        raise EchoError(
            f"{shown} repeat{'s' if len(copied) == 1 else ''} the answer format's instructions"
            f' (e.g. "{copied[0][1][:80]}") instead of saying what the evidence shows;'
            " write what you found, in your own words, quoting the evidence"
        )
    said = words(" ".join([analysis.summary, analysis.impact]))
    for cause in analysis.root_causes:
        said |= words(" ".join([cause.cause, *cause.evidence]))
    if not said & named:
        raise EchoError(
            "it names nothing from the alert or the evidence (no object, metric, value or"
            " message that was shown); say what is happening to what, quoting the evidence"
        )
