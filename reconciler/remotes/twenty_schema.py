"""Twenty's data model (``GET /rest/metadata/objects``) as the tool reads it: paged, in both
response shapes, and readable only by keys whose role has the data-model permission."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from reconciler.config import TwentyTarget
from reconciler.model import FieldSpec, Kind, Mapping
from reconciler.remotes import twenty_http
from reconciler.remotes.base import Finding
from reconciler.remotes.kept import wanted

REACHABLE = "twenty reachable and API key accepted"
Page = Callable[[dict[str, str]], Any]  # sends one metadata request with these params

# The Twenty field types whose REST values each kind reads and writes as they are: TEXT a
# string; SELECT and RATING a string among the field's options (validate-rating-and-select-field-
# or-throw.util.ts); UUID a uuid string; NUMBER a JSON number; BOOLEAN true/false; DATE_TIME an
# ISO-8601 string; DATE "YYYY-MM-DD" (validate-date-field-or-throw.util.ts; both under
# api/common/common-args-processors/data-arg-processor/validator-utils/). A JSON kind held as
# text needs TEXT; a JSON kind held as is takes any value, so any type.
HOLDS: dict[Kind, frozenset[str]] = {
    Kind.TEXT: frozenset({"TEXT", "SELECT", "RATING", "UUID"}),
    Kind.NUMBER: frozenset({"NUMBER"}),
    Kind.INTEGER: frozenset({"NUMBER"}),
    Kind.BOOLEAN: frozenset({"BOOLEAN"}),
    Kind.DATETIME: frozenset({"DATE_TIME"}),
    Kind.DATE: frozenset({"DATE"}),
}
OPTION_TYPES = frozenset({"SELECT", "RATING"})  # a written value must be one of the options
OBJECT_FIX = "create the custom object in Twenty's data model, or fix `table` in the config"
TYPE_FIX = "change the field's type in Twenty, or its kind in the config"
CHECK_LISTS = "`reconcile check` lists what is wrong"
SHOWN = 10  # custom objects named in a message
# The fields every record has, with their types in the data model (shared docs twenty-api.md,
# "System fields and timestamps"; the server lists them among the object's fields, flagged
# ``isSystem``). A data model that leaves them out still has them: a user cannot add them.
SYSTEM_FIELDS = {
    "id": "UUID",
    "createdAt": "DATE_TIME",
    "updatedAt": "DATE_TIME",
    "deletedAt": "DATE_TIME",
    "createdBy": "ACTOR",
    "position": "POSITION",
}


class Answered(Exception):
    """A metadata request answered with something other than a JSON 200."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.status = response.status_code
        self.location = response.headers.get("Location")
        self.description = twenty_http.describe(response)


class NoPermission(Exception):
    """The data model answered 403: the key's role lacks the data-model permission
    (``SettingsPermissionGuard(PermissionFlagType.DATA_MODEL)`` on the controller,
    metadata-modules/object-metadata/object-metadata.controller.ts); its records stay readable."""


class NotServed(Exception):
    """The data model answered 400 or 404: the server (or what stands in front of it) does not
    serve ``/rest/metadata/objects``. Without the metadata controller, the route falls to the
    records' ``rest/*`` controller, which answers an unknown object name with a 400; a proxy
    passing only the records' routes answers 404. The records stay readable."""


# A data model's answer that leaves the records to say what the object has (see above).
NOT_SERVED = (400, 404)


def model_answer(response: httpx.Response) -> Any:
    """A data-model answer read as a run reads any answer (``twenty_http.answer``), except a
    403, which is :class:`NoPermission` rather than a refused key, and a 400 or 404, which is
    :class:`NotServed` rather than a refused request."""
    if response.status_code == 403:
        raise NoPermission(twenty_http.describe(response))
    if response.status_code in NOT_SERVED:
        raise NotServed(f"{response.status_code}: {twenty_http.describe(response)}")
    return twenty_http.answer(response)


