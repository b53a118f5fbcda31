"""The store's side tables, beside the investigations: the Slack thread of each alert
group, the Slack message of each incident, and the web sessions ended by logout. A part of :class:`sre_agent.store.Store`."""

from __future__ import annotations

import sqlite3
import time
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING


class SideTables:
    if TYPE_CHECKING:  # the Store's connections

        def _read(self) -> AbstractContextManager[sqlite3.Connection]: ...
        def _tx(self) -> AbstractContextManager[sqlite3.Connection]: ...

    # --- web sessions ended by logout ----------------------------------------
    def revoke_session(self, session_id: str, expires_at: float) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM revoked_sessions WHERE expires_at < ?", (time.time(),))
            db.execute(
                "INSERT OR REPLACE INTO revoked_sessions VALUES (?, ?)", (session_id, expires_at)
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
        """(channel, ts) of the first Slack message posted for this alert group."""
        with self._read() as db:
            row = db.execute(
                "SELECT channel, ts FROM slack_threads WHERE group_key=?", (group_key,)
            ).fetchone()
        return (row["channel"], row["ts"]) if row else None

    def save_slack_thread(self, group_key: str, channel: str, ts: str) -> None:
        """Remember a group's thread; the first one stays."""
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO slack_threads VALUES (?, ?, ?, ?)",
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

    def save_incident_slack(self, incident_id: str, channel: str, ts: str) -> None:
        """Remember the incident's message; a newer one (the old was deleted) replaces it."""
        with self._tx() as db:
            db.execute(
                "UPDATE incidents SET slack_channel=?, slack_ts=? WHERE id=?",
                (channel, ts, incident_id),
            )
