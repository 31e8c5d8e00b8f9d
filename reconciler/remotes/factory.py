"""Build the remote of a mapping from the settings."""

from __future__ import annotations

from reconciler.config import Settings
from reconciler.errors import UsageError
from reconciler.model import Mapping
from reconciler.remotes.airtable import AirtableRemote
from reconciler.remotes.base import Remote, RetryPolicy


def build_remote(mapping: Mapping, settings: Settings) -> Remote:
    """The remote client of a mapping, pointed at the configured endpoint."""
    policy = RetryPolicy(base=settings.retry_base_seconds)
    budget = mapping.rate_limit  # a mapping's own budget may only lower the remote's rate
    if mapping.remote == "airtable":
        assert settings.airtable_token is not None and settings.airtable_base_id is not None
        return AirtableRemote(
            mapping,
            token=settings.airtable_token.value,
            base_id=settings.airtable_base_id,
            api_url=settings.airtable_api_url,
            rate=min(settings.airtable_rate, budget or settings.airtable_rate),
            policy=policy,
        )
    if mapping.remote == "twenty":
        from reconciler.remotes.twenty import TwentyRemote

        assert settings.twenty_api_key is not None
        return TwentyRemote(
            mapping,
            api_key=settings.twenty_api_key.value,
            api_url=settings.twenty_api_url,
            per_minute=min(settings.twenty_rate, budget or settings.twenty_rate),
            policy=policy,
        )
    raise UsageError(f"mapping {mapping.name!r}: unknown remote {mapping.remote!r}")
