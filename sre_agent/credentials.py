"""Credentials: the API tokens (``SRE_AGENT_API_TOKENS``) as they are parsed and
matched, and the signed web sessions a token buys at the login page. Who may do what
with them is :mod:`sre_agent.auth`."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from typing import TYPE_CHECKING

from itsdangerous import BadSignature, URLSafeTimedSerializer

if TYPE_CHECKING:
    from sre_agent.settings import Settings

#: Shortest API token accepted: a guessable token would open every record.
MIN_TOKEN_CHARS = 16


def parse_api_tokens(text: str) -> tuple[tuple[str, str], ...]:
    """``name=token`` (or bare ``token``, named ``token-N``) entries, separated by commas
    or newlines, as ``(name, token)``; ValueError naming the entry (never the token)."""
    named: list[tuple[str, str]] = []
    entries = [e.strip() for e in re.split(r"[,\n]", text) if e.strip()]
    if not entries:
        raise ValueError("is empty: unset it for no tokens, or set name=token entries")
    for number, entry in enumerate(entries, 1):
        name, sep, token = entry.partition("=")
        name, token = (name.strip(), token.strip()) if sep else (f"token-{number}", name)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}", name):
            raise ValueError(
                f"entry {number}: the name before '=' must be letters, digits, '_.@-' (1-64)"
            )
        if len(token) < MIN_TOKEN_CHARS:
            raise ValueError(
                f"entry {number} ({name}): a token needs at least {MIN_TOKEN_CHARS} characters"
                " (make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        if any(n == name for n, _ in named):
            raise ValueError(f"entry {number}: the name {name!r} is given twice")
        named.append((name, token))
    return tuple(named)


class Tokens:
    """The API tokens, matched in constant time: every token is compared, by digest
    (so neither the match's position nor a token's length shows in the timing)."""

    def __init__(self, settings: Settings) -> None:
        self._named = [
            (name, hashlib.sha256(token.encode()).digest())
            for name, token in settings.named_api_tokens
        ]

    def match(self, given: str) -> str | None:
        """The name of the token ``given`` is, or None."""
        digest = hashlib.sha256(given.encode("utf-8", "replace")).digest()
        found = None
        for name, expected in self._named:
            if hmac.compare_digest(digest, expected):
                found = name
        return found

    def digests(self) -> dict[str, bytes]:
        """Each token's digest by name (what a session's fingerprint is keyed from)."""
        return dict(self._named)


#: Shortest session signing key accepted: a guessable one would let anyone mint sessions.
MIN_SECRET_CHARS = 32


class Sessions:
    """Signed session cookies (itsdangerous): the user, a session id, its CSRF token and
    a fingerprint of the token that logged in, keyed with the signing key (the cookie is
    signed, not encrypted: an unkeyed hash would let its reader guess the token offline).
    Logout revokes the id; the store keeps revocations across restarts (:meth:`restore`)."""

    def __init__(self, settings: Settings, tokens: Tokens) -> None:
        secret = settings.session_secret
        key = secret.get_secret_value() if secret is not None else secrets.token_urlsafe(32)
        self._key = key.encode()
        self._serializer = URLSafeTimedSerializer(key, salt="sre-agent-session")
        self.max_age = int(settings.session_hours * 3600)
        # Fixed once built (key and tokens): not worked out again on every request.
        self._fingerprints = {
            name: hmac.new(self._key, b"session:" + digest, hashlib.sha256).hexdigest()[:32]
            for name, digest in tokens.digests().items()
        }
        self._revoked: dict[str, float] = {}  # session id -> when its cookie expires (epoch)

    def _fingerprint(self, name: str) -> str | None:
        return self._fingerprints.get(name)

    def issue(self, name: str) -> str:
        payload = {
            "u": name,
            "s": secrets.token_urlsafe(12),
            "c": secrets.token_urlsafe(24),
            "t": self._fingerprint(name),
        }
        return self._serializer.dumps(payload)

    def read(self, cookie: str) -> tuple[str, str, str] | None:
        """``(user, csrf token, session id)`` of a valid, unrevoked session of a token
        still configured; None for anything else."""
        try:
            data = self._serializer.loads(cookie, max_age=self.max_age)
        except (BadSignature, ValueError, json.JSONDecodeError):
            return None
        if not isinstance(data, dict):
            return None
        name, csrf, sid = data.get("u"), data.get("c"), data.get("s")
        if not all(isinstance(v, str) for v in (name, csrf, sid)) or sid in self._revoked:
            return None
        fingerprint = self._fingerprint(str(name))
        if fingerprint is None or not hmac.compare_digest(fingerprint, str(data.get("t"))):
            return None  # the token it logged in with is gone or changed
        return str(name), str(csrf), str(sid)

    def revoke(self, sid: str) -> float:
        """End session ``sid`` here; when its cookie would have expired anyway (epoch
        seconds: how long the store must remember it)."""
        now = time.time()
        self._revoked = {s: t for s, t in self._revoked.items() if t > now}  # expired go
        self._revoked[sid] = expires = now + self.max_age
        return expires

    def proxy_csrf(self, user: str) -> str:
        """The CSRF token of a user the auth proxy names (no session of ours to keep one
        in): keyed with the signing key, so only pages we rendered for them carry it."""
        return hmac.new(self._key, b"proxy-csrf:" + user.encode(), hashlib.sha256).hexdigest()

    def restore(self, revoked: dict[str, float]) -> None:
        """Revocations the store kept (from before a restart, or another process)."""
        now = time.time()
        self._revoked |= {s: t for s, t in revoked.items() if t > now}
