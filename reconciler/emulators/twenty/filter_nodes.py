"""A parsed Twenty filter (:mod:`reconciler.emulators.twenty.filters`) and its evaluation
against a stored record.

Evaluation follows SQL's three-valued logic: a comparison with a null field is unknown (None),
``not`` of unknown is unknown, and only rows evaluating to True match.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from reconciler.emulators.twenty.schema import DATE_TIME
from reconciler.emulators.twenty.values import comparable


class Node(ABC):
    """A parsed filter expression."""

    @abstractmethod
    def evaluate(self, record: Mapping[str, Any]) -> bool | None:
        """True, False, or None for SQL's unknown."""

    @abstractmethod
    def fields(self) -> set[str]:
        """Every field name the expression mentions."""

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Whether the record is selected (the expression is True, not unknown)."""
        return self.evaluate(record) is True


@dataclass(frozen=True)
class _Junction(Node):
    """``and(…)`` or ``or(…)``: SQL's AND and OR, where one value decides (``deciding``), else
    unknown, else the other value."""

    children: tuple[Node, ...]
    deciding: ClassVar[bool]

    def evaluate(self, record: Mapping[str, Any]) -> bool | None:
        """The deciding value if a child has it, then unknown, then the other value."""
        results = [child.evaluate(record) for child in self.children]
        if self.deciding in results:
            return self.deciding
        return None if None in results else not self.deciding

    def fields(self) -> set[str]:
        """Fields mentioned by any child."""
        return set().union(*(child.fields() for child in self.children))


@dataclass(frozen=True)
class And(_Junction):
    """All children hold (SQL AND: False wins, then unknown)."""

    deciding: ClassVar[bool] = False


@dataclass(frozen=True)
class Or(_Junction):
    """At least one child holds (SQL OR: True wins, then unknown)."""

    deciding: ClassVar[bool] = True


@dataclass(frozen=True)
class Not(Node):
    """The child does not hold."""

    child: Node

    def evaluate(self, record: Mapping[str, Any]) -> bool | None:
        """SQL NOT: unknown stays unknown."""
        result = self.child.evaluate(record)
        return None if result is None else not result

    def fields(self) -> set[str]:
        """Fields mentioned by the child."""
        return self.child.fields()


@dataclass(frozen=True)
class Condition(Node):
    """``field[op]:value`` with the value already converted to the field's type.

    ``milliseconds``: a ``DATE_TIME`` value is compared as newer servers compare it, at the
    millisecond (see :func:`_at_milliseconds`)."""

    field: str
    ftype: str
    op: str
    value: Any
    milliseconds: bool = False

    def evaluate(self, record: Mapping[str, Any]) -> bool | None:
        """Compare the record's value with the condition's value."""
        raw = record.get(self.field)
        if self.op == "is":
            return bool((raw is None) == (self.value == "NULL"))
        if raw is None:
            return None
        actual = comparable(self.ftype, raw)
        if self.milliseconds and self.ftype == DATE_TIME and self.op in _MILLISECOND_OPS:
            return _at_milliseconds(self.op, actual, self.value)
        return _compare(self.op, actual, self.value)

    def fields(self) -> set[str]:
        """The condition's field."""
        return {self.field}


def _compare(op: str, actual: Any, expected: Any) -> bool:
    """Apply a non-null comparison operator."""
    if op == "eq":
        return bool(actual == expected)
    if op == "neq":
        return bool(actual != expected)
    if op == "in":
        return actual in expected
    if op == "containsAny":
        return bool(set(actual) & set(expected))
    if op in ("gt", "gte", "lt", "lte"):
        return _ordered(op, actual, expected)
    if op == "startsWith":
        return str(actual).startswith(expected)
    if op == "endsWith":
        return str(actual).endswith(expected)
    flags = re.IGNORECASE if op == "ilike" else 0
    return re.fullmatch(like_pattern(expected), str(actual), flags | re.DOTALL) is not None


_MILLISECOND_OPS = frozenset({"eq", "neq", "gt", "gte", "lt", "lte"})
MILLISECOND = timedelta(milliseconds=1)


def _at_milliseconds(op: str, actual: datetime, expected: datetime) -> bool:
    """A ``DATE_TIME`` comparison as newer servers make it: the column keeps microseconds while
    values arrive to the millisecond (JavaScript ``Date``), so ``eq`` is the value's whole
    millisecond, ``gt`` starts at the next one and ``lte`` ends with it; ``gte`` and ``lt``
    compare as they are (``computeWhereConditionParts``,
    ``packages/twenty-server/src/engine/api/graphql/graphql-query-runner/utils/
    compute-where-condition-parts.ts``, after twentyhq/twenty#20520: an earlier form wrapped
    the column in ``date_trunc('milliseconds', …)``, the same comparisons)."""
    within = expected <= actual < expected + MILLISECOND
    if op == "eq":
        return within
    if op == "neq":
        return not within
    if op == "gt":
        return actual >= expected + MILLISECOND
    if op == "lte":
        return actual < expected + MILLISECOND
    return _ordered(op, actual, expected)


def _ordered(op: str, actual: Any, expected: Any) -> bool:
    if op == "gt":
        return bool(actual > expected)
    if op == "gte":
        return bool(actual >= expected)
    if op == "lt":
        return bool(actual < expected)
    return bool(actual <= expected)


def like_pattern(pattern: str) -> str:
    """A SQL LIKE pattern (``%`` any run, ``_`` one character, ``\\`` escape) as a regex."""
    parts: list[str] = []
    escaped = False
    for ch in pattern:
        if escaped:
            parts.append(re.escape(ch))
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "%":
            parts.append(".*")
        elif ch == "_":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return "".join(parts)
