"""``GET /rest/metadata/objects`` of the Twenty emulator: the data model, paged by object id.

Sources (packages/twenty-server/src/engine/...):

* the controller ``metadata-modules/object-metadata/object-metadata.controller.ts``
  (``@Controller('rest/metadata/objects')``): guarded by
  ``SettingsPermissionGuard(PermissionFlagType.DATA_MODEL)``, paged by
  ``paginateByIdCursor``, answered as ``{data: [...], pageInfo, totalCount}`` when the workspace
  has the feature flag ``IS_REST_METADATA_API_NEW_FORMAT_DIRECT``, else through
  ``toLegacyObjectMetadataListResponse`` as ``{data: {objects: [...]}, pageInfo, totalCount}``
  (``object-metadata/utils/to-legacy-object-metadata-response.util.ts``). The flag is in
  ``DEFAULT_FEATURE_FLAGS``, so new workspaces get the bare list;
* paging ``api/rest/metadata/utils/parse-metadata-rest-pagination.util.ts`` (cursors are object
  ids and must be UUIDs; ``starting_after`` with ``ending_before`` is a 400; a non-integer
  limit is a 400; default and maximum page size ``DEFAULT_METADATA_REST_PAGE_SIZE`` =
  ``MAX_METADATA_REST_PAGE_SIZE`` = 1000, ``metadata-modules/pagination/constants/``; an
  earlier release used the record defaults, 60 and ``QUERY_MAX_RECORDS``);
* ordering ``metadata-modules/pagination/utils/paginate-metadata-query-builder.util.ts``:
  ``id`` descending, ``id < starting_after``; backward pages read ``id > ending_before``
  ascending and are reversed; flags from ``api/utils/build-cursor-page.util.ts``;
* field DTO ``metadata-modules/field-metadata/utils/
  from-field-metadata-entity-to-field-metadata-dto.util.ts`` (undefined keys are dropped by
  JSON).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from reconciler.emulators.base import Request
from reconciler.emulators.twenty.schema import (
    OPTION_TYPES,
    ObjectSpec,
    TwentyError,
    bad_request,
    is_uuid,
)

SHAPES = ("list", "objects")
DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 1000
_COLORS = ("green", "turquoise", "sky", "blue", "purple", "pink", "red", "orange", "yellow")
_WORD_RE = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
# The Postgres NOT NULL columns of a custom object's system fields.
_NOT_NULL = frozenset({"id", "createdAt", "updatedAt", "createdBy", "position"})


def forbidden() -> TwentyError:
    """The 403 of a key whose role lacks the data-model permission.

    permissions.exception.ts (PERMISSION_DENIED = 'User does not have permission'),
    permission-rest-api-exception-code-to-http-status.util.ts (PERMISSION_DENIED -> 403);
    send-http-exception-response.util.ts names a CustomException by its status and adds its code.
    """
    return TwentyError(403, "User does not have permission", code="PERMISSION_DENIED")


def page(
    objects: list[ObjectSpec], request: Request, *, shape: str, default_limit: int, max_limit: int
) -> dict[str, Any]:
    """One page of the object list in the selected response shape."""
    limit, after, before = _pagination(request, default_limit, max_limit)
    ordered = sorted(objects, key=lambda spec: spec.id, reverse=before is None)
    if after is not None:
        ordered = [spec for spec in ordered if spec.id < after]
    if before is not None:
        ordered = [spec for spec in ordered if spec.id > before]
    items = ordered[:limit]
    more = len(ordered) > limit
    backward = before is not None
    if backward:
        items.reverse()
    page_info = {
        "hasNextPage": True if backward else more,
        "hasPreviousPage": more if backward else after is not None,
        "startCursor": items[0].id if items else None,
        "endCursor": items[-1].id if items else None,
    }
    data = [object_dto(spec) for spec in items]
    body: dict[str, Any] = {"data": data if shape == "list" else {"objects": data}}
    return {**body, "pageInfo": page_info, "totalCount": len(objects)}


def _pagination(
    request: Request, default_limit: int, max_limit: int
) -> tuple[int, str | None, str | None]:
    after, before = request.param("starting_after"), request.param("ending_before")
    if after and before:
        raise bad_request("'starting_after' and 'ending_before' cannot be used together.")
    for cursor in (after, before):
        if cursor and not is_uuid(cursor):
            raise bad_request(f"Invalid cursor: {cursor}")
    raw = request.param("limit")
    if not raw:
        return default_limit, after or None, before or None
    number = _js_number(raw)
    if number is None or number < 0 or number != int(number):
        raise bad_request(f"limit '{raw}' is invalid. Should be an integer")
    return min(int(number), max_limit), after or None, before or None


def _js_number(text: str) -> float | None:
    """``+text`` in JavaScript for the forms a query string carries (None for NaN)."""
    try:
        value = float(text.strip() or "0")
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def object_dto(spec: ObjectSpec) -> dict[str, Any]:
    """One object as the endpoint lists it, with its fields."""
    return {
        "id": spec.id,
        "nameSingular": spec.singular,
        "namePlural": spec.plural,
        "labelSingular": _label(spec.singular),
        "labelPlural": _label(spec.plural),
        "isCustom": True,
        "isRemote": False,
        "isActive": True,
        "isSystem": False,
        "fields": [field_dto(spec, name, ftype) for name, ftype in spec.fields.items()],
    }


def field_dto(spec: ObjectSpec, name: str, ftype: str) -> dict[str, Any]:
    """One field as the endpoint lists it (keys the server leaves undefined are absent)."""
    custom = name in spec.custom_fields
    field_id = _child_id(spec.id, name)
    dto: dict[str, Any] = {
        "id": field_id,
        "type": ftype,
        "name": name,
        "label": _label(name),
        "isCustom": custom,
        "isActive": True,
        "isSystem": not custom,
        "isUIReadOnly": name in ("id", "createdAt", "updatedAt", "deletedAt", "createdBy"),
        "isNullable": name not in _NOT_NULL,
        "isUnique": False,
        "objectMetadataId": spec.id,
        "isLabelSyncedWithName": False,
    }
    if ftype in OPTION_TYPES:
        dto["options"] = _options(field_id, spec.field_options(name))
    return dto


def _options(field_id: str, values: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {
            "id": _child_id(field_id, value),
            "value": value,
            "label": value.replace("_", " ").title(),
            "color": _COLORS[index % len(_COLORS)],
            "position": index,
        }
        for index, value in enumerate(values)
    ]


def _child_id(parent: str, name: str) -> str:
    """A stable id for a field or option (derived, so it is the same on every listing)."""
    return str(uuid.uuid5(uuid.UUID(parent), name))


def _label(name: str) -> str:
    """``totalXp`` -> ``Total Xp``: a label as the settings page would show it."""
    return " ".join(word.capitalize() for word in _WORD_RE.findall(name)) or name
