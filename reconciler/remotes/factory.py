"""Build the remote of a mapping from the settings."""

from __future__ import annotations

from reconciler.config import Settings
from reconciler.errors import UsageError
from reconciler.model import Mapping
from reconciler.remotes.airtable import AirtableRemote
from reconciler.remotes.base import Remote, RetryPolicy


def build_remote(mapping: Mapping, settings: Settings) -> Remote:
    """The remote client of a mapping, pointed at the mapping's own endpoint and credentials.

    Raises:
        UsageError: the mapping's remote is unknown, or its credentials are missing.
    """
    policy = RetryPolicy(base=settings.retry_base_seconds)
    if mapping.remote == "airtable":
        return AirtableRemote(mapping, settings.airtable_target(mapping), policy)
    if mapping.remote == "twenty":
        from reconciler.remotes.twenty import TwentyRemote

        return TwentyRemote(mapping, settings.twenty_target(mapping), policy)
    raise UsageError(f"mapping {mapping.name!r}: unknown remote {mapping.remote!r}")
