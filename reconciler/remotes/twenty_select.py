"""The fields a Twenty mapping's reads and writes name (``fields``), and what the server's
refusals of them teach.

Current servers answer a record read that names no fields with every readable field of the
object, but only up to 200 (``REST_API_DEFAULT_MAX_FIELDS``): past that, a default set of 200,
system fields first, then the others by name, and "Pass fields explicitly to read any other
field" (``computeFieldsParameters`` in
``packages/twenty-server/src/engine/core-modules/open-api/utils/parameters.utils.ts``;
``compute-default-field-names-to-select.util.ts`` in ``api/common/metadata-selection/``). A
mapped field past the cap would come missing from every record. Named, it is always sent, and
the answers carry nothing the run does not read. A batch write's answer is chosen the same way
(``rest-api-core-field-projection.integration-spec.ts``: ``POST /batch/people?fields=id``
answers ``[{id}]``).

A server before ``fields`` ignores the parameter and answers every field. One that does not
know a named field, or whose key's role may not read it, refuses the read (400): a mapped field
refused stops the mapping as a record without the field does, and another is left out of the
requests that follow. A server or proxy that refuses the parameter itself (the shared docs list
none by that name) is read and written without it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from reconciler.errors import MappingError
from reconciler.model import Mapping
from reconciler.remotes import twenty_http
from reconciler.remotes.base import Rejected
from reconciler.remotes.kept import wanted


def selection(mapping: Mapping) -> list[str]:
    """The fields a record read asks for by name: beside the mapped fields, the id, the
    modified time, the creation time read when that is empty, whether the record is deleted,
    and the position a write sends back (left out when the object has none: see
    :meth:`Selection.pruned`)."""
    needed = ["id", mapping.modified_field, "createdAt", "deletedAt", "position"]
    return list(dict.fromkeys([*needed, *(f.remote for f in mapping.fields)]))


class Selection:
    """The ``fields`` a mapping's requests name, narrowed by the server's refusals; shared by
    the requests of a run, some of them sent at once.

    Attributes:
        names: the comma-separated fields requests name; None once the server refused the
            parameter itself (requests then go without it).
    """

    def __init__(self, mapping: Mapping) -> None:
        self.mapping = mapping
        self.names: str | None = ",".join(selection(mapping))
        self._doubted = False  # whether a refusal was taken for one of the parameter
        self._trial = threading.Lock()  # one such trial at a time

    def params(self) -> dict[str, str]:
        """The ``fields`` parameter of a request (none when the server refuses it)."""
        return {"fields": self.names} if self.names is not None else {}

    def pruned(self, message: str, sent: str | None) -> bool:
        """Whether a refusal of the fields a request named (``sent``) was of fields named beside
        the mapped ones (an object without ``position``, as some standard objects are, or a
        system field the key's role may not read): they are left out from now on (another
        request in flight may have left them out already), and the request is to be sent again.

        Raises:
            MappingError: it refused a mapped field (or the modified field): the object lacks
                it, or the key's role may not read it.
        """
        needed = self.refused_needed(message)
        if needed:
            raise MappingError(lacking(self.mapping, needed, refused=True))
        refused = set(twenty_http.refused_fields(message))
        if sent is None or self.names is None or not refused & set(sent.split(",")):
            return False
        self.names = ",".join(n for n in self.names.split(",") if n not in refused)
        return True

    def refused_needed(self, message: str) -> list[str]:
        """The mapped fields (and the modified field) a refusal of ``fields`` names."""
        needed = wanted(self.mapping)
        return [name for name in twenty_http.refused_fields(message) if name in needed]

    def doubting(self, message: str, sent: str | None) -> bool:
        """Whether a refusal of a request that named ``sent`` fields is to be sent again
        without them, as one of the parameter itself (:func:`twenty_http.doubts_fields`).
        Tried once a run; a request refused before the trial succeeded is sent again too."""
        if sent is None or not twenty_http.doubts_fields(message):
            return False
        if self._doubted:
            return self.names is None
        self._doubted = True
        return True

    def without(self, send: Callable[[], Any], sent: str | None, refusal: Rejected) -> Any:
        """The answer to a refused request sent again without ``fields`` (``send``), when the
        refusal may have been of the parameter itself (:meth:`doubting`). When that goes
        through, later requests name no fields: the server answers every field, as one before
        ``fields`` does, and a mapped field it lacks still stops the mapping.

        Raises:
            Rejected: ``refusal``, when it is not of the kind, or the request is refused
                without the parameter too.
        """
        with self._trial:
            if not self.doubting(str(refusal), sent):
                raise refusal
            try:
                answer = send()
            except Rejected:
                raise refusal from None
            self.names = None
            return answer


def lacking_fields(mapping: Mapping, raw: dict[str, Any]) -> list[str]:
    """The mapped fields a record Twenty sent comes without (a null one is sent as null)."""
    return [f.remote for f in mapping.fields if f.remote not in raw]


def lacking(mapping: Mapping, fields: list[str], *, refused: bool = False) -> str:
    """Why a mapping stops when Twenty's records come without some of its fields, or (a
    current server, ``refused``) Twenty refuses to select them."""
    names = ", ".join(fields)
    if refused:
        what = f"Twenty refuses to read {names} of {mapping.remote_table} records"
    else:
        what = f"Twenty sends {mapping.remote_table} records without {names}"
    return (
        f"{what}: this API key's role may not read them, or they were renamed or deleted. Give "
        "the role read access to them in Twenty (Settings, Roles) or fix the mapping; "
        "`reconcile check` lists the object's fields"
    )
