"""An analysis that repeats our instructions is refused; one that says what was found is not.

The echoes below are what a real small model (SmolLM2-135M on llama.cpp) answered, or
light edits of them; the instructions are the repository's own prompts.
"""

from __future__ import annotations

import pytest

from sre_agent.analysis import Analysis, analysis_schema
from sre_agent.echoes import EchoError, Instructions, check_echo
from sre_agent.prompts import load_prompts

FACTS = """Alert: KubePodCrashLooping (severity warning) Labels: namespace="lab-oom",
pod="report-worker-7b9c6d5f4-hx2lm", container="worker"
### [E2] kubectl_describe(pod report-worker-7b9c6d5f4-hx2lm)
Last State: Terminated Reason: OOMKilled Exit Code: 137
Limits: memory: 512Mi"""

GOOD = {
    "summary": "report-worker in lab-oom is crash-looping: each start is OOMKilled.",
    "root_causes": [
        {
            "cause": "The worker container needs more than its 512Mi memory limit.",
            "evidence": ["[E2] Last State: Terminated Reason: OOMKilled Exit Code: 137", "..."],
            "evidence_ids": ["E2"],
            "confidence": "high",
        }
    ],
    "impact": "Reports are not built.",
    "mitigation": ["Raise the memory limit of report-worker", "..."],
}


@pytest.fixture(scope="module")
def told() -> Instructions:
    return Instructions.of(load_prompts().instructions(), analysis_schema())


def analysis(**changes: object) -> Analysis:
    return Analysis.model_validate({**GOOD, **changes})


def test_an_analysis_of_the_evidence_passes_and_loses_its_placeholders(told):
    checked = analysis()
    check_echo(checked, told, FACTS)
    assert checked.root_causes[0].evidence == [GOOD["root_causes"][0]["evidence"][0]]
    assert checked.mitigation == ["Raise the memory limit of report-worker"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("summary", "2-3 sentences: what is happening and since when"),
        ("summary", "2-3 sentences - what is happening, and since when."),  # lightly edited
        ("summary", "Two or three sentences: what is happening."),  # the schema's description
        ("impact", "who or what is affected, and how badly"),
    ],
)
def test_a_field_copied_from_the_instructions_is_refused(told, field, value):
    with pytest.raises(EchoError) as refused:
        check_echo(analysis(**{field: value}), told, FACTS)
    assert field in str(refused.value)
    assert "instructions" in str(refused.value)


def test_the_small_models_echo_is_refused_naming_its_fields(told):
    echo = {
        "summary": "2-3 sentences: what is happening and since when",
        "root_causes": [
            {
                "cause": "the most likely cause, one sentence",
                "evidence": ["[E3] a line quoted from evidence block E3 that supports it"],
                "evidence_ids": ["E3"],
                "confidence": "high",
            }
        ],
        "impact": "who or what is affected, and how badly",
        "mitigation": ["concrete step 1", "concrete step 2"],
    }
    with pytest.raises(EchoError) as refused:
        check_echo(Analysis.model_validate(echo), told, FACTS)
    message = str(refused.value)
    assert "summary" in message and "root_causes[0].cause" in message


def test_an_answer_that_names_nothing_shown_is_refused(told):
    vague = analysis(
        summary="Something is wrong with the service.",
        root_causes=[{"cause": "An error occurred in the application.", "confidence": "low"}],
        impact="",
    )
    with pytest.raises(EchoError, match="names nothing from the alert or the evidence"):
        check_echo(vague, told, FACTS)


def test_words_of_the_instructions_alone_do_not_count_as_facts(told):
    # "pod", "namespace", "evidence", "container" are in the prompts: not facts by themselves.
    generic = analysis(
        summary="The pod in the namespace is failing.",
        root_causes=[{"cause": "The container keeps failing, per the evidence."}],
        impact="",
    )
    with pytest.raises(EchoError, match="names nothing"):
        check_echo(generic, told, FACTS)


def test_one_fact_is_enough(told):
    terse = analysis(summary="The pod is OOMKilled.", root_causes=[{"cause": "Memory."}], impact="")
    check_echo(terse, told, FACTS)


TARGET_DOWN = """Alert: TargetDown (severity warning) Labels: job="api", namespace="shop",
instance="10.0.3.7:8080"
### [E1] promql_query(up{job="api"}) => 0"""


@pytest.mark.parametrize(
    "summary",
    [
        "The api job's only target is down.",  # a three-letter name is a fact
        "10.0.3.7 stopped answering scrapes.",  # a part of instance="10.0.3.7:8080"
        "Port 8080 refuses connections.",
    ],
)
def test_short_names_and_parts_of_addresses_are_facts(told, summary):
    checked = analysis(
        summary=summary,
        root_causes=[{"cause": "The scrape target stopped answering."}],
        impact="",
    )
    check_echo(checked, told, TARGET_DOWN)


@pytest.mark.parametrize("impact", ["High", "Low", "Medium", "Runbook", "Summary"])
def test_one_word_is_an_answer_not_a_copy(told, impact):
    check_echo(analysis(impact=impact), told, FACTS)


def test_generic_steps_a_real_model_writes_are_not_echoes(told):
    checked = analysis(
        mitigation=["Check the logs", "Check the container logs", "Roll back the deployment"],
        follow_up_queries=[
            "up",
            'rate(container_cpu_usage_seconds_total{namespace="lab-oom"}[5m])',
        ],
        follow_up_commands=["kubectl -n lab-oom describe pod report-worker-7b9c6d5f4-hx2lm"],
    )
    check_echo(checked, told, FACTS)


def test_a_long_answer_is_checked_quickly(told):
    import time

    long = analysis(impact=" ".join(f"detail {n} of the OOMKilled worker" for n in range(700)))
    started = time.perf_counter()
    check_echo(long, told, FACTS)
    assert time.perf_counter() - started < 0.2  # it runs on the event loop


def test_an_instruction_followed_by_a_ramble_is_an_echo(told):
    # SmolLM2 on the tools' path: the format's summary, then a loop of its own.
    ramble = "2-3 sentences: what is happening and how badly, and what is the solution, " * 3
    with pytest.raises(EchoError, match="summary"):
        check_echo(analysis(summary=ramble), told, FACTS)


def test_a_summary_that_starts_like_a_question_is_not_an_echo(told):
    check_echo(analysis(summary="What is happening: report-worker is OOMKilled."), told, FACTS)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cause", "The most likely cause is that the worker exceeds its 512Mi memory limit."),
        ("cause", "The most likely cause appears to be OOMKilled."),
        ("impact", "Who or what is affected: report-worker builds no reports."),
        ("evidence", "Alert expression (PromQL): kube_pod_container_status_waiting_reason"),
        ("evidence", "Evidence already gathered shows OOMKilled"),
        ("evidence", "[E2] status: error"),
        ("command", "Read-only commands worth running: kubectl top pod -n lab-oom"),
    ],
)
def test_what_a_7b_model_writes_starting_like_an_instruction_passes(told, field, value):
    cause = {"cause": "Memory limit too small for report-worker.", "evidence": []}
    changes: dict[str, object] = {}
    if field == "cause":
        cause["cause"] = value
    elif field == "evidence":
        cause["evidence"] = [value]
    elif field == "impact":
        changes["impact"] = value
    else:
        changes["follow_up_commands"] = [value]
    check_echo(analysis(root_causes=[cause], **changes), told, FACTS)
