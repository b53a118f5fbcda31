"""Secret scrubbing for everything untrusted where it enters: the alert, tool outputs, logs.

Tool outputs go to a language model and into the database, so a password in
an env var or a bearer token in a log line must not survive. Masking keeps
the *name* of a setting and replaces only its value with ``***REDACTED***``,
so the reader still sees which setting was involved. The same single pass
also neutralises chat-template control tokens (``<|im_start|>``, ``[INST]``,
``</s>``, ...) by putting a zero-width space after their first character, so
alert text and logs cannot open a turn in the model's prompt.

Which names are secret is :mod:`sre_agent_tools.secret_names` (words of an
identifier, not substrings: ``DB_PASSWORD`` yes, ``tokenizer`` no).

Cost: linear in the input. Every pattern (:mod:`sre_agent_tools.secret_rules`,
where the choice of detect-secrets' rules is recorded) is possessive or
bounded and anchored at token starts, and text is handled in pieces of at most
:data:`PIECE_CHARS`, cut at a line break (or a space, or a comma) so no secret
is split; private-key blocks are found over the whole text first. Measured by
``scripts/bench_redact.py`` on this shared 2-core machine: 5.6 MB/s on ordinary
logs (JSON, klog, access logs, stack traces), 1.9-7.5 MB/s on adversarial input,
1 MiB taking 15-17x the time of 64 KiB (linear: 16); ``eyJa-`` x 50 KiB took
0.94 s before (quadratic), now 8 ms. The name memo is bounded in bytes
(:data:`NAME_CACHE_MAX_BYTES`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from sre_agent_tools import secret_rules as rules
from sre_agent_tools.secret_names import (
    NAME_CACHE_KEY_CHARS,
    NAME_CACHE_MAX_BYTES,
    PLAIN_VALUES,
    SECRET_NAME_RE,
    is_secret_name,
    name_cache_info,
)

__all__ = [
    "MASK",
    "NAME_CACHE_KEY_CHARS",
    "NAME_CACHE_MAX_BYTES",
    "PIECE_CHARS",
    "SECRET_NAME_RE",
    "is_secret_name",
    "name_cache_info",
    "redact",
    "redact_label_value",
    "redact_obj",
    "redact_value",
]

MASK = "***REDACTED***"
#: Text longer than this is redacted in pieces of at most this many characters.
PIECE_CHARS = 64 * 1024
_MAX_DEPTH = 64  # redact_obj: deeper structures are not data a tool returns


# --- the pass --------------------------------------------------------------------------------
def _maskable(value: str) -> bool:
    bare = value.strip("\"'`")
    return bool(bare) and MASK not in value and not bare.startswith("***")


def _mask_group(m: re.Match[str], group: str = "value", quotes: bool = True) -> str:
    """The match with one group's text replaced by the mask, quotes kept unless told."""
    value = m[group]
    if value is None or not _maskable(value):
        return m[0]
    start, end = m.start(group) - m.start(), m.end(group) - m.start()
    closed = value[0] in "\"'`" and len(value) > 1 and value[-1] == value[0]
    q = value[0] if quotes and closed else ""
    return f"{m[0][:start]}{q}{MASK}{q}{m[0][end:]}"


def _mask_header(m: re.Match[str]) -> str:
    scheme = m["scheme"]
    if scheme is None or scheme.lower() in rules.AUTH_SCHEMES:
        return _mask_group(m)
    if "authorization" in m["name"].lower():
        return m[0][: m.start("scheme") - m.start()] + MASK  # an unknown scheme: both words go
    return _mask_group(m, "scheme")  # no scheme for these headers: the first word is the secret


def _mask_token(m: re.Match[str]) -> str:
    token = m[0]
    if token.startswith("sk-") and not any(c.isdigit() for c in token):
        return token  # sk-learn-style words, not keys
    return MASK


