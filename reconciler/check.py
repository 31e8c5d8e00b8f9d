"""``reconcile check``: verify configuration, credentials, database and remote schemas.

Each check yields a :class:`Check`: a name, whether it passed, what was found, and a hint for a
failure. A failure is either a configuration problem (``CONFIG``: the config file, missing
credentials, a mapped field or column that does not exist) or an unavailability (``UNAVAILABLE``:
the database or a remote unreachable, credentials refused, schema not migrated). The exit code is
2 when any configuration check failed, else 3 when anything else failed, else 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from collections.abc import Mapping as EnvMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import requests
from pyairtable import Api

from reconciler.config import (
    AirtableTarget,
    Settings,
    TwentyTarget,
    load_mappings,
    load_settings,
    missing_credentials,
)
from reconciler.errors import (
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    ReconcilerError,
    SchemaNotMigrated,
    UsageError,
)
from reconciler.model import Mapping

CONFIG = "config"
UNAVAILABLE = "unavailable"
AIRTABLE_TIMEOUT = (5, 15)  # connect, read (seconds)
TWENTY_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
AIRTABLE_SCOPES = "data.records:read, data.records:write and schema.bases:read"


@dataclass(frozen=True)
class Check:
    """The outcome of one check."""

    name: str
    ok: bool
    detail: str = ""
    hint: str = ""
    kind: str = CONFIG  # what a failure stands for: CONFIG or UNAVAILABLE


def exit_code(checks: list[Check]) -> int:
    """0 when every check passed; 2 when a configuration check failed; else 3."""
    failed = [c for c in checks if not c.ok]
    if not failed:
        return EXIT_OK
    return EXIT_USAGE if any(c.kind == CONFIG for c in failed) else EXIT_UNAVAILABLE


def run_checks(
    config_path: Path | None = None, env: EnvMapping[str, str] | None = None
) -> Iterator[Check]:
    """Every check, in order; later checks are left out when what they need failed.

    Args:
        config_path: the mapping config file, if any (validated as the first check).
        env: the environment to read settings from (default: ``os.environ``).

    Yields:
        One Check per line of ``reconcile check``.
    """
    try:
        settings = load_settings(env)
        if config_path is not None:
            settings = load_mappings(settings, config_path)
    except UsageError as exc:
        yield Check("configuration", False, str(exc), "fix the setting or key named here")
        return
    source = str(config_path) if config_path else "built-in mappings"
    names = ", ".join(m.name for m in settings.mappings)
    yield Check("configuration", True, f"{source} parsed ({names})")
    ready = []
    for mapping in settings.mappings:
        check = credentials(mapping, settings)
        ready += [mapping] if check.ok else []
        yield check
    yield from database(settings)
    yield from airtable(settings, [m for m in ready if m.remote == "airtable"])
    yield from twenty(settings, [m for m in ready if m.remote == "twenty"])


def credentials(mapping: Mapping, settings: Settings) -> Check:
    """Whether the environment holds what the mapping's remote needs (never the values)."""
    name = f"credentials for {mapping.name} ({mapping.remote})"
    missing = missing_credentials(mapping, settings)
    if missing:
        return Check(
            name,
            False,
            "missing " + ", ".join(missing),
            f"set {' and '.join(missing)} (see README, 'Connecting')",
        )
    return Check(name, True, "present")


# -- the database ------------------------------------------------------------------------------


def database(settings: Settings) -> Iterator[Check]:
    """The database answers and is migrated; every mapped local table has its columns."""
    from reconciler.engine.run import open_database
    from reconciler.store.sync import Store

    name = "database reachable and migrated"
    where = "DATABASE_URL" if settings.database_url else f"embedded under {settings.home / 'pg'}"
    try:
        engine = open_database(settings)
    except SchemaNotMigrated as exc:
        yield Check(name, False, str(exc), "run `reconcile migrate`", UNAVAILABLE)
        return
    except ReconcilerError as exc:
        hint = "check DATABASE_URL and that Postgres is running"
        yield Check(name, False, str(exc), hint, UNAVAILABLE)
        return
    yield Check(name, True, where)
    try:
        with engine.connect() as conn:
            store = Store(conn)
            for mapping in settings.mappings:
                yield _local_table(store, mapping)
    finally:
        engine.dispose()


