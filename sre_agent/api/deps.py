"""Dependency aliases for the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from sre_agent.app import Services


def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(get_services)]


def require_json(request: Request) -> None:
    """A JSON body must say so. A browser can send text/plain, a form or no type at all
    cross-origin without asking first (no CORS preflight); none of those is ours."""
    given = request.headers.get("content-type", "")
    if given.split(";", 1)[0].strip().lower() != "application/json":
        shown = given[:60] or "none"
        raise HTTPException(415, f"Content-Type must be application/json (got {shown})")
