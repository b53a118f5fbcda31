"""The structured answer of an investigation, how we read it out of a model's
text, and how its citations are held to what was gathered (:func:`check_citations`).
The report it makes is :mod:`sre_agent.report`'s."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from sre_agent.jsontext import first_json

EvidenceId = Annotated[str, StringConstraints(pattern=r"^E\d+$")]
#: An id as a small model writes it: ``E3``, ``[E3]``, ``e3``, ``E03``.
_ID = re.compile(r"^\[?\s*E0*(\d{1,6})\s*\]?$", re.IGNORECASE)
#: Ids written inside an observation: ``[E3]``, ``[E3, E5]``, ``(E3)``.
#: An observation that starts with its id: ``E3: Last State: OOMKilled``.
#: Any number of digits: an id too long to be one is read, and refused as never gathered.
_LEADING = re.compile(r"^\s*E(\d+)\s*[:\-—]", re.IGNORECASE)
_CITED = re.compile(r"[\[(]\s*(E\d+(?:[,;/\s]+E\d+)*)\s*[\])]", re.IGNORECASE)


class RootCause(BaseModel):
    model_config = ConfigDict(extra="ignore")

    cause: str = Field(description="What most likely went wrong, in one sentence.")
    evidence: list[str] = Field(
        default_factory=list,
        description="The observations (tool outputs, metrics, log lines) this rests on.",
    )
    evidence_ids: list[EvidenceId] = Field(
        default_factory=list,
        description="The ids (E1, E2, ...) of the evidence blocks those observations are from.",
    )
    confidence: Literal["high", "medium", "low"] = "medium"
    #: Set by us, never by the model: "high" when it claimed high without a finding that
    #: answered (:func:`check_citations`).
    lowered_from: SkipJsonSchema[str | None] = None

    @field_validator("confidence", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("evidence", mode="before")
    @classmethod
    def _observations(cls, value: object) -> object:
        if isinstance(value, str):
            return [value] if value.strip() else []
        return value

    @field_validator("evidence_ids", mode="before")
    @classmethod
    def _ids(cls, value: object) -> object:
        """``"E3, E5"`` and ``["[E3]", "e5"]`` alike become ``["E3", "E5"]``."""
        if isinstance(value, str):
            value = [v for v in re.split(r"[\s,;]+", value) if v]
        if not isinstance(value, list):
            return value
        out = []
        for item in value:
            if isinstance(item, int) and not isinstance(item, bool) and 0 < item < 10**6:
                item = f"E{item}"  # [3, 5]: the numbers of the ids
            match = _ID.match(item.strip()) if isinstance(item, str) else None
            out.append(_id(match.group(1)) if match else item)
        return out

    @model_validator(mode="after")
    def _ids_in_observations(self) -> RootCause:
        """Ids written inside the observations count as cited; each id once, in order."""
        found = list(self.evidence_ids)
        for text in self.evidence:
            leading = _LEADING.match(text)
            if leading:
                found.append(_id(leading.group(1)))
            for group in _CITED.findall(text):
                found += [_id(n) for n in re.findall(r"\d+", group)]
        self.evidence_ids = list(dict.fromkeys(found))
        return self


def _id(digits: str) -> str:
    """``E`` and the number, without leading zeros (no int(): the digits may be many)."""
    return "E" + (digits.lstrip("0") or "0")


class Analysis(BaseModel):
    """What the on-call engineer reads first."""

    model_config = ConfigDict(extra="ignore")

    summary: str = Field(min_length=1, description="Two or three sentences: what is happening.")
    root_causes: list[RootCause] = Field(
        default_factory=list, description="Probable root causes, most likely first."
    )
    impact: str = Field(default="", description="Who or what is affected, and how badly.")
    mitigation: list[str] = Field(default_factory=list, description="Concrete next steps.")
    follow_up_queries: list[str] = Field(
        default_factory=list, description="PromQL queries worth running next."
    )
    follow_up_commands: list[str] = Field(
        default_factory=list, description="Read-only commands worth running (kubectl ...)."
    )

    @field_validator("mitigation", "follow_up_queries", "follow_up_commands", mode="before")
    @classmethod
    def _listify(cls, value: object) -> object:
        if isinstance(value, str):
            return [value] if value.strip() else []
        return value


#: Bounds of the schema sent for constrained decoding (not of validation: an answer
#: written freely may run longer). A small model held to a schema can loop inside a list
#: or a string until the generation cap; with these the grammar closes it and moves on.
#: At most ~5,800 characters in all (~1,600 tokens; an analysis is 300-600): a model may
#: still reach SRE_AGENT_NUM_PREDICT (1024) inside the bounds, but not loop past them.
_MAX_ITEMS = {
    "root_causes": 3,
    "evidence": 3,
    "evidence_ids": 4,
    "mitigation": 4,
    "follow_up_queries": 3,
    "follow_up_commands": 3,
}
_MAX_LENGTH = {"summary": 500, "impact": 300}
_MAX_ITEM_LENGTH = 200
_MAX_ITEM_LENGTHS = {"follow_up_queries": 300, "follow_up_commands": 300}  # PromQL runs long
#: Fields the schema makes the model write (the model may omit the others).
_REQUIRED = {
    "Analysis": ["summary", "root_causes", "impact", "mitigation"],
    "RootCause": ["cause", "evidence", "evidence_ids", "confidence"],
}


def analysis_schema(ids: Iterable[str] | None = None) -> dict[str, Any]:
    """JSON schema for constrained decoding of the final answer (Ollama's ``format``, an
    OpenAI-compatible server's ``response_format``): the Analysis, every list and text
    bounded, the fields that make an analysis required, a root cause at least. With
    ``ids`` (the evidence ids the model was shown), a citation can only be one of them."""
    schema = Analysis.model_json_schema()
    if ids is not None:
        shown = sorted(set(ids), key=lambda i: (len(i), i))
        cited = schema["$defs"]["RootCause"]["properties"]["evidence_ids"]
        cited["items"] = {"type": "string", "enum": shown} if shown else {"type": "string"}
        if not shown:
            cited["maxItems"] = 0
    for model in [schema, *schema.get("$defs", {}).values()]:
        model["required"] = _REQUIRED.get(model.get("title", ""), model.get("required", []))
        for name, field in model.get("properties", {}).items():
            if field.get("type") == "array":
                field.setdefault("maxItems", _MAX_ITEMS.get(name, 3))
                items = field.get("items", {})
                if items.get("type") == "string" and "enum" not in items:
                    field["items"].setdefault(
                        "maxLength", _MAX_ITEM_LENGTHS.get(name, _MAX_ITEM_LENGTH)
                    )
            elif field.get("type") == "string" and "enum" not in field:
                field["maxLength"] = _MAX_LENGTH.get(name, _MAX_ITEM_LENGTH)
    schema["properties"]["root_causes"]["minItems"] = 1
    return schema


_SURROGATE = re.compile("[\ud800-\udfff]")


def without_surrogates(value: Any) -> Any:
    """``value`` with every lone UTF-16 surrogate replaced by U+FFFD: JSON's ``\\ud800``
    makes them, and they can be neither encoded, stored nor validated as text."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {without_surrogates(k): without_surrogates(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [without_surrogates(v) for v in value]
    return value


def extract_json(text: str) -> Any:
    """The JSON object in a model's answer: bare, fenced, or surrounded by prose."""
    return without_surrogates(first_json(text))


def parse_analysis(text: str) -> Analysis:
    """Validate a model's final answer; raises ValueError with a message fit to show the model."""
    data = extract_json(text)
    if isinstance(data, dict) and "analysis" in data and isinstance(data["analysis"], dict):
        data = data["analysis"]
    if isinstance(data, dict) and isinstance(data.get("root_causes"), list):
        for cause in data["root_causes"]:  # ours to set, never the model's
            if isinstance(cause, dict):
                cause.pop("lowered_from", None)
    try:
        return Analysis.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['msg']}"
            for e in exc.errors()[:5]
        )
        raise ValueError(f"the JSON does not match the Analysis schema: {problems}") from None


