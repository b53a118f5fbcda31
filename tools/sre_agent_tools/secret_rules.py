"""The secret detectors :mod:`sre_agent_tools.redact` runs, each linear in its input.

Source of the token formats: Yelp's ``detect-secrets`` (its plugins are regex
classes). Its fixed-shape patterns (AWS key ids, GitHub, GitLab, Stripe live
keys, SendGrid, Twilio, Discord, Telegram, Square, Mailchimp, PyPI) are taken
as they are, behind a token-boundary lookbehind (so a scan starts only at the
beginning of a token) and followed by a possessive run (so the whole token is
masked, not its first 24 characters). Left out, with why:

- JWT (``eyJ[..]+\\.[..]+``): quadratic; on ``eyJa-`` x 16 KiB it takes 71 ms,
  x 64 KiB 1.35 s (ours: possessive and boundary-anchored, 4 ms per MiB).
- Slack (``(?:\\d+-)+``), npm (``.+/:_authToken``), OpenAI legacy
  (``[..]*[..]{20}``), Artifactory (``{10,}`` then a separator): unbounded
  repeats that must still match something after them, or too narrow (npm only
  in ``.npmrc``, OpenAI only the legacy key shape).
- Basic-auth URLs (``://[^\\s]+:([^\\s]+)@``): linear, but blind to a raw ``@``
  in the password and to keys given as the user (Sentry DSNs); ours covers both.
- Keyword and the IBM/Cloudant/SoftLayer assignment patterns: names, handled
  by :func:`~sre_agent_tools.redact.is_secret_name` on every ``name=value``.
- The high-entropy plugins only look inside quotes; we scan free text (see
  :func:`looks_random`), with detect-secrets' entropy measure and its limit.
- Public IPv4: not a secret here; the model needs addresses.

The private-key markers are detect-secrets' list (``PrivateKeyDetector``); the
blocks are found with ``str.find``-style scans, not a lazy ``.*?``.

Measured cost (``scripts/bench_redact.py``'s ordinary logs, this 2-core machine):
the adopted detect-secrets patterns with ours, one alternation behind one
lookbehind, 56 ms per MB; the same detect-secrets patterns run one by one as
their plugins do, 69 ms per MB.

Every pattern here obeys three rules, which keep it linear: a repeat is
possessive (``*+``, ``++``, ``{m,n}+``) or bounded; a pattern that starts with a
character class is anchored by a lookbehind excluding that class, so no scan
starts inside a run another scan already walked; a quoted value is looked for
within a bound. ``tests/unit/test_redact_redos.py`` checks it on adversarial
inputs (work at 1 MiB against 64 KiB).
"""

from __future__ import annotations

import re

from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.private_key import PrivateKeyDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector

_ADOPTED: tuple[re.Pattern[str], ...] = (
    AWSKeyDetector.denylist[0],  # the key id; [1] masks its "aws..." context too
    *DiscordBotTokenDetector.denylist,
    *GitHubTokenDetector.denylist,
    *GitLabTokenDetector.denylist,
    *MailchimpDetector.denylist,
    *PypiTokenDetector.denylist,
    *SendGridDetector.denylist,
    *SquareOAuthDetector.denylist,
    *StripeDetector.denylist,
    *TelegramBotTokenDetector.denylist,
    *TwilioKeyDetector.denylist,
)

#: Token formats detect-secrets lacks (prefix, then the body's alphabet and least length).
_OURS = (
    r"github_pat_[A-Za-z0-9_]{22,}+|gh[pousr]_[A-Za-z0-9_]{16,}+",  # GitHub, any length
    r"xox[abposre]-[A-Za-z0-9-]{10,}+",  # Slack bot/user/app/refresh tokens
    r"xapp-[A-Za-z0-9-]{10,}+",
    r"npm_[A-Za-z0-9]{36}",
    r"sk-(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}+",  # OpenAI, Anthropic
    r"(?:sk|rk)_test_[A-Za-z0-9]{20,}+|whsec_[A-Za-z0-9]{20,}+",  # Stripe test, webhooks
    r"HRKU-[A-Za-z0-9_-]{20,}+",  # Heroku
    r"do[opr]_v1_[a-f0-9]{64}",  # DigitalOcean
    r"hv[sbr]\.[A-Za-z0-9_-]{20,}+",  # Vault
    r"AIza[0-9A-Za-z_-]{35}",  # Google API key
    r"ya29\.[0-9A-Za-z_-]{20,}+",  # Google OAuth access token
    r"gl(?:sa|c)_[A-Za-z0-9_+/=-]{24,}+",  # Grafana
    r"dckr_pat_[A-Za-z0-9_-]{20,}+",  # Docker Hub
    r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}",  # Shopify
    r"AGE-SECRET-KEY-1[0-9A-Z]{50,}+",
)


