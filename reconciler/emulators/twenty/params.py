"""The query parameters of a record request as Twenty's REST input parsers read them
(``packages/twenty-server/src/engine/api/rest/input-request-parsers/``): ``limit``, ``fields``,
``filter``, ``depth`` and the ``upsert`` / ``soft_delete`` flags.
"""

from __future__ import annotations

import re
from typing import Any

from reconciler.emulators.base import Request
from reconciler.emulators.twenty.filter_nodes import Node
from reconciler.emulators.twenty.filters import parse_filter
from reconciler.emulators.twenty.schema import ObjectSpec, bad_request
from reconciler.emulators.twenty.transforms import js_number

_LIMIT_RE = re.compile(r"^\d+$")
#: Readable fields a record read answers with at the most when it names none (``fields``
#: omitted): ``REST_API_DEFAULT_MAX_FIELDS`` (api/rest/input-request-parsers/constants/
#: rest-api-default-max-fields.constant.ts).
DEFAULT_MAX_FIELDS = 200
#: The header of an answer whose records were cut to that default set
#: (api/rest/core/constants/rest-api-fields-capped-header-name.constant.ts); its value was not
#: read: the emulator sends ``true``, and no test or client relies on it.
FIELDS_CAPPED_HEADER = "X-Twenty-Fields-Capped"
_FIELDS_EXAMPLE = "Expected a comma-separated list of field names, e.g. fields=id,name"


def limit(request: Request, default: int, maximum: int) -> int:
    """``limit``: default 60, clamped to ``maximum``; negative or non-numeric is a 400.

    parse-limit-rest-request.util.ts (api/rest/input-request-parsers/limit-parser-utils/):
    ``Math.min(limit, QUERY_MAX_RECORDS)``. 0 and fractions are refused here too (stricter
    than that parser; what the record query runner does with them is not confirmed).
    """
    raw = request.param("limit")
    if not raw:
        return default
    if not _LIMIT_RE.match(raw) or int(raw) <= 0:
        raise bad_request(f"limit '{raw}' is invalid. Should be an integer")
    return min(int(raw), maximum)


def selected(
    spec: ObjectSpec,
    request: Request,
    *,
    unreadable: frozenset[str],
    max_fields: int,
    cap: bool = True,
) -> tuple[frozenset[str] | None, bool]:
    """The fields a record read, or a batch write's answer, carries (None: every readable
    one), and whether they were cut to the default set (reads only, ``cap``).

    ``fields`` (parse-fields-rest-request.util.ts, api/rest/input-request-parsers/
    fields-parser-utils/): repeated parameters merged, split at commas, trimmed, empty
    names dropped; none left is a 400, and so is a name the object does not have or the
    key's role may not read; the answer has ``id`` and those fields
    (pick-rest-response-fields.util.ts), a batch create's too
    (test/integration/rest/suites/rest-api-core-field-projection.integration-spec.ts:
    ``POST /batch/people?fields=id`` answers ``[{id}]``). Without it, an object with
    more readable fields than ``max_fields`` answers a default set of that many: ``id``,
    the label identifier (``name`` here), ``createdAt``, ``updatedAt``, ``deletedAt``,
    ``position``, then the others by name, standard fields before custom ones (every
    emulated field is custom) (compute-default-field-names-to-select.util.ts,
    api/common/metadata-selection/utils/; documented with the parameter in
    core-modules/open-api/utils/parameters.utils.ts: "Pass fields explicitly to read any
    other field"). The cut applies only where a caller passes the maximum
    (``CommonSelectFieldsBuilder.buildFromDepth``: ``maximumDefaultFieldCount``); whether
    the batch create does was not read, so a write's answer is never cut here. Relations
    are not modelled, so ``depth`` changes nothing.
    """
    readable = [name for name in spec.fields if name not in unreadable]
    raws = request.query.get("fields")
    if raws is None:
        if not cap or len(readable) <= max_fields:
            return None, False
        first = ["id", "name", "createdAt", "updatedAt", "deletedAt", "position"]
        ranked = sorted(readable, key=lambda n: (first.index(n) if n in first else len(first), n))
        return frozenset(ranked[:max_fields]), True
    names = list(dict.fromkeys(n.strip() for raw in raws for n in raw.split(",") if n.strip()))
    if not names:
        raise bad_request(f"'fields' parameter is empty. {_FIELDS_EXAMPLE}")
    unknown = [name for name in names if name not in readable]
    if unknown:
        raise bad_request(
            f"'fields' parameter invalid. Unknown or unreadable fields on "
            f"'{spec.singular}': {', '.join(unknown)}"
        )
    return frozenset(["id", *names]), False


def picked(records: Any, selected: frozenset[str] | None) -> Any:
    """A record, or records, with only the ``selected`` fields (all when None)."""
    if selected is None:
        return records
    if isinstance(records, list):
        return [picked(record, selected) for record in records]
    return {name: value for name, value in records.items() if name in selected}


def capped_header(capped: bool) -> dict[str, str]:
    """The header of an answer cut to the default set of fields."""
    return {FIELDS_CAPPED_HEADER: "true"} if capped else {}


def filter_of(spec: ObjectSpec, request: Request, milliseconds: bool = False) -> Node | None:
    """The request's parsed ``filter``, or None without one."""
    text = request.param("filter")
    return parse_filter(text, spec, milliseconds=milliseconds) if text else None


def flag(request: Request, name: str) -> bool:
    """A boolean query parameter as the server reads ``upsert`` and ``soft_delete``
    (api/rest/input-request-parsers/upsert-parser-utils/parse-upsert-rest-request.util.ts and
    its spec, soft-delete-parser-utils/parse-soft-delete-rest-request.util.ts):
    ``request.query.<name> === 'true'``. Anything else is false, without an error; a parameter
    given twice reaches the parser as an array, which is not ``'true'`` either."""
    return request.query.get(name) == ["true"]


def check_depth(request: Request) -> None:
    """``depth`` 0 or 1, absent or empty meaning 0; anything else is a 400
    (parse-depth-rest-request.util.ts, api/rest/input-request-parsers/depth-parser-utils/,
    and its spec: "'depth=2' parameter invalid. Allowed values are 0, 1"). The value is read
    as JavaScript's unary ``+`` reads a decimal (``" 1 "`` and ``"1.0"`` are 1). Relations are
    not modelled, so the depth changes nothing else."""
    raw = request.param("depth")
    if not raw:
        return
    if js_number(raw) not in (0, 1):
        raise bad_request(f"'depth={raw}' parameter invalid. Allowed values are 0, 1")