class CitationError(ValueError):
    """An analysis cites evidence ids that were never gathered."""


def check_citations(analysis: Analysis, gathered: Mapping[str, str]) -> list[str]:
    """Hold the citations to the evidence: ``gathered`` maps each id to its status.

    An id never gathered raises :class:`CitationError`, its message fit for the retry
    (which ids are unknown, which exist). A root cause citing no finding that answered
    (ok or no data) is lowered to ``low``; one claiming ``high`` whose findings only
    answered "no data" is lowered to ``medium``; the notes say which.
    """
    for n, cause in enumerate(analysis.root_causes):
        unknown = [i for i in cause.evidence_ids if i not in gathered]
        if unknown:
            shown = (i if len(i) <= 12 else i[:11] + "…" for i in unknown[:5])
            cited = ", ".join(shown) + (" …" if len(unknown) > 5 else "")
            verb = "was" if len(unknown) == 1 else "were"
            exist = (
                f"the evidence ids are {id_ranges(gathered)}"
                if gathered
                else "no evidence was gathered, so evidence_ids must be empty"
            )
            raise CitationError(
                f"root_causes[{n}] cites {cited}, which {verb} never gathered; {exist}"
            )
    notes = []
    for n, cause in enumerate(analysis.root_causes):
        statuses = {gathered.get(i) for i in cause.evidence_ids}
        if cause.confidence != "low" and not statuses & {"ok", "no_data"}:
            # Nothing it cites answered: a guess, whatever the model called it.
            claimed = cause.confidence
            cause.confidence, cause.lowered_from = "low", claimed
            notes.append(
                f"root cause {n + 1} claimed {claimed} confidence citing no finding that answered"
            )
        elif cause.confidence == "high" and "ok" not in statuses:
            cause.confidence, cause.lowered_from = "medium", "high"
            notes.append(f"root cause {n + 1} claimed high confidence without citing a finding")
    return notes


def id_ranges(ids: Mapping[str, object] | list[str]) -> str:
    """``E1-E12, E14``: evidence ids, runs of consecutive numbers folded."""
    numbers = sorted({int(i[1:]) for i in ids if re.fullmatch(r"E\d+", i)})
    runs: list[list[int]] = []
    for number in numbers:
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return ", ".join(f"E{a}" if a == b else f"E{a}-E{b}" for a, b in runs)
