"""The config document as pydantic models: its shape, its keys and the type of every value.

A config file (and ``builtin_mappings.toml``) is one ``[mappings.<name>]`` table per mapping, each
with an array of field tables. These models check what can be checked of one value alone: unknown
keys, types, allowed words, patterns. What needs context (required keys of a new mapping, merging
an override into a built-in, checks across fields and mappings) is left to ``reader``.

Every key is optional here, because an override may leave any of them out. Values are checked
strictly (no coercion: ``'yes'`` is not a boolean), and a ``ValidationError`` is turned into the
one-line message users see, e.g. ``config.toml: mappings.leads.fields[0].direction: must be
pull, push or both (got 'sideways')``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, PlainValidator, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from reconciler.errors import UsageError
from reconciler.model.mapping import (
    TWENTY_PATH,
    Direction,
    Kind,
    Merge,
    api_root,
    api_url_problem,
    base_id_problem,
    show,
)

IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
ENV_NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
REMOTES = ("airtable", "twenty")

E = TypeVar("E", bound=StrEnum)


@dataclass(frozen=True)
class At:
    """Where a value sits: the file and the dotted key path, for error messages."""

    source: str
    path: str = ""

    def key(self, name: str) -> At:
        """The location of a key inside this table."""
        return At(self.source, f"{self.path}.{name}" if self.path else name)

    def index(self, i: int) -> At:
        """The location of an item of this array."""
        return At(self.source, f"{self.path}[{i}]")

    def error(self, message: str) -> UsageError:
        """A one-line usage error naming the file and the key."""
        where = f"{self.source}: {self.path}" if self.path else self.source
        return UsageError(f"{where}: {message}")


# -- values ------------------------------------------------------------------------------------


def _fail(message: str) -> PydanticCustomError:
    # The message goes in through the context, so braces in a user's value stay as they are.
    return PydanticCustomError("reconciler", "{message}", {"message": message})


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(f"must be a non-empty string (got {show(value)})")
    return value


def _identifier(value: object) -> str:
    text = _text(value)
    if not IDENTIFIER_RE.match(text):
        raise _fail(f"must be a plain SQL identifier (got {text!r})")
    return text


def _table_name(value: object) -> str:
    text = _text(value)
    schema, dot, name = text.partition(".")
    if dot and IDENTIFIER_RE.match(schema) and IDENTIFIER_RE.match(name):
        raise _fail(
            f"must be a table name without its schema (got {text!r}): put {schema} in the "
            f"connection's search path instead (DATABASE_URL=…?options=-csearch_path%3D{schema},"
            "public)"
        )
    return _identifier(text)


TableName = Annotated[str, PlainValidator(_table_name)]


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise _fail(f"must be true or false (got {show(value)})")
    return value


def _positive(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise _fail(f"must be a number above 0 (got {show(value)})")
    return float(value)


def _remote(value: object) -> str:
    if value not in REMOTES:
        raise _fail(f"must be airtable or twenty (got {show(value)})")
    return str(value)


def _base_id(value: object) -> str:
    problem = base_id_problem(value)
    if problem is not None:
        raise _fail(problem)
    return str(value)


def _env_name(value: object) -> str:
    # The value is never quoted back: a token pasted here by mistake must not reach a log.
    if not isinstance(value, str) or not ENV_NAME_RE.match(value):
        raise _fail(
            "must be the name of an environment variable (upper case letters, digits and _) "
            "that holds the secret, never the secret itself"
        )
    return value


def _http_url(value: object) -> str:
    """A Twenty mapping's ``api_url`` (the only key that names a server)."""
    problem = api_url_problem(value)
    if problem is not None:
        raise _fail(problem)
    return api_root(str(value), TWENTY_PATH)


def _columns(value: list[str]) -> list[str]:
    if not value:
        raise _fail("must list at least one column")
    return value


def _choice(enum: type[E]) -> Callable[[object], E]:
    names = [member.value for member in enum]
    options = ", ".join(names[:-1]) + " or " + names[-1]

    def check(value: object) -> E:
        if value not in names:
            raise _fail(f"must be {options} (got {show(value)})")
        return enum(value)

    return check


Text = Annotated[str, PlainValidator(_text)]
Identifier = Annotated[str, PlainValidator(_identifier)]
Flag = Annotated[bool, PlainValidator(_flag)]
Positive = Annotated[float, PlainValidator(_positive)]


# -- tables ------------------------------------------------------------------------------------


class _Table(BaseModel):
    """A TOML table: only the declared keys, every one optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The keys this table allows, in the order the README lists them."""
        return tuple(cls.model_fields)

    def given(self, key: str) -> bool:
        """Whether the file wrote this key (TOML has no null, so None means absent)."""
        return key in self.model_fields_set


class FieldTable(_Table):
    """One entry of a mapping's ``fields`` array."""

    remote: Text | None = None
    column: Identifier | None = None
    kind: Annotated[Kind | None, PlainValidator(_choice(Kind))] = None
    direction: Annotated[Direction | None, PlainValidator(_choice(Direction))] = None
    merge: Annotated[Merge | None, PlainValidator(_choice(Merge))] = None
    json_as_text: Flag | None = None


class MappingTable(_Table):
    """One ``[mappings.<name>]`` table: a new mapping, or an override of a configured one."""

    remote: Annotated[str | None, PlainValidator(_remote)] = None
    table: Text | None = None
    local_table: TableName | None = None
    key_column: Identifier | None = None
    modified_field: Text | None = None
    create_remote: Flag | None = None
    rate_limit: Positive | None = None
    fields: list[FieldTable] | None = None
    drop_fields: list[Text] | None = None
    match_on: Annotated[list[Text], AfterValidator(_columns)] | None = None
    base: Annotated[str | None, PlainValidator(_base_id)] = None
    token_env: Annotated[str | None, PlainValidator(_env_name)] = None
    api_url: Annotated[str | None, PlainValidator(_http_url)] = None
    api_key_env: Annotated[str | None, PlainValidator(_env_name)] = None


class Document(_Table):
    """A whole config file."""

    mappings: dict[str, MappingTable] = {}


# -- errors ------------------------------------------------------------------------------------


def validate_document(document: dict[str, Any], source: str) -> Document:
    """The parsed TOML as a ``Document``.

    Args:
        document: the parsed TOML.
        source: the file name, for error messages.

    Raises:
        UsageError: one line naming the file, the key and what is wrong (the first problem).
    """
    try:
        return Document.model_validate(document)
    except ValidationError as exc:
        raise _usage_error(exc.errors()[0], source) from None


def _usage_error(error: ErrorDetails, source: str) -> UsageError:
    """Turn one pydantic error (its ``loc`` and ``type``) into the one-line message."""
    at = At(source)
    for part in error["loc"]:
        at = at.index(part) if isinstance(part, int) else at.key(str(part))
    kind, found = error["type"], error.get("input")
    if kind == "extra_forbidden":
        allowed = _table_at(error["loc"][:-1]).keys()
        return at.error(f"unknown key (allowed: {', '.join(allowed)})")
    if kind == "list_type":
        return at.error(f"must be an array (got {show(found)})")
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return at.error(f"must be a table (got {show(found)})")
    if kind == "reconciler":
        return at.error(str(error["msg"]))
    return at.error(f"{error['msg']} (got {show(found)})")  # not expected: every value is ours


def _table_at(loc: tuple[int | str, ...]) -> type[_Table]:
    """The table model found at a location: the document, a mapping or a field."""
    if not loc:
        return Document
    return MappingTable if len(loc) == 2 else FieldTable
