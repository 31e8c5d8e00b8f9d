"""Which Airtable field each configured name stands for, followed by id.

A config names fields by name, and people rename fields in Airtable. Field ids (``fld…``)
survive renames, so the tool resolves every configured name to an id once, from the meta API
(``GET /v0/meta/bases/{base}/tables``), keeps the result between runs (``Remote.cache_update``),
and reads and writes by id. On a later resolution a known id that still exists is kept whatever
its name has become; only a name never resolved, or whose field is gone, is looked up by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from reconciler.model import Mapping, iso_ms, parse_datetime
from reconciler.remotes.kept import wanted, young

CACHE_VERSION = 1

# Field types whose value Airtable computes from a formula of the user's: when the computation
# fails, the value is an object naming the failure instead (see :func:`error_value`).
COMPUTING_TYPES = frozenset({"formula", "rollup"})
_ERROR_KEYS = frozenset({"error", "specialValue"})


def error_value(value: Any) -> str | None:
    """The failure a formula or rollup holds instead of its value, or None for a value.

    Airtable answers ``{"error": "#ERROR!"}`` for a computation that failed (an average of no
    values, a function given the wrong type) and ``{"specialValue": "NaN"}`` or
    ``{"specialValue": "Infinity"}`` for a number that is not finite (``0/0``, ``1/0``). Nothing
    of Airtable's documents it; the shapes are those of real answers reported in
    triggerdotdev/trigger.dev#645 (tested against the API: "{ error: string } | { specialValue:
    "Infinity" | "NaN" }", typed so in trigger.dev#697) and domdomegg/airtable-ts#16 (the
    maintainer: "the Airtable API responds with { specialValue: 'NaN' } or { error: '#ERROR!' }",
    read as null in its ``src/mapping/fieldMappers.ts``).
    """
    if type(value) is dict and len(value) == 1:
        ((key, text),) = value.items()
        if key in _ERROR_KEYS and isinstance(text, str):
            return text
    return None


@dataclass(frozen=True)
class FieldInfo:
    """One Airtable field as the meta API last described it."""

    id: str
    name: str  # its current name in Airtable
    type: str
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The field as kept between runs."""
        return {"id": self.id, "name": self.name, "type": self.type, "options": self.options}

    @classmethod
    def from_meta(cls, raw: dict[str, Any]) -> FieldInfo:
        """A field of the meta API's answer (select choices left out: nothing needs them)."""
        options = raw.get("options") if isinstance(raw.get("options"), dict) else {}
        kept = {k: v for k, v in (options or {}).items() if k != "choices"}
        return cls(str(raw["id"]), str(raw.get("name", "")), str(raw.get("type", "")), kept)


@dataclass(frozen=True)
class TableSchema:
    """A mapping's table resolved: its id, and the field each configured name stands for.

    Attributes:
        base: the base it was read from.
        key: the mapping's ``table`` (name or id) it was resolved for.
        table_id: the table's id (``tbl…``, kept through renames of the table).
        table_name: the table's current name.
        fields: configured name -> the field it stands for.
        fetched_at: when the meta API was read (this host's clock).
    """

    base: str
    key: str
    table_id: str
    table_name: str
    fields: dict[str, FieldInfo]
    fetched_at: datetime

    def young(self, now: datetime) -> bool:
        """Whether it was read less than a day ago."""
        return young(self.fetched_at, now)

    @cached_property
    def computing(self) -> tuple[str, ...]:
        """The configured names of the fields whose values Airtable computes from a formula
        (formula, rollup): those that may hold an error instead."""
        return tuple(name for name, info in self.fields.items() if info.type in COMPUTING_TYPES)

    def covers(self, names: Iterable[str]) -> bool:
        """Whether every one of ``names`` is resolved."""
        return all(name in self.fields for name in names)

    def renamed(self) -> list[tuple[str, str]]:
        """``(configured name, current name)`` of the fields followed through a rename."""
        return [
            (name, info.name)
            for name, info in self.fields.items()
            if info.name != name and info.id != name
        ]

    def to_cache(self) -> dict[str, Any]:
        """What a run keeps for the next one (plain JSON)."""
        return {
            "version": CACHE_VERSION,
            "base": self.base,
            "table": {"key": self.key, "id": self.table_id, "name": self.table_name},
            "fields": {name: info.to_json() for name, info in self.fields.items()},
            "fetched_at": iso_ms(self.fetched_at),
        }

    @classmethod
    def from_cache(cls, kept: Any, base: str, key: str) -> TableSchema | None:
        """What an earlier run kept, or None when it is absent, of another shape, or about
        another base or table."""
        if not isinstance(kept, dict) or kept.get("version") != CACHE_VERSION:
            return None
        try:
            table = kept["table"]
            if kept["base"] != base or table["key"] != key:
                return None
            fields = {
                str(name): FieldInfo(
                    str(raw["id"]), str(raw["name"]), str(raw["type"]), dict(raw["options"])
                )
                for name, raw in kept["fields"].items()
            }
            fetched = parse_datetime(str(kept["fetched_at"]))
            return cls(base, key, str(table["id"]), str(table["name"]), fields, fetched)
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