def _mask_url(m: re.Match[str]) -> str:
    if m["pw"] is not None:
        return _mask_group(m, "pw")
    if len(m["user"]) >= 16 and MASK not in m["user"]:
        return _mask_group(m, "user")  # a key as the user: Sentry DSNs, git tokens
    return m[0]


def _mask_basic(m: re.Match[str]) -> str:
    v = m["value"]
    encoded = any(c.isdigit() or c in "+/=" for c in v) or any(c.isupper() for c in v[1:])
    return _mask_group(m) if encoded else m[0]  # "Basic authentication" is a phrase


def _mask_flag(m: re.Match[str]) -> str:
    if not is_secret_name(m["flag"]) or m["value"].strip("\"'").lower() in PLAIN_VALUES:
        return m[0]
    return _mask_group(m)


def _mask_commands(text: str) -> str:
    """The short password flag of each command, read up to the line's end or the next command."""
    hits = list(rules.COMMAND_RE.finditer(text))
    out: list[str] = []
    pos = 0
    for k, m in enumerate(hits):
        line_end = text.find("\n", m.end(), m.end() + 1024)
        stop = min(
            m.end() + 1024 if line_end == -1 else line_end,
            hits[k + 1].start() if k + 1 < len(hits) else len(text),
        )
        flag = rules.SHORT_FLAG_RE["a" if m["cmd"] == "redis-cli" else "p"]
        out += [text[pos : m.end()], flag.sub(_mask_group, text[m.end() : stop])]
        pos = stop
    out.append(text[pos:])
    return "".join(out)


def _mask_env(m: re.Match[str]) -> str:
    return _mask_group(m) if is_secret_name(m["env"]) else m[0]


def _mask_prose(m: re.Match[str]) -> str:
    word = m["value"].strip("\"'`").rstrip(".,;:!?)").lower()
    if not word or word in rules.PROSE_STOPWORDS or not _maskable(m["value"]):
        return m[0]
    value = m["value"]
    trail = len(value) - len(value.rstrip(".,;:!?)"))
    return m[0][: m.start("value") - m.start()] + MASK + (value[-trail:] if trail else "")


def _mask_blob(m: re.Match[str]) -> str:
    return MASK if rules.looks_random(m[0]) else m[0]


def _closing_quote(text: str, start: int, quote: str) -> int:
    """Index of the quote closing a value opened before ``start`` on the same line, or -1."""
    limit = min(len(text), start + 4096)
    line_end = text.find("\n", start, limit)
    limit = limit if line_end == -1 else line_end
    i = start
    while (i := text.find(quote, i, limit)) != -1:
        if len(quote) > 1 or text[i - 1] != "\\":
            return i
        i += 1
    return -1


_BLOCK_RE = re.compile(r"[|>][-+]?[0-9]?[ \t]*+(?:#[^\n]*+)?\n")


def _next_word(text: str, i: int) -> re.Match[str] | None:
    return rules.PAIR_BARE_VALUE_RE.match(text, rules.skip_blanks(text, i))


def _block_scalar(text: str, key: int, start: int) -> tuple[int, int, str] | None:
    """A YAML block (``password: |`` then indented lines): (start, end, indent) of its lines."""
    indicator = _BLOCK_RE.match(text, start)
    if indicator is None:
        return None
    line = text.rfind("\n", max(0, key - 256), key) + 1
    key_indent = key - line if text[line:key].strip(" -") == "" else 0
    first = end = indicator.end()
    indent = ""
    while end < len(text):
        spaces = rules.skip_blanks(text, end)
        line_end = text.find("\n", spaces)
        line_end = len(text) if line_end == -1 else line_end
        if spaces - end <= key_indent and spaces != line_end:
            break  # back to the key's level: the block is over
        indent = indent or text[end:spaces]
        end = min(line_end + 1, len(text))
    return (first, end, indent) if end > first else None


