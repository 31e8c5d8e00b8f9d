"""What ``reconcile check`` reports of an Airtable mapping's table, read fresh from the meta API
(``GET /v0/meta/bases/{base}/tables``): reachability, fields, renames, types, the modified field.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from reconciler.config import AirtableTarget
from reconciler.errors import AuthError
from reconciler.model import Mapping
from reconciler.remotes.airtable_fields import TableSchema, resolve
from reconciler.remotes.airtable_http import Forbidden
from reconciler.remotes.airtable_types import (
    TYPE_FIX,
    modified_problems,
    type_problems,
    value_type,
)
from reconciler.remotes.base import Finding, Transient

REACHABLE = "airtable reachable and token accepted"
SCOPES = "data.records:read, data.records:write and schema.bases:read"


def scope(target: AirtableTarget) -> str:
    """The base and token a finding is about."""
    return f"base {target.base_id}, {target.token_env}"


def refusal(exc: Exception, target: AirtableTarget) -> Finding:
    """The finding for a meta API request that failed (refused, or never answered)."""
    where = scope(target)
    if isinstance(exc, Forbidden):
        detail = f"base {target.base_id} refused (403)"
        hint = (
            f"check the base id (AIRTABLE_BASE_ID, or the mapping's base), and that "
            f"{target.token_env} has access to this base and the schema.bases:read scope "
            "(needed to follow fields by id)"
        )
        return Finding(REACHABLE, False, detail, hint, unavailable=True, scope=where)
    if isinstance(exc, AuthError):
        hint = f"check {target.token_env}: a personal access token with {SCOPES}"
        return Finding(REACHABLE, False, "token refused (401)", hint, unavailable=True, scope=where)
    if isinstance(exc, Transient) and str(exc).startswith("connection problem"):
        detail = f"cannot reach {target.api_url}: {str(exc).removeprefix('connection problem: ')}"
        hint = "check AIRTABLE_API_URL and the network"
        return Finding(REACHABLE, False, detail, hint, unavailable=True, scope=where)
    hint = "check AIRTABLE_API_URL; try again later"
    return Finding(REACHABLE, False, str(exc), hint, unavailable=True, scope=where)


def reachable(target: AirtableTarget) -> Finding:
    """The finding for a meta API request that was answered."""
    detail = f"{target.api_url}, base {target.base_id}"
    return Finding(REACHABLE, True, detail, scope=scope(target))


def field_findings(
    mapping: Mapping, target: AirtableTarget, body: Any, cached: Any | None
) -> Iterator[Finding]:
    """The mapping's table and fields as the meta API shows them now, compared with what
    runs kept (``cached``): missing fields, renames followed by id, type mismatches and the
    modified field's problems."""
    previous = TableSchema.from_cache(cached, target.base_id, mapping.remote_table)
    resolution = resolve(body, mapping, target.base_id, previous)
    name = f"airtable fields of {mapping.name} (table {mapping.remote_table})"
    schema = resolution.schema
    if schema is None:
        found = ", ".join(repr(t) for t in resolution.tables) or "none"
        detail = f"table {mapping.remote_table!r} not found (tables: {found})"
        yield Finding(name, False, detail, "create the table, or fix `table` in the config")
        return
    if resolution.missing:
        missing = ", ".join(repr(n) for n in resolution.missing)
        hint = "add the fields in Airtable (names are case-sensitive), or fix the mapping config"
        yield Finding(name, False, f"missing field(s) {missing}", hint)
    else:
        detail = f"{len(mapping.fields)} mapped fields and {mapping.modified_field}"
        yield Finding(name, True, detail)
    for configured, current in schema.renamed():
        detail = (
            f"{configured!r} is now named {current!r} (followed by its id; update the config "
            "when convenient)"
        )
        yield Finding(f"airtable field {configured!r} of {mapping.name}", True, detail)
    yield _types(mapping, schema)
    if mapping.modified_field in schema.fields:
        yield _modified(mapping, schema)


def _types(mapping: Mapping, schema: TableSchema) -> Finding:
    name = f"airtable field types of {mapping.name}"
    problems = type_problems(mapping, schema)
    if problems:
        return Finding(name, False, "; ".join(problems), TYPE_FIX)
    return Finding(name, True, "each mapped field's type fits its kind")


def _modified(mapping: Mapping, schema: TableSchema) -> Finding:
    name = f"airtable modified field of {mapping.name} ({mapping.modified_field})"
    problems = modified_problems(mapping, schema)
    if problems:
        detail = "; ".join(p.what for p in problems)
        hint = "; ".join(dict.fromkeys(p.fix for p in problems))
        return Finding(name, False, detail, hint)
    if value_type(schema.fields[mapping.modified_field]) is None:
        detail = (
            "a last modified time watching every pulled field; Airtable's schema does not say "
            "whether it shows a time (a run stops at the first value without one)"
        )
    else:
        detail = "a last modified time with date and time, watching every pulled field"
    return Finding(name, True, detail)