@dataclass(frozen=True)
class Resolution:
    """The outcome of resolving a mapping's names against the meta API's answer.

    ``schema`` is None when the table itself was not found (``tables`` then lists the base's
    tables); ``missing`` lists the configured names no field stands for.
    """

    schema: TableSchema | None
    missing: list[str]
    tables: list[str]


def resolve(body: Any, mapping: Mapping, base: str, previous: TableSchema | None) -> Resolution:
    """Resolve the mapping's table and field names against a meta API answer.

    A field ``previous`` knew keeps its id while the id exists, whatever its name now; the
    others are found by name (or by id, when the config names a field by its id).
    """
    tables = [t for t in _list(body, "tables") if isinstance(t, dict) and "id" in t]
    table = _table(tables, mapping.remote_table, previous)
    if table is None:
        return Resolution(None, wanted(mapping), [str(t.get("name")) for t in tables])
    infos = [FieldInfo.from_meta(f) for f in _list(table, "fields") if _is_field(f)]
    by_id = {info.id: info for info in infos}
    by_name = {info.name: info for info in infos}
    found: dict[str, FieldInfo] = {}
    for name in wanted(mapping):
        known = previous.fields.get(name) if previous is not None else None
        info = (by_id.get(known.id) if known else None) or by_name.get(name) or by_id.get(name)
        if info is not None:
            found[name] = info
    schema = TableSchema(
        base,
        mapping.remote_table,
        str(table["id"]),
        str(table.get("name", "")),
        found,
        datetime.now(UTC),
    )
    return Resolution(schema, [n for n in wanted(mapping) if n not in found], [])


def _table(
    tables: Sequence[dict[str, Any]], key: str, previous: TableSchema | None
) -> dict[str, Any] | None:
    """The table ``previous`` knew (by id, through a rename), else the one ``key`` names."""
    if previous is not None:
        known = next((t for t in tables if t["id"] == previous.table_id), None)
        if known is not None:
            return known
    return next((t for t in tables if key in (t.get("name"), t["id"])), None)


def _list(body: Any, key: str) -> list[Any]:
    value = body.get(key) if isinstance(body, dict) else None
    return value if isinstance(value, list) else []


def _is_field(raw: Any) -> bool:
    return isinstance(raw, dict) and isinstance(raw.get("id"), str)


def missing_message(mapping: Mapping, resolution: Resolution) -> str:
    """The mapping-level error for a table or fields that cannot be found, with the fix."""
    if resolution.schema is None:
        tables = ", ".join(repr(t) for t in resolution.tables) or "none"
        return (
            f"Airtable has no table {mapping.remote_table!r} in this base (tables: {tables}): "
            "fix `table` in the mapping config"
        )
    names = ", ".join(repr(n) for n in resolution.missing)
    return (
        f"Airtable table {resolution.schema.table_name!r} has no field {names} (deleted, or "
        "renamed before a run could learn its id): add the field back in Airtable, or set the "
        "mapping's `remote` to the field's current name"
    )