def _group(p: re.Pattern[str]) -> str:
    return f"(?i:{p.pattern})" if p.flags & re.IGNORECASE else f"(?:{p.pattern})"


#: Known token formats; the match runs to the end of the token.
TOKEN_RE = re.compile(
    r"(?<![A-Za-z0-9_-])(?:"
    + "|".join([*map(_group, _ADOPTED), *(f"(?:{p})" for p in _OURS)])
    + r")[A-Za-z0-9_-]*+"
)
#: Incoming-webhook URLs: the path after the host is the secret.
WEBHOOK_RE = re.compile(
    r"(hooks\.slack\.com/(?:services|workflows|triggers)/|discord(?:app)?\.com/api/webhooks/\d{1,20}+/)"
    r"[A-Za-z0-9/_-]++"
)
JWT_RE = re.compile(
    r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{2,}+\.[A-Za-z0-9_-]{2,}+(?:\.[A-Za-z0-9_=-]*+)*+"
)
#: scheme://user:password@ (password may hold a raw '@') and scheme://LONGUSER@ (Sentry DSNs).
URL_CREDS_RE = re.compile(
    r"(?<![A-Za-z0-9+.-])(?P<head>[A-Za-z][A-Za-z0-9+.-]{0,31}+://)"
    r"(?P<user>[^\s:/@?#\"'<>]{0,256}+)(?::(?P<pw>[^\s/?#\"'<>]{1,256}))?@"
)
#: Authorization-like headers, plain, JSON-quoted or Go maps (``map[Authorization:[Bearer x]]``).
HEADER_RE = re.compile(
    r"(?i)(?<![A-Za-z0-9_-])(?P<name>(?:proxy-)?authorization|(?:set-)?cookie|x-api-key|api-key"
    r"|x-(?:auth|access|vault|csrf|xsrf|amz-security)-token|private-token|x-goog-api-key)"
    r"(?:\\?[\"'])?[ \t]*+[:=][ \t]*+(?:\[[ \t]*+)?(?:\\?[\"'])?(?:(?P<scheme>[A-Za-z][\w-]{0,31}+)[ \t]++)?"
    r"(?P<value>[^\s\"'\\\];]++(?:[ \t]*+;[ \t]*+[^\s\"'\\\];]++)*+;?+)"
)
#: Authorization schemes: the word after them is the credential.
AUTH_SCHEMES = frozenset(
    "bearer basic token digest negotiate ntlm oauth jwt apikey api-key key ssws splunk"
    " geniekey aws4-hmac-sha256 hoba mutual vapid dpop".split()
)
BEARER_RE = re.compile(r"(?<![A-Za-z0-9_-])[Bb]earer[ \t]++(?P<value>[A-Za-z0-9._~+/-]++=*+)")
BASIC_RE = re.compile(
    r"(?<![A-Za-z0-9_-])[Bb]asic[ \t]++(?P<value>[A-Za-z0-9+/]{8,}+={0,2}+)(?![A-Za-z0-9+/=])"
)
#: htpasswd / crypt(3) hashes: $apr1$, $2y$ (bcrypt), $5$/$6$ (sha-crypt), argon2, {SHA}.
HASH_RE = re.compile(
    r"(?<![\w$])(?:\$(?:apr1|2[abxy]?|1|5|6|7|y|gy|argon2(?:id|i|d)|scrypt|pbkdf2(?:-sha\d{1,3})?)"
    r"\$[A-Za-z0-9./$=,+-]{8,}+|\{S?SHA(?:256|512)?\}[A-Za-z0-9+/]{20,}+=*+)"
)
#: --password X, --auth-token=X, -p X (the caller checks the flag's name).
FLAG_RE = re.compile(
    r"(?<![\w-])--(?P<flag>[A-Za-z][A-Za-z0-9_.-]{0,63}+)(?:=|[ \t]++)"
    r"(?P<value>\"[^\"\n]{0,256}+\"|'[^'\n]{0,256}+'|(?!-)\S++)"
)
#: Commands whose short flag carries the password (mysql -pX, docker login -p X, redis-cli -a X).
COMMAND_RE = re.compile(
    r"(?<![\w/.-])(?P<cmd>mysql(?:dump|admin|sh|import|check)?|mariadb(?:-dump|-admin)?"
    r"|(?:docker|podman|buildah|nerdctl|skopeo|oras|helm[ \t]++registry)[ \t]++login|sshpass"
    r"|redis-cli)\b"
)
SHORT_FLAG_RE = {
    "p": re.compile(r"(?<!\S)(-p[ \t]*+)(?P<value>(?!-)[^\s]++)"),
    "a": re.compile(r"(?<!\S)(-a[ \t]++)(?P<value>(?!-)[^\s]++)"),
}
# SQL: PASSWORD 'x', IDENTIFIED BY "x"; curl -u user:pw; <password>pw</password>.
SQL_RE = re.compile(
    r"(?i)\b(?:password|identified[ \t]++by)[ \t]++(?P<value>'[^'\n]{0,256}+'|\"[^\"\n]{0,256}+\")"
)
CURL_USER_RE = re.compile(r"(?<!\S)-u[ \t]++[^\s:]{1,256}+:(?P<value>\S++)")
XML_RE = re.compile(
    r"(?i)<(?P<tag>password|passwd|secret|token|apikey|api_key|credentials?)>"
    r"(?P<value>[^<]{1,4096}+)</(?P=tag)>"
)
#: Kubernetes env as separate fields: {"name":"DB_PASSWORD","value":"x"}, "- name: X\n  value: y".
ENV_RE = re.compile(
    r"(?i:(?<![\w-])(?:\\?[\"'])?(?:name|key)(?:\\?[\"'])?[ \t]*+[:=][ \t]*+)(?:\\?[\"'])?"
    r"(?P<env>[A-Za-z_][A-Za-z0-9_.-]{0,127}+)(?:\\?[\"'])?[ \t]*+,?+[ \t]*+(?:\r?\n[ \t]*+)?"
    r"(?i:(?:\\?[\"'])?value(?:\\?[\"'])?)[ \t]*+[:=][ \t]*+"
    r"(?P<value>\"[^\"\n]{0,4096}+\"|'[^'\n]{0,4096}+'|[^\s,}\]]++)"
)
#: A ``value:`` first in a text whose ``name:`` line was cut off (a log read by its tail).
ORPHAN_VALUE_RE = re.compile(
    r"\A(?:[ \t]++(?:-[ \t]++)?|[ \t]*+[,{]?[ \t]*+\\?[\"'])value(?:\\?[\"'])?[ \t]*+[:=][ \t]*+"
    r"(?P<value>\"[^\"\n]{0,4096}+\"|'[^'\n]{0,4096}+'|[^\s,}\]]++)"
)
#: Prose: "the password is hunter2", "token: is x", "secret was set to y".
PROSE_RE = re.compile(
    r"(?i)(?<![\w-])(?:password|passwd|passphrase|passcode|secret|token|api[ _-]?key|pin)"
    r":?[ \t]++(?:is|was[ \t]++set[ \t]++to|(?:was[ \t]++)?changed[ \t]++to|set[ \t]++to)"
    r"(?::|[ \t]*+[:=])?[ \t]*+(?P<value>[\"'`]?[^\s\"'`]{1,256}+)"
)
#: Words after "password is" that describe it rather than being it.
PROSE_STOPWORDS = frozenset(
    "a an the not no now still too being been incorrect correct invalid valid wrong expired"
    " required missing empty set unset rejected accepted blank null none nil undefined"
    " mandatory optional ok fine changed reset locked weak strong short long stale revoked"
    " present absent needed configured stored mounted used sent provided given in at on for"
    " from of to by encrypted hashed masked redacted unknown same different bad good updated"
    " enabled disabled true false yes correctly about going due also only".split()
)

