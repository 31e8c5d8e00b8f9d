"""Twenty's REST filter grammar: tokenizer and recursive-descent parser (the parsed expression
and its evaluation: :mod:`reconciler.emulators.twenty.filter_nodes`).

Grammar (whitespace between tokens is ignored)::

    filter    := list END
    list      := expr ("," expr)*                 -- a comma list means AND
    expr      := ("and" | "or") "(" list ")" | "not" "(" expr ")" | condition
    condition := WORD "[" WORD "]" ":" value      -- field[op]:value
    value     := scalar | "[" [scalar ("," scalar)*] "]"
    scalar    := STRING | WORD

A STRING is double-quoted, with no escape character (as in Twenty); a WORD is a run of letters,
digits and ``_ . - + @ %``. Anything else (an unquoted timestamp, whose ``:`` is not a WORD
character, an unknown field or operator, a value the field's type cannot hold) is a 400, never
"match all".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from reconciler.emulators.twenty.filter_nodes import And, Condition, Node, Not, Or
from reconciler.emulators.twenty.schema import (
    ACTOR,
    ARRAY,
    BOOLEAN,
    COMPOSITE_SUBFIELDS,
    DATE,
    DATE_TIME,
    MULTI_SELECT,
    NUMBER,
    POSITION,
    RATING,
    RAW_JSON,
    SELECT,
    TEXT,
    UUID,
    ObjectSpec,
    bad_request,
)
from reconciler.emulators.twenty.values import parse_literal

_PUNCTUATION = "()[],:"
_WORD_RE = re.compile(r"[A-Za-z0-9_.\-+@%]+")
_ORDERING = ("eq", "neq", "in", "is", "gt", "gte", "lt", "lte")
_TEXTUAL = ("like", "ilike", "startsWith", "endsWith")
_ENUM = ("eq", "neq", "in", "is")
OPERATORS_BY_TYPE: dict[str, tuple[str, ...]] = {
    TEXT: _ORDERING + _TEXTUAL,
    UUID: _ORDERING,
    NUMBER: _ORDERING,
    POSITION: _ORDERING,
    DATE_TIME: _ORDERING,
    DATE: _ORDERING,
    BOOLEAN: ("eq", "neq", "is"),
    ARRAY: ("containsAny", "is"),
    SELECT: _ENUM,
    RATING: _ENUM,
    MULTI_SELECT: ("containsAny", "is"),
    ACTOR: (),
    RAW_JSON: (),  # not modelled: refused
    **dict.fromkeys(COMPOSITE_SUBFIELDS, ()),
}
ALL_OPERATORS = frozenset(
    {"eq", "neq", "in", "containsAny", "is", "gt", "gte", "lt", "lte"} | set(_TEXTUAL)
)


@dataclass(frozen=True)
class Token:
    """One lexical token: its kind (a punctuation character, STRING, WORD or END) and text."""

    kind: str
    text: str
    at: int


def tokenize(text: str) -> list[Token]:
    """Split a filter string into tokens; raises a 400 on a character outside the grammar."""
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in _PUNCTUATION:
            tokens.append(Token(ch, ch, i))
            i += 1
        elif ch == '"':
            value, end = _read_string(text, i)
            tokens.append(Token("STRING", value, i))
            i = end
        else:
            match = _WORD_RE.match(text, i)
            if match is None:
                raise bad_request(f"Invalid filter: unexpected character {ch!r} at position {i}")
            tokens.append(Token("WORD", match.group(), i))
            i = match.end()
    tokens.append(Token("END", "", len(text)))
    return tokens


def _read_string(text: str, start: int) -> tuple[str, int]:
    """The content of the quoted string opening at ``start``, and the index after it.

    There is no escape character: Twenty's parser keeps a backslash as it is, and every ``"``
    toggles its quote state (``parse-filter-content.util.ts``), so a string ends at the next
    ``"`` and a backslash is an ordinary character."""
    end = text.find('"', start + 1)
    if end < 0:
        raise bad_request(f"Invalid filter: unterminated string at position {start}")
    return text[start + 1 : end], end + 1


@dataclass(frozen=True)
class Literal:
    """A value as written in the filter, before conversion to the field's type."""

    text: str
    quoted: bool


def parse_filter(text: str, spec: ObjectSpec, *, milliseconds: bool = False) -> Node:
    """Parse and type-check a filter for ``spec``; raises a 400 TwentyError when invalid.
    ``milliseconds``: compare ``DATE_TIME`` values as newer servers do
    (:func:`filter_nodes._at_milliseconds`)."""
    return _Parser(tokenize(text), spec, milliseconds).parse()


