"""schemathesis over our own OpenAPI document, against a real ``sre-agent serve``:
whatever it generates from the declared schemas (the webhook's body included,
valid and not), no 5xx, every 4xx is JSON with an ``error`` message, and every answer
is one the document declares (status, media type, schema)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import EXAMPLES
from tests.support.fake_ollama import FakeOllama
from tests.support.model_scripts import investigator
from tests.support.net import free_port
from tests.support.service import ServiceProcess

CONFORMANCE = [status_code_conformance, content_type_conformance, response_schema_conformance]
FIRING = json.loads((EXAMPLES / "group-firing-homepage.json").read_text())


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    with FakeOllama() as ollama:
        ollama.default = investigator
        env = {
            "SRE_AGENT_DATABASE_URL": f"sqlite:///{tmp / 'api.db'}",
            "SRE_AGENT_OLLAMA_URL": ollama.url,
            "SRE_AGENT_PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}",
            "SRE_AGENT_KUBECONFIG": str(tmp / "none"),
            "SRE_AGENT_BACKEND_TIMEOUT": "1",
        }
        with ServiceProcess(env, tmp / "service.log") as svc:
            # Something to read, so the id routes meet real records too.
            import httpx

            httpx.post(f"{svc.url}/webhook/alert?wait=true", json=FIRING, timeout=60)
            yield svc


def _check(case: schemathesis.Case) -> None:
    if case.path.endswith("/chat") and case.method == "POST":
        case.headers = {**(case.headers or {}), "Accept": "application/json"}
    response = case.call(timeout=30)
    where = f"{case.method} {case.formatted_path}"
    assert response.status_code < 500, f"{where}: {response.text[:300]}"
    if 400 <= response.status_code < 500:
        body = response.json()
        assert isinstance(body.get("error"), str) and body["error"].strip(), where
    # The answer is one the document declares: its status, media type and schema.
    case.validate_response(response, checks=CONFORMANCE)


def test_generated_requests_get_no_5xx_and_json_errors(service: ServiceProcess) -> None:
    # (schemathesis' own pytest plugin does not load under this pytest; its strategies do.)
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {op.label for op in operations}
    assert {"POST /webhook/alert", "GET /investigations", "GET /investigations/{ident}"} <= labels
    for operation in operations:
        run = settings(
            max_examples=40,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )(given(case=operation.as_strategy())(_check))
        run()
