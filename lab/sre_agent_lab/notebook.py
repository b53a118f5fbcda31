"""The prompt lab behind ``notebooks/prompt_lab.ipynb``: load an alert, edit a prompt,
run it through the same pipeline as ``sre-agent eval``, compare with the previous
version, save the prompt back with a diff.

The prompts are edited as their files' text (``lab.prompts["system"]``, partials in
``lab.partials``); each run writes them to a scratch directory and loads them with
:func:`sre_agent.prompts.load_prompts`, so the version a run shows is the one the
files will have once saved.
"""

from __future__ import annotations

import difflib
import html
import json
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from sre_agent.alerts import Alert, load_alert_file
from sre_agent.prompts import Prompts, default_prompts_dir, load_prompts
from sre_agent.settings import Settings, load_settings
from sre_agent.store import Store
from sre_agent_lab.eval import format_table
from sre_agent_lab.runs import RunResult, run_alert, scenario_alert
from sre_agent_lab.scenarios import Scenario, load_scenarios
from sre_agent_lab.world import open_world


class Comparison:
    """Runs side by side: a text table in ``print``, an HTML table in Jupyter."""

    def __init__(self, runs: list[tuple[str, RunResult]]) -> None:
        self.runs = runs

    def rows(self, width: int | None = None) -> list[list[str]]:
        def cut(text: str) -> str:
            text = " ".join(text.split())
            return text if width is None or len(text) <= width else text[: width - 1] + "…"

        fields: list[tuple[str, Any]] = [
            ("prompt version", lambda r: r.prompt_version),
            ("status", lambda r: r.status),
            (
                "summary",
                lambda r: cut(r.record.analysis.summary if r.record.analysis else r.reason or ""),
            ),
            ("root cause", lambda r: cut(_root_cause(r))),
            ("decisive evidence sent", lambda r: _yes(r.decisive_reached)),
            ("root-cause keywords", lambda r: f"{len(r.keywords_found)}/{len(r.keywords)}"),
            ("root causes citing evidence", lambda r: f"{r.cited_causes}/{r.causes}"),
            ("prompt tokens (1st call)", lambda r: f"{r.prompt_tokens} ({r.first_prompt_tokens})"),
            ("LLM calls", lambda r: str(r.llm_calls)),
            ("tool calls", lambda r: cut(_tool_calls(r))),
            ("time", lambda r: f"{r.seconds:.1f}s"),
        ]
        return [[label, *(str(get(run)) for _, run in self.runs)] for label, get in fields]

    def __str__(self) -> str:
        headers = ["", *(name for name, _ in self.runs)]
        return format_table(headers, self.rows(width=60), numbers=False)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(name)}</th>" for name, _ in self.runs)
        body = "".join(
            "<tr><th style='text-align:left'>"
            + html.escape(row[0])
            + "</th>"
            + "".join(
                f"<td style='text-align:left;white-space:pre-wrap'>{html.escape(c)}</td>"
                for c in row[1:]
            )
            + "</tr>"
            for row in self.rows()
        )
        return f"<table><tr><th></th>{head}</tr>{body}</table>"

    def __repr__(self) -> str:
        return str(self)


def _root_cause(run: RunResult) -> str:
    analysis = run.record.analysis
    return analysis.root_causes[0].cause if analysis and analysis.root_causes else "(none)"


def _tool_calls(run: RunResult) -> str:
    calls = run.record.tool_calls
    own = [str(c.name) for c in calls if c.phase != "evidence"]
    return f"{len(calls) - len(own)} evidence; model: {', '.join(own) or 'none'}"


def _yes(flag: bool | None) -> str:
    return "-" if flag is None else ("yes" if flag else "no")


