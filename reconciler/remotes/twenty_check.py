"""What ``reconcile check`` asks of a Twenty remote: that the server answers and takes the key,
and that the object has every mapped field, of a type that holds the mapping's kind, readable
by the key's role. The base of :class:`reconciler.remotes.twenty.TwentyRemote`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from reconciler.config import TwentyTarget
from reconciler.model import Mapping
from reconciler.remotes import twenty_http, twenty_schema
from reconciler.remotes.base import Finding, RemoteClock
from reconciler.remotes.twenty_http import Unreadable
from reconciler.remotes.twenty_select import Selection, lacking_fields


class TwentyChecks:
    """``inspect`` and the unpaced requests it makes, on the remote's client."""

    mapping: Mapping
    target: TwentyTarget
    clock: RemoteClock
    _client: httpx.Client
    _path: str
    _select: Selection

    def _list_params(self, filter_: str | None) -> dict[str, Any]:
        """The query parameters of a listing (the remote's own)."""
        raise NotImplementedError

    def inspect(self, cached: Any | None) -> Iterator[Finding]:
        """The server answers and takes the key; the object has every mapped field, of a type
        that holds the mapping's kind."""
        name, scope = twenty_schema.REACHABLE, twenty_schema.scope(self.target)
        try:
            unserved = None
            try:
                found = twenty_schema.objects(self._metadata_page)
            except twenty_schema.Answered as answer:
                if answer.status != 403 and answer.status not in twenty_schema.NOT_SERVED:
                    raise
                # The key's role may not read the data model, or the server does not serve
                # it: the records tell (a wrong address fails the record read below).
                found = None
                unserved = answer if answer.status != 403 else None
            record, refused = self._read_one(strict=found is None)
        except httpx.HTTPError as exc:
            detail = f"cannot reach {self.target.api_url}: {type(exc).__name__}"
            hint = f"{twenty_http.CHECK_URL} and the network"
            yield Finding(name, False, detail, hint, unavailable=True, scope=scope)
            return
        except twenty_schema.Answered as answer:
            yield twenty_schema.refused(name, answer, self.target)
            return
        yield Finding(name, True, self.target.api_url, scope=scope)
        if unserved is not None:
            finding = twenty_schema.unserved(self.mapping, unserved)
        elif found is None:
            finding = twenty_schema.unreadable(self.mapping)
        else:
            finding = twenty_schema.fields_finding(self.mapping, found)
        if finding.ok:
            lacking = refused or (lacking_fields(self.mapping, record) if record else [])
            if lacking:  # see _typed and _read: the key's role may not read them
                finding = twenty_schema.lacking_finding(self.mapping, lacking, found is None)
        yield finding

    def _read_one(self, *, strict: bool) -> tuple[dict[str, Any] | None, list[str]]:
        """One record read for ``check``, not paced or retried: the data model's answer does not
        show that the key may read records (a 403 there may be the role's, or the key's: "a
        missing or bad key answers 401 or 403 depending on version", shared docs
        ``twenty-api.md``), nor which fields the key's role may read. A refusal raises; the
        record is returned when there is one, to see which fields it comes with, with the
        mapped fields a current server refused to select (:mod:`twenty_select`). An object
        missing from the data model is the fields finding's to report; without the data model
        (``strict``), any answer but a record list raises, as the only word on the server."""
        while True:
            params = {**self._list_params(None), "limit": 1}
            response = self._client.get(self._path, params=params)
            self.clock.observe(response.headers.get("Date"))
            if response.status_code in (401, 403):
                raise twenty_schema.Answered(response)
            if response.status_code == 400:
                message = twenty_http.describe(response)
                needed = self._select.refused_needed(message)
                if needed:
                    return None, needed
                if self._select.pruned(message, params.get("fields")):
                    continue
                if self._select.doubting(message, params.get("fields")):
                    self._select.names = None
                    continue
            if strict and response.status_code != 200:
                raise twenty_schema.Answered(response)
            break
        try:
            records = twenty_http.listed_records(response.json(), self.mapping.remote_table)
        except (ValueError, Unreadable):
            return None, []
        return (records[0] if records else None), []

    def _metadata_page(self, params: dict[str, str]) -> Any:
        """One page of the data model for ``check``: one request, not paced or retried."""
        response = self._client.get("/metadata/objects", params=params)
        self.clock.observe(response.headers.get("Date"))
        if response.status_code != 200:
            raise twenty_schema.Answered(response)
        try:
            return response.json()
        except ValueError:
            raise twenty_schema.Answered(response) from None
