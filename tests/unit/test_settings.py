"""Settings come from SRE_AGENT_* variables; a bad one stops start-up with one clear line."""

import subprocess
import sys
from pathlib import Path

import pytest

from sre_agent.errors import ConfigError
from sre_agent.settings import load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("SRE_AGENT_") or name in ("OLLAMA_HOST", "KUBECONFIG"):
            monkeypatch.delenv(name)


def test_defaults_match_the_design():
    s = load_settings()
    assert s.ollama_url == "http://localhost:11434"
    assert s.prometheus_url == "http://localhost:9090"
    assert s.database_url == "sqlite:///./sre-agent.db"
    assert s.severities == ("critical", "warning")
    assert s.max_concurrent == 1
    assert s.investigation_timeout == 300
    assert s.webhook_token is None


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("SRE_AGENT_SEVERITIES", "Critical, info")
    monkeypatch.setenv("SRE_AGENT_MAX_CONCURRENT", "3")
    monkeypatch.setenv("SRE_AGENT_WEBHOOK_TOKEN", "s3cret")
    s = load_settings()
    assert s.severities == ("critical", "info")
    assert s.max_concurrent == 3
    assert s.webhook_token is not None and s.webhook_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)


def test_ollama_host_is_honoured(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "gpu-box:11434")
    assert load_settings().ollama_url == "http://gpu-box:11434"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("SRE_AGENT_MAX_CONCURRENT", "zero", "SRE_AGENT_MAX_CONCURRENT"),
        ("SRE_AGENT_MAX_CONCURRENT", "0", "greater than or equal to 1"),
        ("SRE_AGENT_OLLAMA_URL", "gpu-box:11434", "http://"),
        ("SRE_AGENT_DATABASE_URL", "mysql://x", "sqlite:///"),
        ("SRE_AGENT_DATABASE_URL", "postgresql://h/db?bogus=1", "not a Postgres URL"),
        ("SRE_AGENT_INVESTIGATION_TIMEOUT", "-5", "SRE_AGENT_INVESTIGATION_TIMEOUT"),
        ("SRE_AGENT_SEVERITIES", " , ", "at least one severity"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch, name, value, expected):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert name in str(info.value)
    assert expected in str(info.value)


def serve_with(tmp_path, **env: str) -> subprocess.CompletedProcess[str]:
    """``sre-agent serve`` with only these settings; it is expected to refuse to start."""
    return subprocess.run(
        [sys.executable, "-m", "sre_agent.cli", "serve"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_refuses_to_start_with_one_line(tmp_path):
    proc = serve_with(tmp_path, SRE_AGENT_MAX_CONCURRENT="lots")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "SRE_AGENT_MAX_CONCURRENT" in lines[0]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("SRE_AGENT_WEBHOOK_TOKEN", "  ", "SRE_AGENT_WEBHOOK_TOKEN: is empty"),
        ("SRE_AGENT_DATABASE_URL", "sqlite:///", "needs a file path"),
        ("SRE_AGENT_DATABASE_URL", "sqlite:///./sre-agent.db?mode=ro", "no query string"),
        (
            "SRE_AGENT_EVIDENCE_BUDGET_TOKENS",
            "9000",
            "must be below SRE_AGENT_PROMPT_BUDGET_TOKENS",
        ),
    ],
)
def test_more_bad_values_stop_start_up(monkeypatch, name, value, expected):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=expected):
        load_settings()


def test_ollama_host_without_port_gets_ollamas_default(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "0.0.0.0")
    assert load_settings().ollama_url == "http://127.0.0.1:11434"
    monkeypatch.setenv("OLLAMA_HOST", "https://ollama.lan")
    assert load_settings().ollama_url == "https://ollama.lan:11434"


def test_cli_names_a_prompts_dir_without_prompts(tmp_path):
    proc = serve_with(tmp_path, SRE_AGENT_PROMPTS_DIR=str(tmp_path))
    assert proc.returncode == 2
    assert "SRE_AGENT_PROMPTS_DIR" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("value", ["critcal", "critical,warnign", "Critical,CRIT", "p1"])
