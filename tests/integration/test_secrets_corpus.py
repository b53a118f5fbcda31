"""The secrets corpus planted everywhere an investigation reads, then one real investigation.

Every form of ``tests/support/secrets_corpus.py`` is put in the fake cluster (a
pod's env values, its current and previous logs, event messages), in the
alert (annotations; label values for the forms a label must lose), and in the
label values of series in the real Prometheus, which the alert's expression
selects; a few more are in the chat question, and in tool arguments the model makes
up. ``sre-agent serve`` runs at DEBUG with a fake Slack; the scripted model
echoes everything it was shown into its analysis and, in chat, calls a tool and
echoes its result. No secret, nor its tail, may then appear in what the model
received, the database file and its WAL, any API answer, the log, Slack or
``/metrics``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from sre_agent_lab.prometheus_world import PrometheusServer, prometheus_available
from tests.conftest import settings_env
from tests.support.fake_kube import FakeKube
from tests.support.fake_ollama import Say, answer_json, call, say
from tests.support.fake_slack import TOKEN as SLACK_TOKEN
from tests.support.fake_slack import FakeSlack
from tests.support.model_scripts import analysis_from, has_evidence
from tests.support.net import wait_for
from tests.support.prometheus import Series, homepage_series, openmetrics_text, timeline
from tests.support.secrets_corpus import CORPUS, Form
from tests.support.service import ServiceProcess

pytestmark = pytest.mark.skipif(not prometheus_available(), reason="prometheus not installed")

NS, POD, CONTAINER = "homepage", "bruno-site-api-7d9f8c6b5-x2x4q", "api"
WEBHOOK_TOKEN = "am-token-" + "q" * 24


def marker(form: Form) -> str:
    """A harmless tag before each planted form, to see which forms reached the model."""
    return f"leakform-{form.name}"


def planted(forms: tuple[Form, ...] = CORPUS, prefix: str = "") -> str:
    return "\n".join(f"{prefix}{marker(f)} {f.text}" for f in forms)


def chunks(size: int) -> Iterator[tuple[Form, ...]]:
    for i in range(0, len(CORPUS), size):
        yield CORPUS[i : i + size]


def plant_cluster(kube: FakeKube) -> None:
    pod = next(p for p in kube.objects[("", "pods")] if p["metadata"]["name"] == POD)
    env = pod["spec"]["containers"][0].setdefault("env", [])
    env += [{"name": f"LEAK_{i}", "value": f.text} for i, f in enumerate(CORPUS)]
    for previous in (True, False):
        key = (NS, POD, CONTAINER, previous)
        kube.logs[key] = "\n".join([planted(), kube.logs.get(key, ""), planted(prefix="ERROR ")])
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    kube.load(
        [
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{POD}.leak{i}", "namespace": NS},
                "involvedObject": {"kind": "Pod", "namespace": NS, "name": POD},
                "reason": "LeakPlanted",
                "type": "Warning",
                "message": planted(group),
                "count": 1,
                "firstTimestamp": now,
                "lastTimestamp": now,
            }
            for i, group in enumerate(chunks(8))
        ]
    )


def corpus_series() -> list[Series]:
    """Series whose label values hold the corpus, a few forms per series."""
    return [
        Series(
            "corpus_leak",
            {"namespace": NS, "pod": POD, "part": str(i), "detail": planted(group)},
            timeline(lambda age: 1.0, span=1800),
        )
        for i, group in enumerate(chunks(6))
    ]


def echoing_model(request: dict[str, Any]) -> Say:
    """An obeying model: it repeats everything it was shown in its analysis."""
    shown = "\n".join(str(m.get("content", "")) for m in request["messages"])
    if not (request.get("format") or has_evidence(request)):
        return call("kubectl_logs", pod=POD, namespace=NS, container=CONTAINER, previous=True)
    analysis = analysis_from(request)
    echoed = [line for line in shown.splitlines() if "leakform-" in line or "REDACTED" in line]
    analysis["impact"] = "\n".join(echoed)[:1500]  # within the fake's 1024 output tokens
    analysis["mitigation"] = [line[:100] for line in echoed[:10]]
    return answer_json(analysis)


#: Secrets the model writes into tool arguments of its own (it only ever saw masked text:
#: these stand for what a model invents or was told some other way).
MADE_UP = tuple(f for f in CORPUS if f.name in ("github-classic", "slack-bot", "aws-key-id"))

MADE_UP_QUERY = (
    'corpus_leak{namespace="homepage"} or up{'
    + ", ".join(f'k{i}="{f.secret}"' for i, f in enumerate(MADE_UP))
    + "}"
)

CHAT_CALLS = (
    ("kubectl_events", {"namespace": NS, "name": POD}),
    ("kubectl_describe", {"kind": "pod", "name": POD, "namespace": NS}),
    ("kubectl_logs", {"pod": POD, "namespace": NS, "container": CONTAINER, "previous": True}),
    ("kubectl_logs", {"pod": POD, "namespace": NS, "container": CONTAINER}),
    ("promql_query", {"query": MADE_UP_QUERY}),  # arguments the model made up
)


def chat_model(request: dict[str, Any]) -> Say:
    """In chat, the obeying model reads every source and repeats what the tools said."""
    tools = [m for m in request["messages"] if m["role"] == "tool"]
    if len(tools) < len(CHAT_CALLS):  # one at a time: each result is seen whole once
        name, args = CHAT_CALLS[len(tools)]
        return call(name, **args)
    return say("Here is what they say:\n" + str(tools[-1]["content"])[:3000])


def question_forms(limit: int = 3800) -> tuple[Form, ...]:
    """Forms that fit in one chat question (its limit is 4,000 characters)."""
    chosen: list[Form] = []
    for form in CORPUS:
        if len(planted((*chosen, form))) <= limit:
            chosen.append(form)
    return tuple(chosen)


def leaks(haystack: str) -> list[str]:
    return [f.name for f in CORPUS if f.secret in haystack or f.tail in haystack]


def strings_in(value: Any) -> Iterator[str]:
    """Every string in decoded JSON (escapes undone), keys too."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            stack += item


