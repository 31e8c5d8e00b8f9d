"""Field types of the Airtable emulator: validation, typecasting, rendering and field metadata.

Stored values are normalized: text is ``str``, numbers ``int``/``float``, checkboxes ``True``,
dates ``datetime.date``, datetimes aware UTC ``datetime`` truncated to milliseconds, multiple
selects a ``list[str]``. An empty cell is simply absent from the stored mapping, so "", [],
false and null all mean "empty", exactly as the API omits them on read.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from reconciler.emulators.base import iso_ms

LEADS_FIELDS: dict[str, str] = {
    "First Name": "singleLineText",
    "Last Name": "singleLineText",
    "Email": "email",
    "Phone": "phoneNumber",
    "Company": "singleLineText",
    "Title": "singleLineText",
    "Status": "singleLineText",
    "Campaign Name": "singleLineText",
    "Lead Source": "singleLineText",
    "Form ID": "singleLineText",
    "Processing Status": "singleLineText",
    "Campaign ID": "singleLineText",
    "Claimed By": "singleLineText",
    "Notes": "multilineText",
    "ICP Score": "number",
    "SMS Sent Count": "number",
    "SMS Sequence Position": "number",
    "SMS Last Sent At": "dateTime",
    "Booked At": "dateTime",
    "Claimed At": "dateTime",
    "Booked": "checkbox",
    "SMS Stop": "checkbox",
    "lastModifiedTime": "lastModifiedTime",
}

TEXT_TYPES = frozenset(
    {"singleLineText", "email", "phoneNumber", "multilineText", "url", "richText", "singleSelect"}
)
NUMBER_TYPES = frozenset({"number", "currency", "percent", "rating"})
COMPUTED_TYPES = frozenset({"lastModifiedTime", "createdTime", "autoNumber", "formula"})
FIELD_TYPES = (
    TEXT_TYPES | NUMBER_TYPES | COMPUTED_TYPES | {"checkbox", "date", "dateTime", "multipleSelects"}
)

_ISO_DATETIME_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$"
)
_ISO_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TRUE_WORDS = frozenset({"true", "1", "yes", "y", "checked", "on"})
_FALSE_WORDS = frozenset({"false", "0", "no", "n", "unchecked", "off", ""})


class AirtableError(Exception):
    """An API error: the HTTP status, Airtable's error ``type`` and a message."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(f"{status} {kind}: {message}")
        self.status = status
        self.kind = kind
        self.message = message


def unprocessable(kind: str, message: str) -> AirtableError:
    """A 422 error of the given type."""
    return AirtableError(422, kind, message)


def unknown_field(name: str) -> AirtableError:
    """The 422 Airtable answers for a field name it does not know."""
    return unprocessable("UNKNOWN_FIELD_NAME", f'Unknown field name: "{name}"')


@dataclass(frozen=True)
class FieldDef:
    """One column of a table."""

    id: str
    name: str
    type: str

    @property
    def computed(self) -> bool:
        """Whether the server computes this field (clients can never write it)."""
        return self.type in COMPUTED_TYPES


def truncate_ms(moment: datetime) -> datetime:
    """An aware datetime converted to UTC and truncated to whole milliseconds."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: pass an aware datetime")
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def is_empty(value: Any) -> bool:
    """Whether Airtable treats the value as an empty cell ("", [], false, null)."""
    return value is None or value is False or value == "" or value == []


def coerce(field: FieldDef, value: Any, *, typecast: bool) -> Any:
    """Validate a value written to ``field``; returns the stored form (None: empty cell).

    Raises:
        AirtableError: 422 ``INVALID_VALUE_FOR_COLUMN`` for a computed field or a bad value.
    """
    if field.computed:
        raise unprocessable(
            "INVALID_VALUE_FOR_COLUMN",
            f'Field "{field.name}" cannot accept a value because the field is computed',
        )
    if value is None:
        return None
    try:
        stored = _convert(field.type, value, typecast)
    except (TypeError, ValueError, OverflowError):
        raise unprocessable(
            "INVALID_VALUE_FOR_COLUMN",
            f'Field "{field.name}" cannot accept the provided value: {value!r}',
        ) from None
    return None if is_empty(stored) else stored


def _convert(kind: str, value: Any, typecast: bool) -> Any:
    if kind in TEXT_TYPES:
        return _to_text(value, typecast)
    if kind in NUMBER_TYPES:
        return _to_number(value, typecast)
    if kind == "checkbox":
        return _to_checkbox(value, typecast)
    if kind == "dateTime":
        return _to_datetime(value, typecast)
    if kind == "date":
        return _to_date(value, typecast)
    if kind == "multipleSelects":
        return _to_choices(value, typecast)
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
    if not isinstance(value, str):
        raise TypeError("YYYY-MM-DD expected")
    if typecast and _ISO_DATETIME_RE.match(value):
        return _to_datetime(value, False).date()
    if not _ISO_DATE_RE.match(value):
        raise ValueError("YYYY-MM-DD expected")
    return date.fromisoformat(value)


def _to_choices(value: Any, typecast: bool) -> list[str]:
    if typecast and isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError("list of strings expected")
    return list(value)


def render_number_text(value: int | float) -> str:
    """A number as Airtable writes it in text: integers without a decimal point."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def render(value: Any) -> Any:
    """A stored value in its JSON API form."""
    if isinstance(value, datetime):
        return iso_ms(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return list(value)
    return value


_DATE_FORMAT = {"name": "iso", "format": "YYYY-MM-DD"}
_DATETIME_OPTIONS = {
    "timeZone": "utc",
    "dateFormat": _DATE_FORMAT,
    "timeFormat": {"name": "24hour", "format": "HH:mm"},
}
_FIELD_OPTIONS: dict[str, dict[str, Any]] = {
    "number": {"precision": 0},
    "currency": {"precision": 2, "symbol": "$"},
    "percent": {"precision": 0},
    "rating": {"max": 5, "icon": "star", "color": "yellowBright"},
    "checkbox": {"color": "greenBright", "icon": "check"},
    "date": {"dateFormat": _DATE_FORMAT},
    "dateTime": _DATETIME_OPTIONS,
    "singleSelect": {"choices": []},
    "multipleSelects": {"choices": []},
    "lastModifiedTime": {
        "isValid": True,
        "referencedFieldIds": [],
        "result": {"type": "dateTime", "options": _DATETIME_OPTIONS},
    },
    "createdTime": {"result": {"type": "dateTime", "options": _DATETIME_OPTIONS}},
    "formula": {"formula": "BLANK()", "isValid": True, "referencedFieldIds": [], "result": None},
}


def field_schema(field: FieldDef) -> dict[str, Any]:
    """A field as the metadata API describes it."""
    schema: dict[str, Any] = {"id": field.id, "name": field.name, "type": field.type}
    if field.type in _FIELD_OPTIONS:
        schema["options"] = _FIELD_OPTIONS[field.type]
    return schema
