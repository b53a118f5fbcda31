"""Secret-looking values masked where a Kubernetes object enters, before any renderer,
log line or structured read sees it (docs: "Read-only, least privilege").
"""

from __future__ import annotations

from sre_agent_tools.kube_kinds import BUILTIN_RESOURCES, KindInfo, Obj
from sre_agent_tools.redact import MASK, redact, redact_obj, redact_value

__all__ = ["mask"]

#: A copy of the whole object as last applied, ConfigMap data and env values included.
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def mask(info: KindInfo, obj: Obj) -> Obj:
    """Secret-looking values masked where they enter (in place): annotations (the
    last-applied copy whole), container env values, args and commands, event messages,
    and everything in a custom resource's spec and status. ConfigMap ``data`` is left
    to its renderer, which shows sizes, and to the structured reads."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict):
        meta["annotations"] = {
            k: MASK if k == _LAST_APPLIED and v else redact_value(str(k), str(v))
            for k, v in meta["annotations"].items()
        }
    if info.resource not in BUILTIN_RESOURCES:
        for part in ("spec", "status"):
            if part in obj:
                obj[part] = redact_obj(obj[part])
        return obj
    if info.kind == "Event" and isinstance(obj.get("message"), str):
        obj["message"] = redact(obj["message"])
    spec = obj.get("spec")
    for _ in range(3):  # pod, template.spec, jobTemplate.spec.template.spec
        if not isinstance(spec, dict):
            break
        for key in ("containers", "initContainers", "ephemeralContainers"):
            for container in spec.get(key) or []:
                if isinstance(container, dict):
                    _mask_container(container)
        template = spec.get("template") or spec.get("jobTemplate")
        spec = template.get("spec") if isinstance(template, dict) else None
    return obj


def _mask_container(container: Obj) -> None:
    for env in container.get("env") or []:
        if isinstance(env, dict) and env.get("value") is not None:
            env["value"] = redact_value(str(env.get("name") or ""), str(env["value"]))
    for key in ("args", "command"):
        if isinstance(container.get(key), list):
            container[key] = [redact(str(a)) for a in container[key]]
