"""The prompt-lab notebook runs top to bottom (against the scripted Ollama and the
scenario world), and is committed without outputs."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from sre_agent_lab.prometheus_world import prometheus_available
from tests.support.fake_ollama import DEFAULT_MODEL, FakeOllama
from tests.support.model_scripts import investigator

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "prompt_lab.ipynb"


def test_the_committed_notebook_has_no_outputs():
    """Outputs stay out of git: clear them before committing (Jupyter: "Clear All Outputs",
    or the command in docs/eval-and-prompt-lab.md)."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    dirty = [
        n
        for n, cell in enumerate(notebook.cells, 1)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, f"{NOTEBOOK.name}: cells {dirty} have outputs or execution counts"


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_the_notebook_runs_two_prompt_versions_and_saves_the_edit(tmp_path, monkeypatch):
    if not prometheus_available():
        pytest.skip("prometheus/promtool not installed")
    save_to = tmp_path / "saved-prompts"
    # The kernel inherits this environment; a developer's own Jupyter and IPython
    # settings (a "python3" kernel elsewhere) stay out of it.
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("PROMPT_LAB_SAVE_TO", str(save_to))
    monkeypatch.setenv("SRE_AGENT_MODEL", DEFAULT_MODEL)
    monkeypatch.setenv("PROMPT_LAB_REPEAT", "2")
    monkeypatch.setenv("PROMPT_LAB_SCENARIOS", "crashloop-oomkilled")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    with FakeOllama() as ollama:
        ollama.default = investigator
        monkeypatch.setenv("SRE_AGENT_OLLAMA_URL", ollama.url)
        NotebookClient(
            notebook,
            timeout=120,
            kernel_name="python3",
            resources={"metadata": {"path": str(NOTEBOOK.parent)}},
        ).execute()
        assert ollama.chat_count >= 2
    text = "\n".join(
        str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    versions = re.findall(r"run \d: prompt version ([0-9a-f]{12})", text)
    # the two prompt versions; then the edited one twice more, and one other scenario
    assert len(versions) == 5 and versions[0] != versions[1], text
    assert versions[1] == versions[2] == versions[3] == versions[4]
    assert text.count("## Likely root cause") == 2  # both runs' analyses
    (compare,) = [c for c in notebook.cells if c.source.strip() == "lab.compare()"]
    html = compare.outputs[0]["data"]["text/html"]
    assert all(v in html for v in versions[:2])
    # The exact prompt of the first call: the system prompt and the alert it was about.
    (sent,) = [c for c in notebook.cells if c.source.startswith("for message in first.requests")]
    shown = "".join(str(o.get("text", "")) for o in sent.outputs)
    assert "----- system" in shown and "----- human" in shown
    assert "crashloop" in shown.lower() or "CrashLoop" in shown
    assert re.findall(r"repeat \d: completed", text) == [
        "repeat 1: completed",
        "repeat 2: completed",
    ]
    assert "crashloop-oomkilled: completed" in text
    saved = (save_to / "system.md").read_text()
    assert "Name the failing object" in saved
    assert "+Name the failing object" in text  # the diff was shown
