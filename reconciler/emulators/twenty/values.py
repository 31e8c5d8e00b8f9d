"""Field values of the Twenty emulator: validating written values, converting stored values for
comparison, and converting filter literals.

Messages quote values the way Node's ``util.inspect`` does (``'text'``, ``null``, ``123``),
because Twenty's validators build their messages with it.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from typing import Any

from reconciler.emulators.base import iso_ms, parse_iso
from reconciler.emulators.twenty.schema import (
    ARRAY,
    BOOLEAN,
    COMPOSITE_FIELDS,
    COMPOSITE_SUBFIELDS,
    CURRENCY,
    DATE,
    DATE_TIME,
    EMAILS,
    FULL_NAME,
    LINKS,
    MULTI_SELECT,
    NUMBER,
    PHONES,
    POSITION,
    RATING,
    RAW_JSON,
    READ_ONLY_FIELDS,
    SELECT,
    TEXT,
    UUID,
    ObjectSpec,
    bad_request,
    is_uuid,
)
from reconciler.emulators.twenty.transforms import currency, emails, is_number, js_number, links

_NUMBER_RE = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: Symbolic positions Twenty resolves against the object's current minimum / maximum.
POSITION_WORDS = ("first", "last")


def node_inspect(value: Any) -> str:
    """``value`` as Node's ``util.inspect`` prints it, for messages quoting a bad value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "\\'") + "'"
    if isinstance(value, list):
        return "[ " + ", ".join(node_inspect(v) for v in value) + " ]" if value else "[]"
    if isinstance(value, dict):
        inner = ", ".join(f"{k}: {node_inspect(v)}" for k, v in value.items())
        return "{ " + inner + " }" if value else "{}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # JavaScript has one number type: 5.0 prints as 5
    return json.dumps(value)


def validate_value(name: str, ftype: str, value: Any, options: tuple[str, ...] = ()) -> Any:
    """A written value normalized for storage; raises a 400 naming the field when invalid."""
    if value is None:
        if ftype in (UUID, POSITION):
            raise _invalid(name, ftype, value)
        return None
    if ftype in (SELECT, RATING):
        return _option(name, value, options)
    if ftype in (ARRAY, MULTI_SELECT):
        return _array(name, ftype, value, options)
    if ftype in COMPOSITE_SUBFIELDS:
        return _composite(name, ftype, value)
    if ftype == RAW_JSON:
        return _raw_json(name, value)
    converted = _scalar(ftype, value)
    if converted is None:
        raise _invalid(name, ftype, value)
    return converted


def _scalar(ftype: str, value: Any) -> Any:
    """The stored form of a scalar value, or None when the type cannot hold it."""
    if ftype == TEXT and isinstance(value, str):
        return value
    if ftype in (NUMBER, POSITION) and is_number(value):
        return value
    if ftype == POSITION and value in POSITION_WORDS:
        return value
    if ftype == BOOLEAN and isinstance(value, bool):
        return value
    if ftype == UUID and is_uuid(value):
        return str(value).lower()
    if ftype == DATE and isinstance(value, str) and _as_date(value) is not None:
        return value
    if ftype == DATE_TIME and isinstance(value, str):
        return _instant(value)
    return None


