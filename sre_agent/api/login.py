"""The web login: ``GET /login`` (the form), ``POST /login`` (a token in, a session
cookie out) and ``POST /logout``. The session itself is :class:`sre_agent.auth.Sessions`.

The login form is protected from cross-site posts by a double-submit token: a random
value in a SameSite=Strict cookie scoped to /login, echoed in a hidden field."""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from sre_agent.api.deps import SettingsDep
from sre_agent.auth import SESSION_COOKIE, Sessions, Tokens, UserDep, record_failure, safe_next
from sre_agent.settings import Settings
from sre_agent.web import page

router = APIRouter(include_in_schema=False)
log = logging.getLogger(__name__)

LOGIN_COOKIE = "sre_agent_login"


def _secure(request: Request, settings: Settings) -> bool:
    """Secure cookies when users reach us over HTTPS: directly, or through a proxy that
    ends TLS for the public URL (its Host). Not over a port-forward to plain http, where
    the browser would never send a Secure cookie back and no login could succeed."""
    if request.url.scheme == "https":
        return True
    public = urlsplit(settings.public_url or "")
    return public.scheme == "https" and public.netloc == request.headers.get("host", "")


def _form(
    request: Request, settings: Settings, error: str | None, next_: str, status: int
) -> HTMLResponse:
    login_csrf = secrets.token_urlsafe(24)
    response = page(
        request,
        "login.html",
        {
            "error": error,
            "next": next_,
            "login_csrf": login_csrf,
            "configured": bool(settings.api_tokens),
        },
        status_code=status,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        login_csrf,
        max_age=3600,
        path="/login",
        httponly=True,
        samesite="strict",
        secure=_secure(request, settings),
    )
    return response


@router.get("/login", response_model=None)
async def login_form(request: Request, settings: SettingsDep, next: str | None = None) -> Response:
    target = safe_next(next)
    user = getattr(request.state, "user", None)
    if user is not None and user.via != "anonymous":
        return RedirectResponse(target, status_code=303)  # already in
    if not settings.auth_configured:
        return RedirectResponse(target, status_code=303)  # nothing to log in to
    return _form(request, settings, None, target, 200)


@router.post("/login", response_model=None)
async def login(request: Request, settings: SettingsDep) -> Response:
    form = await request.form()
    target = safe_next(str(form.get("next") or ""))
    given_csrf = str(form.get("csrf") or "")
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(given_csrf.encode(), expected.encode()):
        record_failure(request.scope, "csrf")
        return _form(request, settings, "The form expired: please try again.", target, 403)
    sessions: Sessions = request.app.state.sessions
    tokens: Tokens = request.app.state.tokens
    name = tokens.match(str(form.get("token") or "").strip())
    if name is None:
        record_failure(request.scope, "bad_login")
        return _form(request, settings, "That token is not valid.", target, 401)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        sessions.issue(name),
        max_age=sessions.max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(request, settings),
    )
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout", response_model=None)
async def logout(request: Request, user: UserDep) -> Response:
    if user.via == "session":
        form = await request.form()
        given = str(form.get("csrf") or "")
        if not user.csrf or not hmac.compare_digest(given.encode(), user.csrf.encode()):
            record_failure(request.scope, "csrf")
            return page(request, "login.html", _expired(), status_code=403)
        if user.session is not None:  # the session the middleware accepted, exactly
            expires = request.app.state.sessions.revoke(user.session)
            await _remember_revocation(request, user.session, expires)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _expired() -> dict[str, object]:
    return {
        "error": "Logging out needs the page's form: reload and try again.",
        "next": "/",
        "login_csrf": "",
        "configured": True,
    }


async def _remember_revocation(request: Request, session: str, expires: float) -> None:
    """Keep the revocation in the store, so a restart does not revive the cookie; if the
    store fails, the session still ends in this process (and the failure is logged)."""
    store = request.app.state.services.store
    try:
        await asyncio.to_thread(store.revoke_session, session, expires)
    except Exception:  # noqa: BLE001 - logout must still log out
        log.exception("logout: could not store the ended session; it ends in this process")
