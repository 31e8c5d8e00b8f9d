"""Airtable formula syntax: tokenizer and recursive-descent parser (a strict subset).

Grammar (whitespace between tokens is ignored)::

    formula    := comparison END
    comparison := concat (("=" | "!=" | "<" | ">" | "<=" | ">=") concat)*
    concat     := unary ("&" unary)*
    unary      := "-" unary | primary
    primary    := STRING | NUMBER | FIELD | NAME "(" [comparison ("," comparison)*] ")"
                | "(" comparison ")"

STRING is single- or double-quoted with backslash escapes; FIELD is ``{Field Name}`` (``\\}``
escapes a closing brace); NAME is a function name, case-insensitive. Arithmetic, bare field
names and anything else this grammar does not cover raise :class:`FormulaError`: the emulator
answers those with 422 rather than guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

COMPARISONS = ("=", "!=", "<", ">", "<=", ">=")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}
_NUMBER_RE = re.compile(r"(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = ("!=", "<=", ">=", "<>", "=", "<", ">", "&", "-", "+", "*", "/", "(", ")", ",")


class FormulaError(ValueError):
    """A formula the emulator cannot parse or does not support."""


@dataclass(frozen=True)
class Token:
    """One lexical token: its kind (STRING, NUMBER, FIELD, NAME, OP, END), text and position."""

    kind: str
    text: str
    position: int


@dataclass(frozen=True)
class Literal:
    """A string or number literal."""

    value: str | int | float


@dataclass(frozen=True)
class FieldRef:
    """A ``{Field Name}`` reference."""

    name: str


@dataclass(frozen=True)
class Call:
    """A function call; ``name`` is upper-cased."""

    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Binary:
    """A binary operator (a comparison or ``&``)."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Negate:
    """Unary minus."""

    operand: Node


Node = Literal | FieldRef | Call | Binary | Negate


def tokenize(text: str) -> list[Token]:
    """Split a formula into tokens, ending with an END token."""
    tokens: list[Token] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char.isspace():
            index += 1
        elif char in "'\"{":
            kind, closing = ("FIELD", "}") if char == "{" else ("STRING", char)
            value, end = _scan_quoted(text, index, closing, kind)
            tokens.append(Token(kind, value, index))
            index = end
        else:
            token = _scan_plain(text, index)
            tokens.append(token)
            index += len(token.text)
    tokens.append(Token("END", "", len(text)))
    return tokens


def _scan_quoted(text: str, start: int, closing: str, kind: str) -> tuple[str, int]:
    """Read a quoted string or a braced field name starting at ``start``; returns (value, end)."""
    chars: list[str] = []
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            following = text[index + 1]
            if kind == "FIELD" and following != "}":
                chars.append(char)
            else:
                chars.append(_ESCAPES.get(following, following))
                index += 1
        elif char == closing:
            return "".join(chars), index + 1
        else:
            chars.append(char)
        index += 1
    what = "string" if kind == "STRING" else "field reference"
    raise FormulaError(f"unterminated {what} starting at position {start}")


def _scan_plain(text: str, index: int) -> Token:
    """Read a number, a name or an operator at ``index``."""
    number = _NUMBER_RE.match(text, index)
    if number:
        return Token("NUMBER", number.group(0), index)
    name = _NAME_RE.match(text, index)
    if name:
        return Token("NAME", name.group(0), index)
    for operator in _OPERATORS:
        if text.startswith(operator, index):
            return Token("OP", operator, index)
    raise FormulaError(f"unexpected character {text[index]!r} at position {index}")


class Parser:
    """A recursive-descent parser over the token list; :meth:`parse` returns the syntax tree."""

    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.index = 0

    def parse(self) -> Node:
        """Parse the whole formula."""
        node = self.comparison()
        self.expect("END")
        return node

    def peek(self) -> Token:
        """The current token."""
        return self.tokens[self.index]

    def advance(self) -> Token:
        """Consume and return the current token."""
        token = self.tokens[self.index]
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def expect(self, kind: str, text: str | None = None) -> Token:
        """Consume a token of this kind (and text), or fail."""
        token = self.peek()
        if token.kind != kind or (text is not None and token.text != text):
            wanted = text or kind.lower()
            found = token.text or "end of formula"
            raise FormulaError(
                f"expected {wanted} but found {found!r} at position {token.position}"
            )
        return self.advance()

    def at_op(self, *ops: str) -> bool:
        """Whether the current token is one of these operators."""
        token = self.peek()
        return token.kind == "OP" and token.text in ops

    def comparison(self) -> Node:
        """comparison := concat (COMPARISON concat)*"""
        node = self.concat()
        while self.at_op(*COMPARISONS):
            op = self.advance().text
            node = Binary(op, node, self.concat())
        self.reject_arithmetic()
        return node

    def concat(self) -> Node:
        """concat := unary ("&" unary)*"""
        node = self.unary()
        while self.at_op("&"):
            self.advance()
            node = Binary("&", node, self.unary())
        return node

    def unary(self) -> Node:
        """unary := "-" unary | primary"""
        if self.at_op("-"):
            self.advance()
            return Negate(self.unary())
        node = self.primary()
        self.reject_arithmetic()
        return node

    def reject_arithmetic(self) -> None:
        """Fail on operators outside the supported subset (arithmetic, ``<>``)."""
        if self.at_op("+", "-", "*", "/", "<>"):
            token = self.peek()
            raise FormulaError(
                f"operator {token.text!r} at position {token.position} is not supported"
            )

    def primary(self) -> Node:
        """primary := STRING | NUMBER | FIELD | call | "(" comparison ")" """
        token = self.peek()
        if token.kind == "STRING":
            return Literal(self.advance().text)
        if token.kind == "NUMBER":
            text = self.advance().text
            return Literal(float(text) if any(c in text for c in ".eE") else int(text))
        if token.kind == "FIELD":
            return FieldRef(self.advance().text)
        if token.kind == "NAME":
            return self.call()
        if self.at_op("("):
            self.advance()
            node = self.comparison()
            self.expect("OP", ")")
            return node
        found = token.text or "end of formula"
        raise FormulaError(f"unexpected {found!r} at position {token.position}")

    def call(self) -> Node:
        """call := NAME "(" [comparison ("," comparison)*] ")" """
        name = self.advance()
        if not self.at_op("("):
            raise FormulaError(
                f"unknown name {name.text!r} at position {name.position}: "
                "field names must be written as {Field Name}"
            )
        self.advance()
        args: list[Node] = []
        if not self.at_op(")"):
            args.append(self.comparison())
            while self.at_op(","):
                self.advance()
                args.append(self.comparison())
        self.expect("OP", ")")
        return Call(name.text.upper(), tuple(args))


def parse(text: str) -> Node:
    """Parse a formula into its syntax tree; raises :class:`FormulaError`."""
    return Parser(text).parse()
