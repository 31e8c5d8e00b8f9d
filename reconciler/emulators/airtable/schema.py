"""The Airtable emulator's field model: errors, field definitions, their options and metadata.

Field types, their options and their cell shapes follow Airtable's field model
(https://airtable.com/developers/web/api/field-model) and pyairtable's schema models
(``pyairtable/models/schema.py``, whose option classes a test parses every field with).
Values themselves are validated and rendered in :mod:`.values`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

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
    {"singleLineText", "email", "phoneNumber", "multilineText", "url", "richText"}
)
NUMBER_TYPES = frozenset({"number", "currency", "percent", "duration"})
SELECT_TYPES = frozenset({"singleSelect", "multipleSelects"})
# Read-only types: the field model marks their cells "(read only)"; writing one answers 422
# INVALID_VALUE_FOR_COLUMN 'Field "X" cannot accept a value because the field is computed'
# (recorded from api.airtable.com in grouparoo/grouparoo
# plugins/@grouparoo/airtable/__tests__/fixtures/no-meta-access/export-records.js).
COMPUTED_TYPES = frozenset(
    {
        "lastModifiedTime",
        "createdTime",
        "autoNumber",
        "formula",
        "rollup",
        "count",
        "multipleLookupValues",
        "createdBy",
        "lastModifiedBy",
        "button",
        "aiText",
    }
)
OTHER_WRITABLE_TYPES = frozenset(
    {
        "checkbox",
        "date",
        "dateTime",
        "rating",
        "barcode",
        "singleCollaborator",
        "multipleCollaborators",
        "multipleRecordLinks",
    }
)
FIELD_TYPES = TEXT_TYPES | NUMBER_TYPES | SELECT_TYPES | COMPUTED_TYPES | OTHER_WRITABLE_TYPES

# Colors Airtable gives new select choices (field-model "multiselect" allowed colors).
CHOICE_COLORS = (
    "blueLight2",
    "cyanLight2",
    "tealLight2",
    "greenLight2",
    "yellowLight2",
    "orangeLight2",
    "redLight2",
    "pinkLight2",
    "purpleLight2",
    "grayLight2",
)


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
    """The 422 Airtable answers for a field name (or id) it does not know."""
    return unprocessable("UNKNOWN_FIELD_NAME", f'Unknown field name: "{name}"')


@dataclass
class FieldDef:
    """One column of a table: its id (kept through renames), name, type, options, description."""

    id: str
    name: str
    type: str
    options: dict[str, Any] = field(default_factory=dict)
    description: str | None = None

    @property
    def computed(self) -> bool:
        """Whether the server computes this field (clients can never write it)."""
        return self.type in COMPUTED_TYPES

    @property
    def date_only(self) -> bool:
        """Whether a created/last-modified time field shows a date (``result.type`` ``date``)."""
        result = self.options.get("result")
        return isinstance(result, dict) and result.get("type") == "date"

    def choice_names(self) -> list[str]:
        """The names of a select field's choices."""
        return [choice["name"] for choice in self.options.get("choices", [])]


# -- options ---------------------------------------------------------------------------------------

_DATE_FORMAT = {"name": "iso", "format": "YYYY-MM-DD"}
_DATE_OPTIONS = {"dateFormat": _DATE_FORMAT}
_DATETIME_OPTIONS = {
    "timeZone": "utc",
    "dateFormat": _DATE_FORMAT,
    "timeFormat": {"name": "24hour", "format": "HH:mm"},
}
# Read formats of each type's options (field model; pyairtable *FieldOptions classes).
_DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    "number": {"precision": 0},
    "percent": {"precision": 0},
    "currency": {"precision": 2, "symbol": "$"},
    "duration": {"durationFormat": "h:mm"},
    "rating": {"max": 5, "icon": "star", "color": "yellowBright"},
    "checkbox": {"color": "greenBright", "icon": "check"},
    "date": _DATE_OPTIONS,
    "dateTime": _DATETIME_OPTIONS,
    "singleSelect": {"choices": []},
    "multipleSelects": {"choices": []},
    "lastModifiedTime": {"isValid": True, "referencedFieldIds": [], "result": "dateTime"},
    "createdTime": {"result": "dateTime"},
    "formula": {"formula": "BLANK()", "isValid": True, "referencedFieldIds": [], "result": None},
    "rollup": {"isValid": True, "referencedFieldIds": [], "result": None},
    "count": {"isValid": True, "recordLinkFieldId": None},
    "multipleLookupValues": {"isValid": True, "recordLinkFieldId": None, "result": None},
    "aiText": {"prompt": [], "referencedFieldIds": []},
    "multipleRecordLinks": {"isReversed": False, "prefersSingleRecordLink": False},
}


