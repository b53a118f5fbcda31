"""``sre-agent list``, ``show ID``, ``feedback ID`` and ``runbook ALERTNAME``: a running
service's investigations, verdicts on them, and runbook drafts.

They call ``GET /investigations``, ``GET /investigations/{id}``,
``POST /investigations/{id}/feedback`` and ``GET /runbooks/{alertname}`` of the
service at ``--url`` (default ``SRE_AGENT_URL``), with the same filters as the
API. Exit codes: 0 shown, 1 the service could not be reached, 2 refused (an
unknown id, a bad filter).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any
from urllib.parse import quote

import httpx

from sre_agent.errors import ConfigError
from sre_agent.settings import Settings

STATUSES = ("queued", "running", "completed", "degraded", "failed", "cancelled")


def add_parsers(sub: Any) -> None:
    listing = sub.add_parser(
        "list",
        help="recent investigations of a running service, newest first",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--severity")
    listing.add_argument("--alertname")
    listing.add_argument("--namespace")
    listing.add_argument("--limit", type=int, default=20, help="how many (1-500)")
    listing.add_argument("--before", metavar="ID", help="only those listed after this id")
    listing.add_argument("--json", action="store_true", help="print the API's answer as JSON")
    _add_url(listing)
    show = sub.add_parser("show", help="one investigation: its report, or --json the record")
    show.add_argument("id", help="the investigation id")
    show.add_argument("--json", action="store_true", help="the whole record as JSON")
    _add_url(show)
    feedback = sub.add_parser(
        "feedback",
        help="say whether an investigation's analysis was right (the next ones use it)",
        description="Record a verdict on an investigation's analysis: --confirm (its cause"
        " is right), --partial, or --wrong (with --cause: what it really was). The author"
        " is the user of SRE_AGENT_API_TOKEN.",
    )
    feedback.add_argument("id", help="the investigation id")
    verdict = feedback.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--confirm", dest="verdict", action="store_const", const="confirmed")
    verdict.add_argument("--partial", dest="verdict", action="store_const", const="partial")
    verdict.add_argument("--wrong", dest="verdict", action="store_const", const="wrong")
    feedback.add_argument(
        "--cause", help="the cause as it was (default for --confirm: the analysis')"
    )
    feedback.add_argument("--note", help="anything else, e.g. what fixed it")
    feedback.add_argument("--json", action="store_true", help="print the stored feedback as JSON")
    _add_url(feedback)
    runbook = sub.add_parser(
        "runbook", help="a runbook draft for an alert, from the causes people confirmed"
    )
    runbook.add_argument("alertname", help="the alert's name, e.g. KubePodCrashLooping")
    runbook.add_argument("--json", action="store_true", help="the draft as JSON")
    _add_url(runbook)


def _add_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="the service (default: SRE_AGENT_URL, http://127.0.0.1:8080)")


def service_url(args: argparse.Namespace, settings: Settings) -> str:
    """``--url``, else ``SRE_AGENT_URL``; one that is no http(s) URL is a ConfigError
    (exit 2), not a "cannot reach" or a traceback."""
    url = str(args.url or settings.url).strip().rstrip("/")
    where = "--url" if args.url else "SRE_AGENT_URL"
    try:
        if not url.startswith(("http://", "https://")) or not httpx.URL(url).host:
            raise httpx.InvalidURL("not an http:// or https:// URL with a host")
    except httpx.InvalidURL as exc:
        raise ConfigError(f"{where}: {exc} (e.g. http://127.0.0.1:8080), got {url!r}") from None
    return url


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    keys = ("status", "severity", "alertname", "namespace", "limit", "before")
    params = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    answer = _get(service_url(args, settings), "/investigations", params, settings)
    if isinstance(answer, int):
        return answer
    data = answer.json()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    rows = data.get("investigations") or []
    if not rows:
        print("sre-agent: no investigations match", file=sys.stderr)
    # Columns as wide as this page's longest value (bounded), so they line up.
    name_w = min(max((len(str(r.get("alertname") or "")) for r in rows), default=0), 40)
    ns_w = min(max((len(str(r.get("namespace") or "-")) for r in rows), default=0), 30)
    for r in rows:
        summary = " ".join(str(r.get("summary") or r.get("status_reason") or "").split())
        print(
            f"{r['id']}  {str(r.get('created_at') or '')[:19]}  {r['status']:<9}"
            f"  {str(r.get('severity') or ''):<8}  {str(r.get('alertname') or ''):<{name_w}}"
            f"  {str(r.get('namespace') or '-'):<{ns_w}}  {summary[:80]}".rstrip()
        )
    if data.get("next_before"):
        print(f"(more: --before {data['next_before']})", file=sys.stderr)
    return 0


def run_show(args: argparse.Namespace, settings: Settings) -> int:
    # An id is one path segment: what it holds is not a query, nor another route.
    return _document(args, settings, f"/investigations/{quote(args.id, safe='')}")


def _document(args: argparse.Namespace, settings: Settings, path: str) -> int:
    """A resource as markdown (``?format=markdown``), or ``--json`` as its JSON."""
    params = {} if args.json else {"format": "markdown"}
    answer = _get(service_url(args, settings), path, params, settings)
    if isinstance(answer, int):
        return answer
    if args.json:
        print(json.dumps(answer.json(), indent=2))
    else:
        print(answer.text, end="" if answer.text.endswith("\n") else "\n")
    return 0


def run_feedback(args: argparse.Namespace, settings: Settings) -> int:
    body = {"verdict": args.verdict, "cause": args.cause, "note": args.note}
    path = f"/investigations/{quote(args.id, safe='')}/feedback"
    answer = _request(
        "POST",
        service_url(args, settings),
        path,
        settings,
        json={k: v for k, v in body.items() if v},
    )
    if isinstance(answer, int):
        return answer
    data = answer.json()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    cause = f": {data['cause']}" if data.get("cause") else ""
    print(f"{args.id}: {data['verdict']} by {data['author']}{cause}")
    return 0


def run_runbook(args: argparse.Namespace, settings: Settings) -> int:
    return _document(args, settings, f"/runbooks/{quote(args.alertname, safe='')}")


def unauthorized(response: httpx.Response) -> str:
    """What a 401 means to a CLI user (the service's own message speaks of /login): no
    token was sent, or the one sent (SRE_AGENT_API_TOKEN) was refused."""
    if "authorization" not in response.request.headers:
        return (
            "the service needs an API token: set SRE_AGENT_API_TOKEN to one of its"
            " SRE_AGENT_API_TOKENS"
        )
    return "the service refused SRE_AGENT_API_TOKEN: it is none of its SRE_AGENT_API_TOKENS"


def auth_headers(settings: Settings) -> dict[str, str]:
    """``Authorization: Bearer`` with SRE_AGENT_API_TOKEN, when it is set."""
    if settings.api_token is None:
        return {}
    return {"Authorization": f"Bearer {settings.api_token.get_secret_value()}"}


def _get(base: str, path: str, params: dict[str, Any], settings: Settings) -> httpx.Response | int:
    """The answer, or the exit code after saying on stderr what went wrong."""
    return _request("GET", base, path, settings, params=params)


def _request(
    method: str, base: str, path: str, settings: Settings, **kwargs: Any
) -> httpx.Response | int:
    try:
        response = httpx.request(
            method, f"{base}{path}", headers=auth_headers(settings), timeout=30, **kwargs
        )
    except httpx.HTTPError as exc:
        print(
            f"sre-agent: cannot reach the service at {base} ({exc.__class__.__name__}: {exc});"
            " is `sre-agent serve` running there? (--url or SRE_AGENT_URL)",
            file=sys.stderr,
        )
        return 1
    if response.status_code not in (200, 201):
        try:
            error = str(response.json().get("error") or response.text)
        except ValueError:
            error = f"HTTP {response.status_code}: {response.text[:200]}"
        if response.status_code == 401:
            error = unauthorized(response)
        print(f"sre-agent: {error}", file=sys.stderr)
        return 2 if response.status_code < 500 else 1
    return response
