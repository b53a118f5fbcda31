"""The authentication settings (``SRE_AGENT_API_TOKENS``, the auth proxy, sessions, chat
limits), a part of :class:`sre_agent.settings.Settings` kept apart to keep both short.
What they mean to a request is :mod:`sre_agent.auth`."""

from __future__ import annotations

import re
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from sre_agent.credentials import MIN_SECRET_CHARS, parse_api_tokens


class AuthSettings(BaseSettings):
    """Who may read records and ask questions; see the README's "Authentication"."""

    model_config = SettingsConfigDict(env_prefix="SRE_AGENT_", extra="ignore")

    #: API tokens for people and programs (``Authorization: Bearer``, the web login):
    #: ``name=token`` entries (or bare tokens), separated by commas or newlines.
    api_tokens: SecretStr | None = None
    #: The client side: the token the CLI sends to SRE_AGENT_URL.
    api_token: SecretStr | None = None
    #: A header naming the user (``X-Forwarded-User``), set by an auth proxy in front;
    #: trusted only on connections from SRE_AGENT_AUTH_PROXY_CIDRS.
    auth_proxy_header: str | None = None
    auth_proxy_cidrs: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = ()
    #: Serve pages and the API to anyone on a non-loopback bind with no auth configured.
    allow_anonymous: bool = False
    #: The key web sessions are signed with; unset: a random one per process (sessions
    #: end at restart, and replicas do not share them).
    session_secret: SecretStr | None = None
    #: Hours a web login lasts.
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    #: Chat questions one user may ask per minute, and chats answered at once (GPU).
    chat_rate_per_minute: int = Field(default=6, ge=1)
    chat_max_concurrent: int = Field(default=2, ge=1)

    @field_validator("api_token", "session_secret")
    @classmethod
    def _check_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        text = value.get_secret_value().strip()
        if not text:
            raise ValueError("is empty: unset it, or set a value")
        return SecretStr(text)

    @field_validator("session_secret")
    @classmethod
    def _check_session_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_CHARS:
            raise ValueError(
                f"needs at least {MIN_SECRET_CHARS} characters: with it anyone could sign"
                " sessions (make one with: python3 -c 'import secrets;"
                " print(secrets.token_urlsafe(48))')"
            )
        return value

    @field_validator("api_tokens")
    @classmethod
    def _check_api_tokens(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        named = parse_api_tokens(value.get_secret_value())  # raises ValueError
        return SecretStr("\n".join(f"{name}={token}" for name, token in named))

    @property
    def named_api_tokens(self) -> tuple[tuple[str, str], ...]:
        """``(name, token)`` for each API token; empty when none is set."""
        if self.api_tokens is None:
            return ()
        return parse_api_tokens(self.api_tokens.get_secret_value())

    @property
    def auth_configured(self) -> bool:
        """Whether anything authenticates people (tokens or a trusted proxy header)."""
        return bool(self.api_tokens) or bool(self.auth_proxy_header)

    @field_validator("auth_proxy_header")
    @classmethod
    def _check_proxy_header(cls, value: str | None) -> str | None:
        value = (value or "").strip().lower() or None
        if value is not None and not re.fullmatch(r"[a-z0-9][a-z0-9-]*", value):
            raise ValueError(f"not a header name: {value[:60]!r} (e.g. X-Forwarded-User)")
        if value in ("authorization", "cookie", "host"):
            raise ValueError(f"{value} cannot name the user: choose e.g. X-Forwarded-User")
        return value

    @field_validator("auth_proxy_cidrs", mode="before")
    @classmethod
    def _split_cidrs(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            nets = []
            for part in value:
                try:
                    nets.append(ip_network(part, strict=False) if isinstance(part, str) else part)
                except ValueError:
                    raise ValueError(f"not an address or CIDR: {str(part)[:60]!r}") from None
            return tuple(nets)
        return value
