"""A mapping's Airtable fields resolved to ids for one run: from what earlier runs kept when it
still serves, else from the meta API; read again once mid-run when Airtable does not know a
field (see :mod:`reconciler.remotes.airtable_fields`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from reconciler.config import AirtableTarget
from reconciler.errors import MappingError
from reconciler.model import Mapping
from reconciler.remotes.airtable_fields import TableSchema, missing_message, resolve
from reconciler.remotes.airtable_http import AirtableRejected, Forbidden
from reconciler.remotes.airtable_types import (
    modified_message,
    modified_problems,
    type_problems,
    types_message,
)
from reconciler.remotes.kept import wanted


class FieldIds:
    """The mapping's table and fields as resolved in this run.

    Args:
        mapping: the mapping.
        target: its base and token variable (for messages).
        read_meta: reads the base's schema from the meta API (one request).
    """

    def __init__(
        self, mapping: Mapping, target: AirtableTarget, read_meta: Callable[[], dict[str, Any]]
    ) -> None:
        self.mapping = mapping
        self.target = target
        self._read_meta = read_meta
        self._schema: TableSchema | None = None
        self._fetched = False  # read from the meta API in this run
        self._refreshed = False  # ... again, mid-run, because Airtable did not know a field

    @property
    def schema(self) -> TableSchema:
        """The resolved table (resolved from the meta API first if nothing prepared it)."""
        if self._schema is None:
            self.prepare(None)
        assert self._schema is not None
        return self._schema

    def prepare(self, cached: Any | None) -> None:
        """Use ``cached`` when it is young, complete and fit; else read the meta API.

        Raises:
            MappingError: a field is missing, a type does not fit, the modified field cannot be
                trusted, or the token may not read the schema.
        """
        kept = TableSchema.from_cache(cached, self.target.base_id, self.mapping.remote_table)
        fits = (
            kept is not None
            and kept.covers(wanted(self.mapping))
            and kept.young(datetime.now(UTC))
            and not self.problems(kept)  # fixed since? read again before refusing
        )
        schema = kept if fits and kept is not None else self._read(kept)
        self._refuse_problems(schema)
        self._schema = schema

    def cache_update(self) -> dict[str, Any] | None:
        """The resolved schema to keep, when this run read it from the meta API."""
        return self._schema.to_cache() if self._fetched and self._schema is not None else None

    def refresh(self, exc: AirtableRejected) -> None:
        """Read the schema again, once a run, after Airtable answered that it does not know a
        field, or refused a formula naming fields (deleted, or renamed in a way the kept schema
        could not follow).

        Raises:
            MappingError: it was read again already, or the field is gone.
        """
        if self._refreshed:
            raise MappingError(
                "Airtable refused a request naming the mapping's fields even after reading the "
                f"schema again: {exc}"
            ) from None
        self._refreshed = True
        schema = self._read(self._schema)
        self._refuse_problems(schema)
        self._schema = schema

    def problems(self, schema: TableSchema) -> list[str]:
        """What makes the mapping unusable with this schema: the modified field, the types."""
        modified = modified_problems(self.mapping, schema)
        types = type_problems(self.mapping, schema)
        return [
            *([modified_message(self.mapping, modified)] if modified else []),
            *([types_message(types)] if types else []),
        ]

    def _refuse_problems(self, schema: TableSchema) -> None:
        problems = self.problems(schema)
        if problems:
            raise MappingError(" | ".join(problems))

    def _read(self, previous: TableSchema | None) -> TableSchema:
        try:
            body = self._read_meta()
        except Forbidden:
            raise MappingError(
                f"Airtable refused to show base {self.target.base_id}'s schema (403): "
                f"{self.target.token_env} needs the schema.bases:read scope to follow fields by "
                "id (a wrong base id, or no access to the base, gives the same answer)"
            ) from None
        resolution = resolve(body, self.mapping, self.target.base_id, previous)
        if resolution.schema is None or resolution.missing:
            raise MappingError(missing_message(self.mapping, resolution))
        self._fetched = True
        return resolution.schema
