"""Mapping configuration in TOML (``--config PATH`` or ``RECONCILER_CONFIG``).

A config file holds ``[mappings.<name>]`` tables. A name that is already configured (a built-in)
is an override: every key is optional, each entry of ``fields`` updates the field with the same
``column`` (or adds one), and ``drop_fields`` removes fields. Any other name adds a mapping, which
needs ``remote``, ``table``, ``local_table``, ``key_column`` and ``fields``. The built-in mappings
are loaded from ``builtin_mappings.toml`` (next to this module) in this same format.

Everything is validated at start-up; an error names the file and the key, e.g.
``config.toml: mappings.leads.fields[3].direction: must be pull, push or both (got 'sideways')``
(indexes count from 0).
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from reconciler.errors import UsageError
from reconciler.model.mapping import Direction, FieldSpec, Kind, Mapping, Merge

MODIFIED_FIELDS = {"airtable": "lastModifiedTime", "twenty": "updatedAt"}
MAPPING_KEYS = (
    "remote",
    "table",
    "local_table",
    "key_column",
    "modified_field",
    "create_remote",
    "rate_limit",
    "fields",
    "drop_fields",
)
REQUIRED_KEYS = ("remote", "table", "local_table", "key_column", "fields")
FIELD_KEYS = ("remote", "column", "kind", "direction", "merge", "json_as_text")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

E = TypeVar("E", bound=StrEnum)


@dataclass(frozen=True)
class At:
    """Where a value sits: the file and the dotted key path, for error messages."""

    source: str
    path: str = ""

    def key(self, name: str) -> At:
        """The location of a key inside this table."""
        return At(self.source, f"{self.path}.{name}" if self.path else name)

    def index(self, i: int) -> At:
        """The location of an item of this array."""
        return At(self.source, f"{self.path}[{i}]")

    def error(self, message: str) -> UsageError:
        """A one-line usage error naming the file and the key."""
        where = f"{self.source}: {self.path}" if self.path else self.source
        return UsageError(f"{where}: {message}")


# -- typed readers -----------------------------------------------------------------------------


def _table(value: object, at: At, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise at.error(f"must be a table (got {_show(value)})")
    for key in value:
        if key not in allowed:
            raise at.key(key).error(f"unknown key (allowed: {', '.join(allowed)})")
    return value


def _text(table: dict[str, Any], key: str, at: At, pattern: re.Pattern[str] | None = None) -> str:
    value = table[key]
    if not isinstance(value, str) or not value.strip():
        raise at.key(key).error(f"must be a non-empty string (got {_show(value)})")
    if pattern is not None and not pattern.match(value):
        raise at.key(key).error(f"must be a plain SQL identifier (got {value!r})")
    return value


def _choice(table: dict[str, Any], key: str, at: At, enum: type[E]) -> E:
    value = table[key]
    names = [member.value for member in enum]
    if value not in names:
        options = ", ".join(names[:-1]) + " or " + names[-1]
        raise at.key(key).error(f"must be {options} (got {_show(value)})")
    return enum(value)


def _flag(table: dict[str, Any], key: str, at: At) -> bool:
    value = table[key]
    if not isinstance(value, bool):
        raise at.key(key).error(f"must be true or false (got {_show(value)})")
    return value


def _positive(table: dict[str, Any], key: str, at: At) -> float:
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise at.key(key).error(f"must be a number above 0 (got {_show(value)})")
    return float(value)


def _array(table: dict[str, Any], key: str, at: At) -> list[Any]:
    value = table[key]
    if not isinstance(value, list):
        raise at.key(key).error(f"must be an array (got {_show(value)})")
    return value


def _show(value: object) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)


# -- fields ------------------------------------------------------------------------------------


def _field(raw: object, at: At, base: FieldSpec | None) -> FieldSpec:
    """A field from its TOML table; ``base`` is the field it overrides (or None for a new one)."""
    table = _table(raw, at, FIELD_KEYS)
    if "column" not in table:
        raise at.key("column").error("missing (every field names its local column)")
    if base is None and "remote" not in table:
        raise at.key("remote").error("missing (a new field names its remote field)")
    changes: dict[str, Any] = {"column": _text(table, "column", at, IDENTIFIER_RE)}
    if "remote" in table:
        changes["remote"] = _text(table, "remote", at)
    for key, enum in (("kind", Kind), ("direction", Direction), ("merge", Merge)):
        if key in table:
            changes[key] = _choice(table, key, at, enum)
    if "json_as_text" in table:
        changes["json_as_text"] = _flag(table, "json_as_text", at)
    spec = dataclasses.replace(base, **changes) if base else FieldSpec(**changes)
    _check_field(spec, table, at)
    return spec


def _check_field(spec: FieldSpec, table: dict[str, Any], at: At) -> None:
    where = "merge" if "merge" in table else "kind"
    if spec.merge is Merge.UNION and spec.kind is not Kind.JSON:
        raise at.key(where).error("merge = 'union' needs kind = 'json' (a JSON array)")
    where = "json_as_text" if "json_as_text" in table else "kind"
    if spec.json_as_text and spec.kind is not Kind.JSON:
        raise at.key(where).error("json_as_text = true needs kind = 'json'")


def _fields(table: dict[str, Any], at: At, base: tuple[FieldSpec, ...]) -> tuple[FieldSpec, ...]:
    """The fields after this table's ``drop_fields`` and ``fields`` (merged by column)."""
    fields = {spec.column: spec for spec in base}
    if "drop_fields" in table:
        for i, column in enumerate(_array(table, "drop_fields", at)):
            if column not in fields:
                raise at.key("drop_fields").index(i).error(f"no field maps column {column!r}")
            del fields[column]
    if "fields" in table:
        seen: set[str] = set()
        for i, raw in enumerate(_array(table, "fields", at)):
            item_at = at.key("fields").index(i)
            column = raw.get("column") if isinstance(raw, dict) else None
            if column in seen:
                raise item_at.key("column").error(f"column {column!r} is mapped twice")
            spec = _field(raw, item_at, fields.get(column) if isinstance(column, str) else None)
            seen.add(spec.column)
            fields[spec.column] = spec
    if not fields:
        raise at.key("fields").error("a mapping needs at least one field")
    return tuple(fields.values())


