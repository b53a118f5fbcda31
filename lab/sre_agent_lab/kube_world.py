"""A small Kubernetes API server that serves fixture objects to the real ``kubernetes`` client.

Why a server and not a mock: the tools must work against the real client's
URL building, query encoding, error classes and timeouts. This fake speaks
just enough of the wire protocol (GET reads, lists with label/field
selectors, ``limit``/``continue``, pod and init-container logs, discovery of
every group/version/kind it holds, Status error bodies, a 400 for a field
selector a real server would refuse) for that, and records every request so a
test can prove the tools only read and never touch Secrets. What it knows
about resource types is :mod:`sre_agent_lab.kube_resources`; what it answers for a
list, a log or an error, :mod:`sre_agent_lab.kube_answers`.

It serves the scenario worlds to the tests and to ``sre-agent eval``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml
from kubernetes.client import ApiClient, Configuration

from sre_agent_lab.kube_answers import (
    Answer,
    LogKey,
    error,
    json_answer,
    list_answer,
    log_answer,
    not_found_path,
)
from sre_agent_lab.kube_resources import (
    BUILTIN,
    VERSION,
    Resource,
    discovery_doc,
    plural_of,
)

#: Built-in kinds whose objects have no namespace (a custom kind is cluster-scoped when
#: a loaded CustomResourceDefinition says so, or when its manifest has no namespace).
CLUSTER_SCOPED = {r.kind for r in BUILTIN if not r.namespaced}


def _split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


class FakeKube:
    """A fake API server on 127.0.0.1; use as a context manager or call start()/stop()."""

    def __init__(self) -> None:
        # (group, plural) -> list of objects
        self.objects: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.logs: dict[LogKey, str] = {}
        self.requests: list[tuple[str, str]] = []
        self.forbidden: set[str] = {"secrets"}
        #: (group, version, kind) -> resource, for kinds loaded that are not built in
        self.custom: dict[tuple[str, str, str], Resource] = {}
        #: (group, kind) -> CRD spec, from loaded CustomResourceDefinitions
        self.crds: dict[tuple[Any, Any], dict[str, Any]] = {}
        #: API groups that answer 503, as an aggregated API whose backend is down does
        self.unavailable: set[str] = set()
        #: API groups that answer only after a delay, in seconds
        self.hung: dict[str, float] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- data -------------------------------------------------------------
    def load(self, objects: list[dict[str, Any]], logs: dict[LogKey, str] | None = None) -> None:
        """Add manifests (and pod logs keyed by (namespace, pod, container, previous))."""
        for crd in objects:  # CRDs first: they say the plural and scope of their kind
            if crd.get("kind") == "CustomResourceDefinition":
                spec = crd.get("spec") or {}
                self.crds[(spec.get("group"), (spec.get("names") or {}).get("kind"))] = spec
        for raw in objects:
            obj = json.loads(json.dumps(raw))  # private copy
            meta = obj.setdefault("metadata", {})
            resource = self._resource_of(obj)
            if resource.namespaced:
                meta.setdefault("namespace", "default")
            meta.setdefault("uid", f"uid-{meta.get('namespace', '')}-{meta.get('name')}")
            meta.setdefault("resourceVersion", "1")
            meta.setdefault("creationTimestamp", "2026-11-20T00:00:00Z")
            self.objects.setdefault((resource.group, resource.plural), []).append(obj)
        self.logs.update(logs or {})

    def _resource_of(self, obj: dict[str, Any]) -> Resource:
        """The resource type an object belongs to; a new one is added to discovery."""
        group, version = _split_api_version(obj["apiVersion"])
        kind = obj["kind"]
        builtin = next((r for r in BUILTIN if r.group == group and r.kind == kind), None)
        if builtin is not None and builtin.version == version:
            return builtin
        if builtin is not None:
            resource = builtin._replace(version=version)
        else:
            crd = self.crds.get((group, kind)) or {}
            names = crd.get("names") or {}
            scope = crd.get("scope")
            namespaced = (
                scope == "Namespaced"
                if scope
                else bool((obj.get("metadata") or {}).get("namespace"))
            )
            resource = Resource(
                group,
                version,
                names.get("plural") or plural_of(kind),
                kind,
                namespaced,
                tuple(names.get("shortNames") or ()),
            )
        return self.custom.setdefault((group, version, kind), resource)

    def resources(self) -> list[Resource]:
        """Every resource type served: the built-in ones, then those of loaded objects."""
        return [*BUILTIN, *self.custom.values()]

    def load_file(self, path: str | Path) -> None:
        """Load ``{"objects": [...], "logs": [{namespace, pod, container, previous, text}]}``."""
        data = yaml.safe_load(Path(path).read_text())
        logs = {
            (e["namespace"], e["pod"], e["container"], bool(e.get("previous", False))): e["text"]
            for e in data.get("logs", [])
        }
        self.load(data.get("objects", []), logs)

    def make_unavailable(self, group: str) -> None:
        """Answer 503 for everything under ``/apis/<group>`` (a down aggregated API)."""
        self.unavailable.add(group)

    def make_hung(self, group: str, seconds: float) -> None:
        """Answer requests under ``/apis/<group>`` only after ``seconds`` (a hung API)."""
        self.hung[group] = seconds

    def forbid(self, plural: str) -> None:
        """Answer 403 for every request on ``plural``, as a narrow RBAC role would."""
        self.forbidden.add(plural)

    # -- lifecycle --------------------------------------------------------
    def start(self) -> FakeKube:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _QuietServer(("127.0.0.1", 0), handler)
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

    def respond(self, method: str, target: str) -> Answer:
        """(status code, content type, body) for one request."""
        parts = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        segs = [s for s in parts.path.split("/") if s]
        if "secrets" in segs:
            return error(
                403,
                "Forbidden",
                'secrets is forbidden: User "system:serviceaccount:sre:agent" '
                'cannot get resource "secrets"',
            )
        if method != "GET":
            return error(
                405, "MethodNotAllowed", f"the server does not allow this method ({method}) here"
            )
        if segs == ["version"]:
            return json_answer(200, VERSION)
        if len(segs) >= 2 and segs[0] == "apis" and segs[1] in self.unavailable:
            return error(
                503, "ServiceUnavailable", "the server is currently unable to handle the request"
            )
        discovery = discovery_doc(segs, self.resources())
        if discovery is not None:
            return json_answer(200, discovery)
        if segs[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", segs[2:]
        elif len(segs) >= 4 and segs[0] == "apis":
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            return not_found_path(target)
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            return not_found_path(target)
        plural = rest[0]
        served = next(
            (
                r
                for r in self.resources()
                if (r.group, r.version, r.plural) == (group, version, plural)
            ),
            None,
        )
        if served is None or (namespace is not None and not served.namespaced):
            return not_found_path(target)
        name = rest[1] if len(rest) > 1 else None
        if name is not None and namespace is None and served.namespaced:
            return not_found_path(target)  # a real server has no such route
        sub = rest[2] if len(rest) > 2 else None
        if plural in self.forbidden:
            verb = "list" if name is None else "get"
            where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
            return error(
                403,
                "Forbidden",
                f'{plural} is forbidden: User "system:serviceaccount:sre:agent" '
                f'cannot {verb} resource "{plural}" in API group "{group}"{where}',
            )
        if name is None:
            return list_answer(
                self.items(group, plural),
                self.resources(),
                group,
                version,
                plural,
                namespace,
                query,
            )
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
            return error(
                404,
                "NotFound",
                f'{plural} "{name}" not found',
                {"name": name, "group": group, "kind": plural},
            )
        if sub is None:
            return json_answer(200, obj)
        if plural == "pods" and sub == "log" and namespace is not None:
            return log_answer(obj, self.logs, namespace, query)
        return not_found_path(target)


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
        segs = [s for s in urlsplit(self.path).path.split("/") if s]
        if len(segs) >= 2 and segs[0] == "apis" and segs[1] in self.fake.hung:
            time.sleep(self.fake.hung[segs[1]])
        code, ctype, body = self.fake.respond(self.command, self.path)
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a hung API)
                self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Keep test output quiet."""


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up (the service stopping mid-request) is no error to print."""

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]