class PromptLab:
    """One alert at a time; every :meth:`run` is kept for :meth:`compare`."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        prompts_dir: Path | None = None,
        scenarios_dir: Path | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        self.prompts_dir = Path(prompts_dir or self.settings.prompts_dir or default_prompts_dir())
        self.scenarios_dir = scenarios_dir
        self.prompts = _read_dir(self.prompts_dir)
        self.partials = _read_dir(self.prompts_dir / "partials")
        self.runs: list[RunResult] = []
        self.alert: Alert | None = None
        self.scenario: Scenario | None = None
        self._run_settings = self.settings
        self._scratch = tempfile.TemporaryDirectory(prefix="sre-agent-prompt-lab-")
        self._world = ExitStack()

    # -- what to investigate ------------------------------------------------
    def load_scenario(self, name: str) -> Alert:
        """A scenario's alert, against its world (fake Kubernetes API, real Prometheus)."""
        (scenario,) = load_scenarios(self.scenarios_dir, [name])
        self._world.close()
        world = self._world.enter_context(
            open_world(Path(self._scratch.name) / f"world-{name}", [scenario])
        )
        self._run_settings = world.settings(self.settings)
        self.scenario = scenario
        self.alert = scenario_alert(scenario)
        return self.alert

    def load_alert_file(self, path: str | Path, index: int = 0) -> Alert:
        """An Alertmanager body (or one alert) from a file, against your Prometheus/cluster."""
        payload = load_alert_file(Path(path).read_text(encoding="utf-8"))
        return self._use(payload.alerts[index])

    def load_investigation(self, ident: str, database: Path | None = None) -> Alert:
        """The alert of a stored investigation (default: ``SRE_AGENT_DATABASE_URL``)."""
        store = Store(Path(database or self.settings.database_path))
        store.open()
        try:
            record = store.get(ident)
        finally:
            store.close()
        if record is None:
            raise KeyError(
                f"no investigation {ident!r} in {database or self.settings.database_url}"
            )
        return self._use(Alert.model_validate(record.alert.model_dump(exclude_none=True)))

    def _use(self, alert: Alert) -> Alert:
        self._world.close()
        self._run_settings = self.settings
        self.scenario = None
        self.alert = alert
        return alert

    # -- running -------------------------------------------------------------
    def current_prompts(self) -> Prompts:
        """The edited prompts, loaded as files (so the version is the saved files' version)."""
        directory = Path(self._scratch.name) / f"prompts-{len(self.runs) + 1}"
        _write_dir(directory, self.prompts)
        _write_dir(directory / "partials", self.partials)
        return load_prompts(directory)

    async def run(self) -> RunResult:
        """Investigate the loaded alert with the prompts as they are now."""
        if self.alert is None:
            raise RuntimeError("load an alert first (load_scenario, load_alert_file, ...)")
        result = await run_alert(
            self.alert,
            self._run_settings,
            self.current_prompts(),
            Path(self._scratch.name) / "db",
            self.scenario,
        )
        self.runs.append(result)
        print(
            f"run {len(self.runs)}: prompt version {result.prompt_version}, {result.status},"
            f" {result.llm_calls} LLM call(s), {result.prompt_tokens} prompt tokens"
            f" (first call {result.first_prompt_tokens}), {len(result.record.tool_calls)}"
            f" tool call(s), {result.seconds:.1f}s"
        )
        return result

    def compare(self, *which: int) -> Comparison:
        """Runs side by side (default: the last two), by their 1-based number."""
        numbers = list(which) or list(range(max(1, len(self.runs) - 1), len(self.runs) + 1))
        return Comparison([(f"run {n}", self.runs[n - 1]) for n in numbers])

    # -- keeping -------------------------------------------------------------
    def diff(self, name: str, to: str | Path | None = None) -> str:
        """What saving ``name`` would change in ``to`` (default: the prompts directory)."""
        target = self._target(name, to)
        before = target.read_text(encoding="utf-8") if target.is_file() else ""
        after = self._text(name)
        lines = difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=str(target),
            tofile=f"{name} (edited)",
        )
        return "".join(lines)

    def save(self, name: str, to: str | Path | None) -> None:
        """Print the diff; write the prompt file into ``to`` (None: only show the diff)."""
        change = self.diff(name, to or self.prompts_dir)
        print(change or f"{name}: no change")
        if to is None:
            print("(not written: pass a directory, e.g. lab.prompts_dir)")
            return
        target = self._target(name, to)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self._text(name), encoding="utf-8")
        print(f"wrote {target}")

    def _text(self, name: str) -> str:
        if name.startswith("partials/"):
            return self.partials[name.removeprefix("partials/")]
        return self.prompts[name]

    def _target(self, name: str, to: str | Path | None) -> Path:
        return Path(to or self.prompts_dir) / f"{name}.md"

    def close(self) -> None:
        self._world.close()
        self._scratch.cleanup()

    def __enter__(self) -> PromptLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        return json.dumps(
            {
                "ollama_url": self.settings.ollama_url,
                "model": self.settings.model,
                "prompts_dir": str(self.prompts_dir),
                "prompts": sorted(self.prompts),
                "prompt_version": load_prompts(self.prompts_dir).version,
            },
            indent=2,
        )


def _read_dir(directory: Path) -> dict[str, str]:
    if not directory.is_dir():
        return {}
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(directory.glob("*.md"))}


def _write_dir(directory: Path, files: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / f"{name}.md").write_text(text, encoding="utf-8")
