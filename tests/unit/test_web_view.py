"""What the pages work out before a template sees it: which URLs may be links, whether a
request is a browser's, ages, the chat history as the panel shows it; and that nothing
the pages ship asks another host for anything."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sre_agent.web import HERE, render_row
from sre_agent.web.pages import prefers_html, turns
from sre_agent.web.view import age, alert_links, one_line, safe_url, source_gaps
from tests.support.records import investigation


@pytest.mark.parametrize(
    "url",
    [
        "http://prometheus:9090/graph?g0.expr=up",
        "https://runbooks.example/KubePodCrashLooping",
        "HTTPS://Example.org/x",
    ],
)
def test_web_urls_are_links(url):
    assert safe_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox",
        "//evil.example/x",
        "/relative/path",
        "http://",
        "https:///nohost",
        "http://exa mple.com/",
        "http://[::1",
        "",
        None,
        42,
    ],
)
def test_anything_else_is_not(url):
    assert safe_url(url) is None


def test_an_annotation_with_a_script_url_is_shown_not_linked():
    record = investigation(
        {
            "labels": {"alertname": "A"},
            "annotations": {"runbook_url": "javascript:alert(1)"},
            "generatorURL": "https://prometheus.example/graph?g0.expr=up",
        }
    )
    links = {link.label: link for link in alert_links(record)}
    assert links["Runbook"].href is None and links["Runbook"].text == "javascript:alert(1)"
    assert links["Alert source"].href == "https://prometheus.example/graph?g0.expr=up"


def _backend(name: str, state: str, why: str | None = None) -> dict[str, Any]:
    return {"name": name, "state": state, "why": why, "answered": int(state == "answered")}


def test_the_sources_warning_opens_the_page_in_a_few_words():
    why = "ConnectError: All connection attempts failed (http://127.0.0.1:9/api/v1/query)"
    partial = {
        "backends": {
            "prometheus": _backend("Prometheus", "failed", why),
            "kubernetes": _backend("Kubernetes", "answered"),
            "logs": _backend("Logs", "answered"),
        }
    }
    assert source_gaps(investigation(sources=partial)) == (
        "⚠ Partial evidence: Prometheus did not answer"
    )
    none = {
        "backends": {
            "prometheus": _backend("Prometheus", "not configured"),
            "kubernetes": _backend("Kubernetes", "failed", "403 Forbidden"),
            "logs": _backend("Logs", "failed", "403 Forbidden"),
        }
    }
    assert source_gaps(investigation(sources=none)) == (
        "⚠ Prometheus not configured, Kubernetes did not answer: the alert's text alone"
    )
    everything = {"backends": {"kubernetes": _backend("Kubernetes", "answered")}}
    assert source_gaps(investigation(sources=everything)) is None
    assert source_gaps(investigation()) is None


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),  # Firefox
        (
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
            "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
            True,
        ),  # Chromium
        ("text/html", True),
        ("text/*", True),
        ("text/html;q=0.9, application/json;q=0.8", True),
        ("*/*", False),  # curl
        ("application/json", False),
        ("application/json, text/html;q=0.5", False),
        ("text/html;q=0.5, application/json", False),
        ("", False),
        (None, False),
        ("text/html;q=banana", False),
        (";;,,", False),
    ],
)
def test_a_browser_is_one_that_prefers_html(accept, html):
    assert prefers_html(accept) is html


def test_ages_read_as_a_person_says_them():
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    before = {
        timedelta(seconds=5): "5 s",
        timedelta(minutes=3, seconds=59): "3 min",
        timedelta(hours=2): "2 h",
        timedelta(days=3, hours=1): "3 d",
        timedelta(seconds=-30): "0 s",  # a clock ahead of ours
    }
    for ago, said in before.items():
        assert age((now - ago).isoformat(), now) == said
    assert age("2026-12-02T11:59:00Z", now) == "1 min"
    assert age("not a time", now) == "?"
    assert age(None, now) == "?"


def test_the_one_line_summary_is_one_short_line():
    long = "word " * 100
    record = investigation({"labels": {"alertname": "A"}}, {"summary": f"Line one.\n\n{long}"})
    line = one_line(record)
    assert "\n" not in line and len(line) <= 160 and line.endswith("…")
    failed = investigation({"labels": {"alertname": "A"}}, status="failed", reason="no model")
    assert one_line(failed) == "no model"


def test_a_row_escapes_what_the_alert_says():
    record = investigation(
        {"labels": {"alertname": '<img src=x onerror="alert(1)">', "namespace": "a&b"}},
        {"summary": "<script>alert(1)</script>"},
    )
    row = render_row(record)
    assert "<img" not in row and "<script>" not in row
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in row and "a&amp;b" in row
    assert row.startswith('<tr id="inv-i1" data-status="completed"')


def test_the_chat_history_shows_each_answer_once_with_its_tool_calls():
    history = [
        {"role": "user", "content": "is the node fine?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"name": "kubectl_describe", "args": {"kind": "node", "name": "w1"}}],
        },
        {"role": "tool", "content": "status: ok\n...", "name": "kubectl_describe"},
        {"role": "assistant", "content": "The node is Ready."},
        {"role": "user", "content": "thanks"},
    ]
    shown = turns(history)
    assert [(t.role, t.text) for t in shown] == [
        ("user", "is the node fine?"),
        ("assistant", "The node is Ready."),
        ("user", "thanks"),
    ]
    assert shown[1].tools == [("kubectl_describe", '{"kind": "node", "name": "w1"}')]


SHIPPED = sorted(
    p for p in (HERE / "templates").rglob("*") if p.is_file() and p.suffix in (".html",)
) + sorted(p for p in (HERE / "static").rglob("*") if p.is_file())


def test_the_pages_ship_templates_and_assets():
    names = {p.name for p in SHIPPED}
    assert {"base.html", "list.html", "investigation.html", "login.html", "error.html"} <= names
    assert {"app.css", "app.js"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_nothing_shipped_asks_another_host(path):
    text = path.read_text()
    assert not re.findall(r"https?://", text, re.IGNORECASE), path
    assert not re.search(r"""(src|href|action)\s*=\s*["']?//""", text), path  # //cdn...
    assert not re.search(r"@import|url\(\s*['\"]?(?!data:)", text), path  # fonts, images
    assert "style=" not in text, path  # the CSP admits no inline style
    assert not re.search(r"\son[a-z]+\s*=", text), path  # nor inline handlers
    if path.suffix == ".html":
        assert not re.search(r"<script(?![^>]*\ssrc=)", text), path  # nor inline script
        assert "|safe" not in text and "autoescape false" not in text, path


def test_the_pages_follow_the_system_colour_scheme_and_fit_a_phone():
    css = (HERE / "static" / "app.css").read_text()
    assert "@media (prefers-color-scheme: dark)" in css
    assert re.search(r"@media \(max-width: \d+px\)", css)
    base = (HERE / "templates" / "base.html").read_text()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in base
