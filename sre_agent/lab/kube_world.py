"""A small Kubernetes API server that serves fixture objects to the real ``kubernetes`` client.

Why a server and not a mock: the tools must work against the real client's
URL building, query encoding, error classes and timeouts. This fake speaks
just enough of the wire protocol (GET reads, lists with label/field
selectors, pod logs, Status error bodies) for that, and records every
request so a test can prove the tools only read and never touch Secrets.

It serves the scenario worlds to the tests and to ``sre-agent eval``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml
from kubernetes.client import ApiClient, Configuration

#: Kinds whose objects have no namespace.
CLUSTER_SCOPED = {"Node", "Namespace", "PersistentVolume", "StorageClass", "ClusterRole"}
#: Plurals that are not simply ``kind.lower() + "s"``.
_PLURALS = {
    "Endpoints": "endpoints",
    "Ingress": "ingresses",
    "NetworkPolicy": "networkpolicies",
    "StorageClass": "storageclasses",
    "PriorityClass": "priorityclasses",
}

LogKey = tuple[str, str, str, bool]  # namespace, pod, container, previous


def plural_of(kind: str) -> str:
    """The resource name the API uses in URLs for ``kind``."""
    return _PLURALS.get(kind, kind.lower() + "s")


def _split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def _lookup(obj: dict[str, Any], dotted: str) -> str | None:
    """Resolve a field-selector path such as ``involvedObject.name``."""
    value: Any = obj
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return None if value is None else str(value)


def _matches_fields(obj: dict[str, Any], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, want = term.split("!=", 1)
            if _lookup(obj, key.strip()) == want.strip():
                return False
            continue
        key, _, want = term.replace("==", "=").partition("=")
        if (_lookup(obj, key.strip()) or "") != want.strip():
            return False
    return True


def _matches_labels(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, want = (s.strip() for s in term.split("!=", 1))
            if labels.get(key) == want:
                return False
        elif "=" in term:
            key, want = (s.strip() for s in term.replace("==", "=").split("=", 1))
            if labels.get(key) != want:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _status(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return body


class FakeKube:
    """A fake API server on 127.0.0.1; use as a context manager or call start()/stop()."""

    def __init__(self) -> None:
        # (group, plural) -> list of objects
        self.objects: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.logs: dict[LogKey, str] = {}
        self.requests: list[tuple[str, str]] = []
        self.forbidden: set[str] = {"secrets"}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- data -------------------------------------------------------------
    def load(self, objects: list[dict[str, Any]], logs: dict[LogKey, str] | None = None) -> None:
        """Add manifests (and pod logs keyed by (namespace, pod, container, previous))."""
        for raw in objects:
            obj = json.loads(json.dumps(raw))  # private copy
            meta = obj.setdefault("metadata", {})
            if obj["kind"] not in CLUSTER_SCOPED:
                meta.setdefault("namespace", "default")
            meta.setdefault("uid", f"uid-{meta.get('namespace', '')}-{meta.get('name')}")
            meta.setdefault("resourceVersion", "1")
            meta.setdefault("creationTimestamp", "2026-11-20T00:00:00Z")
            group, _ = _split_api_version(obj["apiVersion"])
            self.objects.setdefault((group, plural_of(obj["kind"])), []).append(obj)
        self.logs.update(logs or {})

    def load_file(self, path: str | Path) -> None:
        """Load ``{"objects": [...], "logs": [{namespace, pod, container, previous, text}]}``."""
        data = yaml.safe_load(Path(path).read_text())
        logs = {
            (e["namespace"], e["pod"], e["container"], bool(e.get("previous", False))): e["text"]
            for e in data.get("logs", [])
        }
        self.load(data.get("objects", []), logs)

    def forbid(self, plural: str) -> None:
        """Answer 403 for every request on ``plural``, as a narrow RBAC role would."""
        self.forbidden.add(plural)

    # -- lifecycle --------------------------------------------------------
    def start(self) -> FakeKube:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeKube:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- clients ----------------------------------------------------------
    def api_client(self) -> ApiClient:
        """A real ``ApiClient`` pointed at this server, without auth."""
        config = Configuration(host=self.url)
        config.verify_ssl = False
        return ApiClient(config)

    def write_kubeconfig(self, path: str | Path) -> Path:
        """Write a kubeconfig for this server (JSON is valid YAML) and return its path."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {}}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {"cluster": "fake", "user": "fake", "namespace": "default"},
                }
            ],
        }
        path = Path(path)
        path.write_text(json.dumps(config, indent=2))
        return path

    # -- serving ----------------------------------------------------------
    def items(self, group: str, plural: str) -> Iterator[dict[str, Any]]:
        yield from self.objects.get((group, plural), [])

    def respond(self, method: str, target: str) -> tuple[int, str, str]:
        """(status code, content type, body) for one request."""
        parts = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        segs = [s for s in parts.path.split("/") if s]
        if "secrets" in segs:
            return self._error(
                403,
                "Forbidden",
                'secrets is forbidden: User "system:serviceaccount:sre:agent" '
                'cannot get resource "secrets"',
            )
        if method != "GET":
            return self._error(
                405, "MethodNotAllowed", f"the server does not allow this method ({method}) here"
            )
        if segs == ["version"]:
            return self._json(
                200,
                {
                    "major": "1",
                    "minor": "31",
                    "gitVersion": "v1.31.0",
                    "gitCommit": "9c3a8d5e1f0b2c4d6e8f0a1b3c5d7e9f1a3b5c7d",
                    "gitTreeState": "clean",
                    "buildDate": "2026-10-01T00:00:00Z",
                    "goVersion": "go1.23.2",
                    "compiler": "gc",
                    "platform": "linux/amd64",
                },
            )
        if segs == ["api"]:
            return self._json(200, {"kind": "APIVersions", "versions": ["v1"]})
        if segs == ["apis"]:
            groups = [
                {"name": g, "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}]}
                for g in ("apps", "batch", "events.k8s.io")
            ]
            return self._json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        if segs[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", segs[2:]
        elif len(segs) >= 3 and segs[0] == "apis":
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            return self._not_found_path(target)
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            return self._not_found_path(target)
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if plural in self.forbidden:
            verb = "list" if name is None else "get"
            where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
            return self._error(
                403,
                "Forbidden",
                f'{plural} is forbidden: User "system:serviceaccount:sre:agent" '
                f'cannot {verb} resource "{plural}" in API group "{group}"{where}',
            )
        if name is None:
            return self._list(group, version, plural, namespace, query)
        obj = next(
            (
                o
                for o in self.items(group, plural)
                if o["metadata"]["name"] == name
                and (namespace is None or o["metadata"].get("namespace") == namespace)
            ),
            None,
        )
        if obj is None:
            return self._error(
                404,
                "NotFound",
                f'{plural} "{name}" not found',
                {"name": name, "group": group, "kind": plural},
            )
        if sub is None:
            return self._json(200, obj)
        if plural == "pods" and sub == "log" and namespace is not None:
            return self._log(obj, namespace, query)
        return self._not_found_path(target)

    def _list(
        self, group: str, version: str, plural: str, namespace: str | None, query: dict[str, str]
    ) -> tuple[int, str, str]:
        found = [
            o
            for o in self.items(group, plural)
            if (namespace is None or o["metadata"].get("namespace") == namespace)
            and _matches_labels(o["metadata"].get("labels") or {}, query.get("labelSelector", ""))
            and _matches_fields(o, query.get("fieldSelector", ""))
        ]
        kind = found[0]["kind"] if found else plural[:-1].capitalize()
        return self._json(
            200,
            {
                "kind": f"{kind}List",
                "apiVersion": f"{group}/{version}" if group else version,
                "metadata": {"resourceVersion": "1"},
                "items": found,
            },
        )

    def _log(
        self, pod: dict[str, Any], namespace: str, query: dict[str, str]
    ) -> tuple[int, str, str]:
        name = pod["metadata"]["name"]
        names = [c["name"] for c in pod.get("spec", {}).get("containers", [])]
        container = query.get("container")
        if container is None:
            if len(names) != 1:
                return self._error(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {name}, "
                    f"choose one of: [{' '.join(names)}]",
                )
            container = names[0]
        if container not in names:
            return self._error(
                400, "BadRequest", f"container {container} is not valid for pod {name}"
            )
        previous = query.get("previous", "false").lower() == "true"
        text = self.logs.get((namespace, name, container, previous))
        if text is None and previous:
            return self._error(
                400,
                "BadRequest",
                f'previous terminated container "{container}" in pod "{name}" not found',
            )
        lines = (text or "").splitlines(keepends=True)
        if "tailLines" in query:
            lines = lines[-int(query["tailLines"]) :] if int(query["tailLines"]) > 0 else []
        return 200, "text/plain", "".join(lines)

    @staticmethod
    def _json(code: int, body: dict[str, Any]) -> tuple[int, str, str]:
        return code, "application/json", json.dumps(body)

    def _error(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> tuple[int, str, str]:
        return self._json(code, _status(code, reason, message, details))

    def _not_found_path(self, target: str) -> tuple[int, str, str]:
        return self._error(
            404, "NotFound", f"the server could not find the requested resource ({target})"
        )


class _Handler(BaseHTTPRequestHandler):
    fake: FakeKube
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle and delayed ACKs
    # add ~40 ms to every keep-alive response (a real API server has no such delay).
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        self.fake.requests.append((self.command, self.path))
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        code, ctype, body = self.fake.respond(self.command, self.path)
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Keep test output quiet."""