def objects(read_page: Page) -> list[dict[str, Any]]:
    """Every object of the data model, page by page.

    Current servers answer a bare list (``{"data": [...]}``), older ones
    ``{"data": {"objects": [...]}}``; both page with ``starting_after`` = ``pageInfo.endCursor``
    while ``pageInfo.hasNextPage`` (metadata REST handlers in packages/twenty-server).
    """
    found: list[dict[str, Any]] = []
    params: dict[str, str] = {}
    while True:
        body = read_page(params)
        body = body if isinstance(body, dict) else {}
        data = body.get("data")
        page = data.get("objects") if isinstance(data, dict) else data
        found += [o for o in page if isinstance(o, dict)] if isinstance(page, list) else []
        info = body.get("pageInfo") or {}
        if not info.get("hasNextPage") or not info.get("endCursor"):
            return found
        params = {"starting_after": str(info["endCursor"])}


def scope(target: TwentyTarget) -> str:
    """The server and key a finding is about."""
    return f"{target.api_url}, {target.api_key_env}"


def refused(name: str, answer: Answered, target: TwentyTarget) -> Finding:
    """The finding for a server that answered without the data model, or refused the key."""
    scope_ = scope(target)
    hint = f"{twenty_http.CHECK_URL}; try again later"
    if answer.status in (401, 403):  # 403 from a record read; the data model's is a role's
        hint = f"check {target.api_key_env} (Settings > APIs & Webhooks in Twenty)"
        detail = f"API key refused ({answer.status})"
        return Finding(name, False, detail, hint, unavailable=True, scope=scope_)
    if 300 <= answer.status < 400:
        detail = f"Twenty answered {answer.status}, redirected to {answer.location or '?'}"
        hint = "set TWENTY_API_URL (or the mapping's api_url) to the server's own address"
    elif answer.status == 200:
        detail = f"Twenty answered 200 with {answer.description} instead of JSON"
    else:
        detail = f"Twenty answered {answer.status}: {answer.description}"
    return Finding(name, False, detail, hint, unavailable=True, scope=scope_)


def unreadable(mapping: Mapping) -> Finding:
    """The finding for a key that may not read the data model (403 there, records still fine)."""
    return Finding(
        f"twenty fields of {mapping.name} (object {mapping.remote_table})",
        True,
        "not verified: this API key cannot read the data model (its role lacks the data-model "
        "permission); records can still be synced",
        "give the key's role the Data model permission to have the fields verified",
        warning=True,
    )


def unserved(mapping: Mapping, answer: Answered) -> Finding:
    """The finding for a server that does not serve its data model over REST (400 or 404
    there, records still fine)."""
    return Finding(
        f"twenty fields of {mapping.name} (object {mapping.remote_table})",
        True,
        f"not verified: the server does not serve its data model at /rest/metadata/objects "
        f"({answer.status}: {answer.description}); records can still be synced, and a run "
        "stops the mapping if they come without a mapped field",
        "a Twenty server that serves /rest/metadata/objects has the fields verified",
        warning=True,
    )


def lacking_finding(mapping: Mapping, fields: list[str], unverified: bool) -> Finding:
    """The finding for records that come without mapped fields the data model has (or that it
    could not be asked about, ``unverified``): runs stop the mapping rather than read them as
    empty."""
    names = _names(fields)
    why = "missing from the object, or this API key's role may not read them"
    if not unverified:
        why = "this API key's role may not read them (field permissions)"
    return Finding(
        f"twenty fields of {mapping.name} (object {mapping.remote_table})",
        False,
        f"records come without {names}: {why}; runs stop this mapping",
        "give the key's role read access to them in Twenty (Settings > Roles), or fix the mapping",
    )