#: ``name=value`` / ``name: value`` heads; the caller reads the value and decides.
PAIR_HEAD_RE = re.compile(
    r"(?:(?<![\w.-])|(?<=-)(?<![\w.-]-))"
    r"(?P<name>[A-Za-z_][\w.-]{0,255}+)"
    r"(?P<head>(?:\\?[\"'])?[ \t]*+(?P<sep>:=|=>|[:=])[ \t]*+(?:(?:Bearer|Basic|bearer|basic)[ \t]++)?)"
)
PAIR_BARE_VALUE_RE = re.compile(r"[^\s,;&\"'<>(){}\[\]]++")

# --- private keys ---------------------------------------------------------------------------
PRIVATE_KEY_MARKERS = tuple(p.pattern for p in PrivateKeyDetector.denylist)
_KEY_BEGIN_RE = re.compile(
    r"-{4,5}[ ]?BEGIN (?:[A-Z0-9]{1,16}[ ]){0,3}PRIVATE KEY(?: BLOCK)?[ ]?-{4,5}"
    r"|PuTTY-User-Key-File-\d:[^\n]{0,256}+\n(?:[^\n]{0,256}+\n){0,32}?Private-Lines:[ \t]*+\d{1,6}+"
)
_KEY_END_RE = re.compile(
    r"-{4,5}[ ]?END (?:[A-Z0-9]{1,16}[ ]){0,3}PRIVATE KEY(?: BLOCK)?[ ]?-{4,5}|Private-MAC:"
)


