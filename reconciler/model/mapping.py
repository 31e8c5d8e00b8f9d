"""The mapping types: which remote table syncs with which local table, field by field.

Plain frozen data; the built-in mappings and config files are read into these by ``reader``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from urllib.parse import urlsplit

# An Airtable base id goes into every request's path as it is (pyairtable quotes the table's
# name, not the base id: ``Table.urls``), so it may hold only what a path segment holds
# unchanged. Real ids are ``app`` and 14 letters or digits; any id of letters, digits, ``_``,
# ``-`` and ``.`` (but ``.`` or ``..`` alone) is taken, and a wrong one is refused by the
# server, naming the base (403).
_BASE_ID_RE = re.compile(r"^(?!\.\.?$)[A-Za-z0-9_.-]{1,64}$")
_BASE_ID_IN_URL_RE = re.compile(r"(?<![A-Za-z0-9])app[A-Za-z0-9]{14}(?![A-Za-z0-9])")


def show(value: object) -> str:
    """A found value as an error message quotes it (tables and arrays by their kind only)."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)


AIRTABLE_PATH, TWENTY_PATH = "/v0", "/rest"  # what each remote's requests add to its URL


def api_url_problem(value: object) -> str | None:
    """What is wrong with ``value`` as a remote's API URL (``api_url``, ``AIRTABLE_API_URL``,
    ``TWENTY_API_URL``), or None: it must be an http(s) URL with a host, and the server's URL
    alone (a ``user:password@`` part or a query may hold a secret, so it is not quoted back)."""
    try:
        url = urlsplit(value) if isinstance(value, str) else None
    except ValueError:  # e.g. an unclosed IPv6 bracket
        url = None
    if url is not None and (url.username or url.password or url.query or url.fragment):
        return "must be the server's URL alone, without user:password@, query or fragment"
    if url is None or url.scheme not in ("http", "https") or not url.hostname:
        return f"must be an http(s) URL (got {show(value)})"
    return None


def api_root(value: str, appended: str) -> str:
    """A remote's root URL as the tool uses it: its scheme and host in lower case (two
    spellings of one server share its rate limit), without trailing slashes, nor the API path
    the tool appends itself (``appended``: ``/v0`` for Airtable, ``/rest`` for Twenty). A URL
    copied with that path (``https://crm.example.com/rest/``, as API docs show it) names the
    same server, where the path added twice would name none."""
    url = urlsplit(value.rstrip("/"))
    path = url.path.rstrip("/")
    if path.lower().endswith(appended):
        path = path[: -len(appended)].rstrip("/")
    return url._replace(scheme=url.scheme.lower(), netloc=url.netloc.lower(), path=path).geturl()


def base_id_problem(value: object) -> str | None:
    """What is wrong with ``value`` as an Airtable base id (``base``, ``AIRTABLE_BASE_ID``), or
    None."""
    if isinstance(value, str) and _BASE_ID_RE.match(value):
        return None
    found = _BASE_ID_IN_URL_RE.search(value) if isinstance(value, str) else None
    meant = f"; the base's id in it is {found.group()}" if found else ""
    return (
        "must be an Airtable base id: letters and digits, like appXXXXXXXXXXXXXX "
        f"(got {show(value)}{meant})"
    )


class Direction(StrEnum):
    """Which way a field may travel."""

    PULL = "pull"
    PUSH = "push"
    BOTH = "both"


class Kind(StrEnum):
    """The value type of a field, which fixes its canonical form (see ``model.values``)."""

    TEXT = "text"
    NUMBER = "number"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    DATE = "date"  # a calendar day without a time: Airtable date, Twenty DATE, Postgres date
    JSON = "json"


class Merge(StrEnum):
    """What happens when a field changed on both sides since the last sync."""

    NEWER = "newer"  # the side with the newer modification time wins
    UNION = "union"  # JSON arrays: both sides end with the union, stable order, no duplicates


@dataclass(frozen=True)
class FieldSpec:
    """One mapped field: remote name, local column, type, direction, merge rule."""

    remote: str
    column: str
    kind: Kind = Kind.TEXT
    direction: Direction = Direction.PULL
    merge: Merge = Merge.NEWER
    json_as_text: bool = False  # the remote keeps this JSON value as a TEXT field

    # Cached: planning asks for these for every field of every record.
    @cached_property
    def pulls(self) -> bool:
        """Whether remote values may be written locally."""
        return self.direction in (Direction.PULL, Direction.BOTH)

    @cached_property
    def pushes(self) -> bool:
        """Whether local values may be written to the remote."""
        return self.direction in (Direction.PUSH, Direction.BOTH)


@dataclass(frozen=True)
class Mapping:
    """A remote table or object kept in sync with a local table.

    Attributes:
        name: the mapping's name (report key, ``--mapping`` value, lock and state key).
        remote: ``airtable`` or ``twenty``.
        remote_table: Airtable table name or id, or Twenty object plural name.
        local_table: the Postgres table.
        key_column: the local column holding the remote record id.
        fields: the mapped fields.
        create_remote: whether local rows without a remote id are created remotely.
        modified_field: the remote field carrying the record's modification time.
        rate_limit: this mapping's own request budget (Airtable: per second, Twenty: per
            minute); None uses the remote's setting, which stays the ceiling.
        match_on: local columns (each a mapped field's) forming a natural key, used to link
            records and rows not linked yet; empty when the mapping has none.
        base: (Airtable) this mapping's base id; None uses ``AIRTABLE_BASE_ID``.
        token_env: (Airtable) the name of the environment variable holding this mapping's
            token; None uses ``AIRTABLE_TOKEN``. A mapping never holds a secret itself.
        api_url: (Twenty) this mapping's server; None uses ``TWENTY_API_URL``.
        api_key_env: (Twenty) the name of the environment variable holding this mapping's API
            key; None uses ``TWENTY_API_KEY``.
    """

    name: str
    remote: str
    remote_table: str
    local_table: str
    key_column: str
    fields: tuple[FieldSpec, ...]
    create_remote: bool = False
    modified_field: str = "lastModifiedTime"
    rate_limit: float | None = None
    match_on: tuple[str, ...] = ()
    base: str | None = None
    token_env: str | None = None
    api_url: str | None = None
    api_key_env: str | None = None

    @property
    def columns(self) -> list[str]:
        """The local columns of every mapped field."""
        return [f.column for f in self.fields]

    # Cached: planning asks for these for every record of every page.
    @cached_property
    def pull_columns(self) -> tuple[str, ...]:
        """The local columns of the fields whose direction allows pulling."""
        return tuple(f.column for f in self.fields if f.pulls)

    @cached_property
    def push_fields(self) -> tuple[FieldSpec, ...]:
        """The fields whose direction allows pushing."""
        return tuple(f for f in self.fields if f.pushes)

    def field(self, column: str) -> FieldSpec:
        """The field mapped to a local column."""
        for spec in self.fields:
            if spec.column == column:
                return spec
        raise KeyError(column)