def time_result(kind: Any) -> dict[str, Any]:
    """A created/last-modified time ``result``: always a date or date-time field config."""
    if isinstance(kind, dict):
        kind = kind.get("type")
    if kind not in ("date", "dateTime"):
        raise ValueError(f"result must be 'date' or 'dateTime', got {kind!r}")
    options = _DATE_OPTIONS if kind == "date" else _DATETIME_OPTIONS
    return {"type": kind, "options": copy.deepcopy(options)}


def build_options(
    kind: str,
    given: Mapping[str, Any] | None,
    new_id: Callable[[str], str],
    resolve: Callable[[str], str],
) -> dict[str, Any]:
    """A field's options in Airtable's read shape: defaults overlaid with ``given``.

    Select ``choices`` may be plain names or ``{name, color?}``; each gets a ``sel…`` id and a
    color. ``referencedFieldIds`` may name fields by name or id (``resolve`` maps to ids), and a
    time ``result`` may be just ``"date"`` or ``"dateTime"`` (a last modified time's also None,
    to leave it out).
    """
    options = copy.deepcopy(_DEFAULT_OPTIONS.get(kind, {}))
    options.update(copy.deepcopy(dict(given or {})))
    if kind in SELECT_TYPES:
        options["choices"] = _choices(options.get("choices", []), new_id)
    if kind in ("lastModifiedTime", "createdTime"):
        if kind == "lastModifiedTime" and options["result"] is None:  # given as None
            # Optional in the field model (pyairtable 3.5 ``models/schema.py``:
            # ``LastModifiedTimeFieldOptions.result`` may be None): left out, the values still
            # date-times.
            del options["result"]
        else:
            options["result"] = time_result(options.get("result"))
    if kind in ("lastModifiedTime", "formula", "rollup", "aiText") and options.get(
        "referencedFieldIds"
    ):
        options["referencedFieldIds"] = [resolve(ref) for ref in options["referencedFieldIds"]]
    if kind == "multipleRecordLinks" and "linkedTableId" not in options:
        raise ValueError("a multipleRecordLinks field needs options={'linkedTableId': ...}")
    return options


def _choices(given: Any, new_id: Callable[[str], str]) -> list[dict[str, Any]]:
    choices: list[dict[str, Any]] = []
    for index, entry in enumerate(given):
        choice = {"name": entry} if isinstance(entry, str) else dict(entry)
        if not isinstance(choice.get("name"), str) or not choice["name"]:
            raise ValueError(f"a select choice needs a name, got {entry!r}")
        choice.setdefault("id", new_id("sel"))
        choice.setdefault("color", CHOICE_COLORS[index % len(CHOICE_COLORS)])
        choices.append({"id": choice["id"], "name": choice["name"], "color": choice["color"]})
    return choices


def add_choice(column: FieldDef, name: str, new_id: Callable[[str], str]) -> None:
    """Add a select option, as ``typecast: true`` does for a name that matches none."""
    choices = column.options.setdefault("choices", [])
    color = CHOICE_COLORS[len(choices) % len(CHOICE_COLORS)]
    choices.append({"id": new_id("sel"), "name": name, "color": color})


def field_schema(column: FieldDef) -> dict[str, Any]:
    """A field as the metadata API describes it: id, name, type, options, description if set.

    Shape from https://airtable.com/developers/web/api/get-base-schema (``description`` appears
    only when set; ``options`` only for types that have them).
    """
    schema: dict[str, Any] = {"id": column.id, "name": column.name, "type": column.type}
    if column.options:
        schema["options"] = copy.deepcopy(column.options)
    if column.description:
        schema["description"] = column.description
    return schema
