"""Secret scrubbing: secrets go, the names that say what they were stay, ordinary text is kept."""

import pytest
from sre_agent_tools.redact import MASK, SECRET_NAME_RE, redact, redact_obj, redact_value

MASKED = [
    # (input, expected output)
    ("password=hunter2", f"password={MASK}"),
    ("DB_PASSWORD: x", f"DB_PASSWORD: {MASK}"),
    ('{"api_key": "abc123"}', f'{{"api_key": "{MASK}"}}'),
    ("apiKey='zzz' next", f"apiKey='{MASK}' next"),
    ("X-Api-Key: 0123456789", f"X-Api-Key: {MASK}"),
    ("client_secret=s3cr3t&grant=x", f"client_secret={MASK}&grant=x"),
    ("AWS_SECRET_ACCESS_KEY=wJalrXUt", f"AWS_SECRET_ACCESS_KEY={MASK}"),
    ("--password=hunter2 --user bob", f"--password={MASK} --user bob"),
    ("passwd: p4ss", f"passwd: {MASK}"),
    ("credentials=abc", f"credentials={MASK}"),
    ("private_key_id=abc", f"private_key_id={MASK}"),
    ("Authorization: Bearer abc.def-ghi", f"Authorization: Bearer {MASK}"),
    ("curl -H 'authorization: bearer tok123'", f"curl -H 'authorization: bearer {MASK}'"),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", f"Authorization: Basic {MASK}"),
    ("postgres://user:pass@host:5432/db", f"postgres://user:{MASK}@host:5432/db"),
    ("dial redis://:s3cret@redis:6379 failed", f"dial redis://:{MASK}@redis:6379 failed"),
    (
        "url=https://bob:pw@x.org/?token=abc&page=2",
        f"url=https://bob:{MASK}@x.org/?token={MASK}&page=2",
    ),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_nat-ure end", f"jwt {MASK} end"),
    ("key id AKIAIOSFODNN7EXAMPLE used", f"key id {MASK} used"),
    ("gh token ghp_abcdefghijklmnopqrstuvwxyz0123", f"gh token {MASK}"),
    ("slack xoxb-123456789012-abcdefABCDEF", f"slack {MASK}"),
    (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nAAAA\n-----END RSA PRIVATE KEY-----\ntail",
        f"-----BEGIN RSA PRIVATE KEY-----\n{MASK}\n-----END RSA PRIVATE KEY-----\ntail",
    ),
    # cut off without its END line: the key's lines go, the rest of the text stays
    (
        "-----BEGIN PRIVATE KEY-----\nMIIEow\nAAAB\nnext line",
        f"-----BEGIN PRIVATE KEY-----\n{MASK}\nnext line",
    ),
    (
        "-----BEGIN PRIVATE KEY-----\nMIIEowIBAAKCAQEA3Tz2mr7S cut off",
        f"-----BEGIN PRIVATE KEY-----\n{MASK} cut off",
    ),
    (
        "tls.key: |\n  -----BEGIN EC PRIVATE KEY-----\n  MHcCAQEE\n  -----END EC PRIVATE KEY-----\n",
        f"tls.key: |\n  {MASK}\n",
    ),
    ("ALTER ROLE app PASSWORD 'CANARY-x1';", f"ALTER ROLE app PASSWORD {MASK};"),
    ('CREATE USER u IDENTIFIED BY "s3cr3t"', f"CREATE USER u IDENTIFIED BY {MASK}"),
    ("mysql --password=hunter2 -h db", f"mysql --password={MASK} -h db"),
    (
        "auth:\n  password: |\n    hunter2\n    more\n  user: bob\n",
        f"auth:\n  password: |\n    {MASK}\n  user: bob\n",
    ),
    ("password: >-\n  x1\nnext: 1", f"password: >-\n  {MASK}\nnext: 1"),
    (
        "-----BEGIN RSA PRIVATE KEY----- MIIEowIBAAKCAQEA3Tz2mr7S MIIEowIBAAKCAQEA3Tz2mr7S "
        "-----END RSA PRIVATE KEY----- tail",
        f"-----BEGIN RSA PRIVATE KEY----- {MASK} -----END RSA PRIVATE KEY----- tail",
    ),
]

UNCHANGED = [
    "monkey business as usual",
    "tokenizer loaded entries=48211",
    "tokenizer: loaded",
    "key_count=3",
    "keyspace=users hits=12",
    "author: bruno",
    "max_tokens=512",
    'level=info msg="config value" name=LOG_LEVEL value=info',
    "GET /api/v1/posts 200 12ms",
    "2026-11-27T03:20:11Z ERROR: connection refused (db:5432)",
    "Back-off restarting failed container api in pod x_homepage(uid)",
    "http://plausible.analytics:8000/api/event",
    "the password was rejected for user app",
    'up{instance="auth-service:8080"} => 1',
    "dialing token-svc:9100",
    "",
]


@pytest.mark.parametrize(("text", "expected"), MASKED)
def test_secrets_are_masked_and_names_kept(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("text", UNCHANGED)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_redact_is_idempotent() -> None:
    once = redact("password=x Authorization: Bearer abcdef postgres://u:p@h/db")
    assert redact(once) == once
    assert once.count(MASK) == 3


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("API_TOKEN", True),
        ("DB_PASSWORD", True),
        ("apiKey", True),
        ("ACCESS_KEY", True),
        ("x-auth-token", True),
        ("Authorization", True),
        ("SECRET_KEY_BASE", True),
        ("tls.key", True),
        ("LOG_LEVEL", False),
        ("DATABASE_URL", False),
        ("monkey", False),
        ("tokenizer", False),
        ("key_count", False),
        ("AUTHOR", False),
        ("keyboard", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert (SECRET_NAME_RE.search(name) is not None) is secret


def test_redact_value_masks_by_name_else_scrubs_text() -> None:
    assert redact_value("DB_PASSWORD", "CANARY-pw") == MASK
    assert redact_value("LOG_LEVEL", "info") == "info"
    assert redact_value("DATABASE_URL", "postgres://api:CANARY@db/site") == (
        f"postgres://api:{MASK}@db/site"
    )
    assert redact_value("API_TOKEN", "") == ""


def test_redact_obj_masks_secret_keys_wholesale_and_scrubs_strings() -> None:
    record = {
        "args": {"query": "up", "password": "CANARY-1", "credentials": {"user": "u", "pw": "x"}},
        "output": ["Authorization: Bearer CANARY-2", 3, None],
        "api_key": None,
        "tuple": ("token=CANARY-3",),
    }
    out = redact_obj(record)
    assert out == {
        "args": {"query": "up", "password": MASK, "credentials": MASK},
        "output": [f"Authorization: Bearer {MASK}", 3, None],
        "api_key": None,
        "tuple": (f"token={MASK}",),
    }
    assert record["args"]["password"] == "CANARY-1"  # input untouched


def test_large_log_keeps_size_and_loses_only_secrets() -> None:
    line = 'ts=2026-11-27T03:20:11Z level=info msg="request" path=/api user=bob password=CANARY\n'
    out = redact(line * 1500)
    assert "CANARY" not in out
    assert out.count("password=" + MASK) == 1500
    assert out.count("user=bob") == 1500