def _local_table(store: Any, mapping: Mapping) -> Check:
    name = f"local table {mapping.local_table} ({mapping.name})"
    try:
        store.table(mapping)
    except UsageError as exc:
        hint = "create the table or columns, or run `reconcile migrate` for the built-in tables"
        return Check(name, False, str(exc), hint)
    return Check(name, True, f"{mapping.key_column} and {len(mapping.fields)} mapped columns")


# -- Airtable ----------------------------------------------------------------------------------


def airtable(settings: Settings, mappings: list[Mapping]) -> Iterator[Check]:
    """Airtable answers, accepts each token, and every mapped field exists in its table.

    One reachability check per base and token the mappings use (named after them when there
    are several), then one check per mapping.
    """
    groups: dict[AirtableTarget, list[Mapping]] = {}
    for mapping in mappings:
        target = dataclasses.replace(settings.airtable_target(mapping), rate=0.0)
        groups.setdefault(target, []).append(mapping)
    for target, group in groups.items():
        label = f" (base {target.base_id}, {target.token_env})" if len(groups) > 1 else ""
        yield from _airtable_base(target, group, label)


def _airtable_base(target: AirtableTarget, mappings: list[Mapping], label: str) -> Iterator[Check]:
    name = f"airtable reachable and token accepted{label}"
    api = Api(
        target.token.value,
        timeout=AIRTABLE_TIMEOUT,
        retry_strategy=None,
        endpoint_url=target.api_url,
    )
    try:
        body = api.get(str(api.base(target.base_id).urls.tables))
    except requests.HTTPError as exc:
        yield _airtable_refusal(name, exc, target)
        return
    except requests.RequestException as exc:
        detail = f"cannot reach {target.api_url}: {type(exc).__name__}"
        yield Check(name, False, detail, "check AIRTABLE_API_URL and the network", UNAVAILABLE)
        return
    yield Check(name, True, f"{target.api_url}, base {target.base_id}")
    tables = body.get("tables", []) if isinstance(body, dict) else []
    for mapping in mappings:
        yield _airtable_fields(mapping, tables)


def _airtable_refusal(name: str, exc: requests.HTTPError, target: AirtableTarget) -> Check:
    status = exc.response.status_code if exc.response is not None else 0
    if status == 401:
        hint = f"check {target.token_env}: a personal access token with {AIRTABLE_SCOPES}"
        return Check(name, False, "token refused (401)", hint, UNAVAILABLE)
    if status in (403, 404):
        detail = f"base {target.base_id} refused ({status})"
        hint = (
            f"check the base id (AIRTABLE_BASE_ID, or the mapping's base), and that "
            f"{target.token_env} has access to this base and the schema.bases:read scope"
        )
        return Check(name, False, detail, hint, UNAVAILABLE)
    hint = "check AIRTABLE_API_URL; try again later"
    return Check(name, False, f"Airtable answered {status}", hint, UNAVAILABLE)


def _airtable_fields(mapping: Mapping, tables: list[dict[str, Any]]) -> Check:
    name = f"airtable fields of {mapping.name} (table {mapping.remote_table})"
    table = next((t for t in tables if mapping.remote_table in (t.get("name"), t.get("id"))), None)
    if table is None:
        found = ", ".join(repr(t.get("name")) for t in tables) or "none"
        detail = f"table {mapping.remote_table!r} not found (tables: {found})"
        return Check(name, False, detail, "create the table, or fix `table` in the config")
    types = {f.get("name"): f.get("type") for f in table.get("fields", [])}
    missing = _missing(mapping, set(types))
    if missing:
        hint = "add the fields in Airtable (names are case-sensitive), or fix the mapping config"
        return Check(name, False, "missing field(s) " + ", ".join(missing), hint)
    kind = types[mapping.modified_field]
    if kind != "lastModifiedTime":
        detail = f"{mapping.modified_field!r} is a {kind} field, not a last modified time"
        hint = "make it a 'Last modified time' field that watches all fields"
        return Check(name, False, detail, hint)
    return Check(name, True, f"{len(mapping.fields)} mapped fields and {mapping.modified_field}")


def _missing(mapping: Mapping, present: set[Any]) -> list[str]:
    wanted = [f.remote for f in mapping.fields] + [mapping.modified_field]
    return [repr(name) for name in wanted if name not in present]


