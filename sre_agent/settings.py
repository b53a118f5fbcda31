"""One typed settings object, read from the environment (prefix ``SRE_AGENT_``).

Built once by the CLI (or a test) and passed down; nothing reads the
environment anywhere else.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import socket
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import NoDecode, SettingsConfigDict
from sre_agent_tools.redact import redact_label_value

from sre_agent.alerts import describe_errors
from sre_agent.db_url import shown_url
from sre_agent.errors import ConfigError
from sre_agent.settings_auth import AuthSettings

log = logging.getLogger(__name__)

KNOWN_SEVERITIES = ("critical", "error", "warning", "info", "none")


def _default_ollama_url() -> str:
    """``OLLAMA_HOST`` as Ollama's own client reads it: scheme and port are optional."""
    host = os.environ.get("OLLAMA_HOST", "").strip()
    if not host:
        return "http://localhost:11434"
    if "://" not in host:
        host = f"http://{host}"
    scheme, _, rest = host.partition("://")
    hostport = rest.split("/", 1)[0]
    if ":" not in hostport.rsplit("]", 1)[-1]:  # no port (IPv6 brackets aside)
        host = f"{scheme}://{hostport}:11434" + rest[len(hostport) :]
    return host.replace("://0.0.0.0", "://127.0.0.1")


def _default_kubeconfig() -> str | None:
    """``KUBECONFIG`` as kubectl reads it (SRE_AGENT_KUBECONFIG, when set, wins)."""
    return os.environ.get("KUBECONFIG", "").strip() or None


