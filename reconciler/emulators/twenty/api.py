"""The direct Python API of the Twenty emulator: what tests use to set a scene without HTTP.

These calls act as a workspace user would in Twenty's app (records created or edited by hand
carry a ``MANUAL`` actor), validate like the HTTP API, and neither count against the rate limit
nor appear in the request log.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from reconciler.emulators.twenty.schema import TwentyError
from reconciler.emulators.twenty.store import USER_ACTOR, Store

DEFAULT_OBJECT = "repProgressions"


class DirectApi:
    """Mixed into :class:`~reconciler.emulators.twenty.server.TwentyEmulator`."""

    store: Store
    lock: threading.RLock

    def add_object(
        self,
        singular: str,
        plural: str,
        fields: Mapping[str, str],
        *,
        options: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        """Serve another object with the given custom fields (name -> Twenty field type) and the
        option values of its SELECT / MULTI_SELECT fields (UPPER_SNAKE)."""
        with self.lock:
            self.store.add_object(singular, plural, fields, options)

    def add_field(
        self,
        name: str,
        type: str,
        *,
        options: tuple[str, ...] | None = None,
        object: str = DEFAULT_OBJECT,
    ) -> None:
        """Add a custom field to an object, as a workspace admin would in the data model.

        Any type Twenty has can be declared, including ones a client may not handle (``RATING``,
        composites ``LINKS``, ``CURRENCY``, ``FULL_NAME``, ``EMAILS``, ``PHONES``).
        """
        with self.lock:
            self.store.add_field(self.store.resolve(object), name, type, options)

    def create(
        self,
        fields: Mapping[str, Any],
        *,
        id: str | None = None,
        updated_at: datetime | None = None,
        object: str = DEFAULT_OBJECT,
    ) -> dict[str, Any]:
        """Create a record as a workspace user would; raises TwentyError on invalid values.

        Without ``position`` in ``fields`` the record goes to the top (the server's backfill).
        """
        body = dict(fields)
        if id is not None:
            body["id"] = id
        with self.lock:
            spec = self.store.resolve(object)
            row = self.store.create(spec, body, stamp=updated_at, actor=USER_ACTOR)
            return copy.deepcopy(row)

    def update(
        self,
        id: str,
        fields: Mapping[str, Any] | None = None,
        *,
        position: float | str | None = None,
        updated_at: datetime | None = None,
        object: str = DEFAULT_OBJECT,
        stored: bool = False,
    ) -> dict[str, Any]:
        """Edit a record as a user would; updatedAt becomes ``updated_at`` or the server time.

        ``position`` (a number, ``"first"`` or ``"last"``) moves the record, as dragging it in a
        view does; like any edit it bumps updatedAt. ``stored``: the values as the database
        holds them, past the API's transforms: a TEXT ``""`` stays ``""`` (as a record written
        before servers stored it as null still reads).
        """
        body = dict(fields or {})
        if position is not None:
            body["position"] = position
        with self.lock:
            spec = self.store.resolve(object)
            row = self.store.find(spec, id, include_deleted=True)
            changed = self.store.update(spec, row, body, stamp=updated_at, stored=stored)
            return copy.deepcopy(changed)

    def soft_delete(self, id: str, *, object: str = DEFAULT_OBJECT) -> None:
        """Soft-delete a live record (sets deletedAt)."""
        with self.lock:
            self.store.soft_delete(self.store.resolve(object), id)

    def hard_delete(self, id: str, *, object: str = DEFAULT_OBJECT) -> None:
        """Remove a record for good (live or soft-deleted)."""
        with self.lock:
            self.store.hard_delete(self.store.resolve(object), id)

    def get(
        self,
        id: str,
        *,
        include_deleted: bool = True,
        object: str = DEFAULT_OBJECT,
    ) -> dict[str, Any] | None:
        """A copy of one record in the API shape, or None."""
        with self.lock:
            spec = self.store.resolve(object)
            try:
                row = self.store.find(spec, id, include_deleted=include_deleted)
            except TwentyError:
                return None
            return copy.deepcopy(row)

    def records(
        self,
        *,
        include_deleted: bool = False,
        object: str = DEFAULT_OBJECT,
    ) -> list[dict[str, Any]]:
        """Copies of the records in creation order (live ones unless ``include_deleted``)."""
        with self.lock:
            spec = self.store.resolve(object)
            return copy.deepcopy(self.store.all_rows(spec, include_deleted=include_deleted))