class _Parser:
    """Recursive descent over the token list."""

    def __init__(self, tokens: list[Token], spec: ObjectSpec, milliseconds: bool) -> None:
        self.tokens = tokens
        self.pos = 0
        self.spec = spec
        self.milliseconds = milliseconds

    def parse(self) -> Node:
        nodes = self._list()
        self._expect("END")
        return nodes[0] if len(nodes) == 1 else And(tuple(nodes))

    def _peek(self) -> Token:
        return self.tokens[self.pos]

    def _next(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind != "END":
            self.pos += 1
        return token

    def _expect(self, kind: str) -> Token:
        token = self._next()
        if token.kind != kind:
            found = "end of filter" if token.kind == "END" else repr(token.text)
            wanted = "end of filter" if kind == "END" else repr(kind)
            raise bad_request(
                f"Invalid filter: expected {wanted} but found {found} at position {token.at}"
            )
        return token

    def _list(self) -> list[Node]:
        nodes = [self._expr()]
        while self._peek().kind == ",":
            self._next()
            nodes.append(self._expr())
        return nodes

    def _expr(self) -> Node:
        word = self._expect("WORD")
        if self._peek().kind != "(":
            return self._condition(word)
        if word.text not in ("and", "or", "not"):
            raise bad_request(f"Invalid filter: unknown conjunction '{word.text}'")
        self._next()
        children = self._list()
        self._expect(")")
        if word.text == "not":
            if len(children) != 1:
                raise bad_request("Invalid filter: not(...) takes exactly one expression")
            return Not(children[0])
        return And(tuple(children)) if word.text == "and" else Or(tuple(children))

    def _condition(self, field: Token) -> Node:
        self._expect("[")
        op = self._expect("WORD").text
        self._expect("]")
        self._expect(":")
        condition = build_condition(self.spec, field.text, op, self._value())
        if self.milliseconds and isinstance(condition, Condition):
            return replace(condition, milliseconds=True)
        return condition

    def _value(self) -> Literal | list[Literal]:
        token = self._next()
        if token.kind in ("STRING", "WORD"):
            return Literal(token.text, token.kind == "STRING")
        if token.kind != "[":
            raise bad_request(f"Invalid filter: expected a value at position {token.at}")
        items: list[Literal] = []
        if self._peek().kind == "]":
            self._next()
            return items
        while True:
            item = self._next()
            if item.kind not in ("STRING", "WORD"):
                raise bad_request(f"Invalid filter: expected a list item at position {item.at}")
            items.extend(_list_items(item))
            if self._expect_one_of(",", "]") == "]":
                return items

    def _expect_one_of(self, *kinds: str) -> str:
        token = self._next()
        if token.kind not in kinds:
            raise bad_request(f"Invalid filter: expected one of {kinds} at position {token.at}")
        return token.kind


def _list_items(item: Token) -> list[Literal]:
    """A list item as Twenty reads it: format-field-values.util.ts splits the list at every
    comma, quotes or not, and strips one pair of quotes from an item only when it both starts
    and ends with one. So ``"alice, jr"`` is two items, ``"alice`` and `` jr"``, quotes kept."""
    if item.kind != "STRING" or "," not in item.text:
        return [Literal(item.text, item.kind == "STRING")]
    return [Literal(piece, False) for piece in f'"{item.text}"'.split(",")]


def build_condition(spec: ObjectSpec, name: str, op: str, value: Literal | list[Literal]) -> Node:
    """Type-check one ``field[op]:value`` against the object and convert its value."""
    ftype = _resolve_field(spec, name)
    options = spec.field_options(name)
    if op not in ALL_OPERATORS:
        raise bad_request(f"Invalid filter: unknown operator '{op}'")
    if op not in OPERATORS_BY_TYPE[ftype]:
        raise bad_request(
            f"Invalid filter: operator '{op}' is not allowed on {ftype} field '{name}'"
        )
    if op in ("in", "containsAny"):
        if not isinstance(value, list):
            raise bad_request(f"Invalid filter: operator '{op}' needs a list like [a,b]")
        items = [parse_literal(name, ftype, item.text, options) for item in value]
        return Condition(name, ftype, op, items)
    if isinstance(value, list):
        raise bad_request(f"Invalid filter: operator '{op}' does not take a list")
    if op == "is":
        if value.text not in ("NULL", "NOT_NULL"):
            raise bad_request("Invalid filter: operator 'is' takes NULL or NOT_NULL")
        return Condition(name, ftype, op, value.text)
    if op in _TEXTUAL:
        return Condition(name, ftype, op, value.text)
    return Condition(name, ftype, op, parse_literal(name, ftype, value.text, options))


def _resolve_field(spec: ObjectSpec, name: str) -> str:
    base, _, sub = name.partition(".")
    ftype = spec.field_type(base)
    if ftype is None:
        raise bad_request(f"Invalid filter: object '{spec.singular}' has no field '{base}'")
    if sub:
        raise bad_request(f"Invalid filter: field '{base}' has no sub-field '{sub}'")
    if ftype == ACTOR or ftype in COMPOSITE_SUBFIELDS:
        raise bad_request(f"Invalid filter: field '{base}' cannot be filtered directly")
    return ftype
