"""What a Kubernetes read may name: valid object names, escaped selectors, allowed namespaces.

Tool arguments come from the model, and through it from whatever it read
(an alert annotation, a log line). A name with a ``/`` walks the URL path
(``../../secrets``); a comma in a field-selector value adds a selector of its
own (``x,involvedObject.namespace=kube-system``). So every name is checked
against Kubernetes' own syntax before a request is built, selector values are
escaped as ``k8s.io/apimachinery/pkg/fields.EscapeValue`` does, and label
selectors are rebuilt from validated pairs. :mod:`sre_agent_tools.kubernetes`
calls :func:`admit` for every request it makes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

#: DNS-1123 subdomain: pods, nodes, workloads, PVCs (at most 253 characters).
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
#: DNS-1123 label: namespaces, containers, services (at most 63 characters).
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
#: A label key's name part and a label value (qualified-name syntax, at most 63 characters).
_LABEL_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")

#: A field-selector key: a field path such as ``involvedObject.name``.
_FIELD_KEY = re.compile(r"[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)*")
#: Field-selector terms as code builds them: (key, "=" or "!=", value).
Terms = list[tuple[str, str, str]]

#: Built-in kinds without a namespace: readable by name whatever the scope (cluster-scoped
#: custom resources too; ``kube_api.KindInfo.namespaced`` is what the tools go by).
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Node",
        "PersistentVolume",
        "StorageClass",
        "Namespace",
        "IngressClass",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    }
)


class Rejected(ValueError):
    """An argument that must not reach a request; the message is for the model."""


def check_name(value: Any, what: str = "name") -> str:
    """An object name (DNS-1123 subdomain), or Rejected naming the rule."""
    text = str(value).strip() if value is not None else ""
    if len(text) > 253 or not _SUBDOMAIN.fullmatch(text):
        raise Rejected(
            f"{what} {shown(text)} is not a valid Kubernetes name: lowercase letters, digits,"
            " '-' and '.', starting and ending with a letter or digit, at most 253 characters."
        )
    return text


def check_label_name(value: Any, what: str) -> str:
    """A namespace or container name (DNS-1123 label), or Rejected."""
    text = str(value).strip() if value is not None else ""
    if len(text) > 63 or not _LABEL.fullmatch(text):
        raise Rejected(
            f"{what} {shown(text)} is not a valid Kubernetes {what} name: lowercase letters,"
            " digits and '-', starting and ending with a letter or digit, at most 63 characters."
        )
    return text


def shown(text: str) -> str:
    """``text`` quoted for an error message, cut at 80 characters."""
    return repr(text if len(text) <= 80 else text[:80] + "…")


def escape_field_value(value: str) -> str:
    """``fields.EscapeValue``: a backslash, comma or equals sign stays part of the value."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def field_selector(terms: Iterable[tuple[str, str, str]]) -> str | None:
    """``key=value`` / ``key!=value`` terms (key, operator, value), values escaped."""
    parts = [f"{key}{op}{escape_field_value(str(value))}" for key, op, value in terms]
    return ",".join(parts) or None


def label_selector(labels: Mapping[str, Any]) -> str:
    """``k=v,...`` from a workload's matchLabels, each key and value checked (Rejected if not)."""
    parts = []
    for key, value in sorted(labels.items()):
        prefix, _, name = str(key).rpartition("/")
        text = str(value)
        valid = (
            len(name) <= 63
            and _LABEL_PART.fullmatch(name)
            and (not prefix or (len(prefix) <= 253 and _SUBDOMAIN.fullmatch(prefix)))
            and (text == "" or (len(text) <= 63 and _LABEL_PART.fullmatch(text)))
        )
        if not valid:
            raise Rejected(f"label {shown(f'{key}={value}')} is not a valid label selector term.")
        parts.append(f"{key}={text}")
    return ",".join(parts)


def check_label_selector(selector: str) -> str:
    """A ``k=v,k2=v2`` selector text (as code builds it), every term checked."""
    pairs: dict[str, str] = {}
    for term in selector.split(","):
        key, sep, value = term.partition("=")
        if not sep:
            raise Rejected(f"label selector term {shown(term)} is not label=value.")
        pairs[key.strip()] = value.strip()
    return label_selector(pairs)


