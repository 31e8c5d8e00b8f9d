"""Cell values of the Airtable emulator: validation, typecasting and rendering.

Stored values are normalized: text is ``str``, numbers ``int``/``float``, checkboxes ``True``,
dates ``datetime.date``, datetimes aware UTC ``datetime`` truncated to milliseconds, selects a
choice name (or a list of them), links a list of record ids, collaborators ``{id, email, name}``
objects, barcodes ``{text, type?}``. An empty cell is simply absent from the stored mapping, so
"", [], false and null all mean "empty", exactly as the API omits them on read
(https://airtable.com/developers/web/api/list-records: "Returned records do not include any
fields with 'empty' values").
"""

from __future__ import annotations

import copy
import math
import re
from datetime import UTC, date, datetime
from typing import Any, Protocol

from reconciler.emulators.airtable.schema import (
    NUMBER_TYPES,
    TEXT_TYPES,
    AirtableError,
    FieldDef,
    unprocessable,
)
from reconciler.emulators.base import iso_ms

# What a formula or rollup holds when its computation fails, instead of a value: an error
# (an average of no values, a function given the wrong type) or a number that is not finite
# (``0/0``, ``1/0``). Undocumented; the shapes of real answers in triggerdotdev/trigger.dev#645
# (tested against the API: "{ error: string } | { specialValue: "Infinity" | "NaN" }") and
# domdomegg/airtable-ts#16 (the maintainer: "the Airtable API responds with { specialValue:
# 'NaN' } or { error: '#ERROR!' }").
FORMULA_ERROR = {"error": "#ERROR!"}
NOT_A_NUMBER = {"specialValue": "NaN"}
INFINITE = {"specialValue": "Infinity"}
_FAILURES = ({"error"}, {"specialValue"})


def computation_failure(value: Any) -> bool:
    """Whether ``value`` is one of the shapes a failed computation reads as."""
    return (
        isinstance(value, dict)
        and set(value) in _FAILURES
        and all(isinstance(v, str) for v in value.values())
    )


_ISO_DATETIME_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$"
)
_ISO_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TRUE_WORDS = frozenset({"true", "1", "yes", "y", "checked", "on"})
_FALSE_WORDS = frozenset({"false", "0", "no", "n", "unchecked", "off", ""})


class BaseLookup(Protocol):
    """What validating a value needs to know about the rest of the base."""

    def record_exists(self, table_id: str, record_id: str) -> bool:
        """Whether ``table_id`` holds a record ``record_id``."""

    def collaborator(self, ref: Any) -> dict[str, Any] | None:
        """The base collaborator a write names (``{id}``, ``{email}`` or an id), or None."""


