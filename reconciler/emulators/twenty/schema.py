"""Object schemas of the Twenty emulator: field types, objects, errors and write-body checks.

Values themselves (validation of one written value, conversion for comparison and filter
literals) live in :mod:`reconciler.emulators.twenty.values`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

TEXT = "TEXT"
NUMBER = "NUMBER"
BOOLEAN = "BOOLEAN"
DATE_TIME = "DATE_TIME"
DATE = "DATE"
UUID = "UUID"
ARRAY = "ARRAY"
ACTOR = "ACTOR"
POSITION = "POSITION"
SELECT = "SELECT"
MULTI_SELECT = "MULTI_SELECT"
RATING = "RATING"
LINKS = "LINKS"
CURRENCY = "CURRENCY"
FULL_NAME = "FULL_NAME"
EMAILS = "EMAILS"
PHONES = "PHONES"
RAW_JSON = "RAW_JSON"

#: Sub-fields of the composite types (Twenty stores one column per sub-field), each with the
#: check its type's validator gives it (``validate-<type>-field-or-throw.util.ts``: the text
#: check, the numeric one, the array one or the RAW_JSON one).
COMPOSITE_FIELDS: dict[str, dict[str, str]] = {
    LINKS: {"primaryLinkUrl": TEXT, "primaryLinkLabel": TEXT, "secondaryLinks": RAW_JSON},
    CURRENCY: {"amountMicros": NUMBER, "currencyCode": TEXT},
    FULL_NAME: {"firstName": TEXT, "lastName": TEXT},
    EMAILS: {"primaryEmail": TEXT, "additionalEmails": ARRAY},
    PHONES: {
        "primaryPhoneNumber": TEXT,
        "primaryPhoneCountryCode": TEXT,
        "primaryPhoneCallingCode": TEXT,
        "additionalPhones": RAW_JSON,
    },
}
COMPOSITE_SUBFIELDS: dict[str, tuple[str, ...]] = {
    ftype: tuple(subs) for ftype, subs in COMPOSITE_FIELDS.items()
}

#: Types whose values are one of the field's declared options.
OPTION_TYPES = frozenset({SELECT, MULTI_SELECT, RATING})

#: A RATING field's options, fixed by Twenty (RATING_1 .. RATING_5).
RATING_OPTIONS = tuple(f"RATING_{i}" for i in range(1, 6))

#: Field types a custom field may declare (system fields add UUID, ACTOR and POSITION).
CUSTOM_TYPES = frozenset(
    {TEXT, NUMBER, BOOLEAN, DATE_TIME, DATE, ARRAY, SELECT, MULTI_SELECT, RATING, RAW_JSON}
    | set(COMPOSITE_SUBFIELDS)
)

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

# `position` is a POSITION field in Twenty's metadata (a float, "first" or "last" on input).
SYSTEM_FIELDS: dict[str, str] = {
    "createdAt": DATE_TIME,
    "updatedAt": DATE_TIME,
    "deletedAt": DATE_TIME,
    "createdBy": ACTOR,
    "position": POSITION,
}

#: Server-maintained fields a client may never write.
READ_ONLY_FIELDS = frozenset({"createdAt", "updatedAt", "deletedAt", "createdBy"})

#: Option values Twenty accepts: upper snake case.
OPTION_VALUE_RE = re.compile(r"^[A-Z0-9]+(_[A-Z0-9]+)*$")
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")

# The error names Twenty reports per status: getErrorNameFromStatusCode in
# packages/twenty-server/src/engine/core-modules/exception-handler/utils/
# send-http-exception-response.util.ts
_EXCEPTION_NAMES = {
    400: "BadRequestException",
    401: "UnauthorizedException",
    402: "PaymentRequiredException",
    403: "ForbiddenException",
    404: "NotFoundException",
    405: "MethodNotAllowedException",
    409: "ConflictException",
    413: "PayloadTooLargeException",
    422: "UnprocessableEntityException",
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
    """A request the emulated API refuses, with the HTTP status it answers.

    Args:
        status: the HTTP status.
        message: the one entry of the body's ``messages``.
        code: the exception code newer servers add to the body (``"code"``), if any.
    """

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
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
    """One object's names and fields (custom fields plus the system fields).

    ``custom_fields`` and ``options`` are dicts the store may extend (a field added later).
    """

    singular: str
    plural: str
    custom_fields: dict[str, str]
    options: dict[str, tuple[str, ...]] = field(default_factory=dict)
    id: str = ""

    @property
    def fields(self) -> dict[str, str]:
        """Every field name mapped to its type, in response order."""
        return {"id": UUID, **self.custom_fields, **SYSTEM_FIELDS}

    def field_type(self, name: str) -> str | None:
        """The type of a field, or None when the object has no such field."""
        return self.fields.get(name)

    def field_options(self, name: str) -> tuple[str, ...]:
        """The option values of a SELECT, MULTI_SELECT or RATING field (else empty)."""
        if self.custom_fields.get(name) == RATING:
            return RATING_OPTIONS
        return self.options.get(name, ())

    def op_name(self, verb: str, *, many: bool) -> str:
        """A response key such as ``createRepProgression`` or ``updateRepProgressions``."""
        noun = self.plural if many else self.singular
        return verb + noun[:1].upper() + noun[1:]


def check_field(name: str, ftype: str, options: tuple[str, ...] | None) -> None:
    """Reject a custom-field declaration Twenty would refuse (ValueError: a test's mistake)."""
    if name == "id" or name in SYSTEM_FIELDS:
        raise ValueError(f"{name!r} is a system field")
    if ftype not in CUSTOM_TYPES:
        raise ValueError(f"field {name!r}: unsupported type {ftype!r}")
    if ftype in (SELECT, MULTI_SELECT):
        if not options:
            raise ValueError(f"field {name!r}: a {ftype} field needs options")
        bad = [value for value in options if not OPTION_VALUE_RE.match(value)]
        if bad:
            raise ValueError(f"field {name!r}: option values must be UPPER_SNAKE, not {bad}")
    elif options:
        raise ValueError(f"field {name!r}: only SELECT and MULTI_SELECT fields take options")


def check_custom_fields(
    fields: Mapping[str, str], options: Mapping[str, tuple[str, ...]] | None = None
) -> None:
    """Check every declared custom field (see :func:`check_field`)."""
    options = options or {}
    unknown = set(options) - set(fields)
    if unknown:
        raise ValueError(f"options given for undeclared fields {sorted(unknown)}")
    for name, ftype in fields.items():
        check_field(name, ftype, options.get(name))