def as_terms(selector: Mapping[str, Any] | Iterable[tuple[str, str, str]] | str | None) -> Terms:
    """Field-selector terms from a mapping (equality), ``(key, op, value)`` tuples, or a
    ``key=value,key!=value`` text as code writes it (a value cannot hold a comma there)."""
    terms = _raw_terms(selector)
    for key, _, _ in terms:
        if not _FIELD_KEY.fullmatch(key):
            raise Rejected(f"field selector key {shown(key)} is not a field path.")
    return terms


def _raw_terms(selector: Mapping[str, Any] | Iterable[tuple[str, str, str]] | str | None) -> Terms:
    if not selector:
        return []
    if isinstance(selector, Mapping):
        return [(str(k), "=", str(v)) for k, v in selector.items()]
    if isinstance(selector, str):
        terms: Terms = []
        for term in filter(None, (t.strip() for t in selector.split(","))):
            key, op, value = (
                term.partition("!=") if "!=" in term else term.replace("==", "=").partition("=")
            )
            if not op or not key.strip():
                raise Rejected(
                    f"field selector term {shown(term)} is not field=value or field!=value."
                )
            terms.append((key.strip(), op, value.strip()))
        return terms
    terms = []
    for key, op, value in selector:
        if op not in ("=", "!="):
            raise Rejected(f"field selector operator {shown(str(op))} is not = or !=.")
        terms.append((str(key), op, str(value)))
    return terms


def admit(
    method: str,
    kwargs: dict[str, Any],
    allowed: frozenset[str] | None,
    owner: str,
    summary: str | None = None,
) -> None:
    """The gate for one client call's keyword arguments: names valid, selectors escaped
    (``kwargs`` is rewritten in place), the namespace in scope. Raises Rejected.

    ``summary`` says why a list across namespaces is fine under a scope (its items
    are only counted, or only concern a cluster-scoped object); without it, refused.
    """
    if "name" in kwargs:
        kwargs["name"] = check_name(kwargs["name"])
    if "namespace" in kwargs:
        kwargs["namespace"] = check_label_name(kwargs["namespace"], "namespace")
    if kwargs.get("container") is not None:
        kwargs["container"] = check_label_name(kwargs["container"], "container")
    labels = kwargs.get("label_selector")
    if isinstance(labels, Mapping):
        kwargs["label_selector"] = label_selector(labels) or None
    elif labels is not None:
        kwargs["label_selector"] = check_label_selector(str(labels))
    if "field_selector" in kwargs:
        terms = as_terms(kwargs.pop("field_selector"))
        for key, _, value in terms:
            if key.endswith(".namespace"):
                check_label_name(value, "namespace")
            elif key.endswith((".name", "nodeName")):
                check_name(value)
        if terms:
            kwargs["field_selector"] = field_selector(terms)
    if allowed is None:
        return
    if "namespace" in kwargs and kwargs["namespace"] not in allowed:
        raise Rejected(outside(kwargs["namespace"], allowed, owner))
    if method.endswith("_for_all_namespaces") and not summary:
        listed = ", ".join(sorted(allowed)) or "no namespace"
        raise Rejected(
            f"a list across all namespaces is outside {owner} scope ({listed}); name a namespace."
        )


def outside(namespace: str, allowed: frozenset[str], owner: str) -> str:
    """The refusal the model reads for a namespace outside the scope."""
    listed = ", ".join(sorted(allowed)) or "no namespace"
    return (
        f"namespace {namespace} is outside {owner} scope ({listed}); "
        "SRE_AGENT_ALLOWED_NAMESPACES widens it."
    )


def namespaces_of(labels: Mapping[str, Any], tool_calls: Iterable[Mapping[str, Any]]) -> set[str]:
    """The namespaces an investigation's evidence names: the alert's, and those it visited."""
    found = {str(labels.get("namespace") or "").strip()}
    for call in tool_calls:
        if call.get("phase") != "evidence":
            continue
        args = call.get("args") or {}
        if isinstance(args, Mapping):
            found.add(str(args.get("namespace") or "").strip())
    return {ns for ns in found if ns and len(ns) <= 63 and _LABEL.fullmatch(ns)}


def scope(
    labels: Mapping[str, Any],
    tool_calls: Iterable[Mapping[str, Any]],
    allowed: Iterable[str] = (),
) -> frozenset[str] | None:
    """The namespaces one investigation (or its chat) may read; None when ``*`` is allowed."""
    extra = {a.strip() for a in allowed if a.strip()}
    if "*" in extra:
        return None
    return frozenset(namespaces_of(labels, tool_calls) | extra)