def decoded(body: bytes) -> str:
    try:
        return "\n".join(strings_in(json.loads(body)))
    except ValueError:
        return "\n".join(strings_in([json.loads(line) for line in body.splitlines() if line]))


def test_no_planted_secret_gets_out(tmp_path: Path, make_settings, ollama, kube) -> None:
    plant_cluster(kube)
    ollama.default = echoing_model
    text = openmetrics_text([*homepage_series(), *corpus_series()])
    expr = 'corpus_leak{namespace="homepage"} > 0'
    with (
        PrometheusServer(tmp_path / "prom", openmetrics=text, lookback_delta="30m") as prom,
        FakeSlack() as slack,
    ):
        settings = make_settings(
            prometheus_url=prom.url,
            webhook_token=WEBHOOK_TOKEN,
            log_level="DEBUG",
            tool_output_limit=60_000,
            max_model_calls=len(CHAT_CALLS) + 1,  # every chat call made, then the answer
            slack_bot_token=SLACK_TOKEN,
            slack_channel="#alerts",
            slack_api_url=slack.api_url,
        )
        alert = {
            "status": "firing",
            "labels": {
                "alertname": "KubePodCrashLooping",
                "namespace": NS,
                "pod": POD,
                "container": CONTAINER,
                "severity": "critical",
                **{f"leak_{i}": f.text for i, f in enumerate(CORPUS) if f.strong},
            },
            "annotations": {
                "summary": "Pod is crash looping.",
                "description": planted(),
                **{f"leak_{i}": f.text for i, f in enumerate(CORPUS)},
            },
            "startsAt": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": f"http://prometheus:9090/graph?g0.expr={quote(expr)}&g0.tab=1",
            "fingerprint": "c0ffee0123456789",
        }
        body = {
            "version": "4",
            "groupKey": '{}:{alertname="KubePodCrashLooping"}',
            "status": "firing",
            "receiver": "ai-agent-webhook",
            "groupLabels": {"alertname": "KubePodCrashLooping"},
            "commonLabels": {"alertname": "KubePodCrashLooping"},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "truncatedAlerts": 0,
            "alerts": [alert],
        }
        env = settings_env(settings)
        env["SRE_AGENT_SLACK_BOT_TOKEN"] = SLACK_TOKEN  # settings_env writes secrets as "****"
        service = ServiceProcess(env, tmp_path / "service.log")
        with service:
            headers = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
            response = httpx.post(
                f"{service.url}/webhook/alert", json=body, headers=headers, timeout=30
            )
            assert response.status_code == 202, response.text
            ident = response.json()["results"][0]["investigation_id"]
            url = f"{service.url}/investigations/{ident}"
            done = wait_for(
                lambda: httpx.get(url).json()["status"] in ("completed", "degraded"),
                90,
                "the investigation to finish",
            )
            assert done
            wait_for(lambda: slack.messages, 30, "the Slack message")
            ollama.default = chat_model
            question = "what do the logs say? " + planted(question_forms())
            chat = httpx.post(f"{url}/chat", json={"message": question}, timeout=60)
            assert chat.status_code == 200, chat.text
            answers = {
                "list": httpx.get(f"{service.url}/investigations").text,
                "record": httpx.get(url).text,
                "markdown": httpx.get(url, params={"format": "markdown"}).text,
                "chat answer": chat.text,
                "chat history": httpx.get(f"{url}/chat").text,
                "metrics": httpx.get(f"{service.url}/metrics").text,
            }
        record = json.loads(answers["record"])

    seen_by_model = ollama.received_text() + "\n" + "\n".join(map(decoded, ollama.raw_bodies))
    (tmp_path / "model.txt").write_text(seen_by_model)  # for a reader of a failure
    # The corpus really was read: most forms' markers reached the model (each source is
    # capped, so not necessarily all), and the series came back from Prometheus.
    reached = [f.name for f in CORPUS if marker(f) in seen_by_model]
    assert len(reached) >= len(CORPUS) * 0.9, sorted(set(f.name for f in CORPUS) - set(reached))
    for source in ("corpus_leak{", "LEAK_0=", "LeakPlanted", "ERROR leakform-"):
        assert source in seen_by_model, f"{source} never reached the model"
    assert any(c["name"] == "kubectl_logs" for c in record["tool_calls"])
    # The question and the made-up arguments really were there to leak.
    assert marker(question_forms()[-1]) in seen_by_model
    assert len(question_forms()) >= 10
    history = json.loads(answers["chat history"])["messages"]
    made = [c for m in history for c in m.get("tool_calls") or []]
    assert len(made) == len(CHAT_CALLS) and made[-1]["args"]["query"].count("REDACTED") == 3

    database = "".join(
        p.read_bytes().decode("utf-8", "replace")
        for p in settings.database_path.parent.glob(settings.database_path.name + "*")
    )
    slack_text = "\n".join(json.dumps(r["payload"]) for r in slack.requests) + "\n".join(
        "\n".join(strings_in(r["payload"])) for r in slack.requests
    )
    where = {
        "model": seen_by_model,
        "database (and WAL)": database,
        "log": service.log(),
        "slack": slack_text,
        **{f"API {k}": v for k, v in answers.items()},
        **{
            f"API {k} (decoded)": "\n".join(strings_in(json.loads(v)))
            for k, v in answers.items()
            if k != "markdown" and k != "metrics"
        },
    }
    found = {place: names for place, text in where.items() if (names := leaks(text))}
    assert not found, f"secrets got out: {found}"
    assert " DEBUG " in where["log"]  # the log really was at DEBUG
