"""A Twenty mapping's fields verified before a run reads or writes anything.

Twenty's record answers simply lack a key the object does not have, and a pull reads an absent
key as null: a misspelled ``remote`` would clear a column on every row. So before its first
stage a run checks the mapping against the data model (``GET /rest/metadata/objects``, the rules
``reconcile check`` applies: :func:`twenty_schema.refusal`) and keeps what it read of the
mapping's object for a day (:mod:`reconciler.remotes.kept`), so that later runs spend no request
on it. A key whose role may not read the data model (403) syncs unverified, as ``check`` warns;
that answer is kept a day too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reconciler.errors import MappingError, RemoteUnavailable
from reconciler.model import Mapping, iso_ms, parse_datetime
from reconciler.remotes import twenty_schema
from reconciler.remotes.base import Rejected
from reconciler.remotes.kept import wanted, young
from reconciler.remotes.twenty_http import Unreadable

CACHE_VERSION = 1


@dataclass(frozen=True)
class ObjectSchema:
    """The mapping's object as the data model last described it.

    Attributes:
        api_url: the server it was read from.
        plural: the object's plural name (the mapping's ``table``).
        fields: field name -> Twenty type; None when the key may not read the data model.
        fetched_at: when it was read (this host's clock).
    """

    api_url: str
    plural: str
    fields: dict[str, str] | None
    fetched_at: datetime

    def covers(self, names: Iterable[str]) -> bool:
        """Whether every one of ``names`` is a field of the object (or nothing could be
        verified)."""
        return self.fields is None or all(name in self.fields for name in names)

    def to_cache(self) -> dict[str, Any]:
        """What a run keeps for the next one (plain JSON)."""
        return {
            "version": CACHE_VERSION,
            "api_url": self.api_url,
            "object": self.plural,
            "fields": self.fields,
            "fetched_at": iso_ms(self.fetched_at),
        }

    @classmethod
    def from_cache(cls, kept: Any, api_url: str, plural: str) -> ObjectSchema | None:
        """What an earlier run kept, or None when it is absent, of another shape, or about
        another server or object."""
        if not isinstance(kept, dict) or kept.get("version") != CACHE_VERSION:
            return None
        if kept.get("api_url") != api_url or kept.get("object") != plural:
            return None
        raw = kept.get("fields")
        if raw is not None and not isinstance(raw, dict):
            return None
        try:
            fetched = parse_datetime(str(kept["fetched_at"]))
        except (KeyError, ValueError):
            return None
        fields = None if raw is None else {str(k): str(v) for k, v in raw.items()}
        return cls(api_url, plural, fields, fetched)


class FieldCheck:
    """The mapping's fields as verified in this run.

    Args:
        mapping: the mapping.
        api_url: its server (what a kept schema must be about).
        read_page: sends one data-model request (paced and retried like every request of the
            run); raises :class:`twenty_schema.NoPermission` on a 403, and
            :class:`twenty_schema.NotServed` on a 400 or 404.
    """

    def __init__(self, mapping: Mapping, api_url: str, read_page: twenty_schema.Page) -> None:
        self.mapping = mapping
        self.api_url = api_url
        self._read_page = read_page
        self._read: ObjectSchema | None = None  # read from the server in this run

    def prepare(self, cached: Any | None) -> None:
        """Use ``cached`` when it is young, covers every configured name and shows no problem;
        else read the data model (one request a page; one page holds 1,000 objects).

        Raises:
            MappingError: the object, or a field, is missing, or a type does not fit.
            RemoteUnavailable: the data model could not be read (after retries, or refused).
        """
        plural = self.mapping.remote_table
        kept = ObjectSchema.from_cache(cached, self.api_url, plural)
        if kept is not None and self._serves(kept):
            return
        try:
            found = twenty_schema.objects(self._read_page)
        except (twenty_schema.NoPermission, twenty_schema.NotServed):
            # Unverified, kept a day like a read one: the records say what they lack (``_typed``).
            self._read = ObjectSchema(self.api_url, plural, None, datetime.now(UTC))
            return
        except Rejected as exc:
            raise RemoteUnavailable(f"Twenty refused to show its data model: {exc}") from None
        except Unreadable as exc:
            raise RemoteUnavailable(str(exc)) from None
        types = twenty_schema.object_types(self.mapping, found)
        problem = twenty_schema.refusal(self.mapping, types, twenty_schema.custom_objects(found))
        if problem is not None:
            raise MappingError(problem)
        self._read = ObjectSchema(self.api_url, plural, types, datetime.now(UTC))

    def cache_update(self) -> dict[str, Any] | None:
        """What this run read of the data model, to keep; None when it read nothing."""
        return self._read.to_cache() if self._read is not None else None

    def _serves(self, kept: ObjectSchema) -> bool:
        """Whether a kept schema can stand for the data model in this run: read less than a
        day ago, it covers every configured name and shows no problem (one it shows may have
        been fixed since: read again before refusing)."""
        if not young(kept.fetched_at, datetime.now(UTC)):
            return False
        if kept.fields is None:
            return True
        return kept.covers(wanted(self.mapping)) and not twenty_schema.mismatches(
            self.mapping, kept.fields
        )
