"""Object schemas of the Twenty emulator: field types, value validation and value conversion."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.emulators.base import iso_ms, parse_iso

TEXT = "TEXT"
NUMBER = "NUMBER"
BOOLEAN = "BOOLEAN"
DATE_TIME = "DATE_TIME"
UUID = "UUID"
ARRAY = "ARRAY"
ACTOR = "ACTOR"

#: Field types a custom object may declare (system fields add UUID and ACTOR).
CUSTOM_TYPES = frozenset({TEXT, NUMBER, BOOLEAN, DATE_TIME, ARRAY})

REP_PROGRESSION_FIELDS: dict[str, str] = {
    "name": TEXT,
    "workspaceMemberId": TEXT,
    "totalXp": NUMBER,
    "currentLevel": NUMBER,
    "closedDeals": NUMBER,
    "streakDays": NUMBER,
    "currentRank": TEXT,
    "badges": TEXT,
    "efficiencyMetrics": TEXT,
    "completedModules": TEXT,
    "certifications": TEXT,
    "defeatedBosses": TEXT,
    "passedExams": TEXT,
    "lastActivityDate": DATE_TIME,
}

SYSTEM_FIELDS: dict[str, str] = {
    "createdAt": DATE_TIME,
    "updatedAt": DATE_TIME,
    "deletedAt": DATE_TIME,
    "createdBy": ACTOR,
    "position": NUMBER,
}

#: Server-maintained fields a client may never write.
READ_ONLY_FIELDS = frozenset({"createdAt", "updatedAt", "deletedAt", "createdBy"})

_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_NUMBER_RE = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$")

_EXCEPTION_NAMES = {
    400: "BadRequestException",
    401: "UnauthorizedException",
    403: "ForbiddenException",
    404: "NotFoundException",
    405: "MethodNotAllowedException",
    409: "ConflictException",
    429: "TooManyRequestsException",
    500: "InternalServerErrorException",
    502: "BadGatewayException",
    503: "ServiceUnavailableException",
    504: "GatewayTimeoutException",
}


def exception_name(status: int) -> str:
    """The NestJS exception class name Twenty reports for an HTTP status."""
    return _EXCEPTION_NAMES.get(status, "HttpException")


class TwentyError(ValueError):
    """A request the emulated API refuses, with the HTTP status it answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = exception_name(status)


def bad_request(message: str) -> TwentyError:
    """A 400 BadRequestException."""
    return TwentyError(400, message)


def not_found(message: str) -> TwentyError:
    """A 404 NotFoundException."""
    return TwentyError(404, message)


def is_uuid(value: object) -> bool:
    """Whether ``value`` is a UUID string in the canonical 8-4-4-4-12 form."""
    return isinstance(value, str) and _UUID_RE.match(value) is not None


@dataclass(frozen=True)
class ObjectSpec:
    """One object's names and fields (custom fields plus the system fields)."""

    singular: str
    plural: str
    custom_fields: Mapping[str, str]

    @property
    def fields(self) -> dict[str, str]:
        """Every field name mapped to its type, in response order."""
        return {"id": UUID, **self.custom_fields, **SYSTEM_FIELDS}

    def field_type(self, name: str) -> str | None:
        """The type of a field, or None when the object has no such field."""
        return self.fields.get(name)

    def op_name(self, verb: str, *, many: bool) -> str:
        """A response key such as ``createRepProgression`` or ``updateRepProgressions``."""
        noun = self.plural if many else self.singular
        return verb + noun[:1].upper() + noun[1:]


def check_custom_fields(fields: Mapping[str, str]) -> None:
    """Reject a custom-field declaration with unknown types or system-field names."""
    for name, ftype in fields.items():
        if name == "id" or name in SYSTEM_FIELDS:
            raise ValueError(f"{name!r} is a system field")
        if ftype not in CUSTOM_TYPES:
            raise ValueError(f"field {name!r}: unsupported type {ftype!r}")


def validate_value(name: str, ftype: str, value: Any) -> Any:
    """A written value normalized for storage; raises a 400 naming the field when invalid."""
    if value is None:
        if ftype == UUID:
            raise bad_request(f"Invalid value for field '{name}': null is not a UUID")
        return None
    if ftype == TEXT and isinstance(value, str):
        return value
    if ftype == NUMBER and _is_number(value):
        return value
    if ftype == BOOLEAN and isinstance(value, bool):
        return value
    if ftype == UUID and is_uuid(value):
        return str(value).lower()
    if ftype == ARRAY and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    if ftype == DATE_TIME and isinstance(value, str):
        try:
            return iso_ms(parse_iso(value))
        except ValueError:
            pass
    raise bad_request(f"Invalid value for field '{name}' of type {ftype}: {value!r}")


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return not (isinstance(value, float) and not math.isfinite(value))


def validate_fields(spec: ObjectSpec, data: Any, *, allow_id: bool) -> dict[str, Any]:
    """Validate a write body (a JSON object) against the object's fields; returns the values."""
    if not isinstance(data, dict):
        raise bad_request(f"Invalid body for '{spec.plural}': expected a JSON object")
    values: dict[str, Any] = {}
    for name, value in data.items():
        ftype = spec.field_type(name)
        if ftype is None:
            raise bad_request(f"Object '{spec.singular}' has no field named '{name}'")
        if name in READ_ONLY_FIELDS:
            raise bad_request(f"Field '{name}' is maintained by the server and cannot be written")
        if name == "id" and not allow_id:
            raise bad_request("Field 'id' cannot be changed")
        values[name] = validate_value(name, ftype, value)
    return values


def comparable(ftype: str, raw: Any) -> Any:
    """A stored (JSON-shaped) value converted for comparisons and sorting."""
    if raw is None:
        return None
    if ftype == DATE_TIME:
        return parse_iso(raw)
    if ftype == NUMBER:
        return float(raw)
    return raw


def parse_literal(name: str, ftype: str, text: str) -> Any:
    """A filter literal converted to the field's comparable type; raises a 400 when it cannot be."""
    if ftype in (TEXT, ARRAY):
        return text
    if ftype == UUID and is_uuid(text):
        return text.lower()
    if ftype == NUMBER and _NUMBER_RE.match(text):
        return float(text)
    if ftype == BOOLEAN and text in ("true", "false"):
        return text == "true"
    if ftype == DATE_TIME:
        try:
            return parse_iso(text)
        except ValueError:
            pass
    raise bad_request(f"Invalid filter value for field '{name}' of type {ftype}: {text!r}")
