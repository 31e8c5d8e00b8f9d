"""Build the remote of a mapping from the settings."""

from __future__ import annotations

import base64
import binascii
import json

from reconciler.config import Settings
from reconciler.errors import UsageError
from reconciler.model import Mapping
from reconciler.remotes.base import Remote, RetryPolicy
from reconciler.remotes.pacing import BucketPacer, Pacer, PacerPool


def budget_key(mapping: Mapping, settings: Settings) -> tuple[str, ...]:
    """What a mapping's requests count against: an Airtable base (5 a second, shared by every
    token) or a Twenty workspace (shared by every API key of the workspace: Twenty's throttle
    keys its buckets ``api:throttler:{workspaceId}-short-limit`` and ``…-long-limit``,
    ``CommonBaseQueryRunnerService.throttleQueryExecution`` in
    ``packages/twenty-server/src/engine/api/common/common-query-runners/
    common-base-query-runner.service.ts``). A key that does not name its workspace counts as
    a workspace of its own."""
    if mapping.remote == "airtable":
        airtable = settings.airtable_target(mapping)
        return ("airtable", airtable.api_url, airtable.base_id)
    twenty = settings.twenty_target(mapping)
    key = twenty.api_key.value
    workspace = workspace_of(key)
    if workspace is None:
        return ("twenty", twenty.api_url, "key", key)
    return ("twenty", twenty.api_url, "workspace", workspace)


def workspace_of(api_key: str) -> str | None:
    """The workspace a Twenty API key belongs to, as the key itself says: Twenty's API keys
    are JWTs whose payload names it (``{"sub": workspaceId, "type": "API_KEY",
    "workspaceId": …}``, ``ApiKeyService.generateApiKeyToken`` in
    ``packages/twenty-server/src/engine/core-modules/api-key/services/api-key.service.ts``).
    Read without checking the signature, which is the server's to check: it only tells
    which keys share a rate limit. None for a key of another form."""
    parts = api_key.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):  # not base64, not UTF-8, not JSON
        return None
    workspace = payload.get("workspaceId") if isinstance(payload, dict) else None
    return workspace if isinstance(workspace, str) and workspace else None


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