# -- Twenty ------------------------------------------------------------------------------------


def twenty(settings: Settings, mappings: list[Mapping]) -> Iterator[Check]:
    """Twenty answers, accepts each API key, and every mapped field exists on its object.

    One reachability check per server and key the mappings use (named after them when there
    are several), then one check per mapping.
    """
    groups: dict[TwentyTarget, list[Mapping]] = {}
    for mapping in mappings:
        target = dataclasses.replace(settings.twenty_target(mapping), rate=0.0)
        groups.setdefault(target, []).append(mapping)
    for target, group in groups.items():
        label = f" ({target.api_url}, {target.api_key_env})" if len(groups) > 1 else ""
        url_from = "api_url" if any(m.api_url for m in group) else "TWENTY_API_URL"
        yield from _twenty_server(target, group, label, url_from)


def _twenty_server(
    target: TwentyTarget, mappings: list[Mapping], label: str, url_from: str
) -> Iterator[Check]:
    name = f"twenty reachable and API key accepted{label}"
    headers = {"Authorization": f"Bearer {target.api_key.value}"}
    try:
        with httpx.Client(timeout=TWENTY_TIMEOUT, headers=headers) as client:
            objects, status = _metadata(client, f"{target.api_url}/rest/metadata/objects")
    except httpx.HTTPError as exc:
        detail = f"cannot reach {target.api_url}: {type(exc).__name__}"
        yield Check(name, False, detail, f"check {url_from} and the network", UNAVAILABLE)
        return
    if status == 401:
        hint = f"check {target.api_key_env} (Settings > APIs & Webhooks in Twenty)"
        yield Check(name, False, "API key refused (401)", hint, UNAVAILABLE)
        return
    if status not in (200, 403):
        detail = f"Twenty answered {status}"
        yield Check(name, False, detail, f"check {url_from}; try again later", UNAVAILABLE)
        return
    yield Check(name, True, target.api_url)
    for mapping in mappings:
        yield _twenty_fields(mapping, objects)


def _metadata(client: httpx.Client, url: str) -> tuple[list[dict[str, Any]] | None, int]:
    """Every object of the data model, page by page (None when the key may not read it), and
    the status of the last answer."""
    objects: list[dict[str, Any]] = []
    params: dict[str, str] = {}
    while True:
        response = client.get(url, params=params)
        if response.status_code == 403:
            return None, 403  # the key's role lacks the data-model permission
        if response.status_code != 200:
            return objects, response.status_code
        body = _json(response)
        data = body.get("data")
        # Current servers answer a bare list; older ones {"objects": [...]}.
        page = data.get("objects") if isinstance(data, dict) else data
        objects += [o for o in page if isinstance(o, dict)] if isinstance(page, list) else []
        info = body.get("pageInfo") or {}
        if not info.get("hasNextPage") or not info.get("endCursor"):
            return objects, 200
        params = {"starting_after": str(info["endCursor"])}


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _twenty_fields(mapping: Mapping, objects: list[dict[str, Any]] | None) -> Check:
    name = f"twenty fields of {mapping.name} (object {mapping.remote_table})"
    if objects is None:
        return Check(
            name,
            True,
            "not verified: this API key cannot read the data model (its role lacks the "
            "data-model permission); records can still be synced",
        )
    found = next((o for o in objects if o.get("namePlural") == mapping.remote_table), None)
    if found is None:
        detail = f"object {mapping.remote_table!r} not found"
        hint = "create the custom object in Twenty's data model, or fix `table` in the config"
        return Check(name, False, detail, hint)
    types = {f.get("name"): f.get("type") for f in found.get("fields", [])}
    missing = _missing(mapping, set(types))
    if missing:
        hint = "add the fields to the object in Twenty (JSON values as Text fields)"
        return Check(name, False, "missing field(s) " + ", ".join(missing), hint)
    not_text = [f.remote for f in mapping.fields if f.json_as_text and types[f.remote] != "TEXT"]
    if not_text:
        detail = "JSON field(s) not of type Text: " + ", ".join(map(repr, not_text))
        return Check(name, False, detail, "make these fields Text fields in Twenty")
    return Check(name, True, f"{len(mapping.fields)} mapped fields and {mapping.modified_field}")
