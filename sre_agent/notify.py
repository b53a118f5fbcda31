"""Slack notifications: incidents and finished investigations (Block Kit).

Two ways in, chosen by settings:

- a bot token (``SRE_AGENT_SLACK_BOT_TOKEN`` + ``SRE_AGENT_SLACK_CHANNEL``): one
  channel message per incident (``chat.postMessage``, its ``ts`` kept on the incident's
  row), edited in place (``chat.update``) as alerts join, the head's analysis arrives
  and the incident resolves; each alert's details, once known, and its "resolved"
  note are replies in that message's thread. Investigations without an incident (rows
  from before incidents) keep the old way: the first of an alert group starts a
  thread (kept per ``group_key``), the others reply in it;
- an incoming webhook (``SRE_AGENT_SLACK_WEBHOOK_URL``), which cannot edit: per
  incident one message when its evidence report is known, one when the head's analysis
  arrives, one when it resolves; no per-alert messages (one per investigation
  without an incident).

With a Slack app's signing secret too (``SRE_AGENT_SLACK_SIGNING_SECRET``, bot mode only:
Slack sends a button's click to the app, not to a webhook), the messages that carry an
analysis get the feedback buttons; :mod:`sre_agent.api.slack` takes the clicks, and
:meth:`Notifier.answer_click` tells the person who clicked what became of it.

Each incident's messages go out one at a time, in order, from one task (:meth:`Notifier.
_pump`): its first post comes before any reply (so replies have a thread), a burst of
changes becomes one edit of the latest state, and the linked alerts reported together
are one reply. Slack is a side channel: every post runs in the background, retries 429
(honouring ``Retry-After``), 5xx and connection errors a few times within a bounded
time (tenacity), and a failure is logged and counted, never raised into an
investigation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from sre_agent.metrics import Metrics
from sre_agent.models import Incident, Investigation
from sre_agent.notify_blocks import (
    chunks,
    clip,
    escape,
    fallback_text,
    incident_blocks,
    incident_text,
    investigation_blocks,
    linked_line,
    listed_alerts,
    resolved_line,
    section,
    slack_date,
)
from sre_agent.settings import Settings
from sre_agent.store import Store
from sre_agent.tasks import cancel_and_wait

__all__ = [
    "NOTIFY",
    "Notifier",
    "SlackError",
    "investigation_blocks",
    "report_url",
    "signing_secret",
]

log = logging.getLogger(__name__)

#: Final statuses worth a message; ``cancelled`` (resolved before it started) is not.
NOTIFY = ("completed", "degraded", "failed")
#: What a message of linked lines holds at most (Slack's limit on a text is 40,000).
REPLY_CHARS = 3000


class SlackError(Exception):
    """Slack did not take the message (after retries, or a permanent error); ``error``
    is the Web API's error code when it gave one."""

    def __init__(self, problem: str, error: str | None = None) -> None:
        super().__init__(problem)
        self.error = error


def signing_secret(settings: Settings) -> str | None:
    """The Slack app's signing secret, None when unset or blank (no interactivity)."""
    secret = settings.slack_signing_secret
    value = secret.get_secret_value() if secret is not None else ""
    return value if value.strip() else None


def report_url(settings: Settings, ident: str, kind: str = "investigations") -> str | None:
    if not settings.public_url:
        return None
    return f"{settings.public_url}/{kind}/{ident}"  # the web page


@dataclass
class _Outbox:
    """One incident's messages not sent yet: its latest state (older ones are never
    shown), the alerts' details, the linked alerts' and resolved alerts' lines."""

    incident: Incident | None = None
    details: list[Investigation] = field(default_factory=list)
    linked: list[Investigation] = field(default_factory=list)
    resolved: list[Investigation] = field(default_factory=list)
    #: Webhook mode: which of "evidence", "analysis", "resolved" went out.
    sent: set[str] = field(default_factory=set)
    pump: asyncio.Task[None] | None = None
    #: Its last state shown was resolved: the outbox is dropped once empty.
    closed: bool = False

    def empty(self) -> bool:
        return not (self.incident or self.details or self.linked or self.resolved)


class _Retryable(Exception):
    """A post worth trying again (429, 5xx, a connection error); ``retry_after`` is
    Slack's ``Retry-After`` when it sent one."""

    def __init__(self, problem: str, retry_after: float | None = None) -> None:
        super().__init__(problem)
        self.problem, self.retry_after = problem, retry_after


