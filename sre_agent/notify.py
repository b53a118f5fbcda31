"""Slack notifications of finished investigations (Block Kit).

Two ways in, chosen by settings:

- an incoming webhook (``SRE_AGENT_SLACK_WEBHOOK_URL``): one message per
  investigation, in the webhook's channel;
- a bot token (``SRE_AGENT_SLACK_BOT_TOKEN`` + ``SRE_AGENT_SLACK_CHANNEL``)
  with ``chat.postMessage``: the first investigation of an alert group starts
  a thread (its ``ts`` is kept in the database per ``group_key``), later ones
  of the same group and the "resolved at ..." notes are replies in it.

Slack is a side channel: every post runs as a background task, retries 429
(honouring ``Retry-After``), 5xx and connection errors a few times within a
bounded time (tenacity), and a failure is logged and counted, never raised into
an investigation. The message is presented from the :class:`Investigation`, whose
texts were redacted where they entered; here they are only escaped for mrkdwn.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from sre_agent import sources
from sre_agent.metrics import Metrics
from sre_agent.models import Investigation
from sre_agent.settings import Settings
from sre_agent.store import Store
from sre_agent.tasks import cancel_and_wait

log = logging.getLogger(__name__)

#: Final statuses worth a message; ``cancelled`` (resolved before it started) is not.
NOTIFY = ("completed", "degraded", "failed")
STATUS_MARK = {"completed": ":mag:", "degraded": ":warning:", "failed": ":x:"}


class SlackError(Exception):
    """Slack did not take the message (after retries, or a permanent error)."""


def _escape(text: str) -> str:
    """Slack mrkdwn control characters; see "Escaping text" in Slack's formatting docs."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clean(text: object, limit: int = 2900) -> str:
    return _clip(_escape(str(text)), limit)


def _slack_date(iso: str | None) -> str:
    """Slack's ``<!date^...>`` (shown in the reader's timezone), with a UTC fallback."""
    if not iso:
        return "?"
    try:
        when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return _escape(iso)
    fallback = when.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def report_url(settings: Settings, ident: str) -> str | None:
    if not settings.public_url:
        return None
    return f"{settings.public_url}/investigations/{ident}"  # the web page


def investigation_blocks(inv: Investigation, link: str | None) -> list[dict[str, Any]]:
    """The Block Kit message of one finished investigation."""
    status = inv.status
    header = f"{inv.alertname} [{inv.severity}]"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(header, 150)}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Namespace*\n{_clean(inv.namespace or '-')}"},
                {"type": "mrkdwn", "text": f"*Status*\n{STATUS_MARK.get(status, '')} {status}"},
                {"type": "mrkdwn", "text": f"*Started*\n{_slack_date(inv.alert.startsAt)}"},
            ],
        },
    ]
    caveat = sources.warning(inv.sources)
    if caveat:  # what the analysis rests on comes before what it says
        blocks.append(_section(_clean(caveat)))
    analysis = inv.analysis
    if analysis is not None and analysis.summary:
        blocks.append(_section(f"*Summary*\n{_clean(analysis.summary)}"))
    if analysis is not None and analysis.root_causes:
        top = analysis.root_causes[0]
        confidence = _clean(top.confidence, 20)
        if top.lowered_from:  # as the report says it: lowered, not the model's own
            confidence += f", lowered from {_clean(top.lowered_from, 20)}"
        blocks.append(_section(f"*Root cause* (confidence: {confidence})\n{_clean(top.cause)}"))
    steps = [s for s in (analysis.mitigation if analysis else []) if s.strip()][:3]
    if steps:
        lines = "\n".join(f"{n}. {_clean(step, 900)}" for n, step in enumerate(steps, 1))
        blocks.append(_section(f"*Mitigation*\n{lines}"))
    if status != "completed" and inv.status_reason:
        blocks.append(_section(f"*Why {status}*\n{_clean(inv.status_reason)}"))
    where = f"investigation `{inv.id}`"
    if link:
        where = f"<{link}|Open the investigation> · {where}"
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": where},
                {"type": "mrkdwn", "text": _clean(sources.summary_line(inv.sources))},
            ],
        }
    )
    return blocks


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _fallback_text(inv: Investigation) -> str:
    """The notification text (push, screen readers) next to the blocks."""
    summary = (inv.analysis.summary if inv.analysis else None) or inv.status_reason or ""
    text = f"{inv.alertname} ({inv.severity}): {inv.status}"
    return _clip(f"{text}. {summary}".strip(), 300)


class _Retryable(Exception):
    """A post worth trying again (429, 5xx, a connection error); ``retry_after`` is
    Slack's ``Retry-After`` when it sent one."""

    def __init__(self, problem: str, retry_after: float | None = None) -> None:
        super().__init__(problem)
        self.problem, self.retry_after = problem, retry_after


