"""``sre-agent chat ID``: follow-up questions to a running service, answers streamed.

It talks HTTP (Server-Sent Events) to ``sre-agent serve``: the answer's tokens
go to stdout as they come, tool calls to stderr as ``[tool name(args)]``.
Exit codes: 0 answered, 1 the service could not be reached, 2 the request was
refused (unknown id, investigation still running, bad message), 3 the model
server failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO
from urllib.parse import quote

import httpx
from httpx_sse import SSEError, connect_sse

from sre_agent.records_cli import unauthorized

DEFAULT_URL = "http://127.0.0.1:8080"


def add_parser(sub: Any) -> None:
    chat = sub.add_parser("chat", help="ask follow-up questions about one investigation")
    chat.add_argument("id", help="the investigation id")
    chat.add_argument("--message", "-m", help="ask one question and exit (no prompt)")
    chat.add_argument("--url", help=f"the service (default: SRE_AGENT_URL, else {DEFAULT_URL})")


def run(
    args: argparse.Namespace, url: str = DEFAULT_URL, headers: dict[str, str] | None = None
) -> int:
    """``headers``: the service's ``Authorization`` (SRE_AGENT_API_TOKEN), if any."""
    timeout = httpx.Timeout(10, read=900)
    with httpx.Client(base_url=url.rstrip("/"), timeout=timeout, headers=headers) as http:
        if args.message is not None:
            return ask(http, args.id, args.message)
        print(
            f"Ask about investigation {args.id}; an empty line or Ctrl-D ends the chat.",
            file=sys.stderr,
        )
        while True:
            try:
                question = input("> ")
            except EOFError:
                print(file=sys.stderr)
                return 0
            if not question.strip():
                return 0
            code = ask(http, args.id, question)
            if code in (1, 2):
                return code


def ask(http: httpx.Client, ident: str, question: str, out: TextIO | None = None) -> int:
    """One question; the answer is streamed to ``out`` (stdout)."""
    out = out or sys.stdout
    url = f"/investigations/{quote(ident, safe='')}/chat"  # an id is one path segment
    try:
        with connect_sse(
            http, "POST", url, json={"message": question}, headers={"Accept": "text/event-stream"}
        ) as source:
            response = source.response
            if response.status_code != 200:
                response.read()
                print(f"sre-agent: {_error_of(response)}", file=sys.stderr)
                return 2 if response.status_code < 500 else 3
            for sse in source.iter_sse():
                data = _data(sse.data)
                if sse.event == "token":
                    out.write(str(data.get("text", "")))
                    out.flush()
                elif sse.event == "tool_call":
                    args = ", ".join(f"{k}={v!r}" for k, v in (data.get("args") or {}).items())
                    print(f"[tool {data.get('name')}({args})]", file=sys.stderr, flush=True)
                elif sse.event == "error":
                    print(f"\nsre-agent: {data.get('error')}", file=sys.stderr)
                    return 3
                elif sse.event == "done":
                    out.write("\n")
                    out.flush()
                    return 0
    except SSEError as exc:  # a 200 that is no event stream: not our service there
        print(
            f"sre-agent: {http.base_url} did not answer as sre-agent does ({exc})", file=sys.stderr
        )
        return 1
    except httpx.HTTPError as exc:
        print(
            f"sre-agent: cannot reach the service at {http.base_url} ({exc}); is"
            " `sre-agent serve` running there? (--url or SRE_AGENT_URL)",
            file=sys.stderr,
        )
        return 1
    print("\nsre-agent: the answer stopped before it was complete", file=sys.stderr)
    return 3


def _data(text: str) -> dict[str, Any]:
    """An event's JSON object; anything else reads as empty (a newer server's extra)."""
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _error_of(response: httpx.Response) -> str:
    if response.status_code == 401:
        return unauthorized(response)
    try:
        return str(response.json().get("error") or response.text)
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