class Notifier:
    """Posts incidents and finished investigations to Slack; does nothing when Slack is
    not configured."""

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
        self._outboxes: dict[str, _Outbox] = {}
        self._http: httpx.AsyncClient | None = None

    @property
    def mode(self) -> str | None:
        if self.settings.slack_bot_token is not None:
            return "bot"
        if self.settings.slack_webhook_url is not None:
            return "webhook"
        return None

    @property
    def buttons(self) -> bool:
        """Messages carry the feedback buttons: a Slack app that can take their clicks."""
        return self.mode == "bot" and signing_secret(self.settings) is not None

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
    def incident_changed(self, incident: Incident) -> None:
        """Show the incident's latest state: its message is posted the first time, edited
        after (webhook: a message when its evidence report, its analysis, its resolution
        first show)."""
        if self.mode:
            self._queue(incident.id).incident = incident

    def alert_reported(self, record: Investigation) -> None:
        """An alert of an incident reached its final state: its details (linked: one line)
        as a reply in the incident's thread. Bot mode only: a webhook cannot thread."""
        if self.mode != "bot" or record.incident_id is None:
            return
        if record.status == "linked":
            self._queue(record.incident_id).linked.append(record)
        elif record.status in NOTIFY:
            self._queue(record.incident_id).details.append(record)

    def investigation_finished(self, record: Investigation) -> None:
        """A finished run: in its incident's thread when it has one, else a message (or a
        group thread) of its own."""
        if record.incident_id is not None:
            self.alert_reported(record)
        elif self.mode and record.status in NOTIFY:
            self._spawn(self._post_investigation(record), f"investigation {record.id}")

    def alert_resolved(self, record: Investigation) -> None:
        if not self.mode or not record.resolved_at:
            return
        if record.incident_id is None:
            self._spawn(self._post_resolved(record), f"investigation {record.id}")
        elif self.mode == "bot":  # webhook: the incident's own "resolved" says it
            self._queue(record.incident_id).resolved.append(record)

    def answer_click(self, response_url: str | None, text: str) -> None:
        """A note only the person who clicked a button sees (Slack's ``response_url``
        for the click, valid for 30 minutes), in the background."""
        if self._http is None or not response_url:
            return
        if not response_url.startswith(("https://", "http://")):
            log.info("Slack: a click's response_url is no URL: not answered")
            return
        note = {"response_type": "ephemeral", "replace_original": False, "text": text}
        self._spawn(self._send(response_url, note, {}), "a button's click")

    def _queue(self, incident_id: str) -> _Outbox:
        """The incident's outbox, its pump started if it is not running."""
        box = self._outboxes.setdefault(incident_id, _Outbox())
        if box.pump is None:
            box.pump = self._spawn(self._pump(incident_id, box), None)
        return box

    def _spawn(self, work: Any, label: str | None) -> asyncio.Task[None]:
        task = asyncio.create_task(self._guarded(work, label) if label else work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _guarded(self, work: Any, label: str) -> None:
        try:
            if await work is not False:  # False: nothing to post (no thread to reply in)
                self.metrics.slack_notifications.labels("sent").inc()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.metrics.slack_notifications.labels("failed").inc()
            log.warning("Slack notification for %s failed: %s", label, exc)

    # --- an incident's messages, one at a time --------------------------------
    async def _pump(self, incident_id: str, box: _Outbox) -> None:
        """Send what the incident's outbox holds until it is empty: the latest state
        first (so replies have a thread), then details, linked lines, resolved lines."""
        label = f"incident {incident_id}"
        try:
            while not box.empty():
                incident, box.incident = box.incident, None
                if incident is not None:
                    box.closed = incident.status == "resolved"
                    show = self._show_bot if self.mode == "bot" else self._show_webhook
                    await self._guarded(show(incident, box), label)
                while box.details:
                    record = box.details.pop(0)
                    await self._guarded(self._reply_details(record), f"investigation {record.id}")
                for lines, made in ((box.linked, self._linked_lines), (box.resolved, _resolved)):
                    if lines:
                        batch = lines[:]
                        lines.clear()
                        await self._guarded(self._reply_lines(incident_id, made(batch)), label)
        finally:
            box.pump = None
            if box.closed and box.empty():  # nothing left to remember of it
                self._outboxes.pop(incident_id, None)

    async def _incident_message(
        self, incident: Incident
    ) -> tuple[dict[str, Any], Investigation | None]:
        """The incident's message, and the head it shows (its analysis or evidence report)."""
        head, records = await asyncio.to_thread(self._incident_records, incident)
        link = report_url(self.settings, incident.id, "incidents")
        blocks = incident_blocks(incident, head, records, link, buttons=self.buttons)
        return {"text": incident_text(incident), "blocks": blocks}, head

    def _incident_records(
        self, incident: Incident
    ) -> tuple[Investigation | None, dict[str, Investigation]]:
        """The head (before one is chosen: the alert that opened the incident) and the
        listed alerts' records, read in a thread."""
        opener = min(
            incident.alerts, key=lambda a: (a.created_at, a.investigation_id), default=None
        )
        head_id = incident.head_id or (opener.investigation_id if opener else None)
        records: dict[str, Investigation] = {}
        for alert in listed_alerts(incident):
            record = self.store.get(alert.investigation_id)
            if record is not None:
                records[record.id] = record
        head = records.get(head_id) if head_id else None
        if head is None and head_id:
            head = self.store.get(head_id)
        return head, records

    async def _show_bot(self, incident: Incident, box: _Outbox) -> bool:
        message, _ = await self._incident_message(incident)
        where = await self._incident_where(incident.id)
        if where is not None:
            try:
                await self._update(message, channel=where[0], ts=where[1])
                return True
            except SlackError as exc:
                if exc.error != "message_not_found":
                    raise
                log.info("Slack message of incident %s was deleted: posting it again", incident.id)
        try:
            answer = await self._chat({**message, "unfurl_links": False})
        except BaseException:
            await asyncio.to_thread(self.store.unclaim_incident_slack, incident.id)
            raise
        await asyncio.to_thread(
            self.store.save_incident_slack, incident.id, answer["channel"], answer["ts"]
        )
        return True

    async def _incident_where(self, incident_id: str) -> tuple[str, str] | None:
        """The incident's message to edit; None when this replica is to post it. One
        replica posts it (:meth:`Store.claim_incident_slack`); another that shows the
        incident meanwhile waits for that message and edits it."""
        return await self._posted_or_claim(
            self.store.incident_slack, self.store.claim_incident_slack, incident_id
        )

    async def _posted_or_claim(
        self,
        posted: Callable[[str], tuple[str, str] | None],
        claim: Callable[[str, float], bool],
        key: str,
    ) -> tuple[str, str] | None:
        """Where the first message of ``key`` is (channel, ts); None when this replica
        claimed posting it. A claim held by another replica is waited for, up to one
        post's retries: past that its poster died, and this one posts rather than none."""
        stale = self.max_total + 10.0
        deadline = asyncio.get_running_loop().time() + stale
        while True:
            where = await asyncio.to_thread(posted, key)
            if where is not None:
                return where
            if await asyncio.to_thread(claim, key, stale):
                return None
            if asyncio.get_running_loop().time() > deadline:
                return None
            await asyncio.sleep(0.2)

    async def _show_webhook(self, incident: Incident, box: _Outbox) -> bool:
        """The incident's first evidence report, its analysis, its resolution: one message
        each, the first time each shows (a webhook's message cannot be edited)."""
        if incident.status == "resolved":
            if not box.sent or "resolved" in box.sent:  # only what was announced
                return False
            box.sent.add("resolved")
            title = escape(incident.title or "Incident")
            when = slack_date(incident.resolved_at)
            await self._webhook({"text": f":white_check_mark: *{title}* resolved at {when}"})
            return True
        stage = "analysis" if incident.analysis is not None else "evidence"
        if stage in box.sent or (stage == "evidence" and "analysis" in box.sent):
            return False
        message, head = await self._incident_message(incident)
        if stage == "evidence" and (head is None or head.evidence_at is None):
            return False  # no evidence report to show yet
        box.sent.add(stage)
        await self._webhook({**message, "unfurl_links": False})
        return True

    async def _thread_of(self, incident_id: str) -> tuple[str, str] | None:
        where = await asyncio.to_thread(self.store.incident_slack, incident_id)
        if where is None:
            log.info("no Slack message for incident %s yet: reply not posted", incident_id)
        return where

    async def _reply_details(self, record: Investigation) -> bool:
        assert record.incident_id is not None
        where = await self._thread_of(record.incident_id)
        if where is None:
            return False
        message = {
            "text": fallback_text(record),
            "blocks": investigation_blocks(
                record, report_url(self.settings, record.id), buttons=self.buttons
            ),
            "unfurl_links": False,
        }
        await self._chat(message, channel=where[0], thread_ts=where[1])
        return True

    async def _linked_lines(self, records: list[Investigation]) -> list[str]:
        heads = {r.explained_by for r in records if r.explained_by}
        names = await asyncio.to_thread(self._alertnames, heads)
        return [linked_line(r, names.get(r.explained_by or "", "the head")) for r in records]

    def _alertnames(self, idents: set[str]) -> dict[str, str]:
        found = (self.store.get(ident) for ident in idents)
        return {r.id: r.alertname for r in found if r is not None}

    async def _reply_lines(self, incident_id: str, made: Awaitable[list[str]]) -> bool:
        """Lines reported together: one reply (or a few, for very many)."""
        lines = await made
        where = await self._thread_of(incident_id)
        if where is None:
            return False
        for text in chunks(lines, REPLY_CHARS):
            message = {"text": clip(text, 300), "blocks": [section(text)]}
            await self._chat(message, channel=where[0], thread_ts=where[1])
        return True

    # --- investigations without an incident -------------------------------------
    async def _post_investigation(self, record: Investigation) -> None:
        link = report_url(self.settings, record.id)
        message = {
            "text": fallback_text(record),
            "blocks": investigation_blocks(record, link, buttons=self.buttons),
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
            thread = await self._group_thread(group)
            if thread is not None:
                await self._chat(message, channel=thread[0], thread_ts=thread[1])
                return
            try:
                answer = await self._chat(message)
            except BaseException:
                await asyncio.to_thread(self.store.unclaim_slack_thread, group)
                raise
            await asyncio.to_thread(
                self.store.save_slack_thread, group, answer["channel"], answer["ts"]
            )

    async def _group_thread(self, group: str) -> tuple[str, str] | None:
        """The group's thread to reply in; None when this replica is to start it. Another
        replica posting the group's first message at the same moment (an HA pair, or two
        replicas finishing alerts of one group together) is waited for, so a group gets
        one thread: its claim is the table's row (:meth:`Store.claim_slack_thread`)."""
        return await self._posted_or_claim(
            self.store.slack_thread, self.store.claim_slack_thread, group
        )

    async def _post_resolved(self, record: Investigation) -> bool:
        text = resolved_line(record)
        if self.mode == "webhook":
            if record.status not in NOTIFY:  # only what was announced gets a follow-up
                return False
            await self._webhook({"text": text})
            return True
        group = record.group_key
        async with self._group_locks.setdefault(group, asyncio.Lock()):
            thread = await asyncio.to_thread(self.store.slack_thread, group) if group else None
        if thread is None:
            log.info("no Slack thread for %s yet: resolved note not posted", record.id)
            return False
        await self._chat({"text": text}, channel=thread[0], thread_ts=thread[1])
        return True

    # --- transport --------------------------------------------------------------
    async def _webhook(self, message: dict[str, Any]) -> None:
        assert self.settings.slack_webhook_url is not None
        await self._send(self.settings.slack_webhook_url.get_secret_value(), message, {})

    def _bearer(self) -> dict[str, str]:
        assert self.settings.slack_bot_token is not None
        return {"Authorization": f"Bearer {self.settings.slack_bot_token.get_secret_value()}"}

    async def _chat(
        self, message: dict[str, Any], *, channel: str | None = None, thread_ts: str | None = None
    ) -> dict[str, Any]:
        body = {"channel": channel or self.settings.slack_channel, **message}
        if thread_ts:
            body["thread_ts"] = thread_ts
        url = f"{self.settings.slack_api_url}/chat.postMessage"
        return await self._send(url, body, self._bearer())

    async def _update(self, message: dict[str, Any], *, channel: str, ts: str) -> dict[str, Any]:
        body = {"channel": channel, "ts": ts, **message}
        return await self._send(f"{self.settings.slack_api_url}/chat.update", body, self._bearer())

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
        error = answer.get("error")
        if error != "ratelimited":
            raise SlackError(f"Slack API error: {error}", error)
        raise _Retryable("ratelimited", _retry_after(response))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


async def _resolved(records: list[Investigation]) -> list[str]:
    return [resolved_line(r) for r in records]