def _mask_pairs(text: str, assign_only: bool) -> str:
    """``name=value`` and ``name: value`` with a secret-looking name: the value goes.

    A scan, not a substitution: a value is read only when its name is secret, so
    the scan never walks the same text twice and a nested ``?token=`` is a pair
    of its own.
    """
    out: list[str] = []
    pos = done = 0
    n = len(text)
    while (m := rules.PAIR_HEAD_RE.search(text, pos)) is not None:
        pos = start = m.end()
        if not is_secret_name(m["name"]) or start >= n:
            continue
        quote = text[start] if text[start] in "\"'" else ""
        if text.startswith(('\\"', "\\'"), start):
            quote = text[start : start + 2]  # JSON inside a JSON string: {\"password\":\"x\"}
        close = _closing_quote(text, start + len(quote), quote) if quote else -1
        if quote and close != -1:
            value, end = text[start + len(quote) : close], close
            start += len(quote)
        else:
            if assign_only and m["sep"] == ":":
                continue  # label values: host:port is not a pair
            block = _block_scalar(text, m.start(), start) if not quote else None
            if block is not None:
                out += [text[done : block[0]], block[2] + MASK + "\n"]
                pos = done = block[1]
                continue
            bare = rules.PAIR_BARE_VALUE_RE.match(text, start + len(quote))
            if bare is None:
                continue
            value, start, end = bare[0], bare.start(), bare.end()
            if _BLOCK_RE.match(value + "\n") and (nxt := _next_word(text, end)) is not None:
                value, start, end = nxt[0], nxt.start(), nxt.end()  # "password: | x" flattened
        if value.endswith(":") and not quote:
            continue  # "auth: password: x" flattened YAML: a key, not a value; read it next
        if not _maskable(value) or value.lower() in PLAIN_VALUES:
            pos = end
            continue
        if m["sep"] == ":" and not quote and value.isdigit() and len(value) <= 5:
            if "-" in m["name"]:
                continue  # host:port (``auth-service:8080``), not a secret
        out += [text[done:start], MASK]
        pos = done = end
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


_Step = tuple[re.Pattern[str], Callable[[re.Match[str]], str] | str, tuple[str, ...]]
#: (pattern, replacement, words one of which the lower-cased text must hold, or () for any
#: text): most text holds none of them, and a substring test is far cheaper than a scan.
_STRONG: tuple[_Step, ...] = (
    (rules.URL_CREDS_RE, _mask_url, ("://",)),
    (rules.WEBHOOK_RE, rf"\1{MASK}", ("hooks.slack.com", "discord")),
    (rules.JWT_RE, MASK, ("eyj",)),
    (rules.TOKEN_RE, _mask_token, ()),
    (rules.HEADER_RE, _mask_header, ("authorization", "cookie", "api-key", "-token")),
    (rules.BEARER_RE, _mask_group, ("bearer",)),
    (rules.BASIC_RE, _mask_basic, ("basic",)),
    (
        rules.HASH_RE,
        MASK,
        (
            "$apr1$",
            "$2",
            "$1$",
            "$5$",
            "$6$",
            "$7$",
            "$y$",
            "$gy$",
            "$argon",
            "$scrypt",
            "$pbkdf2",
            "sha}",
        ),
    ),
    (rules.FLAG_RE, _mask_flag, ("--",)),
    (rules.SQL_RE, lambda m: _mask_group(m, "value", quotes=False), ("password", "identified")),
    (rules.CURL_USER_RE, _mask_group, ("-u",)),
    (rules.XML_RE, _mask_group, ("</",)),
    (rules.ENV_RE, _mask_env, ("value",)),
    (rules.PROSE_RE, _mask_prose, (" is", " set to", " changed to")),
)
#: Words a text must also hold for the prose step (its verbs are the needles above).
_PROSE_WORDS = ("pass", "secret", "token", "api", "pin")


def _redact_piece(text: str, assign_only: bool) -> str:
    text = rules.neutralise_control_tokens(text)
    lowered = text.lower()
    for pattern, repl, words in _STRONG:
        if not words or any(w in lowered for w in words):
            if pattern is rules.PROSE_RE and not any(w in lowered for w in _PROSE_WORDS):
                continue
            text = pattern.sub(repl, text)
    if any(w in lowered for w in ("mysql", "mariadb", "login", "sshpass", "redis-cli")):
        text = _mask_commands(text)
    text = _mask_pairs(text, assign_only)
    return rules.BLOB_RE.sub(_mask_blob, text)


