"""The authentication settings and the start-up rule (sre_agent/settings.py, auth.py)."""

from __future__ import annotations

import pytest

from sre_agent.auth import Tokens, check_bind, describe, safe_next, webhook_warning
from sre_agent.errors import ConfigError
from sre_agent.settings import load_settings

GOOD = "x" * 24


def test_named_and_bare_tokens_are_read_and_never_shown():
    settings = load_settings(api_tokens=f" alice={GOOD}\nci-bot=y{GOOD} , z{GOOD}\n")
    assert [n for n, _ in settings.named_api_tokens] == ["alice", "ci-bot", "token-3"]
    assert GOOD not in repr(settings) and GOOD not in describe(settings)
    assert "alice, ci-bot, token-3" in describe(settings)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("alice=short", "at least 16 characters"),
        (f"alice={GOOD},alice=y{GOOD}", "given twice"),
        (f"bad name={GOOD}", "the name before '='"),
        (" , ", "is empty"),
    ],
)
def test_a_bad_token_list_is_refused_without_echoing_a_token(value, says):
    with pytest.raises(ConfigError) as caught:
        load_settings(api_tokens=value)
    message = str(caught.value)
    assert "SRE_AGENT_API_TOKENS" in message and says in message
    assert GOOD not in message and "=short" not in message


def test_the_webhook_token_may_not_also_be_an_api_token():
    with pytest.raises(ConfigError, match="a token of its own"):
        load_settings(api_tokens=f"alice={GOOD}", webhook_token=GOOD)


def test_a_proxy_header_needs_the_proxy_addresses():
    with pytest.raises(ConfigError, match="SRE_AGENT_AUTH_PROXY_CIDRS"):
        load_settings(auth_proxy_header="X-Forwarded-User")
    settings = load_settings(
        auth_proxy_header="X-Forwarded-User", auth_proxy_cidrs="10.0.0.0/8, 192.168.1.7"
    )
    assert settings.auth_proxy_header == "x-forwarded-user"
    assert [str(n) for n in settings.auth_proxy_cidrs] == ["10.0.0.0/8", "192.168.1.7/32"]
    with pytest.raises(ConfigError, match="not an address or CIDR"):
        load_settings(auth_proxy_header="X-User", auth_proxy_cidrs="10.0.0.0/33")
    with pytest.raises(ConfigError, match="cannot name the user"):
        load_settings(auth_proxy_header="Authorization", auth_proxy_cidrs="10.0.0.0/8")


def test_no_authentication_is_served_only_on_loopback_unless_allowed():
    open_ = load_settings()
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.53"):
        assert check_bind(open_, host) is None
    for host in ("0.0.0.0", "::", "10.1.2.3", "sre.example.com"):
        with pytest.raises(ConfigError, match="SRE_AGENT_ALLOW_ANONYMOUS"):
            check_bind(open_, host)
    warning = check_bind(load_settings(allow_anonymous=True), "0.0.0.0")
    assert warning and "no authentication" in warning
    assert check_bind(load_settings(api_tokens=f"a={GOOD}"), "0.0.0.0") is None


def test_tokens_match_by_name_and_nothing_else_matches():
    tokens = Tokens(load_settings(api_tokens=f"alice={GOOD},bob=y{GOOD}"))
    assert tokens.match(GOOD) == "alice" and tokens.match("y" + GOOD) == "bob"
    for given in ("", GOOD[:-1], GOOD + " ", "\udcff" + GOOD):
        assert tokens.match(given) is None


@pytest.mark.parametrize(
    ("given", "goes"),
    [
        ("/investigations/abc?format=json", "/investigations/abc?format=json"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("/x\r\nSet-Cookie: a=b", "/"),
        (None, "/"),
    ],
)
def test_after_login_only_a_path_of_ours(given, goes):
    assert safe_next(given) == goes


def test_the_public_url_host_is_a_host_the_service_answers_to():
    settings = load_settings(public_url="https://SRE.example.com:8443/")
    assert settings.allowed_hosts == ("localhost", "sre.example.com")
    assert load_settings().allowed_hosts == ("localhost",)


def test_an_open_webhook_on_a_network_address_is_warned_about():
    tokens = load_settings(api_tokens=f"a={GOOD}")
    warning = webhook_warning(tokens, "0.0.0.0")
    assert warning and "SRE_AGENT_WEBHOOK_TOKEN" in warning
    assert webhook_warning(tokens, "127.0.0.1") is None
    assert webhook_warning(load_settings(webhook_token="h" * 20), "0.0.0.0") is None
