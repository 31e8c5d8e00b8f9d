"""Mapping configuration in TOML (``--config PATH`` or ``RECONCILER_CONFIG``).

A config file holds ``[mappings.<name>]`` tables. A name that is already configured (a built-in)
is an override: every key is optional, each entry of ``fields`` updates the field with the same
``column`` (or adds one), and ``drop_fields`` removes fields. Any other name adds a mapping, which
needs ``remote``, ``table``, ``local_table``, ``key_column`` and ``fields``. The built-in mappings
are loaded from ``builtin_mappings.toml`` (next to this module) in this same format.

The document's shape and value types are checked by the pydantic models of ``document``; this
module merges the tables into ``Mapping`` values and checks what needs context. Everything is
validated at start-up; an error names the file and the key, e.g.
``config.toml: mappings.leads.fields[3].direction: must be pull, push or both (got 'sideways')``
(indexes count from 0).
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

from reconciler.errors import UsageError
from reconciler.model.document import At, FieldTable, MappingTable, validate_document
from reconciler.model.mapping import FieldSpec, Kind, Mapping, Merge

MODIFIED_FIELDS = {"airtable": "lastModifiedTime", "twenty": "updatedAt"}
REQUIRED_KEYS = ("remote", "table", "local_table", "key_column", "fields")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

# Keys of a mapping table, as the Mapping attribute each sets (when it is named differently).
MAPPING_ATTRS = {"table": "remote_table"}
# Keys that only one remote understands, and that remote.
REMOTE_KEYS = {
    "base": "airtable",
    "token_env": "airtable",
    "api_url": "twenty",
    "api_key_env": "twenty",
}
# Kinds that cannot be part of a natural key: JSON compares by structure, and a checkbox is
# never empty (absent means false), so neither names one record.
UNMATCHABLE = (Kind.JSON, Kind.BOOLEAN)
FIELD_KEYS = ("remote", "column", "kind", "direction", "merge", "json_as_text")


# -- fields ------------------------------------------------------------------------------------


def _field(table: FieldTable, at: At, base: FieldSpec | None) -> FieldSpec:
    """A field from its table; ``base`` is the field it overrides (or None for a new one)."""
    if table.column is None:
        raise at.key("column").error("missing (every field names its local column)")
    if base is None and table.remote is None:
        raise at.key("remote").error("missing (a new field names its remote field)")
    changes = {key: getattr(table, key) for key in FIELD_KEYS if table.given(key)}
    spec = dataclasses.replace(base, **changes) if base else FieldSpec(**changes)
    _check_field(spec, table, at)
    return spec


def _check_field(spec: FieldSpec, table: FieldTable, at: At) -> None:
    where = "merge" if table.given("merge") else "kind"
    if spec.merge is Merge.UNION and spec.kind is not Kind.JSON:
        raise at.key(where).error("merge = 'union' needs kind = 'json' (a JSON array)")
    where = "json_as_text" if table.given("json_as_text") else "kind"
    if spec.json_as_text and spec.kind is not Kind.JSON:
        raise at.key(where).error("json_as_text = true needs kind = 'json'")


def _fields(table: MappingTable, at: At, base: tuple[FieldSpec, ...]) -> tuple[FieldSpec, ...]:
    """The fields after this table's ``drop_fields`` and ``fields`` (merged by column)."""
    fields = {spec.column: spec for spec in base}
    for i, column in enumerate(table.drop_fields or ()):
        if column not in fields:
            raise at.key("drop_fields").index(i).error(f"no field maps column {column!r}")
        del fields[column]
    seen: set[str] = set()
    for i, item in enumerate(table.fields or ()):
        item_at = at.key("fields").index(i)
        if item.column in seen:
            raise item_at.key("column").error(f"column {item.column!r} is mapped twice")
        spec = _field(item, item_at, fields.get(item.column) if item.column else None)
        seen.add(spec.column)
        fields[spec.column] = spec
    if not fields:
        raise at.key("fields").error("a mapping needs at least one field")
    return tuple(fields.values())


# -- mappings ----------------------------------------------------------------------------------


def _mapping(name: str, table: MappingTable, at: At, base: Mapping | None) -> Mapping:
    """A mapping from its table; ``base`` is the mapping it overrides (or None)."""
    missing = [key for key in REQUIRED_KEYS if not table.given(key)] if base is None else []
    if missing:
        needs = ", ".join(REQUIRED_KEYS)
        raise at.key(missing[0]).error(f"missing (a new mapping needs {needs})")
    changes: dict[str, Any] = {
        MAPPING_ATTRS.get(key, key): getattr(table, key)
        for key in table.model_fields_set
        if key not in ("fields", "drop_fields")
    }
    if table.match_on is not None:
        changes["match_on"] = tuple(table.match_on)
    changes["fields"] = _fields(table, at, base.fields if base else ())
    if base is not None:
        return dataclasses.replace(base, **changes)
    changes.setdefault("modified_field", MODIFIED_FIELDS[changes["remote"]])
    return Mapping(name=name, **changes)