def test_a_severity_that_is_not_standard_is_refused(monkeypatch, value):
    monkeypatch.setenv("SRE_AGENT_SEVERITIES", value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith("SRE_AGENT_SEVERITIES: ")
    assert "critical, error, warning, info, none" in message  # what the standard ones are
    assert "SRE_AGENT_ALLOW_CUSTOM_SEVERITIES=true" in message  # and how to insist


def test_a_typo_gets_a_guess(monkeypatch):
    monkeypatch.setenv("SRE_AGENT_SEVERITIES", "critcal,warning")
    with pytest.raises(ConfigError, match="did you mean 'critical'"):
        load_settings()


def test_custom_severities_pass_when_allowed(monkeypatch):
    monkeypatch.setenv("SRE_AGENT_SEVERITIES", "p1,critical")
    monkeypatch.setenv("SRE_AGENT_ALLOW_CUSTOM_SEVERITIES", "true")
    assert load_settings().severities == ("p1", "critical")


def test_cli_refuses_a_severity_typo_at_start(tmp_path):
    proc = serve_with(tmp_path, SRE_AGENT_SEVERITIES="critcal")
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert "SRE_AGENT_SEVERITIES" in line and "critical" in line


def test_kubeconfig_comes_from_kubeconfig_and_sre_agent_kubeconfig_wins(monkeypatch, tmp_path):
    assert load_settings().kubeconfig is None
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path}/a:~/b::")
    settings = load_settings()
    assert settings.kubeconfig_files == (tmp_path / "a", Path("~/b").expanduser())
    monkeypatch.setenv("SRE_AGENT_KUBECONFIG", f"{tmp_path}/mine")
    assert load_settings().kubeconfig_files == (tmp_path / "mine",)


def test_cli_url_comes_from_sre_agent_url(monkeypatch):
    assert load_settings().url == "http://127.0.0.1:8080"
    monkeypatch.setenv("SRE_AGENT_URL", "http://sre-agent.lan:8080/")
    assert load_settings().url == "http://sre-agent.lan:8080"
    monkeypatch.setenv("SRE_AGENT_URL", "sre-agent.lan")
    with pytest.raises(ConfigError, match="SRE_AGENT_URL"):
        load_settings()


def test_a_misspelt_variable_is_named_with_the_setting_it_meant():
    from sre_agent.settings import unknown_variables

    environ = {
        "SRE_AGENT_OLAMA_URL": "http://gpu:11434",
        "SRE_AGENT_SEVERITY": "critical",
        "SRE_AGENT_MODEL": "qwen2.5:7b-instruct",  # a setting: fine
        "SRE_AGENT_FROBNICATE": "1",
        # What Kubernetes injects for the Service sre-agent-service: not ours, not typos.
        "SRE_AGENT_SERVICE_SERVICE_HOST": "10.0.0.1",
        "SRE_AGENT_SERVICE_SERVICE_PORT": "8080",
        "SRE_AGENT_SERVICE_PORT": "tcp://10.0.0.1:8080",
        "SRE_AGENT_SERVICE_PORT_8080_TCP_ADDR": "10.0.0.1",
        "PATH": "/usr/bin",
    }
    assert unknown_variables(environ) == [
        "SRE_AGENT_FROBNICATE",
        "SRE_AGENT_OLAMA_URL (did you mean SRE_AGENT_OLLAMA_URL?)",
        "SRE_AGENT_SEVERITY (did you mean SRE_AGENT_SEVERITIES?)",
    ]


def test_the_cli_warns_of_a_misspelt_variable(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "sre_agent.cli", "list", "--url", "http://127.0.0.1:1"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SRE_AGENT_OLAMA_URL": "x"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "SRE_AGENT_OLAMA_URL (did you mean SRE_AGENT_OLLAMA_URL?)" in proc.stderr
    assert "no effect" in proc.stderr


def test_validation_errors_read_alike_everywhere():
    """One formatting (alerts.describe_errors) for settings, request and webhook errors:
    the variable named, pydantic's "Value error, " prefix gone, our own message whole."""
    with pytest.raises(ConfigError) as bad:
        load_settings(severities="crit")
    message = str(bad.value)
    assert message.startswith("SRE_AGENT_SEVERITIES: 'crit' (did you mean 'critical'?)")
    assert "Value error" not in message and message.endswith(
        "SRE_AGENT_ALLOW_CUSTOM_SEVERITIES=true"
    )

    from sre_agent.alerts import describe_errors

    errors = [{"loc": ("body", "alerts", i, "x" * 60), "msg": "Value error, bad"} for i in range(7)]
    text = describe_errors(errors)
    assert text.startswith(f"body.alerts.0.{'x' * 40}…: bad; ")
    assert text.count("bad") == 5 and text.endswith("(and 2 more)")


def test_the_severity_filter_says_why_it_skips():
    s = load_settings(severities="critical")
    assert s.skip_reason("critical") is None
    assert (
        s.skip_reason("warning") == "severity 'warning' is not in SRE_AGENT_SEVERITIES (critical)"
    )
