"""Prompts are files: ``prompts/*.md`` with ``{{name}}`` fields and ``{{> partial}}``
includes from ``prompts/partials/``. The service, the CLI and the notebook all
read them through :func:`load_prompts`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

_FIELD = re.compile(r"\{\{\s*([A-Za-z_][\w]*)\s*\}\}")
_PARTIAL = re.compile(r"\{\{>\s*([\w./-]+)\s*\}\}")


def default_prompts_dir() -> Path:
    """The repo's ``prompts/`` in a checkout, or the copy shipped inside the wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "prompts", here / "_prompts"):
        if (candidate / "system.md").is_file():
            return candidate
    raise FileNotFoundError("no prompts directory found (set SRE_AGENT_PROMPTS_DIR)")


@dataclass(frozen=True)
class Prompts:
    templates: dict[str, str]
    directory: Path
    #: Short content hash of every prompt file: recorded with each investigation.
    version: str

    def render(self, name: str, **fields: object) -> str:
        """Fill a template's ``{{field}}``s; a missing field renders as "(unknown)"."""
        text = self.templates[name]
        return _FIELD.sub(lambda m: str(fields.get(m.group(1), "(unknown)")), text).strip()

    def instructions(self) -> list[str]:
        """Every prompt's own text, its fields left out: what an answer must not repeat."""
        return [_FIELD.sub(" ", text) for text in self.templates.values()]


def load_prompts(directory: Path | None = None) -> Prompts:
    directory = directory or default_prompts_dir()
    partials_dir = directory / "partials"
    partials = (
        {p.stem: p.read_text(encoding="utf-8").strip() for p in sorted(partials_dir.glob("*.md"))}
        if partials_dir.is_dir()
        else {}
    )
    digest = hashlib.sha256()
    templates: dict[str, str] = {}
    for path in sorted(directory.glob("*.md")):
        raw = path.read_text(encoding="utf-8")
        digest.update(path.name.encode() + b"\0" + raw.encode())
        templates[path.stem] = _PARTIAL.sub(lambda m: partials.get(m.group(1), ""), raw)
    for name, text in partials.items():
        digest.update(name.encode() + b"\0" + text.encode())
    for required in ("system", "investigation", "repair"):
        if required not in templates:
            raise FileNotFoundError(f"prompt {required}.md is missing in {directory}")
    return Prompts(templates=templates, directory=directory, version=digest.hexdigest()[:12])
