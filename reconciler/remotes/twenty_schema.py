"""Twenty's data model (``GET /rest/metadata/objects``) as the tool reads it: paged, in both
response shapes, and readable only by keys whose role has the data-model permission."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconciler.config import TwentyTarget
from reconciler.model import Mapping
from reconciler.remotes.base import Finding

REACHABLE = "twenty reachable and API key accepted"
Page = Callable[[dict[str, str]], Any]  # sends one metadata request with these params


def objects(read_page: Page) -> list[dict[str, Any]]:
    """Every object of the data model, page by page.

    Current servers answer a bare list (``{"data": [...]}``), older ones
    ``{"data": {"objects": [...]}}``; both page with ``starting_after`` = ``pageInfo.endCursor``
    while ``pageInfo.hasNextPage`` (metadata REST handlers in packages/twenty-server).
    """
    found: list[dict[str, Any]] = []
    params: dict[str, str] = {}
    while True:
        body = read_page(params)
        body = body if isinstance(body, dict) else {}
        data = body.get("data")
        page = data.get("objects") if isinstance(data, dict) else data
        found += [o for o in page if isinstance(o, dict)] if isinstance(page, list) else []
        info = body.get("pageInfo") or {}
        if not info.get("hasNextPage") or not info.get("endCursor"):
            return found
        params = {"starting_after": str(info["endCursor"])}


def scope(target: TwentyTarget) -> str:
    """The server and key a finding is about."""
    return f"{target.api_url}, {target.api_key_env}"


def unreadable(mapping: Mapping) -> Finding:
    """The finding for a key that may not read the data model (403 there, records still fine)."""
    return Finding(
        f"twenty fields of {mapping.name} (object {mapping.remote_table})",
        True,
        "not verified: this API key cannot read the data model (its role lacks the data-model "
        "permission); records can still be synced",
        "give the key's role the Data model permission to have the fields verified",
        warning=True,
    )


def fields_finding(mapping: Mapping, found: list[dict[str, Any]]) -> Finding:
    """Whether the mapping's object has every mapped field, JSON ones as Text fields."""
    name = f"twenty fields of {mapping.name} (object {mapping.remote_table})"
    target = next((o for o in found if o.get("namePlural") == mapping.remote_table), None)
    if target is None:
        detail = f"object {mapping.remote_table!r} not found"
        hint = "create the custom object in Twenty's data model, or fix `table` in the config"
        return Finding(name, False, detail, hint)
    types = {f.get("name"): f.get("type") for f in target.get("fields", [])}
    wanted = [f.remote for f in mapping.fields] + [mapping.modified_field]
    missing = [repr(n) for n in wanted if n not in types]
    if missing:
        hint = "add the fields to the object in Twenty (JSON values as Text fields)"
        return Finding(name, False, "missing field(s) " + ", ".join(missing), hint)
    not_text = [f.remote for f in mapping.fields if f.json_as_text and types[f.remote] != "TEXT"]
    if not_text:
        detail = "JSON field(s) not of type Text: " + ", ".join(map(repr, not_text))
        return Finding(name, False, detail, "make these fields Text fields in Twenty")
    return Finding(name, True, f"{len(mapping.fields)} mapped fields and {mapping.modified_field}")
