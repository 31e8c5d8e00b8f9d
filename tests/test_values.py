"""Value conversion: each field's ``converter`` decides exactly as ``canonical`` does, whatever
it is given; ``iso_ms`` spells every moment as it always did; ``json_text`` writes JSON as
``json.dumps`` does."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.errors import RecordError
from reconciler.model import FieldSpec, Kind, canonical, converter, iso_ms
from reconciler.model.values import CANONICAL_MS_RE, json_text

ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)
MOMENTS = st.datetimes(timezones=ZONES)
SCALARS = st.one_of(
    st.none(),
    st.text(max_size=30),
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.dates(),
)
TIMESTAMPS = st.one_of(
    MOMENTS.map(iso_ms),  # already canonical, any year
    MOMENTS.map(lambda m: m.isoformat()),  # other zones and precisions
    st.from_regex(CANONICAL_MS_RE, fullmatch=True),  # the canonical shape, real day or not
)
VALUES = st.one_of(
    SCALARS,
    TIMESTAMPS,
    MOMENTS,
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def _outcome(convert: Any, value: Any) -> tuple[Any, ...]:
    """What a conversion gives, typed (``1 == 1.0 == True``), or the message it fails with."""
    try:
        result = convert(value)
    except RecordError as exc:
        return ("fails", str(exc))
    return ("gives", type(result), result)


def _old_iso_ms(moment: datetime) -> str:
    """``iso_ms`` as it was written first (``strftime``), the year in four digits (glibc's
    ``%Y`` writes the year 1 as ``1``, which no remote reads as a date)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return (
        f"{moment.year:04d}"
        + moment.strftime("-%m-%dT%H:%M:%S.")
        + f"{moment.microsecond // 1000:03d}Z"
    )


@settings(max_examples=400)
@given(
    kind=st.sampled_from(list(Kind)),
    from_remote=st.booleans(),
    json_as_text=st.booleans(),
    value=VALUES,
)
def test_converter__decides_as_canonical(
    kind: Kind, from_remote: bool, json_as_text: bool, value: Any
) -> None:
    spec = FieldSpec("Field", "field", kind, json_as_text=json_as_text)
    expected = _outcome(lambda v: canonical(spec, v, from_remote=from_remote), value)
    assert _outcome(converter(spec, from_remote=from_remote), value) == expected


@given(value=TIMESTAMPS)
def test_converter__a_timestamp_from_a_remote_as_canonical(value: str) -> None:
    spec = FieldSpec("At", "at", Kind.DATETIME)
    expected = _outcome(lambda v: canonical(spec, v, from_remote=True), value)
    assert _outcome(converter(spec, from_remote=True), value) == expected


@given(moment=st.one_of(MOMENTS, st.datetimes()))
def test_iso_ms__spells_every_moment_as_before(moment: datetime) -> None:
    assert iso_ms(moment) == _old_iso_ms(moment)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-31T08:30:00.250Z", "2024-01-31T08:30:00.250Z"),
        ("2024-01-31T09:30:00.250+01:00", "2024-01-31T08:30:00.250Z"),
        ("0999-01-31T08:30:00.250Z", "0999-01-31T08:30:00.250Z"),
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z"),
    ],
)
def test_converter__timestamps(value: str, expected: str) -> None:
    assert converter(FieldSpec("At", "at", Kind.DATETIME), from_remote=True)(value) == expected


def test_converter__a_timestamp_in_microseconds_is_cut_to_milliseconds() -> None:
    convert = converter(FieldSpec("At", "at", Kind.DATETIME), from_remote=True)
    assert convert("2024-01-31T08:30:00.250999Z") == "2024-01-31T08:30:00.250Z"


def test_converter__a_canonical_shape_that_is_no_moment_fails_the_record() -> None:
    convert = converter(FieldSpec("At", "at", Kind.DATETIME), from_remote=True)
    with pytest.raises(RecordError, match="At: expected a date-time"):
        convert("2024-13-31T08:30:00.250Z")


def test_converter__a_database_number_as_canonical() -> None:
    convert = converter(FieldSpec("Score", "score", Kind.NUMBER), from_remote=False)
    assert convert(Decimal("45.50")) == 45.5 and type(convert(Decimal("45.50"))) is float
    assert convert(Decimal("45.00")) == 45 and type(convert(Decimal("45.00"))) is int


@pytest.fixture
def tokyo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process in a host time zone other than UTC."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()  # back to the zone the session had
    time.tzset()


def test_iso_ms__a_naive_moment_is_utc_whatever_the_host_zone(tokyo: None) -> None:
    """A ``timestamp`` column (no zone) is read as UTC, as the session's zone is."""
    assert iso_ms(datetime(2024, 1, 31, 8, 30, 0, 250000)) == "2024-01-31T08:30:00.250Z"


def test_converter__a_remote_timestamp_without_a_zone_fails_the_record() -> None:
    convert = converter(FieldSpec("At", "at", Kind.DATETIME), from_remote=True)
    with pytest.raises(RecordError, match=r"^At: expected a date-time") as failed:
        convert("2024-01-31T08:30:00.250")
    assert not failed.value.retryable


def test_iso_ms__writes_the_year_in_four_digits() -> None:
    assert iso_ms(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00.000Z"
    assert iso_ms(datetime(999, 12, 31, 23, 59, 59, 999000)) == "0999-12-31T23:59:59.999Z"


UNHOLDABLE = [float("nan"), float("inf"), -float("inf"), Decimal("NaN"), Decimal("-Infinity")]


@pytest.mark.parametrize("value", UNHOLDABLE)
@pytest.mark.parametrize("kind", [Kind.NUMBER, Kind.INTEGER])
def test_converter__a_number_that_is_not_finite_fails_the_record(value: Any, kind: Kind) -> None:
    spec = FieldSpec("Score", "score", kind)
    with pytest.raises(RecordError, match=f"^score is {value}, which the remote cannot hold$"):
        converter(spec, from_remote=False)(value)
    with pytest.raises(RecordError, match=r"^Score: expected a finite value") as remote:
        converter(spec, from_remote=True)(value)
    assert not remote.value.retryable
    assert _outcome(converter(spec, from_remote=False), value) == _outcome(
        lambda v: canonical(spec, v, from_remote=False), value
    )


@pytest.mark.parametrize("value", ["infinity", "-infinity"])
@pytest.mark.parametrize("kind", [Kind.DATETIME, Kind.DATE])
def test_converter__a_database_time_at_infinity_fails_the_record(value: str, kind: Kind) -> None:
    """The database's loaders read ``infinity`` as the word (``store.database``)."""
    with pytest.raises(RecordError, match=f"^at is {value}, which the remote cannot hold$"):
        converter(FieldSpec("At", "at", kind), from_remote=False)(value)


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text()),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(value=JSON_VALUES)
def test_json_text__writes_what_json_dumps_writes(value: Any) -> None:
    """The encoder built once writes every JSON value as ``json.dumps(ensure_ascii=False)``."""
    assert json_text(value) == json.dumps(value, ensure_ascii=False)


def test_json_text__refuses_what_json_dumps_refuses() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        json_text({"at": datetime(2024, 1, 31, tzinfo=UTC)})