class Settings(AuthSettings):
    """Every knob of the service; see the table in the README."""

    model_config = SettingsConfigDict(env_prefix="SRE_AGENT_", extra="ignore")

    ollama_url: str = Field(default_factory=_default_ollama_url)
    #: The model server's API: Ollama's own (the default), or an OpenAI-compatible one
    #: (llama.cpp's server, vLLM, LM Studio, LocalAI) at SRE_AGENT_OPENAI_BASE_URL.
    llm_api: Literal["ollama", "openai"] = "ollama"
    #: The OpenAI-compatible API's base, with its version (``http://127.0.0.1:8000/v1``).
    openai_base_url: str | None = None
    #: Its key, if it wants one (most self-hosted servers want none).
    openai_api_key: SecretStr | None = None
    model: str = "qwen2.5:7b-instruct"
    #: The first model call: ``structured`` is the final answer, constrained to the
    #: Analysis schema, when the evidence gathered first answered (tools otherwise);
    #: ``tools`` always starts the tool-calling agent, whose answer is free text.
    first_call: Literal["structured", "tools"] = "structured"
    prometheus_url: str = "http://localhost:9090"
    #: A kubeconfig file, or several joined by ``:`` (merged as kubectl does); default
    #: ``KUBECONFIG``, then in-cluster, then ~/.kube/config.
    kubeconfig: str | None = Field(default_factory=_default_kubeconfig)
    database_url: str = "sqlite:///./sre-agent.db"
    webhook_token: SecretStr | None = None
    severities: Annotated[tuple[str, ...], NoDecode] = ("critical", "warning")
    #: Accept severities outside KNOWN_SEVERITIES (a typo there would skip every alert).
    allow_custom_severities: bool = False
    max_concurrent: int = Field(default=1, ge=1, le=64)
    #: Model runs at once across all replicas on one Postgres database (a shared Ollama);
    #: None: each replica's SRE_AGENT_MAX_CONCURRENT alone.
    max_concurrent_total: int | None = Field(default=None, ge=1, le=1024)
    #: This replica's name in its leases (default: the host name, a pod's name).
    replica_id: str = Field(default_factory=lambda: socket.gethostname() or "sre-agent")
    #: Seconds a replica's claim on an alert's evidence or run lasts unless renewed (every
    #: third of it): how long work of a replica that died waits for another to take it.
    lease_seconds: float = Field(default=30.0, ge=1.0, le=3600.0)
    investigation_timeout: float = Field(default=300.0, gt=0)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    #: Host header names (or ``*.domain``, or ``*``) the API answers to, against DNS
    #: rebinding; IP literals and the names of the host it is bound to are always accepted.
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = ("localhost",)
    #: Seconds a client may take to send a request's headers, and then its body.
    header_timeout: float = Field(default=10.0, gt=0)
    body_timeout: float = Field(default=30.0, gt=0)
    #: Bounds on a request's headers (431 above).
    max_header_bytes: int = Field(default=32 * 1024, ge=1024)
    max_headers: int = Field(default=100, ge=10)
    #: Seconds the model server may stay silent (no byte of its answer) before the call
    #: is abandoned as "down". Longer than an investigation's deadline by default: a long
    #: prompt on a busy GPU is slow, not down, and the deadline ends it keeping its work.
    llm_timeout: float = Field(default=600.0, gt=0)
    #: Seconds a Prometheus or Kubernetes request may take.
    backend_timeout: float = Field(default=10.0, gt=0)
    #: Seconds an identical Kubernetes read is answered from memory (0: never): a
    #: storm's thirty evidence walks read the same node and its pods once, not thirty
    #: times. Each read is still checked against its investigation's scope first.
    kube_read_cache: float = Field(default=5.0, ge=0, le=60)
    #: Seconds the evidence phase may take (at most half the investigation deadline);
    #: lookups still pending then are recorded as timed out and the model starts.
    evidence_timeout: float = Field(default=60.0, gt=0)
    #: Seconds between the background checks of Ollama, Prometheus and Kubernetes
    #: that /readyz reports (it never waits on a backend itself).
    readiness_interval: float = Field(default=15.0, gt=0)
    #: Seconds one of those checks may take (at most SRE_AGENT_BACKEND_TIMEOUT).
    readiness_check_timeout: float = Field(default=3.0, gt=0)
    #: Ollama context window (tokens); Ollama's own default silently truncates long prompts.
    num_ctx: int = Field(default=8192, ge=2048)
    #: Tokens one model call may generate (Ollama's num_predict): an Analysis is ~300-600,
    #: so a model that loops stops here instead of holding the GPU until the context is full.
    num_predict: int = Field(default=1024, ge=64)
    #: Gather evidence before the first LLM call (off: a plain ReAct agent, for comparison).
    evidence_first: bool = True
    #: Join related alerts into incidents and give the model's time to each incident's
    #: head (off: no incidents; every alert is investigated on its own, in turn, and
    #: Slack gets a message per investigation, as before incidents).
    incidents: bool = True
    #: Seconds after an incident's last join within which a related alert still joins it.
    incident_window: float = Field(default=900.0, gt=0)
    #: Seconds the model waits after an incident's last join before it chooses the head
    #: (the alerts of one failure arrive over several Alertmanager groups).
    incident_settle: float = Field(default=15.0, ge=0)
    #: Alerts whose evidence is gathered at once (no GPU: the model's queue is apart).
    evidence_concurrency: int = Field(default=4, ge=1, le=64)
    #: Alerts waiting for the model above which it works on incident heads first.
    storm_queue: int = Field(default=10, ge=1)
    #: Seconds of waiting that raise a queued alert one severity step (none starves).
    queue_aging: float = Field(default=600.0, gt=0)
    #: Seconds after which stored evidence is gathered again before the model's run.
    evidence_max_age: float = Field(default=600.0, gt=0)
    #: Put the alert's history (earlier firings on the same object, past causes, people's
    #: verdicts) first in the prompt, within 15% of the evidence budget.
    history: bool = True
    #: Days finished investigations are kept (pruned hourly); those whose cause a person
    #: confirmed or gave are kept for SRE_AGENT_RETENTION_CONFIRMED_DAYS. 0: kept forever.
    retention_days: int = Field(default=90, ge=0)
    retention_confirmed_days: int = Field(default=365, ge=0)
    #: Investigate again, once Ollama answers, what got only an evidence report while it was down.
    reinvestigate: bool = True
    #: Seconds between checks for that.
    reinvestigate_interval: float = Field(default=60.0, gt=0)
    #: Prompt tokens one LLM call may use; older tool results are cleared past it.
    prompt_budget_tokens: int = Field(default=6000, ge=1500)
    #: Of that, the evidence gathered before the first call.
    evidence_budget_tokens: int = Field(default=3000, ge=300)
    #: Characters one tool call may hand the model.
    tool_output_limit: int = Field(default=4000, ge=200)
    #: Upper bounds on one investigation's agent loop.
    max_model_calls: int = Field(default=4, ge=1)
    max_tool_calls: int = Field(default=6, ge=0)
    #: Namespaces the agent may read besides those its alert and evidence name ("*": all).
    allowed_namespaces: Annotated[tuple[str, ...], NoDecode] = ()
    #: How far back one PromQL query may read (a range query's span, ranges, offsets).
    promql_max_range: timedelta = timedelta(days=7)
    #: Series one PromQL selector may match before the query is refused.
    promql_max_series: int = Field(default=10_000, ge=1)
    prompts_dir: Path | None = None
    log_level: str = "INFO"
    #: Slack: an incoming webhook, or a bot token + channel (threads per alert group).
    slack_webhook_url: SecretStr | None = None
    slack_bot_token: SecretStr | None = None
    slack_channel: str | None = Field(default=None, validate_default=True)
    #: Where chat.postMessage is sent (a proxy, or a test server).
    slack_api_url: str = "https://slack.com/api"
    #: A Slack app's signing secret: with it (and the bot token), analyses get
    #: "Confirm" / "Wrong" buttons, and POST /slack/interactions takes their clicks,
    #: each verified by its signature (a forged or stale request is refused).
    slack_signing_secret: SecretStr | None = None
    #: The URL users reach this service at; links in Slack messages start with it.
    public_url: str | None = None
    #: The service the CLI's ``chat``, ``list`` and ``show`` talk to (``--url`` wins).
    url: str = "http://127.0.0.1:8080"
    #: Prometheus's web UI as users reach it, for graph links in reports; unset: the
    #: scheme and host of each alert's generatorURL.
    prometheus_external_url: str | None = None

    @field_validator("allowed_namespaces", mode="before")
    @classmethod
    def _split_namespaces(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            bad = [
                v
                for v in value
                if v != "*" and not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", v)
            ]
            if bad:
                raise ValueError(
                    f"not namespace names: {', '.join(map(repr, bad))} (or '*' for all)"
                )
            return tuple(value)
        return value

    @field_validator("promql_max_range", mode="before")
    @classmethod
    def _parse_range(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().isdigit():
            value = timedelta(seconds=int(value.strip()))
        elif isinstance(value, str):
            import promql_parser

            try:
                value = promql_parser.parse_duration(value.strip())
            except ValueError:
                raise ValueError(f"not a duration: {value!r} (e.g. 7d, 36h)") from None
        if isinstance(value, timedelta) and value.total_seconds() <= 0:
            raise ValueError("must be positive")
        return value

    @field_validator("severities", mode="before")
    @classmethod
    def _split_severities(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip().lower() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple) and not value:
            raise ValueError("at least one severity is needed, e.g. 'critical,warning'")
        return tuple(value) if isinstance(value, list | tuple) else value

    @field_validator("kubeconfig", mode="before")
    @classmethod
    def _kubeconfig_text(cls, value: object) -> object:
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if isinstance(value, str):
            return value.strip() or None
        return value

    @property
    def llm_url(self) -> str:
        """The model server's URL, whichever API it speaks."""
        if self.llm_api == "openai" and self.openai_base_url:
            return self.openai_base_url
        return self.ollama_url

    @property
    def llm_setting(self) -> str:
        """The setting that points at the model server (for messages)."""
        return "SRE_AGENT_OPENAI_BASE_URL" if self.llm_api == "openai" else "SRE_AGENT_OLLAMA_URL"

    @property
    def kubeconfig_files(self) -> tuple[Path, ...]:
        """The kubeconfig files named, in order (``~`` expanded); empty when none is."""
        parts = str(self.kubeconfig or "").split(os.pathsep)
        return tuple(Path(p.strip()).expanduser() for p in parts if p.strip())

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip().lower().rstrip(".") for part in value.split(",")]
        if isinstance(value, list | tuple):
            value = tuple(part for part in value if part)
            if not value:
                raise ValueError("at least one name is needed, e.g. 'localhost'")
        return value

    @field_validator("webhook_token")
    @classmethod
    def _check_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        token = value.get_secret_value().strip()  # a Secret made --from-file ends in a newline
        if not token:
            raise ValueError("is empty: unset it for no auth, or set a token")
        return SecretStr(token)

    @field_validator("ollama_url", "prometheus_url", "url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
        return value

    @field_validator("slack_api_url", "public_url", "prometheus_external_url", "openai_base_url")
    @classmethod
    def _check_optional_url(cls, value: str | None) -> str | None:
        return None if value is None else cls._check_url(value)

    @field_validator("slack_webhook_url")
    @classmethod
    def _check_slack_webhook(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("must be an https:// URL (Slack's incoming-webhook URL)")
        return value

    @field_validator("slack_channel")
    @classmethod
    def _check_slack_channel(cls, value: str | None, info: ValidationInfo) -> str | None:
        value = value.strip() if value else None
        if value is None and info.data.get("slack_bot_token") is not None:
            raise ValueError(
                "must be set when SRE_AGENT_SLACK_BOT_TOKEN is (a channel name like #alerts,"
                " or its ID)"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if value.startswith(("postgresql://", "postgres://")):
            from psycopg.conninfo import conninfo_to_dict

            try:
                conninfo_to_dict(value)
            except Exception:  # libpq's reason may quote the password: never shown
                raise ValueError(
                    "not a Postgres URL libpq can read (postgresql://USER:PASSWORD@HOST:PORT/DB,"
                    f" a password's special characters percent-encoded), got {shown_url(value)!r}"
                ) from None
            return value
        if not value.startswith("sqlite:///"):
            raise ValueError(
                "sqlite:///PATH (e.g. sqlite:///./sre-agent.db) or postgresql://USER@HOST/DB,"
                f" got {shown_url(value)!r}"
            )
        if "?" in value or "#" in value:  # it would become part of the file's name
            raise ValueError(
                f"takes no query string or fragment (sqlite:///PATH only), got {value!r}"
            )
        path = Path(value.removeprefix("sqlite:///"))
        if not path.name or path.is_dir():
            raise ValueError(f"needs a file path, e.g. sqlite:///./sre-agent.db, got {value!r}")
        return value

    @model_validator(mode="after")
    def _public_host_answers(self) -> Settings:
        """The public URL's host is a name users reach the service by (an Ingress host
        need not be listed in SRE_AGENT_ALLOWED_HOSTS too)."""
        host = urlsplit(self.public_url or "").hostname
        if host and host not in self.allowed_hosts:
            self.allowed_hosts = (*self.allowed_hosts, host)
        return self

    @model_validator(mode="after")
    def _check_budgets(self) -> Settings:
        if self.llm_api == "openai" and not self.openai_base_url:
            raise ValueError(
                "SRE_AGENT_LLM_API=openai needs SRE_AGENT_OPENAI_BASE_URL (the server's API"
                " base with its version, e.g. http://127.0.0.1:8000/v1)"
            )
        if self.auth_proxy_header and not self.auth_proxy_cidrs:
            raise ValueError(
                "SRE_AGENT_AUTH_PROXY_HEADER needs SRE_AGENT_AUTH_PROXY_CIDRS (the proxy's"
                " addresses): a header trusted from anywhere would let anyone name any user"
            )
        if self.webhook_token is not None and any(
            token == self.webhook_token.get_secret_value() for _, token in self.named_api_tokens
        ):
            raise ValueError(
                "SRE_AGENT_WEBHOOK_TOKEN is also one of SRE_AGENT_API_TOKENS: give Alertmanager"
                " a token of its own (it must not open the API)"
            )
        if self.evidence_budget_tokens >= self.prompt_budget_tokens:
            raise ValueError(
                "SRE_AGENT_EVIDENCE_BUDGET_TOKENS must be below SRE_AGENT_PROMPT_BUDGET_TOKENS"
            )
        unknown = [s for s in self.severities if s not in KNOWN_SEVERITIES]
        if unknown and not self.allow_custom_severities:  # a typo would skip every alert
            guesses = [
                f"{u!r} (did you mean {close[0]!r}?)" if close else repr(u)
                for u in unknown
                for close in [difflib.get_close_matches(u, KNOWN_SEVERITIES, n=1)]
            ]
            raise ValueError(
                f"SRE_AGENT_SEVERITIES: {', '.join(guesses)}"
                f" {'is not a standard severity' if len(unknown) == 1 else 'are not standard'}"
                f" ({', '.join(KNOWN_SEVERITIES)}); alerts are matched on it exactly, so a"
                " typo skips every alert. If your alerts really use it, also set"
                " SRE_AGENT_ALLOW_CUSTOM_SEVERITIES=true"
            )
        if unknown:
            log.warning(
                "SRE_AGENT_SEVERITIES has %s, not one of the standard severities (%s):"
                " only alerts with exactly that severity label are investigated",
                ", ".join(unknown),
                ", ".join(KNOWN_SEVERITIES),
            )
        return self

    def unknown_severity(self, severity: str) -> str | None:
        """Why a severity no investigation has is likely a mistake (a typo, a case), if it
        is one that sre-agent neither knows nor is set to investigate."""
        known = dict.fromkeys((*self.severities, *KNOWN_SEVERITIES))
        if severity in known:
            return None
        close = difflib.get_close_matches(severity.lower(), known, n=1)
        guess = f" (did you mean {close[0]!r}?)" if close else ""
        return (
            f"severity: no investigation has {severity[:40]!r}{guess}; severities are matched"
            f" exactly, and SRE_AGENT_SEVERITIES investigates {', '.join(self.severities)}"
        )

    def skip_reason(self, severity: str) -> str | None:
        """Why an alert of ``severity`` is not investigated; None when it is. The one
        severity filter: the webhook's and ``sre-agent investigate``'s."""
        if severity in self.severities:
            return None
        shown = redact_label_value("severity", severity)
        return f"severity {shown!r} is not in SRE_AGENT_SEVERITIES ({','.join(self.severities)})"

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        value = value.upper()
        if value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return value

    @property
    def database_path(self) -> Path:
        return Path(self.database_url.removeprefix("sqlite:///"))


#: Variables Kubernetes injects for a Service whose name starts with ``sre-agent``
#: (``SRE_AGENT_SERVICE_SERVICE_HOST``, ``..._PORT_8080_TCP``): not settings, not typos.
_SERVICE_LINK = re.compile(r"_(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT(_\d+_(TCP|UDP|SCTP)\w*)?)$")


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """``SRE_AGENT_*`` variables that are no setting (a typo does nothing, silently), each
    with the setting it likely meant."""
    names = {f"SRE_AGENT_{name.upper()}" for name in Settings.model_fields}
    found = []
    for variable in sorted(os.environ if environ is None else environ):
        upper = variable.upper()
        if not upper.startswith("SRE_AGENT_") or upper in names or _SERVICE_LINK.search(upper):
            continue
        close = difflib.get_close_matches(upper, names, n=1, cutoff=0.8)
        found.append(f"{variable} (did you mean {close[0]}?)" if close else variable)
    return found


def load_settings(**overrides: object) -> Settings:
    """Build settings; a bad value becomes one ConfigError naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        # A rule across settings (no location) names its variables itself.
        raise ConfigError(describe_errors(exc.errors()[:1], where=_variable, width=None)) from None


def _variable(loc: Sequence[int | str]) -> str:
    return f"SRE_AGENT_{str(loc[0]).upper()}" if loc else ""
