"""Airtable's meta API (``GET /v0/meta/bases/{base}/tables``) as the tool reads it: what
``reconcile check`` reports of a mapping's table."""

from __future__ import annotations

from typing import Any

import requests

from reconciler.config import AirtableTarget
from reconciler.model import Mapping
from reconciler.remotes.base import Finding

REACHABLE = "airtable reachable and token accepted"
SCOPES = "data.records:read, data.records:write and schema.bases:read"


def scope(target: AirtableTarget) -> str:
    """The base and token a finding is about."""
    return f"base {target.base_id}, {target.token_env}"


def refusal(exc: requests.HTTPError, target: AirtableTarget) -> Finding:
    """The finding for a meta API request that Airtable refused."""
    status = exc.response.status_code if exc.response is not None else 0
    if status == 401:
        hint = f"check {target.token_env}: a personal access token with {SCOPES}"
        return Finding(
            REACHABLE, False, "token refused (401)", hint, unavailable=True, scope=scope(target)
        )
    if status in (403, 404):
        detail = f"base {target.base_id} refused ({status})"
        hint = (
            f"check the base id (AIRTABLE_BASE_ID, or the mapping's base), and that "
            f"{target.token_env} has access to this base and the schema.bases:read scope"
        )
        return Finding(REACHABLE, False, detail, hint, unavailable=True, scope=scope(target))
    hint = "check AIRTABLE_API_URL; try again later"
    return Finding(
        REACHABLE, False, f"Airtable answered {status}", hint, unavailable=True, scope=scope(target)
    )


def unreachable(target: AirtableTarget, exc: Exception) -> Finding:
    """The finding for a meta API request that never got an answer."""
    detail = f"cannot reach {target.api_url}: {type(exc).__name__}"
    hint = "check AIRTABLE_API_URL and the network"
    return Finding(REACHABLE, False, detail, hint, unavailable=True, scope=scope(target))


def fields_finding(mapping: Mapping, body: Any) -> Finding:
    """Whether every mapped field and the modified field exist in the mapping's table."""
    tables = body.get("tables", []) if isinstance(body, dict) else []
    name = f"airtable fields of {mapping.name} (table {mapping.remote_table})"
    table = next((t for t in tables if mapping.remote_table in (t.get("name"), t.get("id"))), None)
    if table is None:
        found = ", ".join(repr(t.get("name")) for t in tables) or "none"
        detail = f"table {mapping.remote_table!r} not found (tables: {found})"
        return Finding(name, False, detail, "create the table, or fix `table` in the config")
    types = {f.get("name"): f.get("type") for f in table.get("fields", [])}
    wanted = [f.remote for f in mapping.fields] + [mapping.modified_field]
    missing = [repr(n) for n in wanted if n not in types]
    if missing:
        hint = "add the fields in Airtable (names are case-sensitive), or fix the mapping config"
        return Finding(name, False, "missing field(s) " + ", ".join(missing), hint)
    kind = types[mapping.modified_field]
    if kind != "lastModifiedTime":
        detail = f"{mapping.modified_field!r} is a {kind} field, not a last modified time"
        hint = "make it a 'Last modified time' field that watches all fields"
        return Finding(name, False, detail, hint)
    return Finding(name, True, f"{len(mapping.fields)} mapped fields and {mapping.modified_field}")
