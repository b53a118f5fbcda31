"""Which names hold secrets: env vars, headers, config keys, flags, label names.

Name matching works on the words of an identifier (``DB_PASSWORD``,
``apiKey``, ``x-auth-token``), not on substrings, so ordinary words such as
``monkey``, ``tokenizer`` or ``author`` are left alone. ``key`` counts only as
the last word (``API_KEY``, ``secretKey``), because ``key_count`` or
``keyspace`` name harmless settings. Answers are memoised in a memo bounded in
bytes (hostile input brings endless distinct names); import from
:mod:`sre_agent_tools.redact`.
"""

from __future__ import annotations

import re
import sys
import threading
from collections import OrderedDict

#: Names longer than this are not memoised (they are checked each time, in linear time).
NAME_CACHE_KEY_CHARS = 256
#: The memo holds at most this many bytes of names; the oldest go first.
NAME_CACHE_MAX_BYTES = 1024 * 1024

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
_EXACT = {"pass", "sig", "client-key-data", "client_key_data", "dsn", "sentry_dsn"}
#: A secret word followed by one of these names *about* a secret, not the secret itself.
_HARMLESS_LAST = set(
    "count type method name ref file path length size enabled ttl expiry expires format policy"
    " provider url uri endpoint mode version header source kind timeout required host hostname"
    " port addr address server service realm issuer audience scope scopes namespace prefix"
    " hint".split()
)
#: Values that are flags, not secrets (``auth=ok``, ``private=false``).
PLAIN_VALUES = {
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


# --- names -----------------------------------------------------------------------------------
class _NameCache:
    """A memo bounded in bytes, oldest out first: logs repeat a few keys thousands of times,
    and names are hostile. A read takes no lock (one dict lookup); writes do."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes, self.bytes = max_bytes, 0
        self._data: OrderedDict[str, bool] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str) -> bool | None:
        return self._data.get(name)

    def put(self, name: str, value: bool) -> None:
        with self._lock:
            if name in self._data:
                return
            self._data[name] = value
            self.bytes += sys.getsizeof(name)
            while self.bytes > self.max_bytes:
                old, _ = self._data.popitem(last=False)
                self.bytes -= sys.getsizeof(old)

    def __len__(self) -> int:
        return len(self._data)


_names = _NameCache(NAME_CACHE_MAX_BYTES)


def name_cache_info() -> tuple[int, int]:
    """(entries, bytes of keys) held by the name memo."""
    return len(_names), _names.bytes


def _secret_name(name: str) -> bool:
    if name.lower() in _EXACT or _GLUED.fullmatch(name.split("_")[-1] or ""):
        return True
    if SECRET_NAME_RE.search(name) is None:
        return False
    words = [w for w in _WORD_SPLIT.split(name) if w]
    return not (len(words) > 1 and words[-1].lower() in _HARMLESS_LAST)


def is_secret_name(name: str) -> bool:
    """True when ``name`` (an env var, header or config key) looks like it holds a secret."""
    if len(name) > NAME_CACHE_KEY_CHARS:
        return _secret_name(name)
    hit = _names.get(name)
    if hit is None:
        hit = _secret_name(name)
        _names.put(name, hit)
    return hit
