"""Canonical values: one comparable, JSON-storable form per field kind, whichever side it came from.

Both remotes and Postgres spell the same value differently (Airtable omits empty cells and false
checkboxes, Twenty holds JSON as text, Postgres returns ``Decimal`` and aware datetimes). Every
value is turned into its canonical form at the edge, so the engine compares like with like and the
shadow copy in the sync state is plain JSON:

    TEXT      non-empty ``str`` or None ("" is None: Airtable cannot tell them apart)
    NUMBER    ``int`` when integral, else ``float``; or None
    INTEGER   ``int`` or None
    BOOLEAN   ``bool`` (absent means False)
    DATETIME  ISO-8601 UTC with milliseconds and ``Z``; or None
    DATE      ``"YYYY-MM-DD"``; or None (a day has no time zone, so none is applied)
    JSON      any JSON value but an empty list; or None ([] is None: Airtable leaves an empty
              list out as it does "", and Twenty stores an empty ARRAY or MULTI_SELECT as null;
              JSON held as text keeps "[]", a text like any other)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import partial
from typing import Any
from uuid import UUID

from reconciler.errors import RecordError
from reconciler.model.mapping import FieldSpec, Kind

Canon = Any

# Exactly a calendar day: ``date.fromisoformat`` alone also takes ``20240131`` and week dates.
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _json_encoder() -> Callable[[Any], str]:
    """Canonical values (JSON already) as JSON text, non-ASCII kept as is: ``json.dumps(value,
    ensure_ascii=False)``.

    Built once for every record. ``JSONEncoder.encode`` builds CPython's C encoder anew on each
    call, which costs as much as encoding a record; this one is built once and kept. It is made
    without the circular-reference check: a canonical value is decoded JSON, so never circular.
    Where the C encoder is missing, the plain encoder does the same work.
    """
    encoder = json.JSONEncoder(ensure_ascii=False)
    make = getattr(json.encoder, "c_make_encoder", None)  # CPython's, left out of the stubs
    if make is None:
        return encoder.encode
    string = json.encoder.encode_basestring  # ensure_ascii=False
    chunks = make(
        None,  # no circular-reference markers
        encoder.default,
        string,
        None,  # no indent
        encoder.key_separator,
        encoder.item_separator,
        False,  # sort_keys
        False,  # skipkeys
        True,  # allow_nan, as json.dumps
    )

    def encode(value: Any) -> str:
        if isinstance(value, str):  # a string alone needs no encoder at all
            return string(value)
        return "".join(chunks(value, 0))

    return encode


json_text = _json_encoder()


def iso_ms(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and ``Z`` (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # ``isoformat`` writes the year with four digits (``0001``); ``strftime("%Y")`` does not
    # on every platform (glibc writes ``1``), which no remote takes as a date.
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"  # "+00:00"


def parse_datetime(text: str) -> datetime:
    """Parse an ISO-8601 datetime with a zone into aware UTC; raises ValueError."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"datetime without a time zone: {text!r}")
    return value.astimezone(UTC)


def _unholdable(spec: FieldSpec, value: Any, *, from_remote: bool) -> RecordError:
    """The failure of a value no remote and no JSON can hold (a number that is not finite, a
    date or time at infinity), naming the field as its side calls it. A local one may be
    mended in the database, and is tried again."""
    if from_remote:
        return RecordError(
            f"{spec.remote}: expected a finite value, got {value!r}", retryable=False
        )
    return RecordError(f"{spec.column} is {value}, which the remote cannot hold")


# What Postgres' ``timestamptz``, ``timestamp`` and ``date`` may hold beyond any moment; the
# database's loaders (``store.database``) hand these over as text.
INFINITIES = frozenset({"infinity", "-infinity"})


def _number(value: Any, spec: FieldSpec, *, from_remote: bool = True) -> int | float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise RecordError(f"{spec.remote}: expected a number, got {value!r}", retryable=False)
    if not isinstance(value, int) and not math.isfinite(value):  # NaN, ±Infinity: no JSON
        raise _unholdable(spec, value, from_remote=from_remote)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _integer(value: Any, spec: FieldSpec, *, from_remote: bool = True) -> int | None:
    number = _number(value, spec, from_remote=from_remote)
    if number is not None and not isinstance(number, int):
        raise RecordError(f"{spec.remote}: expected a whole number, got {value!r}", retryable=False)
    return number


def _text(value: Any, spec: FieldSpec) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | Decimal | UUID) and not isinstance(value, bool):
        return str(value)  # a number, or a uuid column's value, as its text
    raise RecordError(f"{spec.remote}: expected text, got {type(value).__name__}", retryable=False)


def _datetime(value: Any, spec: FieldSpec, *, from_remote: bool = True) -> str | None:
    if value is None or value == "":
        return None
    if not from_remote and isinstance(value, str) and value in INFINITIES:
        raise _unholdable(spec, value, from_remote=False)
    if isinstance(value, datetime):
        return iso_ms(value)
    try:
        return iso_ms(parse_datetime(str(value)))
    except ValueError:
        raise RecordError(
            f"{spec.remote}: expected a date-time, got {value!r}", retryable=False
        ) from None


