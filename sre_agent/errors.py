"""Errors of sre-agent.

    SreAgentError
    ├── ConfigError          bad setting; stops start-up with one line
    ├── OllamaUnavailable    the model server cannot be reached (fail fast in the CLI)
    ├── ModelServerError     a model call broke on the server's side: garbage, a cut or
    │                        endless stream, silence (sre_agent.llm); degrades one run
    └── AlertPayloadError    a webhook body or alert file we cannot accept (4xx)

Tool problems (bad PromQL, object not found, backend down) are *not* errors
here: tools return them to the model as text (``ToolResult("error", ...)``),
so the agent can try something else. An exception that escapes an
investigation ends that investigation (failed/degraded), never the service.
"""


class SreAgentError(Exception):
    """Base of our own errors."""


class ConfigError(SreAgentError):
    """A setting has a bad value."""


class OllamaUnavailable(SreAgentError):
    """Ollama did not answer at the configured URL."""


class ModelServerError(SreAgentError):
    """The model server answered a call with something other than Ollama's protocol."""


class AlertPayloadError(SreAgentError):
    """An alert body that is not a valid Alertmanager v4 payload."""