def truncate_ms(moment: datetime) -> datetime:
    """An aware datetime converted to UTC and truncated to whole milliseconds."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: pass an aware datetime")
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def is_empty(value: Any) -> bool:
    """Whether Airtable treats the value as an empty cell ("", [], false, null)."""
    return value is None or value is False or value == "" or value == []


def computed_error(column: FieldDef) -> AirtableError:
    """422 for a write to a read-only field (message recorded from the real API)."""
    return unprocessable(
        "INVALID_VALUE_FOR_COLUMN",
        f'Field "{column.name}" cannot accept a value because the field is computed',
    )


def coerce(column: FieldDef, value: Any, *, typecast: bool, base: BaseLookup) -> Any:
    """Validate a value written to ``column``; returns the stored form (None: empty cell).

    Raises:
        AirtableError: 422 ``INVALID_VALUE_FOR_COLUMN`` for a computed field or a bad value,
            ``INVALID_MULTIPLE_CHOICE_OPTIONS`` for an unknown select option without typecast,
            ``ROW_DOES_NOT_EXIST`` for a link to a record that does not exist.
    """
    if column.computed:
        raise computed_error(column)
    if value is None:
        return None
    if column.type in ("singleSelect", "multipleSelects"):
        return _to_choices(column, value, typecast)
    if column.type == "multipleRecordLinks":
        return _to_links(column, value, base)
    try:
        stored = _convert(column, value, typecast, base)
    except (TypeError, ValueError, OverflowError):
        raise unprocessable(
            "INVALID_VALUE_FOR_COLUMN",
            f'Field "{column.name}" cannot accept the provided value: {value!r}',
        ) from None
    return None if is_empty(stored) else stored


def _convert(column: FieldDef, value: Any, typecast: bool, base: BaseLookup) -> Any:
    kind = column.type
    if kind in TEXT_TYPES:
        return _to_text(value, typecast)
    if kind in NUMBER_TYPES:
        return _to_number(value, typecast)
    if kind == "rating":
        return _to_rating(value, typecast, int(column.options.get("max", 5)))
    if kind == "checkbox":
        return _to_checkbox(value, typecast)
    if kind == "dateTime":
        return _to_datetime(value, typecast)
    if kind == "date":
        return _to_date(value, typecast)
    if kind == "barcode":
        return _to_barcode(value, typecast)
    if kind == "singleCollaborator":
        return _to_collaborator(value, base)
    if kind == "multipleCollaborators":
        if not isinstance(value, list):
            raise TypeError("list of collaborators expected")
        return [_to_collaborator(item, base) for item in value]
    raise TypeError(f"unsupported field type {kind}")


def _to_text(value: Any, typecast: bool) -> str:
    if isinstance(value, str):
        return value
    if typecast and isinstance(value, int | float) and not isinstance(value, bool):
        return render_number_text(value)
    raise TypeError("text expected")


def _to_number(value: Any, typecast: bool) -> int | float:
    if isinstance(value, str) and typecast:
        text = value.strip()
        value = int(text) if re.fullmatch(r"[+-]?\d+", text) else float(text)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("number expected")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("finite number expected")
    return value


def _to_rating(value: Any, typecast: bool, maximum: int) -> int:
    # A rating is a whole number of stars from 1 to the field's max (field model "rating").
    number = _to_number(value, typecast)
    if number != int(number) or not 1 <= number <= maximum:
        raise ValueError(f"rating from 1 to {maximum} expected")
    return int(number)


def _to_checkbox(value: Any, typecast: bool) -> bool:
    if isinstance(value, bool):
        return value
    if typecast and isinstance(value, str) and value.strip().lower() in _TRUE_WORDS | _FALSE_WORDS:
        return value.strip().lower() in _TRUE_WORDS
    if typecast and isinstance(value, int | float):
        return bool(value)
    raise TypeError("boolean expected")


def _to_datetime(value: Any, typecast: bool) -> datetime:
    if not isinstance(value, str):
        raise TypeError("ISO-8601 string expected")
    if typecast and _ISO_DATE_RE.match(value):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    if not _ISO_DATETIME_RE.match(value):
        raise ValueError("ISO-8601 datetime with a time zone expected")
    return truncate_ms(datetime.fromisoformat(value.replace("Z", "+00:00")))


def _to_date(value: Any, typecast: bool) -> date:
    # A date field holds an ISO date, "2022-09-05" (field model "dateonly").
    if not isinstance(value, str):
        raise TypeError("YYYY-MM-DD expected")
    if typecast and _ISO_DATETIME_RE.match(value):
        return _to_datetime(value, False).date()
    if not _ISO_DATE_RE.match(value):
        raise ValueError("YYYY-MM-DD expected")
    return date.fromisoformat(value)


def _to_barcode(value: Any, typecast: bool) -> dict[str, Any]:
    # Cell format {text, type?} (field model "barcode"; pyairtable BarcodeDict).
    if typecast and isinstance(value, str):
        value = {"text": value}
    if not isinstance(value, dict) or not isinstance(value.get("text"), str):
        raise TypeError("barcode {text, type?} expected")
    if set(value) - {"text", "type"}:
        raise ValueError("barcode takes only text and type")
    return {key: value[key] for key in ("text", "type") if value.get(key) is not None}


def _to_collaborator(value: Any, base: BaseLookup) -> dict[str, Any]:
    # Written as {id} or {email}, read as {id, email, name} (field model "collaborator").
    found = base.collaborator(value)
    if found is None:
        raise ValueError("unknown collaborator")
    return found


def choice_error(name: str) -> AirtableError:
    """422 for a select option that does not exist, with the real API's message text.

    Reported verbatim (doubled quotes included) in gtalarico/pyairtable#137:
    ``Insufficient permissions to create new select option ""vE4TzESFee""``.
    """
    return unprocessable(
        "INVALID_MULTIPLE_CHOICE_OPTIONS",
        f'Insufficient permissions to create new select option ""{name}""',
    )


def _to_choices(column: FieldDef, value: Any, typecast: bool) -> str | list[str] | None:
    """A select value: option names must exist unless ``typecast`` (which creates them).

    https://airtable.com/developers/web/api/field-model#multiselect: "if a choice string does
    not exactly match an existing option, the request will fail with an
    INVALID_MULTIPLE_CHOICE_OPTIONS error unless the typecast parameter is enabled".
    """
    single = column.type == "singleSelect"
    if typecast and isinstance(value, int | float) and not isinstance(value, bool):
        value = render_number_text(value)
    if typecast and not single and isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    names = [value] if single else value
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise unprocessable(
            "INVALID_VALUE_FOR_COLUMN",
            f'Field "{column.name}" cannot accept the provided value: {value!r}',
        )
    known = set(column.choice_names())
    for name in names:
        if name and name not in known and not typecast:
            raise choice_error(name)
    names = [name for name in names if name]
    if not names:
        return None
    return names[0] if single else list(dict.fromkeys(names))


def _to_links(column: FieldDef, value: Any, base: BaseLookup) -> list[str] | None:
    """Linked record ids; a missing one answers 422 ``ROW_DOES_NOT_EXIST``.

    Seen for a stale record id written to a link field (community code handling it on create);
    message text as the batch-update form reports it (domdomegg/airtable-mcp-server#28).
    """
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise unprocessable(
            "INVALID_VALUE_FOR_COLUMN",
            f'Field "{column.name}" cannot accept the provided value: {value!r}',
        )
    table_id = str(column.options.get("linkedTableId"))
    for record_id in value:
        if not base.record_exists(table_id, record_id):
            raise row_missing(record_id)
    return list(dict.fromkeys(value)) or None


def row_missing(record_id: str) -> AirtableError:
    """422 ``ROW_DOES_NOT_EXIST``: a record id in a request body that the table does not hold.

    Real answer to a batch PATCH naming a deleted record (domdomegg/airtable-mcp-server#28):
    ``{"error":{"type":"ROW_DOES_NOT_EXIST","message":"Record ID rec… does not exist in this
    table"}}``.
    """
    return unprocessable(
        "ROW_DOES_NOT_EXIST", f"Record ID {record_id} does not exist in this table"
    )


def render_number_text(value: int | float) -> str:
    """A number as Airtable writes it in text: integers without a decimal point."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def render(value: Any, *, date_only: bool = False) -> Any:
    """A stored value in its JSON API form (``date_only``: a datetime shown as its UTC date)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).date().isoformat() if date_only else iso_ms(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | dict):
        return copy.deepcopy(value)
    return value
