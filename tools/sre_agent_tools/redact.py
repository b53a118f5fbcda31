"""Secret scrubbing for everything that leaves a tool: outputs, stored records, logs.

Tool outputs go to a language model and into the database, so a password in
an env var or a bearer token in a log line must not survive. Masking keeps
the *name* of a setting and replaces only its value with ``***REDACTED***``,
so the reader still sees which setting was involved.

Name matching works on the words of an identifier (``DB_PASSWORD``,
``apiKey``, ``x-auth-token``), not on substrings, so ordinary words such as
``monkey``, ``tokenizer`` or ``author`` are left alone. ``key`` counts only as
the last word (``API_KEY``, ``secretKey``), because ``key_count`` or
``keyspace`` name harmless settings.
"""

from __future__ import annotations

import functools
import re
from typing import Any

MASK = "***REDACTED***"

_WORDS = (
    "token",
    "password",
    "passwd",
    "passphrase",
    "secret",
    "credential",
    "credentials",
    "private",
    "auth",
    "authorization",
    "apikey",
    "pwd",
)

#: Whole names that hold secrets though they are no word of the list above.
_EXACT = {"pass", "sig", "client-key-data", "client_key_data"}
#: A secret word followed by one of these names *about* a secret, not the secret itself.
_HARMLESS_LAST = {
    "count",
    "type",
    "method",
    "name",
    "ref",
    "file",
    "path",
    "length",
    "size",
    "enabled",
    "ttl",
    "expiry",
    "expires",
    "format",
    "policy",
    "provider",
    "url",
    "uri",
    "endpoint",
    "mode",
    "version",
    "header",
    "source",
    "kind",
    "timeout",
    "required",
}
#: Values that are flags, not secrets (``auth=ok``, ``private=false``).
_PLAIN_VALUES = {
    "true",
    "false",
    "yes",
    "no",
    "none",
    "null",
    "ok",
    "on",
    "off",
    "enabled",
    "disabled",
    "required",
    "optional",
    "-",
}
_WORD_SPLIT = re.compile(r"[_\-.]+|(?<=[a-z0-9])(?=[A-Z])")
# UPPER_CASE names with the secret glued to a prefix: PGPASSWORD, MYSQL_PWD, REDISPASS.
_GLUED = re.compile(r"[A-Z0-9]*(?:PASSWORD|PASSWD|PASS|PWD|SECRET|TOKEN)(?![A-Za-z])")


def _word(w: str) -> str:
    # lower or UPPER: not glued to a letter before; Title: a camelCase word start.
    return f"(?<![A-Za-z]){w}(?![a-z])|{w.title()}(?![a-z])|(?<![A-Za-z]){w.upper()}(?![A-Za-z])"


_LAST_KEY = r"(?:(?<![A-Za-z])(?:keys?|KEYS?)|Keys?)(?![\w.\-])"

#: Identifiers that look like they hold a secret (search it, don't fullmatch it).
SECRET_NAME_RE = re.compile("|".join([*map(_word, _WORDS), _LAST_KEY]))

_PEM_RE = re.compile(
    r"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----).*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.DOTALL
)
_URL_CREDS_RE = re.compile(
    r"(?<![a-zA-Z0-9+.\-])([a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@]*:)([^\s@/]+)(@)"
)
_JWT_RE = re.compile(r"\beyJ[A-Za-z0-9_\-]+\.eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*")
_TOKEN_RE = re.compile(
    r"\b(?:(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{20,}"  # GitHub
    r"|xox[baprs]-[A-Za-z0-9\-]{8,}"  # Slack
    r"|AIza[0-9A-Za-z\-_]{35})\b"  # Google API key
    r"|(?<=hooks\.slack\.com/services/)[A-Za-z0-9/]+"  # Slack incoming webhook
)
# Any Authorization / Cookie header: the whole value, whatever the scheme (Token, ApiKey, ...).
_HEADER_RE = re.compile(
    r"""(?i)\b((?:proxy-)?authorization|(?:set-)?cookie|x-api-key|x-auth-token)"""
    r"""(["']?[ \t]*[:=][ \t]*)(?!(?:[A-Za-z][\w-]*[ \t]+)?\*\*\*)"""
    r"""((?:[A-Za-z][\w-]*[ \t]+)?)([^\s"']+)"""
)
# CLI and markup forms: curl -u user:pw, <password>pw</password>.
_CLI_RE = re.compile(r"(?<!\S)(-u[ \t]+[^\s:]+:)(\S+)")
_XML_RE = re.compile(
    r"(?i)(<(password|passwd|secret|token|apikey|api_key|credentials?)>)([^<]+)(</\2>)"
)
_BEARER_RE = re.compile(r"\b([Bb]earer\s+)(?!\*\*\*)[A-Za-z0-9\-._~+/]+=*")
# SQL and CLI forms: PASSWORD 'x', IDENTIFIED BY "x", --password x, -p'x'.
_SQL_RE = re.compile(
    r"""(?i)\b((?:password|identified\s+by)\s+)('[^'\n]*'|"[^"\n]*")"""
    r"""|(--(?:password|token|secret|api-key)[ =])(\S+)"""
)
_BASIC_RE = re.compile(r"\b([Bb]asic\s+)[A-Za-z0-9+/]{8,}={0,2}(?![A-Za-z0-9+/=])")
# name, optional closing quote, separator, optional auth scheme, value (quoted or bare).
_PAIR_RE = re.compile(
    r"""(?<![\w.])(?<!\w-)(?P<name>[A-Za-z_][\w.\-]*)(?P<head>["']?[ \t]*[:=][ \t]*"""
    r"""(?:(?:Bearer|Basic|bearer|basic)[ \t]+)?)"""
    r"""(?P<value>"[^"\n]*"|'[^'\n]*'|[^\s,;&"'<>(){}\[\]]+)"""
)