def _check_mapping(mapping: Mapping, table: MappingTable, at: At) -> None:
    for key, remote in REMOTE_KEYS.items():
        if getattr(mapping, key) is not None and mapping.remote != remote:
            raise at.key(key).error(f"only for {remote} mappings (this one is {mapping.remote})")
    if mapping.remote == "airtable" and mapping.create_remote:
        raise at.key("create_remote").error("Airtable records are never created; must be false")
    if mapping.key_column in mapping.columns:
        raise at.key("key_column").error(
            f"{mapping.key_column!r} is also a mapped field's column; the key column holds "
            "the remote record id only"
        )
    remotes = [spec.remote for spec in mapping.fields]
    twice = sorted({r for r in remotes if remotes.count(r) > 1})
    if twice:
        raise at.key("fields").error(f"remote field {twice[0]!r} is mapped twice")
    _check_match_on(mapping, table, at)


def _check_match_on(mapping: Mapping, table: MappingTable, at: At) -> None:
    """Each ``match_on`` column is a mapped field's, once, of a kind that can name a record.

    An override that keeps the ``match_on`` of the mapping it changes is checked too: dropping
    or retyping a key column there is reported at ``match_on``, which must then be set.
    """
    given = table.given("match_on")
    inherited = "" if given else " (kept from the mapping this overrides; set match_on too)"
    for i, column in enumerate(mapping.match_on):
        where = at.key("match_on").index(i) if given else at.key("match_on")
        if column in mapping.match_on[:i]:
            raise where.error(f"column {column!r} is listed twice")
        if column not in mapping.columns:
            raise where.error(f"no field maps column {column!r}{inherited}")
        kind = mapping.field(column).kind
        if kind in UNMATCHABLE:
            raise where.error(
                f"column {column!r} is a {kind} field; a natural key cannot use json or boolean "
                f"fields{inherited}"
            )


def parse_mappings(
    document: dict[str, Any], source: str, base: tuple[Mapping, ...] = ()
) -> tuple[Mapping, ...]:
    """The mappings after applying a parsed config document to ``base``.

    Args:
        document: the parsed TOML.
        source: the file name, for error messages.
        base: the mappings configured so far (the built-ins).

    Returns:
        The mappings of ``base`` (overridden where the document says so), then the new ones.

    Raises:
        UsageError: naming the file and the offending key.
    """
    root = At(source)
    result = {m.name: m for m in base}
    for name, table in validate_document(document, source).mappings.items():
        at = root.key("mappings").key(name)
        if not NAME_RE.match(name):
            raise at.error("a mapping name is lower case letters, digits and _")
        mapping = _mapping(name, table, at, result.get(name))
        _check_mapping(mapping, table, at)
        result[name] = mapping
    _check_hubs(tuple(result.values()), root)
    return tuple(result.values())


def _check_hubs(mappings: tuple[Mapping, ...], root: At) -> None:
    """Mappings sharing a local table (a hub) keep apart their key columns and agree on kinds.

    Each error is reported on the later mapping, naming the earlier one.
    """
    by_table: dict[str, list[Mapping]] = {}
    for mapping in mappings:
        at = root.key("mappings").key(mapping.name)
        for other in by_table.get(mapping.local_table, []):
            _check_hub_pair(mapping, other, at)
        by_table.setdefault(mapping.local_table, []).append(mapping)


def _check_hub_pair(mapping: Mapping, other: Mapping, at: At) -> None:
    shared = f"of {other.name!r} (both map table {mapping.local_table!r})"
    if mapping.key_column == other.key_column:
        raise at.key("key_column").error(
            f"{mapping.key_column!r} is also the key column {shared}; mappings sharing a table "
            "need their own key columns"
        )
    if mapping.key_column in other.columns:
        raise at.key("key_column").error(
            f"{mapping.key_column!r} is a mapped column {shared}; the key column holds the "
            "remote record id only"
        )
    if other.key_column in mapping.columns:
        raise at.key("fields").error(
            f"column {other.key_column!r} is the key column {shared}; it holds that remote's ids"
        )
    for spec in mapping.fields:
        if spec.column in other.columns and other.field(spec.column).kind is not spec.kind:
            raise at.key("fields").error(
                f"column {spec.column!r} is {spec.kind} here but "
                f"{other.field(spec.column).kind} in the mapping {shared}; a column mapped by "
                "several mappings has one kind"
            )


# -- files -------------------------------------------------------------------------------------


def read_config(path: Path) -> dict[str, Any]:
    """Parse a TOML file; raises UsageError naming the file when it is unreadable or invalid.

    A byte order mark at the start (Windows editors write one) is skipped: TOML files are UTF-8
    (https://toml.io/en/v1.0.0, "Spec"), and ``tomllib`` would refuse the mark as a statement.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: the config file is not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None


def read_mappings(path: Path, base: tuple[Mapping, ...] = ()) -> tuple[Mapping, ...]:
    """The mappings of a config file applied over ``base``; raises UsageError naming the file."""
    return parse_mappings(read_config(path), str(path), base)
