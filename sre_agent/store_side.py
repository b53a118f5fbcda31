"""The store's side tables, beside the investigations: the Slack thread of each alert
group, the Slack message of each incident, and the web sessions ended by logout. A part of :class:`sre_agent.store.Store`."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sre_agent.db import Connection


class SideTables:
    if TYPE_CHECKING:  # the Store's connections

        def _read(self) -> AbstractContextManager[Connection]: ...
        def _tx(self) -> AbstractContextManager[Connection]: ...

    # --- web sessions ended by logout ----------------------------------------
    def revoke_session(self, session_id: str, expires_at: float) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM revoked_sessions WHERE expires_at < ?", (time.time(),))
            db.execute(
                "INSERT INTO revoked_sessions VALUES (?, ?) ON CONFLICT (session_id)"
                " DO UPDATE SET expires_at=excluded.expires_at",
                (session_id, expires_at),
            )

    def revoked_sessions(self) -> dict[str, float]:
        """Session id -> expiry (epoch seconds) of the sessions ended and not expired."""
        with self._read() as db:
            rows = db.execute(
                "SELECT session_id, expires_at FROM revoked_sessions WHERE expires_at >= ?",
                (time.time(),),
            ).fetchall()
        return {row[0]: float(row[1]) for row in rows}

    # --- Slack threads --------------------------------------------------------
    def slack_thread(self, group_key: str) -> tuple[str, str] | None:
        """(channel, ts) of the first Slack message posted for this alert group; None
        while there is none, or while a replica is posting it (:meth:`claim_slack_thread`)."""
        with self._read() as db:
            row = db.execute(
                "SELECT channel, ts FROM slack_threads WHERE group_key=?", (group_key,)
            ).fetchone()
        return (row["channel"], row["ts"]) if row and row["ts"] else None

    def claim_slack_thread(self, group_key: str, stale_after: float) -> bool:
        """Whether this replica is the one to post the group's first message: it takes
        the group's row, empty until :meth:`save_slack_thread` fills it. A claim older than
        ``stale_after`` seconds (its replica died while posting) may be taken again."""
        now = datetime.now(UTC)
        stale = datetime.fromtimestamp(now.timestamp() - stale_after, UTC)
        with self._tx() as db:
            row = db.execute(
                "INSERT INTO slack_threads VALUES (?, '', '', ?) ON CONFLICT (group_key)"
                " DO UPDATE SET created_at=excluded.created_at"
                " WHERE slack_threads.ts='' AND slack_threads.created_at < ?"
                " RETURNING group_key",
                (group_key, now.isoformat(timespec="milliseconds"), stale.isoformat()),
            ).fetchone()
        return row is not None

    def unclaim_slack_thread(self, group_key: str) -> None:
        """The post failed: let the next message of the group try."""
        with self._tx() as db:
            db.execute("DELETE FROM slack_threads WHERE group_key=? AND ts=''", (group_key,))

    def save_slack_thread(self, group_key: str, channel: str, ts: str) -> None:
        """Remember a group's thread (filling its claim); the first one stays."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO slack_threads VALUES (?, ?, ?, ?) ON CONFLICT (group_key)"
                " DO UPDATE SET channel=excluded.channel, ts=excluded.ts WHERE slack_threads.ts=''",
                (group_key, channel, ts, datetime.now(UTC).isoformat(timespec="milliseconds")),
            )

    # --- Slack messages of incidents ---------------------------------------------
    def incident_slack(self, incident_id: str) -> tuple[str, str] | None:
        """(channel, ts) of the incident's Slack message, which its updates edit and its
        alerts' details reply to; None until it is posted."""
        with self._read() as db:
            row = db.execute(
                "SELECT slack_channel, slack_ts FROM incidents WHERE id=?", (incident_id,)
            ).fetchone()
        if row is None or not row["slack_ts"]:
            return None
        return row["slack_channel"], row["slack_ts"]

    def claim_incident_slack(self, incident_id: str, stale_after: float) -> bool:
        """Whether this replica is the one to post the incident's message: the first to
        mark it (``slack_ts`` empty, ``slack_channel`` the claim's time) while it has
        none; a claim older than ``stale_after`` seconds (its poster died) may be taken."""
        now = datetime.now(UTC)
        stale = datetime.fromtimestamp(now.timestamp() - stale_after, UTC).isoformat()
        with self._tx() as db:
            cur = db.execute(
                "UPDATE incidents SET slack_channel=?, slack_ts='' WHERE id=? AND"
                " (slack_ts IS NULL OR (slack_ts='' AND COALESCE(slack_channel, '') < ?))",
                (now.isoformat(timespec="milliseconds"), incident_id, stale),
            )
            return bool(cur.rowcount == 1)

    def unclaim_incident_slack(self, incident_id: str) -> None:
        """The post failed: let the next show of the incident try."""
        with self._tx() as db:
            db.execute(
                "UPDATE incidents SET slack_channel=NULL, slack_ts=NULL WHERE id=? AND slack_ts=''",
                (incident_id,),
            )

    def save_incident_slack(self, incident_id: str, channel: str, ts: str) -> None:
        """Remember the incident's message; a newer one (the old was deleted) replaces it."""
        with self._tx() as db:
            db.execute(
                "UPDATE incidents SET slack_channel=?, slack_ts=? WHERE id=?",
                (channel, ts, incident_id),
            )