def fields_finding(mapping: Mapping, found: list[dict[str, Any]]) -> Finding:
    """Whether the mapping's object has every mapped field, each of a type holding its kind."""
    name = f"twenty fields of {mapping.name} (object {mapping.remote_table})"
    types = object_types(mapping, found)
    if types is None:
        detail = f"object {mapping.remote_table!r} not found"
        return Finding(name, False, detail, OBJECT_FIX)
    missing = missing_fields(mapping, types)
    if missing:
        hint = "add the fields to the object in Twenty (JSON values as Text fields)"
        return Finding(name, False, "missing field(s) " + _names(missing), hint)
    wrong = mismatches(mapping, types)
    if wrong:
        return Finding(name, False, "type mismatch: " + "; ".join(wrong), TYPE_FIX)
    detail = f"{len(mapping.fields)} mapped fields and {mapping.modified_field}"
    options = [repr(f.remote) for f in mapping.push_fields if types[f.remote] in OPTION_TYPES]
    if options:
        detail += f"; {', '.join(options)}: pushed values must be among the field's options"
        return Finding(name, True, detail, "other values fail their record alone", warning=True)
    return Finding(name, True, detail)


def object_types(mapping: Mapping, found: list[dict[str, Any]]) -> dict[str, str] | None:
    """The fields of the mapping's object in the data model, name -> Twenty type, the system
    fields included whether listed or not; None when the data model has no such object."""
    target = next((o for o in found if o.get("namePlural") == mapping.remote_table), None)
    if target is None:
        return None
    fields = target.get("fields")
    fields = fields if isinstance(fields, list) else []
    listed = {str(f.get("name")): str(f.get("type")) for f in fields if isinstance(f, dict)}
    return {**SYSTEM_FIELDS, **listed}


def missing_fields(mapping: Mapping, types: dict[str, str]) -> list[str]:
    """The field names the mapping needs (mapped fields, modified field) the object lacks."""
    return [n for n in wanted(mapping) if n not in types]


def mismatches(mapping: Mapping, types: dict[str, str]) -> list[str]:
    """Each field (of those present) whose type cannot hold its kind, as a sentence; the
    modified field must be a DATE_TIME."""
    wrong = [
        m for m in (_mismatch(f, types[f.remote]) for f in mapping.fields if f.remote in types) if m
    ]
    stamp = mapping.modified_field
    if stamp in types and types[stamp] != "DATE_TIME":
        wrong.append(f"{stamp!r} is {types[stamp]}, the modified field needs DATE_TIME")
    return wrong


def refusal(mapping: Mapping, types: dict[str, str] | None, objects: list[str]) -> str | None:
    """The mapping-level error for a data model the mapping does not fit, one line naming the
    object, the fields and the fix; None when it fits. ``objects`` names the workspace's
    custom objects (for a missing object)."""
    plural = mapping.remote_table
    if types is None:
        listed = ", ".join(repr(o) for o in objects[:SHOWN]) or "none"
        listed += f" and {len(objects) - SHOWN} more" if len(objects) > SHOWN else ""
        return (
            f"Twenty has no object {plural!r} (custom objects: {listed}): fix `table` in the "
            f"mapping config, or create the custom object in Twenty; {CHECK_LISTS}"
        )
    missing = missing_fields(mapping, types)
    if missing:
        return (
            f"Twenty object {plural!r} has no field {_names(missing)}: fix the mapping's "
            f"`remote`, or add the field in Twenty; {CHECK_LISTS}"
        )
    wrong = mismatches(mapping, types)
    if wrong:
        return (
            f"Twenty object {plural!r} has fields whose type does not fit the mapping: "
            f"{'; '.join(wrong)}: change the field's type in Twenty, or its `kind` in the "
            f"mapping config; {CHECK_LISTS}"
        )
    return None


def custom_objects(found: list[dict[str, Any]]) -> list[str]:
    """The plural names of the data model's custom objects."""
    return [str(o.get("namePlural")) for o in found if o.get("isCustom") is True]


def _names(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)


def _mismatch(spec: FieldSpec, ftype: str) -> str | None:
    """What is wrong with mapping ``spec`` to a Twenty field of type ``ftype``, or None."""
    if spec.kind is Kind.JSON:
        if not spec.json_as_text or ftype == "TEXT":
            return None
        return f"{spec.remote!r} is {ftype}, mapped as json held as text (needs TEXT)"
    if ftype in HOLDS[spec.kind]:
        return None
    needs = " or ".join(sorted(HOLDS[spec.kind]))
    return f"{spec.remote!r} is {ftype}, mapped as {spec.kind.value} (needs {needs})"
