"""Whether Airtable's fields can carry what a mapping asks of them.

Two checks, shared by ``prepare`` (a run refuses the mapping) and ``inspect`` (``reconcile
check`` fails): every mapped field's real type fits the mapping's kind, and the modified field
is a "Last modified time" with a date-and-time result that watches every pulled field. Types and
options follow Airtable's field model (https://airtable.com/developers/web/api/field-model).
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model import FieldSpec, Kind, Mapping
from reconciler.remotes.airtable_fields import FieldInfo, TableSchema

TEXT_TYPES = frozenset(
    {"singleLineText", "multilineText", "richText", "email", "url", "phoneNumber"}
)
NUMBER_TYPES = frozenset({"number", "currency", "percent", "duration", "rating"})
SELECT_TYPES = frozenset({"singleSelect", "multipleSelects"})
# Types whose values Airtable computes: never written, and judged by what they compute.
COMPUTED_TYPES = frozenset(
    {
        "formula",
        "rollup",
        "multipleLookupValues",
        "count",
        "autoNumber",
        "createdTime",
        "lastModifiedTime",
        "createdBy",
        "lastModifiedBy",
        "button",
        "aiText",
        "externalSyncSource",
    }
)
# What a computed field's value is, when its type says it (otherwise ``options.result``).
_COMPUTES = {"count": "number", "autoNumber": "number"}
# The types of value each kind reads and writes (a pull-only text also reads numbers and dates:
# their canonical text is what a person sees).
_FITS: dict[Kind, frozenset[str]] = {
    Kind.TEXT: TEXT_TYPES | {"singleSelect"},
    Kind.NUMBER: NUMBER_TYPES,
    Kind.INTEGER: frozenset({"number", "rating"}),
    Kind.BOOLEAN: frozenset({"checkbox"}),
    Kind.DATETIME: frozenset({"dateTime"}),
    Kind.DATE: frozenset({"date"}),
}
_TEXT_READS = NUMBER_TYPES | {"date", "dateTime"}
MODIFIED_TYPE = "lastModifiedTime"
SHOWN = 5  # unwatched fields named in a message


@dataclass(frozen=True)
class Problem:
    """Something wrong with one field, and its fix."""

    what: str
    fix: str


def value_type(info: FieldInfo) -> str | None:
    """The type of the values a field holds: its own, or what a computed field computes
    (None when a formula or rollup does not say)."""
    if info.type in _COMPUTES:
        return _COMPUTES[info.type]
    if info.type in ("formula", "rollup", "createdTime", "lastModifiedTime"):
        result = info.options.get("result")
        return str(result["type"]) if isinstance(result, dict) and "type" in result else None
    return info.type


def type_problems(mapping: Mapping, schema: TableSchema) -> list[str]:
    """Each mapped field whose Airtable type does not fit its kind, as a sentence."""
    found = []
    for spec in mapping.fields:
        info = schema.fields.get(spec.remote)
        problem = None if info is None else _mismatch(spec, info)
        if problem:
            found.append(problem)
    return found


TYPE_FIX = "change the field's type in Airtable, or the field's `kind` in the mapping config"


def _mismatch(spec: FieldSpec, info: FieldInfo) -> str | None:
    name, computed = repr(spec.remote), info.type in COMPUTED_TYPES
    if computed and spec.pushes:
        return (
            f"{name} is a {info.type} field, which Airtable computes and nobody can write, but "
            f"the mapping pushes it (set its direction to pull)"
        )
    values = value_type(info)
    described = info.type if values == info.type else f"{info.type} (of {values or 'unknown'})"
    if _fits(spec, values, info):
        return None
    if spec.kind is Kind.INTEGER and values == "number":
        precision = info.options.get("precision")
        return f"{name} is a number field with {precision} decimal places but its kind is integer"
    return f"{name} is a {described} field but its kind is {spec.kind.value}"


def _fits(spec: FieldSpec, values: str | None, info: FieldInfo) -> bool:
    if spec.kind is Kind.JSON:
        # A JSON column takes any value Airtable sends; JSON kept as text needs a text field.
        return not spec.json_as_text or values in TEXT_TYPES
    if values is None:
        return False
    if spec.kind is Kind.INTEGER and values == "number":
        return not info.options.get("precision")  # decimal places would fail record by record
    if spec.kind is Kind.TEXT and not spec.pushes and values in _TEXT_READS:
        return True
    return values in _FITS[spec.kind]


MODIFIED_KIND_FIX = "make it a 'Last modified time' field that watches all fields"
MODIFIED_TIME_FIX = "set its formatting to include a time"
MODIFIED_WATCH_FIX = "make it watch all fields"


def modified_problems(mapping: Mapping, schema: TableSchema) -> list[Problem]:
    """What makes the modified field unfit to place a window on (nothing when it is fit, or
    when it is missing altogether, which is reported as a missing field)."""
    name = mapping.modified_field
    info = schema.fields.get(name)
    if info is None:
        return []
    if info.type != MODIFIED_TYPE:
        what = f"{name!r} is a {info.type} field, not a last modified time"
        return [Problem(what, MODIFIED_KIND_FIX)]
    found = []
    result = value_type(info)
    if result == "date":
        found.append(Problem(f"{name!r} shows a date without a time", MODIFIED_TIME_FIX))
    elif result is not None and result != "dateTime":
        # No ``result`` at all says nothing: the field model makes it optional (pyairtable's
        # ``LastModifiedTimeFieldOptions.result`` may be None), and a run stops at the first
        # value without a time (``airtable_records.stamp``).
        found.append(Problem(f"{name!r} shows {result}", MODIFIED_TIME_FIX))
    watched = info.options.get("referencedFieldIds") or []
    pulled = [s.remote for s in mapping.fields if s.pulls and s.remote in schema.fields]
    unwatched = [n for n in pulled if watched and schema.fields[n].id not in watched]
    if unwatched:
        names = ", ".join(repr(n) for n in unwatched[:SHOWN])
        names += f" and {len(unwatched) - SHOWN} more" if len(unwatched) > SHOWN else ""
        what = f"{name!r} watches only some fields, not {names}: their edits would be missed"
        found.append(Problem(what, MODIFIED_WATCH_FIX))
    if info.options.get("isValid") is False:
        fix = "open the field's settings in Airtable and save them again"
        found.append(Problem(f"Airtable marks {name!r} invalid", fix))
    return found


def modified_message(mapping: Mapping, problems: list[Problem]) -> str:
    """The mapping-level error for an unfit modified field: what is wrong, and each fix."""
    parts = "; ".join(f"{p.what} ({p.fix})" for p in problems)
    return f"the modified field cannot be trusted to find changes: {parts}"


def types_message(problems: list[str]) -> str:
    """The mapping-level error for mapped fields whose type does not fit their kind."""
    return f"Airtable field types do not fit the mapping: {'; '.join(problems)}: {TYPE_FIX}"


def has_selects(schema: TableSchema, names: list[str]) -> bool:
    """Whether any of the named fields is a select (a new option needs ``typecast``)."""
    return any(schema.fields[n].type in SELECT_TYPES for n in names if n in schema.fields)
