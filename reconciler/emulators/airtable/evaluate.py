"""Evaluation of Airtable formulas against records, with Airtable's value semantics.

A formula is parsed once and compiled into nested closures (constants folded), then run per
record. Semantics follow Airtable where it matters for filtering:

* datetimes (dateTime, date, created/modified time fields, ``DATETIME_PARSE``) compare as
  datetimes; a datetime compared with a bare string (or number) never matches,
* an empty cell compares like the empty value of the other side (0, "", blank), and an empty
  cell never equals a datetime,
* ``TRUE()``/``FALSE()`` are 1/0; a number compares equal to a numeric string,
* truthiness: 0, "", empty and false are false.

Unknown functions or fields, wrong argument counts, unparseable date literals and
non-ISO ``DATETIME_PARSE`` formats raise :class:`FormulaError`.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from reconciler.emulators.airtable.formula import (
    Binary,
    Call,
    FieldRef,
    FormulaError,
    Literal,
    Negate,
    Node,
    parse,
)
from reconciler.emulators.airtable.values import render_number_text
from reconciler.emulators.base import iso_ms

Evaluator = Callable[[Any], Any]
FieldLookup = Callable[[str], Evaluator | None]

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
}
_DATETIME_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?)?$"
)
_ISO_FORMAT_RE = re.compile(r"^YYYY-MM-DD((T|\[T\]| )HH:mm(:ss(\.S{1,3})?)?)?(Z{1,2}|\[Z\])?$")
_UNITS = ("millisecond", "second", "minute", "hour", "day", "week", "month", "quarter", "year")


@dataclass(frozen=True)
class _Expr:
    """A compiled sub-formula: its evaluator, and its value when it is a constant."""

    fn: Evaluator
    constant: bool = False
    value: Any = None


def _const(value: Any) -> _Expr:
    return _Expr(lambda _record: value, True, value)


def compile_formula(text: str, lookup: FieldLookup) -> Callable[[Any], bool]:
    """Compile a formula into a record predicate.

    Args:
        text: the formula.
        lookup: maps a field name to a function reading its typed value from a record, or None
            for an unknown field.

    Raises:
        FormulaError: the formula is malformed or uses something unsupported.
    """
    expr = _Compiler(lookup).compile(parse(text))
    fn = expr.fn
    return lambda record: truthy(fn(record))


# -- value semantics -----------------------------------------------------------------------------


def truthy(value: Any) -> bool:
    """Airtable truthiness: 0, "", empty, blank and false are false."""
    if value is True or value is False:
        return value
    if value is None:
        return False
    if isinstance(value, int | float | str | list):
        return bool(value)
    return True


def _normalize(value: Any) -> Any:
    """Booleans become 1/0, dates midnight UTC datetimes, lists comma-joined text."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, list):
        return text_of(value)
    return value


