"""Build the remote of a mapping from the settings."""

from __future__ import annotations

from reconciler.config import Settings
from reconciler.errors import UsageError
from reconciler.model import Mapping
from reconciler.remotes.base import Remote, RetryPolicy
from reconciler.remotes.pacing import BucketPacer, Pacer, PacerPool


def budget_key(mapping: Mapping, settings: Settings) -> tuple[str, ...]:
    """What a mapping's requests count against: an Airtable base (5 a second, shared by every
    token) or a Twenty workspace (an API key's budget on its server)."""
    if mapping.remote == "airtable":
        airtable = settings.airtable_target(mapping)
        return ("airtable", airtable.api_url, airtable.base_id)
    twenty = settings.twenty_target(mapping)
    return ("twenty", twenty.api_url, twenty.api_key.value)


def build_remote(
    mapping: Mapping, settings: Settings, *, pacers: PacerPool | None = None
) -> Remote:
    """The remote client of a mapping, pointed at the mapping's own endpoint and credentials.

    Args:
        mapping: the mapping.
        settings: where its credentials, endpoint and rate come from.
        pacers: the run's pacers: mappings on one Airtable base (or one Twenty workspace)
            share one budget. Without it the remote paces alone.

    Raises:
        UsageError: the mapping's remote is unknown, or its credentials are missing.
    """
    pool = pacers or PacerPool()
    policy = RetryPolicy(base=settings.retry_base_seconds)
    if mapping.remote == "airtable":
        from reconciler.remotes.airtable import AirtableRemote  # pyairtable only when needed

        airtable = settings.airtable_target(mapping)
        pacer = pool.get(budget_key(mapping, settings), Pacer.rate(airtable.rate))
        return AirtableRemote(mapping, airtable, policy, pacer=pacer)
    if mapping.remote == "twenty":
        from reconciler.remotes.twenty import TwentyRemote

        twenty = settings.twenty_target(mapping)
        pacer = pool.get(budget_key(mapping, settings), BucketPacer.rate(twenty.rate, 60.0))
        return TwentyRemote(mapping, twenty, policy, pacer=pacer)
    raise UsageError(f"mapping {mapping.name!r}: unknown remote {mapping.remote!r}")
