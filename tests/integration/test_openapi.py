"""``/openapi.json`` documents every route as it answers: a schema for each success and
error answer, the webhook's body, and real answers that validate against them."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import jsonschema
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from sre_agent.app import create_app
from tests.conftest import EXAMPLES
from tests.support.model_scripts import investigator

FIRING = json.loads((EXAMPLES / "group-firing-homepage.json").read_text())


@pytest.fixture
def client(make_settings, ollama):
    ollama.default = investigator
    with TestClient(create_app(make_settings())) as client:
        yield client


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    """The app's routes, those of the routers it includes too."""
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            if route.include_in_schema:  # not the /docs pages
                found.append(route)
        elif hasattr(route, "original_router"):  # an included router (FastAPI >= 0.16x)
            found += _api_routes(route.original_router.routes)
        elif hasattr(route, "routes"):
            found += _api_routes(route.routes)
    return found


def _validate(doc: dict[str, Any], schema: dict[str, Any], value: Any) -> None:
    """``value`` against a schema of the document (its references resolved there)."""
    jsonschema.validate(value, {**schema, "components": doc["components"]})


def _schema(doc: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    content = doc["paths"][path][method]["responses"][str(status)]["content"]
    return content["application/json"]["schema"]  # type: ignore[no-any-return]


def test_every_route_documents_its_answers_and_errors(client):
    doc = client.get("/openapi.json").json()
    routes = {
        (route.path, method.lower())
        for route in _api_routes(client.app.routes)
        for method in route.methods
    }
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert routes == documented and len(routes) == 14
    assert {("/incidents", "get"), ("/incidents/{ident}", "get")} <= routes
    assert {
        ("/investigations/{ident}/feedback", "post"),
        ("/investigations/{ident}/feedback", "get"),
        ("/runbooks/{alertname}", "get"),
        ("/slack/interactions", "post"),
    } <= routes

    for path, method in routes:
        responses = doc["paths"][path][method]["responses"]
        successes = [code for code in responses if code.startswith("2")]
        assert successes, (path, method)
        for code in successes:
            content = responses[code].get("content") or {}
            assert content and all("schema" in c for c in content.values()), (path, code)
        for code, answer in responses.items():
            if code[0] in "45" and (path, code) != ("/readyz", "503"):  # /readyz: its state
                schema = answer["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, code)
    # Every error answer of the API is {"error": "..."}: the document says so.
    assert doc["components"]["schemas"]["ErrorBody"]["required"] == ["error"]
    # Media types beyond JSON, as the routes answer.
    assert "text/plain" in doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    one = doc["paths"]["/investigations/{ident}"]["get"]["responses"]["200"]["content"]
    assert {"application/json", "text/markdown"} <= set(one)
    chat = doc["paths"]["/investigations/{ident}/chat"]["post"]["responses"]["200"]["content"]
    assert {"application/json", "text/event-stream"} <= set(chat)
    # Every reference resolves within the document (no pydantic "#/$defs/..." left).
    names = set(doc["components"]["schemas"])
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in names, ref


def test_the_webhook_body_is_documented_and_real_ones_fit_it(client):
    doc = client.get("/openapi.json").json()
    body = doc["paths"]["/webhook/alert"]["post"]["requestBody"]
    assert body["required"] is True
    schema = body["content"]["application/json"]["schema"]
    assert "alerts" in schema["required"] and "$defs" not in json.dumps(schema)
    for example in sorted(EXAMPLES.glob("group-*.json")):
        _validate(doc, schema, json.loads(example.read_text()))
    with pytest.raises(jsonschema.ValidationError):
        _validate(doc, schema, {"version": "4", "alerts": "not a list"})


def test_real_answers_match_their_documented_schemas(client):
    doc = client.get("/openapi.json").json()
    answer = client.post("/webhook/alert?wait=true", json=FIRING)
    assert answer.status_code == 200
    _validate(doc, _schema(doc, "/webhook/alert", "post", 200), answer.json())
    ident = answer.json()["results"][0]["investigation_id"]

    listing = client.get("/investigations")
    _validate(doc, _schema(doc, "/investigations", "get", 200), listing.json())
    assert listing.json()["count"] >= 1
    record = client.get(f"/investigations/{ident}")
    _validate(doc, _schema(doc, "/investigations/{ident}", "get", 200), record.json())
    assert record.json()["id"] == ident and record.json()["status"] == "completed"
    history = client.get(f"/investigations/{ident}/chat")
    _validate(doc, _schema(doc, "/investigations/{ident}/chat", "get", 200), history.json())
    _validate(doc, _schema(doc, "/healthz", "get", 200), client.get("/healthz").json())
    _validate(doc, _schema(doc, "/readyz", "get", 200), client.get("/readyz").json())

    missing = client.get("/investigations/nope")
    assert missing.status_code == 404
    _validate(doc, _schema(doc, "/investigations/{ident}", "get", 404), missing.json())


def test_a_get_of_the_webhook_says_to_post_an_alertmanager_body(client):
    response = client.get("/webhook/alert")
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]
    error = response.json()["error"]
    assert "POST" in error and "Alertmanager" in error and "application/json" in error
    other = client.delete("/investigations")
    assert other.status_code == 405 and "allowed: GET" in other.json()["error"]


def test_the_api_dependencies_do_not_import_the_app():
    """api/ depends on parts (api/deps.py), never on the app that wires it."""
    code = "import sys, sre_agent.api.deps; print('sre_agent.app' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("page", "assets"), [("/docs", ("swagger-ui-bundle.js", "swagger-ui.css")), ("/redoc", ())]
)
def test_the_docs_pages_load_nothing_from_outside_the_service(client, page, assets):
    """/docs and /redoc work in an air-gapped cluster: every script, style sheet and
    image they name is served here, and they name the service's own OpenAPI document."""
    import re

    html = client.get(page)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    urls = re.findall(
        r"""(?:src|href)\s*=\s*["']([^"']+)["']|(?:url|_url)\s*:\s*["']([^"']+)""", html.text
    )
    named = [a or b for a, b in urls]
    assert named, "the page loads its assets by URL"
    assert all(u.startswith("/") and not u.startswith("//") for u in named), named
    assert "/openapi.json" in html.text
    assert not re.search(r"https?://(?!127\.0\.0\.1|localhost)", html.text.split("<body", 1)[-1])
    for url in named:
        if url == "/openapi.json":
            continue
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 1000, url
    for name in assets:
        assert any(u.endswith(name) for u in named), name
