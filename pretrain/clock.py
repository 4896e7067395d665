"""The one timestamp format of the project's files: ISO 8601, UTC, whole seconds."""

from __future__ import annotations

import datetime as dt


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def utc_timestamp(moment: dt.datetime | None = None) -> str:
    """``2026-01-31T12:34:56Z``: ``moment`` (default now) in UTC. Sorts as text in time order;
    ``pandas.to_datetime`` and (Python 3.11+) ``datetime.fromisoformat`` read it back."""
    moment = utc_now() if moment is None else moment.astimezone(dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
