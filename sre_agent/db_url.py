"""The database URL's two questions, answered without importing a database driver
(every command reads the settings; only Postgres needs psycopg)."""

from __future__ import annotations

import re


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def shown_url(url: str) -> str:
    """The URL without its password, for messages and logs: the password of
    ``scheme://user:password@host`` (up to the last ``@``, whatever it holds) and of a
    ``password=`` parameter."""
    scheme = url.find("://")
    at = url.rfind("@")
    if scheme != -1 and at > scheme:
        colon = url.find(":", scheme + 3, at)
        if colon != -1:
            url = url[: colon + 1] + "***" + url[at:]
    return re.sub(r"(?i)(\bpassword=)[^&\s]*", r"\1***", url)