def _cut(text: str, start: int, end: int) -> int:
    """Where to end a piece: after a line break that starts a new entry, else a space, a comma."""
    lo = max(start + 1, end - 8192)
    i = text.rfind("\n", lo, end)
    first = i
    while i != -1 and text[i + 1 : i + 2] in (" ", "\t"):
        i = text.rfind("\n", lo, i)  # an indented line continues the one before (YAML)
    if i != -1 or first != -1:
        return (i if i != -1 else first) + 1
    for seps in (" \t", ",;&"):
        i = max(text.rfind(c, lo, end) for c in seps)
        if i != -1:
            return i + 1
    return end


def _pieces(text: str) -> Iterator[str]:
    start = 0
    while len(text) - start > PIECE_CHARS:
        cut = _cut(text, start, start + PIECE_CHARS)
        yield text[start:cut]
        start = cut
    yield text[start:]


def _redact(text: str, assign_only: bool) -> str:
    if not text:
        return text
    text = rules.mask_private_keys(text, MASK)
    text = rules.ORPHAN_VALUE_RE.sub(_mask_group, text, count=1)
    if len(text) <= PIECE_CHARS:
        return _redact_piece(text, assign_only)
    return "".join(_redact_piece(p, assign_only) for p in _pieces(text))


def redact(text: str) -> str:
    """Mask secrets in free text (logs, event messages, rendered objects); linear time."""
    return _redact(text, assign_only=False)


def redact_value(name: str, value: str) -> str:
    """Mask ``value`` entirely when its name looks secret, else scrub it as free text."""
    if is_secret_name(name):
        return MASK if value else value
    return redact(value)


#: Labels that name a Kubernetes object (kube-state-metrics' ``kube_secret_info{secret=…}``,
#: ``kube_pod_spec_volumes_secret…``): the value is an object's name, not its content.
OBJECT_NAME_LABELS = frozenset({"secret", "secret_name", "token_secret", "serviceaccount"})


def redact_label_value(name: str, value: str) -> str:
    """Like :func:`redact_value` for a label: ``name: value`` inside it is not read as a pair.

    Label values are identifiers the tools query with, so ``auth-service:8080``
    must survive; known token formats, URL credentials, keys, headers, flags,
    ``name=value`` assignments and random blobs are still masked. A label that
    names a Kubernetes object (``secret="my-tls"``) keeps its value unless the
    value itself looks secret.
    """
    if is_secret_name(name) and name.lower() not in OBJECT_NAME_LABELS:
        return MASK if value else value
    return _redact(value, assign_only=True)


def redact_obj(obj: Any, _depth: int = 0) -> Any:
    """A copy of ``obj`` (dicts, lists, strings) with secrets masked.

    A value under a secret-looking key is masked wholesale, whatever its type,
    because a nested structure under ``credentials`` is as sensitive as a string.
    """
    if _depth > _MAX_DEPTH:
        return MASK
    if isinstance(obj, dict):
        # {"name": "DB_PASSWORD", "value": "..."}: Kubernetes env, HTTP headers as records.
        named = obj.get("name", obj.get("key"))
        pair = isinstance(named, str) and "value" in obj and is_secret_name(named)
        return {
            (redact(k) if isinstance(k, str) else k): (
                MASK
                if ((pair and k == "value") or (isinstance(k, str) and is_secret_name(k)))
                and v not in (None, "")
                else redact_obj(v, _depth + 1)
            )
            for k, v in obj.items()
        }
    if isinstance(obj, list | tuple):
        return type(obj)(redact_obj(v, _depth + 1) for v in obj)
    if isinstance(obj, str):
        return redact(obj)
    return obj