def _date(value: Any, spec: FieldSpec, *, from_remote: bool = True) -> str | None:
    if value is None or value == "":
        return None
    if not from_remote and isinstance(value, str) and value in INFINITIES:
        raise _unholdable(spec, value, from_remote=False)
    # A datetime is a date too; taking its day would silently drop a time (and a zone).
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and DATE_RE.fullmatch(value):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:  # 2024-02-30
            pass
    raise RecordError(f"{spec.remote}: expected a date, got {value!r}", retryable=False)


def _json(value: Any, spec: FieldSpec, *, from_text: bool) -> Any:
    if value is None or value == "":
        return None
    # ``[]`` and ``{}`` are values only in a text field: Airtable leaves an empty list out, and
    # Twenty stores an empty list (ARRAY) or an empty object or list (RAW_JSON) as null.
    if (value == [] or value == {}) and not spec.json_as_text:
        return None
    if from_text:
        if not isinstance(value, str):
            raise RecordError(f"{spec.remote}: expected JSON text, got {value!r}", retryable=False)
        try:
            return json.loads(value)
        except ValueError as exc:
            raise RecordError(f"{spec.remote}: invalid JSON ({exc})", retryable=False) from None
    return value


def canonical(spec: FieldSpec, value: Any, *, from_remote: bool) -> Canon:
    """The canonical form of a remote (wire) or local (database) value; raises RecordError."""
    kind = spec.kind
    if kind is Kind.TEXT:
        return _text(value, spec)
    if kind is Kind.NUMBER:
        return _number(value, spec, from_remote=from_remote)
    if kind is Kind.INTEGER:
        return _integer(value, spec, from_remote=from_remote)
    if kind is Kind.BOOLEAN:
        if value is None:
            return False
        if not isinstance(value, bool):
            raise RecordError(f"{spec.remote}: expected true/false, got {value!r}", retryable=False)
        return value
    if kind is Kind.DATETIME:
        return _datetime(value, spec, from_remote=from_remote)
    if kind is Kind.DATE:
        return _date(value, spec, from_remote=from_remote)
    return _json(value, spec, from_text=from_remote and spec.json_as_text)


Converter = Callable[[Any], Canon]


def converter(spec: FieldSpec, *, from_remote: bool) -> Converter:
    """``canonical`` for one field, as a function of the value alone.

    Typing every field of every record pulled is a large share of a pull's work: the function
    tests the usual spelling of the field's kind first (a non-empty ``str`` for text, an
    ``int`` for a number, a timestamp already canonical…) and returns it as ``canonical``
    would, and hands anything else to ``canonical``, which decides.
    """
    kind = spec.kind

    def slow(value: Any) -> Canon:
        return canonical(spec, value, from_remote=from_remote)

    if kind is Kind.TEXT:

        def text(value: Any) -> Canon:
            return value if value.__class__ is str and value else slow(value)

        return text
    if kind is Kind.INTEGER:

        def integer(value: Any) -> Canon:
            return value if value.__class__ is int else slow(value)

        return integer
    if kind is Kind.NUMBER:

        def number(value: Any) -> Canon:
            if value.__class__ is int:
                return value
            if value.__class__ is float:  # as ``_number`` has it
                if value.is_integer():
                    return int(value)
                return value if math.isfinite(value) else slow(value)
            if value.__class__ is Decimal and value.is_finite():  # as ``_number`` has it
                return int(value) if value == value.to_integral_value() else float(value)
            return slow(value)

        return number
    if kind is Kind.BOOLEAN:

        def boolean(value: Any) -> Canon:
            return value if value is True or value is False else slow(value)

        return boolean
    if kind is Kind.DATETIME:
        if not from_remote:

            def moment(value: Any) -> Canon:
                return iso_ms(value) if value.__class__ is datetime else slow(value)

            return moment
        return partial(_fast_datetime, slow=slow)
    return slow


def _fast_datetime(value: Any, *, slow: Converter) -> Canon:
    """A timestamp already in the canonical form (``2024-01-31T08:30:00.250Z``) is its own
    canonical form once it is known to be a real moment; anything else takes the long way."""
    if value.__class__ is str and CANONICAL_MS_RE.fullmatch(value):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return slow(value)
        return value
    return slow(value)


# A timestamp as ``iso_ms`` writes it.
CANONICAL_MS_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


def to_wire(spec: FieldSpec, value: Canon) -> Any:
    """The remote's spelling of a canonical value (None clears the cell)."""
    if spec.kind is Kind.JSON and spec.json_as_text and value is not None:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return value


def to_db(spec: FieldSpec, value: Canon) -> Any:
    """The Python value a database parameter takes for a canonical value."""
    if value is None:
        return False if spec.kind is Kind.BOOLEAN else None
    if spec.kind is Kind.DATETIME:
        return parse_datetime(value)
    if spec.kind is Kind.DATE:
        return date.fromisoformat(value)
    if spec.kind is Kind.NUMBER:
        return Decimal(str(value))
    return value


def _key(item: Any) -> str:
    return json.dumps(item, sort_keys=True, separators=(",", ":"))


def union(first: Canon, second: Canon) -> Canon:
    """Both lists' items, first's order then second's new items, no duplicates.

    A value that is not a list takes part as a one-item list; None as an empty one.
    """
    items: list[Any] = []
    seen: set[str] = set()
    for side in (first, second):
        values = side if isinstance(side, list) else ([] if side is None else [side])
        for item in values:
            key = _key(item)
            if key not in seen:
                seen.add(key)
                items.append(item)
    return items