def text_of(value: Any) -> str:
    """A value as text, as ``&`` concatenates it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return render_number_text(value)
    if isinstance(value, datetime):
        return iso_ms(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return ", ".join(text_of(item) for item in value)
    return str(value)


def _as_number(value: Any) -> int | float | None:
    if isinstance(value, int | float):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def compare(op: str, left: Any, right: Any) -> bool:
    """Evaluate ``left op right`` the way an Airtable filter does."""
    left, right = _normalize(left), _normalize(right)
    if left is None and right is None:
        return op in ("=", "<=", ">=")
    if left is None or right is None:
        other = right if left is None else left
        if isinstance(other, datetime):
            return op == "!="
        blank: Any = "" if isinstance(other, str) else 0
        left, right = (blank, right) if left is None else (left, blank)
    if isinstance(left, datetime) or isinstance(right, datetime):
        both = isinstance(left, datetime) and isinstance(right, datetime)
        return both and _ORDER[op](left, right)
    if isinstance(left, str) != isinstance(right, str):
        left, right = _as_number(left), _as_number(right)
        if left is None or right is None:
            return op == "!="
    return _ORDER[op](left, right)


def parse_datetime(value: Any) -> datetime | None:
    """A datetime from a datetime, a date or an ISO string (naive means UTC), else None."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if not isinstance(value, str) or not _DATETIME_RE.match(value.strip()):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def floor_to(moment: datetime, unit: str) -> datetime:
    """Truncate a datetime (in UTC) to the start of its ``unit``; weeks start on Sunday."""
    moment = moment.astimezone(UTC)
    if unit == "millisecond":
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    if unit == "second":
        return moment.replace(microsecond=0)
    if unit == "minute":
        return moment.replace(second=0, microsecond=0)
    if unit == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "day":
        return day
    if unit == "week":
        return day - timedelta(days=(day.weekday() + 1) % 7)
    if unit == "month":
        return day.replace(day=1)
    if unit == "quarter":
        return day.replace(day=1, month=(day.month - 1) // 3 * 3 + 1)
    return day.replace(day=1, month=1)


# -- compilation ---------------------------------------------------------------------------------


class _Compiler:
    """Turns a syntax tree into closures, checking names, arity and constant arguments."""

    def __init__(self, lookup: FieldLookup) -> None:
        self.lookup = lookup

    def compile(self, node: Node) -> _Expr:
        """Compile one node."""
        if isinstance(node, Literal):
            return _const(node.value)
        if isinstance(node, FieldRef):
            getter = self.lookup(node.name)
            if getter is None:
                # Airtable lowercases the name in this message ("Unknown field names:
                # fldcxsg01lijsin4p", gtalarico/pyairtable#158).
                raise FormulaError(f"Unknown field names: {node.name.lower()}")
            return _Expr(getter)
        if isinstance(node, Negate):
            return self.negate(self.compile(node.operand))
        if isinstance(node, Binary):
            return self.binary(node.op, self.compile(node.left), self.compile(node.right))
        return self.call(node)

    def negate(self, operand: _Expr) -> _Expr:
        """Unary minus of a number (a non-number gives blank)."""

        def negated(value: Any) -> Any:
            number = _normalize(value)
            return -number if isinstance(number, int | float) else None

        if operand.constant:
            return _const(negated(operand.value))
        fn = operand.fn
        return _Expr(lambda record: negated(fn(record)))

    def binary(self, op: str, left: _Expr, right: _Expr) -> _Expr:
        """``&`` or a comparison, folded when both sides are constant."""
        if op == "&":
            combine: Callable[[Any, Any], Any] = lambda a, b: text_of(a) + text_of(b)  # noqa: E731
        else:
            combine = lambda a, b: compare(op, a, b)  # noqa: E731
        if left.constant and right.constant:
            return _const(combine(left.value, right.value))
        if op != "&" and (right.constant or left.constant):
            return self.against_constant(op, left, right)
        lf, rf = left.fn, right.fn
        return _Expr(lambda record: combine(lf(record), rf(record)))

    @staticmethod
    def against_constant(op: str, left: _Expr, right: _Expr) -> _Expr:
        """A comparison with one constant side, with a fast path for datetime cells."""
        cmp = _ORDER[op]
        if right.constant:
            lf, value = left.fn, _normalize(right.value)
            if isinstance(value, datetime):
                return _Expr(
                    lambda r: (
                        cmp(v, value) if type(v := lf(r)) is datetime else compare(op, v, value)
                    )
                )
            return _Expr(lambda r: compare(op, lf(r), value))
        rf, value = right.fn, _normalize(left.value)
        if isinstance(value, datetime):
            return _Expr(
                lambda r: cmp(value, v) if type(v := rf(r)) is datetime else compare(op, value, v)
            )
        return _Expr(lambda r: compare(op, value, rf(r)))

    def call(self, node: Call) -> _Expr:
        """A function call from the supported set."""
        spec = _FUNCTIONS.get(node.name)
        if spec is None:
            raise FormulaError(f"Unknown function names: {node.name}")
        low, high, build = spec
        if not low <= len(node.args) <= high:
            raise FormulaError(f"{node.name}() takes {low} to {high} arguments")
        return build([self.compile(arg) for arg in node.args])


def _and(args: list[_Expr]) -> _Expr:
    fns = [arg.fn for arg in args]
    if len(fns) == 2:
        first, second = fns
        return _Expr(lambda r: truthy(first(r)) and truthy(second(r)))
    return _Expr(lambda r: all(truthy(fn(r)) for fn in fns))


def _or(args: list[_Expr]) -> _Expr:
    fns = [arg.fn for arg in args]
    return _Expr(lambda r: any(truthy(fn(r)) for fn in fns))


def _not(args: list[_Expr]) -> _Expr:
    fn = args[0].fn
    return _Expr(lambda r: not truthy(fn(r)))


def _constant_string(arg: _Expr, what: str) -> str:
    if not arg.constant or not isinstance(arg.value, str):
        raise FormulaError(f"{what} must be a string literal")
    return arg.value


def _datetime_parse(args: list[_Expr]) -> _Expr:
    if len(args) > 1 and not _ISO_FORMAT_RE.match(_constant_string(args[1], "the date format")):
        raise FormulaError(f"unsupported DATETIME_PARSE format {args[1].value!r}: use ISO-8601")
    if len(args) > 2:
        _constant_string(args[2], "the locale")
    return _datetime_arg(args[0], "DATETIME_PARSE")


def _datetime_arg(arg: _Expr, function: str) -> _Expr:
    """An argument converted to a datetime; a constant that is not one is an error."""
    if arg.constant:
        parsed = parse_datetime(arg.value)
        if parsed is None:
            raise FormulaError(f"{function}() cannot parse {arg.value!r} as an ISO-8601 date")
        return _const(parsed)
    fn = arg.fn
    return _Expr(lambda r: parse_datetime(fn(r)))


def _date_test(function: str, test: Callable[[datetime, datetime], bool]) -> Callable[..., _Expr]:
    def build(args: list[_Expr]) -> _Expr:
        first, second = (_datetime_arg(arg, function).fn for arg in args[:2])

        def evaluate(record: Any) -> bool:
            a, b = first(record), second(record)
            return a is not None and b is not None and test(a, b)

        return _Expr(evaluate)

    return build


def _is_same(args: list[_Expr]) -> _Expr:
    unit = "millisecond"
    if len(args) == 3:
        unit = _constant_string(args[2], "the IS_SAME unit").lower().rstrip("s")
        if unit not in _UNITS:
            raise FormulaError(f"unknown IS_SAME unit {args[2].value!r}")
    return _date_test("IS_SAME", lambda a, b: floor_to(a, unit) == floor_to(b, unit))(args)


def _record_id(_args: list[_Expr]) -> _Expr:
    return _Expr(lambda r: r.id)


def _last_modified(_args: list[_Expr]) -> _Expr:
    return _Expr(lambda r: r.modified)


_MANY = 1_000_000
_FUNCTIONS: dict[str, tuple[int, int, Callable[[list[_Expr]], _Expr]]] = {
    "AND": (1, _MANY, _and),
    "OR": (1, _MANY, _or),
    "NOT": (1, 1, _not),
    "TRUE": (0, 0, lambda _args: _const(True)),
    "FALSE": (0, 0, lambda _args: _const(False)),
    "BLANK": (0, 0, lambda _args: _const(None)),
    "RECORD_ID": (0, 0, _record_id),
    "LAST_MODIFIED_TIME": (0, 0, _last_modified),
    "DATETIME_PARSE": (1, 3, _datetime_parse),
    "IS_AFTER": (2, 2, _date_test("IS_AFTER", operator.gt)),
    "IS_BEFORE": (2, 2, _date_test("IS_BEFORE", operator.lt)),
    "IS_SAME": (2, 3, _is_same),
}