def _instant(text: str) -> str | None:
    """A date-time as ``parseToInstantOrThrow`` reads it (twenty-shared's
    ``src/utils/date/parseToInstantOrThrow.ts``): an instant with its offset, or a date and
    time without one taken as UTC (``Temporal.PlainDateTime.from(…).toZonedDateTime('UTC')``).
    The non-ISO day formats it tries last (``yyyy/MM/dd`` and the like) are not modelled."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return iso_ms(moment.astimezone(UTC))


#: The messages of DataArgProcessor's validators for scalar types, ``{v}`` the value as Node's
#: ``inspect`` prints it: packages/twenty-server/src/engine/api/common/common-args-processors/
#: data-arg-processor/validator-utils/validate-<type>-field-or-throw.util.ts (date, date-time,
#: text, number, boolean, uuid, overridden-position; the date and position specs pin the wording).
_INVALID = {
    DATE: "Invalid value {v} for date field \"{name}\". Expected format: 'YYYY-MM-DD'",
    DATE_TIME: (
        "Invalid value {v} for date-time field \"{name}\". Expected format: 'YYYY-MM-DDTHH:mm:ssZ'"
    ),
    TEXT: 'Invalid string value {v} for text field "{name}"',
    NUMBER: 'Invalid number value {v} for field "{name}"',
    BOOLEAN: 'Invalid boolean value {v} for field "{name}"',
    UUID: 'Invalid UUID value {v} for field "{name}"',
    POSITION: 'Invalid position value {v} for field "{name}"',
}


def _invalid(name: str, ftype: str, value: Any) -> Exception:
    return bad_request(_INVALID[ftype].format(v=node_inspect(value), name=name))


def _option(name: str, value: Any, options: tuple[str, ...]) -> str:
    # validate-rating-and-select-field-or-throw.util.ts (same folder); its spec pins both texts.
    if not isinstance(value, str):
        raise bad_request(f'Invalid string value {node_inspect(value)} for text field "{name}"')
    if value not in options:
        raise bad_request(f'Invalid value {node_inspect(value)} for field "{name}"')
    return value


def _array(name: str, ftype: str, value: Any, options: tuple[str, ...]) -> list[str] | None:
    """An ARRAY or MULTI_SELECT value as stored. The source (``DataArgProcessorService``,
    ``packages/twenty-server/src/engine/api/common/common-args-processors/data-arg-processor/``):
    ``validateArrayFieldOrThrow`` takes a string or a list of strings; a MULTI_SELECT's items
    must be options (``validateMultiSelectFieldOrThrow``, quoting the whole value); then
    ``transformArrayField`` makes a string a list of one and stores an empty list as null
    (``isNullEquivalentArrayFieldValue``: lodash ``isEmpty``)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise bad_request(
            f'Invalid value {node_inspect(value)} for field "{name} - Array values need to '
            'be string"'
        )
    if ftype == MULTI_SELECT and any(item not in options for item in items):
        raise bad_request(f'Invalid value {node_inspect(value)} for multi select field "{name}"')
    return list(items) or None