class Notifier:
    """Posts finished investigations to Slack; does nothing when Slack is not configured."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        metrics: Metrics,
        *,
        attempts: int = 4,
        base_delay: float = 1.0,
        max_total: float = 60.0,
        timeout: float = 10.0,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_total = max_total
        self.timeout = timeout
        self._tasks: set[asyncio.Task[None]] = set()
        self._group_locks: dict[str, asyncio.Lock] = {}
        self._http: httpx.AsyncClient | None = None

    @property
    def mode(self) -> str | None:
        if self.settings.slack_bot_token is not None:
            return "bot"
        if self.settings.slack_webhook_url is not None:
            return "webhook"
        return None

    async def start(self) -> None:
        if self.mode:
            self._http = httpx.AsyncClient(timeout=self.timeout)
            log.info("Slack notifications on (%s)", self.mode)

    async def stop(self, grace: float = 5.0) -> None:
        """Give messages in flight a moment, then cancel the rest."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            await cancel_and_wait(pending)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # --- what the rest of the service calls (never blocks, never raises) -----
    def investigation_finished(self, record: Investigation) -> None:
        if self.mode and record.status in NOTIFY:
            self._spawn(self._post_investigation(record), record)

    def alert_resolved(self, record: Investigation) -> None:
        if self.mode and record.resolved_at:
            self._spawn(self._post_resolved(record), record)

    def _spawn(self, work: Any, record: Investigation) -> None:
        task = asyncio.create_task(self._guarded(work, record.id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, work: Any, ident: object) -> None:
        try:
            if await work is not False:  # False: nothing to post (no thread to reply in)
                self.metrics.slack_notifications.labels("sent").inc()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.metrics.slack_notifications.labels("failed").inc()
            log.warning("Slack notification for investigation %s failed: %s", ident, exc)

    # --- messages -------------------------------------------------------------
    async def _post_investigation(self, record: Investigation) -> None:
        link = report_url(self.settings, record.id)
        message = {
            "text": _fallback_text(record),
            "blocks": investigation_blocks(record, link),
            "unfurl_links": False,
        }
        if self.mode == "webhook":
            await self._webhook(message)
            return
        group = record.group_key
        if not group:
            await self._chat(message)
            return
        async with self._group_locks.setdefault(group, asyncio.Lock()):
            thread = self.store.slack_thread(group)
            if thread is not None:
                await self._chat(message, channel=thread[0], thread_ts=thread[1])
                return
            answer = await self._chat(message)
            self.store.save_slack_thread(group, answer["channel"], answer["ts"])

    async def _post_resolved(self, record: Investigation) -> bool:
        text = (
            f":white_check_mark: *{_escape(record.alertname or '?')}* resolved at"
            f" {_slack_date(record.resolved_at)}"
        )
        if self.mode == "webhook":
            if record.status not in NOTIFY:  # only what was announced gets a follow-up
                return False
            await self._webhook({"text": text})
            return True
        group = record.group_key
        async with self._group_locks.setdefault(group, asyncio.Lock()):
            thread = self.store.slack_thread(group) if group else None
        if thread is None:
            log.info("no Slack thread for %s yet: resolved note not posted", record.id)
            return False
        await self._chat({"text": text}, channel=thread[0], thread_ts=thread[1])
        return True

    # --- transport --------------------------------------------------------------
    async def _webhook(self, message: dict[str, Any]) -> None:
        assert self.settings.slack_webhook_url is not None
        await self._send(self.settings.slack_webhook_url.get_secret_value(), message, {})

    async def _chat(
        self, message: dict[str, Any], *, channel: str | None = None, thread_ts: str | None = None
    ) -> dict[str, Any]:
        assert self.settings.slack_bot_token is not None
        body = {"channel": channel or self.settings.slack_channel, **message}
        if thread_ts:
            body["thread_ts"] = thread_ts
        headers = {"Authorization": f"Bearer {self.settings.slack_bot_token.get_secret_value()}"}
        return await self._send(f"{self.settings.slack_api_url}/chat.postMessage", body, headers)

    async def _send(
        self, url: str, body: dict[str, Any], headers: dict[str, str]
    ) -> dict[str, Any]:
        """POST with retries on 429 / 5xx / connection errors (each wait Slack's
        ``Retry-After`` when it gave one, else doubling), within :attr:`attempts` and
        :attr:`max_total` seconds; the Web API's JSON answer."""
        if self._http is None:
            raise SlackError("notifier is not started")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_total

        def wait(state: RetryCallState) -> float:
            failed = state.outcome.exception() if state.outcome else None
            after = failed.retry_after if isinstance(failed, _Retryable) else None
            return after if after is not None else self.base_delay * 2 ** (state.attempt_number - 1)

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number >= self.attempts or loop.time() + wait(state) > deadline:
                return True
            failed = state.outcome.exception() if state.outcome else None
            log.info(
                "Slack: %s; retrying in %.1f s (attempt %d)",
                failed,
                wait(state),
                state.attempt_number,
            )
            return False

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_Retryable), wait=wait, stop=stop, reraise=True
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._post(url, body, headers)
        except _Retryable as exc:
            tries = retrying.statistics.get("attempt_number", self.attempts)
            raise SlackError(f"gave up after {tries} attempt(s): {exc.problem}") from None
        raise AssertionError("unreachable")

    async def _post(
        self, url: str, body: dict[str, Any], headers: dict[str, str]
    ) -> dict[str, Any]:
        """One POST: the answer, :class:`_Retryable` for what may pass, else SlackError."""
        assert self._http is not None
        try:
            response = await self._http.post(url, json=body, headers=headers)
        except httpx.TransportError as exc:
            raise _Retryable(f"{exc.__class__.__name__}: {exc}") from None
        code = response.status_code
        if code == 429 or code >= 500:
            raise _Retryable(f"HTTP {code}", _retry_after(response))
        if code >= 400:  # the webhook's permanent errors: no_service, invalid_payload
            raise SlackError(f"HTTP {code}: {response.text[:200]}")
        if "json" not in response.headers.get("content-type", ""):
            return {}  # the incoming webhook answers a plain "ok"
        answer = response.json()
        if answer.get("ok"):
            return answer  # type: ignore[no-any-return]
        if answer.get("error") != "ratelimited":
            raise SlackError(f"Slack API error: {answer.get('error')}")
        raise _Retryable("ratelimited", _retry_after(response))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
