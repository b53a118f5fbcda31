"""The web pages: server-rendered Jinja2 templates and a little JavaScript of our own,
all shipped in the wheel (``templates/``, ``static/``); no CDN, no build step.

:func:`page` renders a template with what every page needs (the user, the CSRF token)
and the headers every page gets (a Content-Security-Policy that admits only this
service, no framing, no caching of records)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from sre_agent.models import Investigation
from sre_agent.web import view

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
#: Where the static assets are served (open: they hold nothing of the records).
STATIC_URL = "/static/web"

templates = Jinja2Templates(directory=HERE / "templates")
templates.env.trim_blocks = templates.env.lstrip_blocks = True
view.register(templates.env)

#: Nothing but this service: no inline script, no CDN, no other host, no framing.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none';"
    " form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def page(
    request: Request, name: str, context: dict[str, Any] | None = None, status_code: int = 200
) -> HTMLResponse:
    """``name`` rendered for ``request``: the template sees ``user`` (or None), ``csrf``
    (the session's token for forms and fetches, or "") and ``static`` (the assets' URL)."""
    user = getattr(request.state, "user", None)
    base = {"user": user, "csrf": getattr(user, "csrf", None) or "", "static": STATIC_URL}
    return templates.TemplateResponse(
        request, name, base | (context or {}), status_code=status_code, headers=PAGE_HEADERS
    )


def render_row(record: Investigation) -> str:
    """The list's row of ``record`` (the list page and the live feed send the same)."""
    return templates.get_template("_row.html").render(r=record)


def error_page(request: Request, status_code: int, title: str, message: str) -> HTMLResponse:
    """A readable error for a browser (the API answers ``{"error"}`` on the same path)."""
    context = {"title": title, "message": message, "status_code": status_code}
    return page(request, "error.html", context, status_code=status_code)