def _raw_json(name: str, value: Any) -> Any:
    """A RAW_JSON value as stored (``DataArgProcessorService.processField``, same folder):
    ``validateRawJsonFieldOrThrow`` takes an object, an array or a string of JSON text;
    ``transformRawJsonField`` stores an empty object or array as null
    (``isNullEquivalentRawJsonFieldValue``: twenty-shared's ``isEmptyObject``, @sniptt/guards'
    ``isObject``, which arrays pass); text is parsed by the ORM ("Json.parse() for RawJsonField
    is done in formatFieldMetadataValue in ORM"), after the check, so ``"{}"`` stays ``{}``."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            pass
    elif isinstance(value, dict | list):
        return value or None
    raise bad_request(f'Invalid object value {node_inspect(value)} for field "{name}"')


#: The word each composite's validator names its type with in a message.
_COMPOSITE_LABELS = {
    LINKS: "links",
    CURRENCY: "currency",
    FULL_NAME: "full name",
    EMAILS: "emails",
    PHONES: "phones",
}


def _composite(name: str, ftype: str, value: Any) -> dict[str, Any]:
    """The sub-fields sent for a composite value, checked and written as its validator and
    transformer do (the store fills or merges the others). Each validator first runs the
    RAW_JSON check on the whole value, then walks ``Object.entries`` of it: a string of JSON
    text or a non-empty list has entries ``"0"``, ``"1"``…, which no composite has."""
    label, checks = _COMPOSITE_LABELS[ftype], COMPOSITE_FIELDS[ftype]
    _raw_json(name, value)  # an object, a list or JSON text, else its 400
    keys = [str(i) for i in range(len(value))] if isinstance(value, str | list) else list(value)
    for sub in keys:
        if sub not in checks:
            raise bad_request(f'Invalid subfield {sub} for {label} field "{name}"')
        _check_subfield(f"{name}.{sub}", checks[sub], value[sub])
    sent = value if isinstance(value, dict) else {}
    if ftype == EMAILS:
        return emails(sent)
    if ftype == LINKS:
        return links(sent)
    if ftype == CURRENCY:
        return currency(sent)
    if ftype == FULL_NAME:
        return {sub: None if text == "" else text for sub, text in sent.items()}
    return dict(sent)


def _check_subfield(path: str, check: str, value: Any) -> None:
    """One sub-field through its validator (the message names ``<field>.<sub-field>``)."""
    if check == TEXT and value is not None and not isinstance(value, str):
        raise _invalid(path, TEXT, value)
    if check == NUMBER and value not in ("", None) and js_number(value) is None:
        # validateNumericFieldOrThrow inspects Number(value), the NaN, not the value sent.
        raise bad_request(f'Invalid number value NaN for field "{path}"')
    if check == ARRAY and value is not None:
        _array(path, ARRAY, value, ())
    if check == RAW_JSON and value is not None:
        _raw_json(path, value)


def _as_date(text: str) -> date | None:
    if not _DATE_RE.match(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def validate_fields(
    spec: ObjectSpec, data: Any, *, allow_id: bool, stored: bool = False
) -> dict[str, Any]:
    """Validate a write body (a JSON object) against the object's fields; returns the values.

    ``position`` may come back as ``"first"`` or ``"last"``: the store resolves those. A TEXT
    value ``""`` is stored as null, as current servers do (``transformTextField`` after
    ``validateTextFieldOrThrow`` in ``DataArgProcessorService.processField``,
    ``packages/twenty-server/src/engine/api/common/common-args-processors/data-arg-processor/``;
    its spec: "should return null when value is empty string"), unless ``stored``: values as the
    database holds them, past the API (a ``""`` written before the transform existed, or by
    another path than the API).
    """
    if not isinstance(data, dict):
        raise bad_request(f"Invalid body for '{spec.plural}': expected a JSON object")
    values: dict[str, Any] = {}
    for name, value in data.items():
        ftype = spec.field_type(name)
        if ftype is None:
            # DataArgProcessorService.process, the same file.
            raise bad_request(f'Object {spec.singular} doesn\'t have any "{name}" field.')
        if name in READ_ONLY_FIELDS:
            raise bad_request(f"Field '{name}' is maintained by the server and cannot be written")
        if name == "id" and not allow_id:
            raise bad_request("Field 'id' cannot be changed")
        values[name] = validate_value(name, ftype, value, spec.field_options(name))
        if ftype == TEXT and value == "" and not stored:
            values[name] = None
    return values


def comparable(ftype: str, raw: Any) -> Any:
    """A stored (JSON-shaped) value converted for comparisons and sorting."""
    if raw is None:
        return None
    if ftype == DATE_TIME:
        return parse_iso(raw)
    if ftype == DATE:
        return date.fromisoformat(raw)
    if ftype in (NUMBER, POSITION):
        return float(raw)
    return raw


def parse_literal(name: str, ftype: str, text: str, options: tuple[str, ...] = ()) -> Any:
    """A filter literal converted to the field's comparable type; raises a 400 when it cannot be."""
    if ftype in (TEXT, ARRAY):
        return text
    if ftype in (SELECT, MULTI_SELECT, RATING) and text in options:
        return text
    if ftype == UUID and is_uuid(text):
        return text.lower()
    if ftype in (NUMBER, POSITION) and _NUMBER_RE.match(text):
        return float(text)
    if ftype == BOOLEAN and text in ("true", "false"):
        return text == "true"
    if ftype == DATE and _as_date(text) is not None:
        return _as_date(text)
    if ftype == DATE_TIME:
        try:
            return parse_iso(text)
        except ValueError:
            pass
    raise bad_request(f"Invalid filter value for field '{name}' of type {ftype}: {text!r}")
