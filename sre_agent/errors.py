"""Errors of sre-agent: ours under one base, and those that stay beside the code they serve.

    SreAgentError
    ├── ConfigError          bad setting; stops start-up with one line
    ├── OllamaUnavailable    the model server cannot be reached (fail fast in the CLI)
    ├── ModelServerError     a model call broke on the server's side: garbage, a cut or
    │                        endless stream, silence (sre_agent.llm); degrades one run
    └── AlertPayloadError    a webhook body or alert file we cannot accept (4xx)

    Exception
    ├── KubeConfigProblem    sre_agent.backends: the kubeconfig named cannot be used; the
    │                        service runs without Kubernetes and its tools say why
    ├── ChatUnavailable      sre_agent.chat: the model failed during a chat turn; the
    │                        turn ends with the URL and the setting to check
    ├── SlackError           sre_agent.notify: Slack refused the message, after retries;
    │   (_Retryable)         logged, the investigation stands (the retry loop's own)
    └── ValueError
        └── CitationError    sre_agent.analysis: an answer cites evidence never gathered;
                             told to the model to fix

    Inside the tools (sre_agent_tools), each caught there and returned to the model
    as an error result, never raised past a tool:

    Exception
    ├── Failed               kube_kinds: carries a finished error result out of helpers
    ├── Refused              promql_guard: a query too wide or too long to send
    └── ValueError
        └── Rejected         kube_scope: a name, namespace or selector that must not
                             reach a request

    In the lab (sre_agent_lab), for ``sre-agent eval`` and the tests:

    ├── PrometheusMissing(RuntimeError)  prometheus/promtool not on PATH
    └── ScenarioError(ValueError)        a scenario file that fails its checks

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
