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
        target = settings.airtable_target(mapping)
        return AirtableRemote(
            mapping,
            token=target.token.value,
            base_id=target.base_id,
            api_url=target.api_url,
            rate=target.rate,
            policy=policy,
        )
    if mapping.remote == "twenty":
        from reconciler.remotes.twenty import TwentyRemote

        twenty = settings.twenty_target(mapping)
        return TwentyRemote(
            mapping,
            api_key=twenty.api_key.value,
            api_url=twenty.api_url,
            per_minute=twenty.rate,
            policy=policy,
        )
    raise UsageError(f"mapping {mapping.name!r}: unknown remote {mapping.remote!r}")
