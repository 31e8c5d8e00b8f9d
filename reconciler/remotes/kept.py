"""What a remote keeps of its schema between runs (``Remote.cache_update``), and how long it
serves: both remotes read their schema at most once a day per mapping when nothing changed."""

from __future__ import annotations

from datetime import datetime, timedelta

from reconciler.model import Mapping

MAX_AGE = timedelta(days=1)  # a kept schema older than this is read again before a run


def young(fetched_at: datetime, now: datetime) -> bool:
    """Whether a schema read at ``fetched_at`` was read less than ``MAX_AGE`` before ``now``
    (one stamped in the future, by a clock since set back, is not)."""
    return timedelta(0) <= now - fetched_at < MAX_AGE


def wanted(mapping: Mapping) -> list[str]:
    """Every field name the mapping needs: its mapped fields, then the modified field."""
    names = [spec.remote for spec in mapping.fields]
    return [*names, *([mapping.modified_field] if mapping.modified_field not in names else [])]