def _mask_pair(m: re.Match[str], depth: int = 0) -> str:
    value = m["value"]
    if not is_secret_name(m["name"]):
        # The value may itself hold pairs (``url=http://x/?token=abc``): scan it too, a few
        # levels deep at most (a 600-jar classpath must not exhaust the stack).
        if depth < 3 and ("=" in value or ":" in value):
            inner = _PAIR_RE.sub(lambda n: _mask_pair(n, depth + 1), value)
            return f"{m['name']}{m['head']}{inner}"
        return m[0]
    bare = value.strip("\"'")
    if MASK in value or not bare or bare.lower() in _PLAIN_VALUES:
        return m[0]
    if m["head"] == ":" and value.isdigit() and len(value) <= 5 and "-" in m["name"]:
        return m[0]  # host:port (``auth-service:8080``), not a secret
    if value[0] in "\"'":
        return f"{m['name']}{m['head']}{value[0]}{MASK}{value[0]}"
    return f"{m['name']}{m['head']}{MASK}"


def redact(text: str) -> str:
    """Mask secrets in free text (logs, event messages, rendered objects)."""
    if not text:
        return text
    text = _PEM_RE.sub(rf"\1\n{MASK}\n\2", text)
    text = _URL_CREDS_RE.sub(rf"\1{MASK}\3", text)
    text = _JWT_RE.sub(MASK, text)
    text = _TOKEN_RE.sub(MASK, text)
    text = _HEADER_RE.sub(rf"\1\2\3{MASK}", text)
    text = _BEARER_RE.sub(rf"\1{MASK}", text)
    text = _BASIC_RE.sub(rf"\1{MASK}", text)
    text = _SQL_RE.sub(lambda m: f"{m.group(1) or m.group(3)}{MASK}", text)
    text = _CLI_RE.sub(rf"\1{MASK}", text)
    text = _XML_RE.sub(rf"\1{MASK}\4", text)
    return _PAIR_RE.sub(_mask_pair, text)


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """True when ``name`` (an env var, header or config key) looks like it holds a secret.

    Cached: logs repeat the same few keys (``level``, ``msg``) thousands of times.
    """
    if name.lower() in _EXACT or _GLUED.fullmatch(name.split("_")[-1] or ""):
        return True
    if SECRET_NAME_RE.search(name) is None:
        return False
    words = [w for w in _WORD_SPLIT.split(name) if w]
    return not (len(words) > 1 and words[-1].lower() in _HARMLESS_LAST)


def redact_value(name: str, value: str) -> str:
    """Mask ``value`` entirely when its name looks secret, else scrub it as free text."""
    if is_secret_name(name):
        return MASK if value else value
    return redact(value)


def redact_obj(obj: Any) -> Any:
    """A copy of ``obj`` (dicts, lists, strings) with secrets masked.

    A value under a secret-looking key is masked wholesale, whatever its type,
    because a nested structure under ``credentials`` is as sensitive as a string.
    """
    if isinstance(obj, dict):
        return {
            k: (
                MASK
                if isinstance(k, str) and is_secret_name(k) and v not in (None, "")
                else redact_obj(v)
            )
            for k, v in obj.items()
        }
    if isinstance(obj, list | tuple):
        return type(obj)(redact_obj(v) for v in obj)
    if isinstance(obj, str):
        return redact(obj)
    return obj
