"""Natural-key look-ups on Twenty: the filters that find many keys in few requests.

Twenty's REST filter parser (``api/rest/input-request-parsers/filter-parser-utils/`` in
twentyhq/twenty) reads values as they are, with no escape character:

- ``parse-filter-content.util.ts`` splits a conjunction at commas outside quotes and brackets,
  but every ``"`` and ``'`` toggles a quote state, every ``[`` and ``]`` toggles the bracket
  state, and parentheses are counted inside quotes too;
- ``check-filter-query.util.ts`` refuses a filter whose ``(`` and ``)`` counts differ;
- ``parse-base-filter.util.ts`` matches ``^(.+)\\[(.+)\\]:(.+)$``, which no line break passes;
- ``format-field-values.util.ts`` splits an ``in`` list at every comma and strips one pair of
  quotes from each item (and from an ``eq`` value), nothing more.

So a text travels as is only without ``"'[]()\\`` and line breaks (and, inside an ``in`` list,
without commas; a backslash is kept by Twenty but read as an escape by other parsers). Any other
text is sent as a ``like`` pattern with ``_`` (one character) in place of each such character:
the server answers a superset, and a record is kept only when its key equals one asked for.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from reconciler.errors import MappingError, RecordError
from reconciler.model import FieldSpec, Kind, Mapping, canonical, to_wire

Key = tuple[Any, ...]

KEYS_PER_REQUEST = 200  # one page of answers when each key matches one record (QUERY_MAX_RECORDS)
LONGEST_VALUE = 200  # characters; a longer text is looked up by its start (a like prefix)
_UNSAFE = frozenset("\"'[]()\\\n\r\u2028\u2029")
_WILD = frozenset("%_")
_WORD = re.compile(r"[A-Za-z0-9_.+@%-]+")  # a value readable without quotes
_KEYWORDS = frozenset({"null", "true", "false"})  # words a reader may take for something else
_KEY_KINDS = (Kind.TEXT, Kind.NUMBER, Kind.INTEGER, Kind.DATE, Kind.DATETIME)


def key_fields(mapping: Mapping, columns: Sequence[str]) -> list[FieldSpec]:
    """The mapped fields of a natural key's columns.

    Raises:
        MappingError: a column is not mapped, or of a kind no key can be compared on.
    """
    specs: list[FieldSpec] = []
    for column in columns:
        try:
            spec = mapping.field(column)
        except KeyError:
            message = f"{mapping.name}: match_on column {column!r} is not mapped"
            raise MappingError(message) from None
        if spec.kind not in _KEY_KINDS:
            raise MappingError(
                f"{mapping.name}: match_on column {column!r} is {spec.kind.value}; a natural "
                "key is made of text, number, integer, date or datetime columns"
            )
        specs.append(spec)
    return specs


def usable(keys: Sequence[Key]) -> list[Key]:
    """The keys worth looking up, once each: a key with a None or empty part never matches."""
    return list(dict.fromkeys(k for k in keys if all(v is not None and v != "" for v in k)))


def key_of(specs: Sequence[FieldSpec], raw: dict[str, Any]) -> Key | None:
    """A record's natural key, read like the local one (canonical values); None when unreadable."""
    try:
        return tuple(canonical(s, raw.get(s.remote), from_remote=True) for s in specs)
    except RecordError:
        return None


def filters(specs: Sequence[FieldSpec], keys: Sequence[Key], budget: int) -> Iterator[str]:
    """Filters that together select every record with one of ``keys``: each at most
    ``KEYS_PER_REQUEST`` keys and ``budget`` characters once URL-encoded."""
    chunk: list[Key] = []
    for key in keys:
        if chunk and (
            len(chunk) >= KEYS_PER_REQUEST or encoded_size(render(specs, [*chunk, key])) > budget
        ):
            yield render(specs, chunk)
            chunk = []
        chunk.append(key)
    if chunk:
        yield render(specs, chunk)


def encoded_size(filter_: str) -> int:
    """The characters a filter takes in a URL (``filter=…``, encoded as httpx sends it)."""
    return len(str(httpx.QueryParams({"filter": filter_})))


def render(specs: Sequence[FieldSpec], keys: Sequence[Key]) -> str:
    """One filter selecting the records whose key is one of ``keys`` (or a superset of them)."""
    if len(specs) == 1:
        return _one_column(specs[0], [k[0] for k in keys])
    parts = [
        "and(" + ",".join(_condition(s, v) for s, v in zip(specs, key, strict=True)) + ")"
        for key in keys
    ]
    return parts[0] if len(parts) == 1 else "or(" + ",".join(parts) + ")"


def _one_column(spec: FieldSpec, values: Sequence[Any]) -> str:
    """``field[in]:[…]`` for the values a list can carry, ``eq`` or ``like`` for the others."""
    listed = [_literal(spec, v) for v in values if _listable(spec, v)]
    parts = [f"{spec.remote}[in]:[{','.join(listed)}]"] if listed else []
    parts += [_condition(spec, v) for v in values if not _listable(spec, v)]
    return parts[0] if len(parts) == 1 else "or(" + ",".join(parts) + ")"


def _listable(spec: FieldSpec, value: Any) -> bool:
    text = _text(spec, value)
    return text is None or (_carried(text) and "," not in text)


def _condition(spec: FieldSpec, value: Any) -> str:
    text = _text(spec, value)
    if text is None or _carried(text):
        return f"{spec.remote}[eq]:{_literal(spec, value)}"
    return f'{spec.remote}[like]:"{_pattern(text)}"'


def _literal(spec: FieldSpec, value: Any) -> str:
    """A value as the filter writes it: numbers bare; a text of one word bare too, the form the
    API's documentation gives (``id[in]:[uuid1,uuid2]``); other texts, and dates and times
    ("quote timestamps"), quoted. Twenty strips the quotes either way."""
    text = _text(spec, value)
    if text is None:
        return repr(value)
    if spec.kind is Kind.TEXT and _WORD.fullmatch(text) and text.lower() not in _KEYWORDS:
        return text
    return f'"{text}"'


def _text(spec: FieldSpec, value: Any) -> str | None:
    """The text a value is compared as, or None for numbers (written bare)."""
    if spec.kind in (Kind.NUMBER, Kind.INTEGER):
        return None
    return str(to_wire(spec, value))


def _carried(text: str) -> bool:
    """Whether the parser reads this text back exactly when quoted."""
    return len(text) <= LONGEST_VALUE and not any(c in _UNSAFE for c in text)


def _pattern(text: str) -> str:
    """A ``like`` pattern matching ``text`` (and maybe more): each character the parser cannot
    carry, and each wildcard, becomes ``_``; a text too long is matched by its start."""
    head = "".join("_" if c in _UNSAFE or c in _WILD else c for c in text[:LONGEST_VALUE])
    return head + "%" if len(text) > LONGEST_VALUE else head