_ARMOR_RE = re.compile(
    r"(?:Proc-Type|DEK-Info|Version|Comment|Hash|Charset|Encryption|Public-Lines|Private-Lines"
    r"|Key-Derivation|Argon2-[A-Za-z]{1,16}+): [^\n]{0,256}+"
)
_RUN_RE = re.compile(r"[A-Za-z0-9+/=]++")
_INDENT_RE = re.compile(r"[ \t]++")


def skip_blanks(text: str, i: int) -> int:
    """The index after the spaces and tabs at ``i``."""
    m = _INDENT_RE.match(text, i)
    return m.end() if m else i


def mask_private_keys(text: str, mask: str) -> str:
    """Replace the body of every private-key block, line by line, header and footer kept.

    The body is the run of base64 (and armor-header) lines after the header, so a
    block cut off without its END line masks what it holds and no more. Lines are
    separated by newlines, by literal ``\\n`` (a key inside JSON) or by spaces (a
    log that flattened it).
    """
    if "PRIVATE KEY" not in text and "PuTTY-User-Key-File" not in text:
        return text
    out: list[str] = []
    pos = 0
    while (begin := _KEY_BEGIN_RE.search(text, pos)) is not None:
        start = i = begin.end()
        sep = (
            "\\n"
            if text.startswith("\\n", start)
            else (" " if text[start : start + 1] == " " else "\n")
        )
        footer = False
        first = start + len(sep) if text.startswith(sep, start) and sep != " " else start
        indent = text[first : skip_blanks(text, first)] if first != start else ""
        while True:  # one body line per turn; each turn consumes what it reads
            line_start = i
            if text.startswith(sep, i):
                i += len(sep)
            after_sep = i
            if sep != " ":
                i = skip_blanks(text, i)  # YAML block scalars indent the key
            if _KEY_END_RE.match(text, i):
                footer, body_end = True, after_sep
                break
            if (armor := _ARMOR_RE.match(text, i)) is not None:
                i = armor.end()
                continue
            run = _RUN_RE.match(text, i)
            n = run.end() if run else i
            at_break = n == len(text) or text.startswith(sep, n) or text.startswith("\r\n", n)
            if at_break and n == len(text):
                body_end = n if run else line_start
                break
            if at_break and (run is None or sep != " " or n - i >= 16):
                i = n + (1 if text.startswith("\r", n) else 0)
                continue
            # a key line cut off mid-way, then other text: the cut line goes, the text stays
            body_end = n if run and n - i >= 16 else line_start
            break
        out.append(text[pos:start])
        if text[start:body_end].strip():
            out += [sep, indent, mask, sep if footer else ""]
            pos = body_end
        else:
            pos = start
    out.append(text[pos:])
    return "".join(out)


# --- high entropy ----------------------------------------------------------------------------
BLOB_RE = re.compile(r"(?<![A-Za-z0-9+/_=-])[A-Za-z0-9+/_-]{32,}+=*+")
_ENTROPY = Base64HighEntropyString()  # its charset and limit (4.5 bits per character)


def looks_random(candidate: str) -> bool:
    """A base64-ish run that is a secret, not an identifier the model needs.

    Digests, git SHAs, UUIDs, container ids and resource versions are lower-case
    hex or digits; pod and object names are lower case with a hyphen every few
    characters; paths have a slash every few. A random blob mixes cases and
    digits and has a separator in far fewer than one character in ten.
    """
    core = candidate.rstrip("=")
    if len(core) < 32:
        return False
    if not (any(c.isupper() for c in core) and any(c.islower() for c in core)):
        return False
    if not any(c.isdigit() for c in core):
        return False
    separators = sum(core.count(c) for c in "-_/+")
    if separators * 10 > len(core):
        return False
    return bool(_ENTROPY.calculate_shannon_entropy(core) >= _ENTROPY.entropy_limit)


# --- chat-template control tokens -----------------------------------------------------------
CONTROL_RE = re.compile(
    r"<\|[^|<>\s]{0,64}+\|>|<\uff5c[^\uff5c<>\s]{0,64}+\uff5c>"  # <|im_start|>, <|eot_id|>, ...
    r"|</?(?:s|bos|eos|pad|start_of_turn|end_of_turn|tool_call|tool_response|think|im_start"
    r"|im_end|system|user|assistant)>"
    r"|<</?SYS>>|\[/?(?:INST|SYS|TOOL_CALLS|AVAILABLE_TOOLS|TOOL_RESULTS|SYSTEM_PROMPT)\]"
)


def neutralise_control_tokens(text: str) -> str:
    """A zero-width space after the opening character: readable, and no template's token."""
    if "<" not in text and "[" not in text:
        return text
    return CONTROL_RE.sub(lambda m: f"{m[0][0]}\u200b{m[0][1:]}", text)
