"""The LangChain tools the agent may call, all read-only.

Each is a thin async wrapper over a backend function; its signature and
docstring are the schema the model sees, so both are kept short and plain
(small local models follow short schemas best). The clients arrive through
the run context (``ToolRuntime[ToolDeps]``).
"""

from __future__ import annotations

from langchain.tools import BaseTool, ToolRuntime, tool

from sre_agent_tools import kubernetes as k8s
from sre_agent_tools import prometheus as prom
from sre_agent_tools.deps import ToolDeps


@tool
async def promql_query(query: str, runtime: ToolRuntime[ToolDeps]) -> str:
    """Run an instant PromQL query and return the current value of each series.

    Name a metric and filter by labels: a selector that could match every series, or a
    query reading further back than the limit (7 days by default), is refused.
    """
    return (await prom.query_instant(runtime.context, query)).render()


@tool
async def promql_range(
    query: str,
    runtime: ToolRuntime[ToolDeps],
    start: str = "now-1h",
    end: str = "now",
    step: str | None = None,
) -> str:
    """Run a PromQL range query; returns a summary per series (min, max, last, trend, a few points).

    start/end accept RFC3339, unix seconds, or relative times like now-30m.
    """
    return (
        await prom.query_range(runtime.context, query, start=start, end=end, step=step)
    ).render()


@tool
async def kubectl_describe(
    kind: str, name: str, runtime: ToolRuntime[ToolDeps], namespace: str | None = None
) -> str:
    """Describe a Kubernetes object like `kubectl describe`, with its recent events.

    Only the alert's namespaces can be read (cluster-scoped objects such as nodes always).

    kind: pod, deployment, statefulset, daemonset, replicaset, job, cronjob, hpa, service,
    endpointslice, ingress, pvc, pv, configmap, resourcequota, node, namespace, storageclass,
    ingressclass, mutatingwebhookconfiguration, or any custom resource (e.g. certificate,
    certificates.cert-manager.io). Never secrets.
    """
    return (await k8s.describe(runtime.context, kind, name, namespace)).render()


@tool
async def kubectl_events(
    namespace: str, runtime: ToolRuntime[ToolDeps], name: str | None = None
) -> str:
    """List recent Kubernetes events in a namespace, optionally only those of one object."""
    return (await k8s.events(runtime.context, namespace, name=name)).render()


@tool
async def kubectl_logs(
    pod: str,
    namespace: str,
    runtime: ToolRuntime[ToolDeps],
    container: str | None = None,
    previous: bool = False,
    tail_lines: int = 100,
) -> str:
    """Read a pod container's recent log lines; previous=true reads the crashed container's logs."""
    result = await k8s.logs(
        runtime.context,
        pod,
        namespace,
        container=container,
        previous=previous,
        tail_lines=tail_lines,
    )
    return result.render()


def make_tools() -> list[BaseTool]:
    """Every tool the agent gets, in the order they are offered."""
    return [promql_query, promql_range, kubectl_describe, kubectl_events, kubectl_logs]