# -- mappings ----------------------------------------------------------------------------------


def _mapping(name: str, raw: object, at: At, base: Mapping | None) -> Mapping:
    """A mapping from its TOML table; ``base`` is the mapping it overrides (or None)."""
    table = _table(raw, at, MAPPING_KEYS)
    changes: dict[str, Any] = {}
    if "remote" in table:
        remote = _text(table, "remote", at)
        if remote not in MODIFIED_FIELDS:
            raise at.key("remote").error(f"must be airtable or twenty (got {remote!r})")
        changes["remote"] = remote
    missing = [key for key in REQUIRED_KEYS if key not in table] if base is None else []
    if missing:
        needs = ", ".join(REQUIRED_KEYS)
        raise at.key(missing[0]).error(f"missing (a new mapping needs {needs})")
    for key, attr, pattern in (
        ("table", "remote_table", None),
        ("local_table", "local_table", IDENTIFIER_RE),
        ("key_column", "key_column", IDENTIFIER_RE),
        ("modified_field", "modified_field", None),
    ):
        if key in table:
            changes[attr] = _text(table, key, at, pattern)
    if "create_remote" in table:
        changes["create_remote"] = _flag(table, "create_remote", at)
    if "rate_limit" in table:
        changes["rate_limit"] = _positive(table, "rate_limit", at)
    changes["fields"] = _fields(table, at, base.fields if base else ())
    if base is not None:
        return dataclasses.replace(base, **changes)
    changes.setdefault("modified_field", MODIFIED_FIELDS[changes["remote"]])
    return Mapping(name=name, **changes)


def _check_mapping(mapping: Mapping, at: At) -> None:
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


def parse_mappings(
    document: dict[str, Any], source: str, base: tuple[Mapping, ...] = ()
) -> tuple[Mapping, ...]:
    """The mappings after applying a parsed config document to ``base``.

    Args:
        document: the parsed TOML.
        source: the file name, for error messages.
        base: the mappings configured so far (the built-ins).

    Raises:
        UsageError: naming the file and the offending key.
    """
    root = At(source)
    _table(document, root, ("mappings",))
    raw_mappings = document.get("mappings", {})
    if not isinstance(raw_mappings, dict):
        raise root.key("mappings").error(f"must be a table (got {_show(raw_mappings)})")
    result = {m.name: m for m in base}
    for name, raw in raw_mappings.items():
        at = root.key("mappings").key(name)
        if not NAME_RE.match(name):
            raise at.error("a mapping name is lower case letters, digits and _")
        mapping = _mapping(name, raw, at, result.get(name))
        _check_mapping(mapping, at)
        result[name] = mapping
    _check_distinct_tables(tuple(result.values()), root)
    return tuple(result.values())


def _check_distinct_tables(mappings: tuple[Mapping, ...], root: At) -> None:
    owner: dict[str, str] = {}
    for mapping in mappings:
        other = owner.setdefault(mapping.local_table, mapping.name)
        if other != mapping.name:
            at = root.key("mappings").key(mapping.name).key("local_table")
            raise at.error(f"table {mapping.local_table!r} is already mapped by {other!r}")


# -- files -------------------------------------------------------------------------------------


def read_config(path: Path) -> dict[str, Any]:
    """Parse a TOML file; raises UsageError naming the file when it is unreadable or invalid."""
    try:
        text = path.read_text(encoding="utf-8")
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
