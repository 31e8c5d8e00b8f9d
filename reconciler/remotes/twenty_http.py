"""What Twenty (and whatever stands in front of it) may answer, sorted into what the tool does.

Twenty's own errors are JSON (``{"statusCode", "error", "messages"}``,
core-modules/exception-handler/utils/send-http-exception-response.util.ts). A proxy, a load
balancer or a URL that points at the wrong site answers otherwise: an HTML page, a redirect to a
login page, a 2xx whose body is not JSON or not the REST API's shape. Each answer ends as one of:

- a parsed JSON body (2xx);
- :class:`~reconciler.remotes.base.Transient` (retried): 408, 429, 5xx, a dropped connection;
- :class:`~reconciler.remotes.base.Rejected` (not retried; a write batch is split): other 4xx;
- :class:`Unreadable` (not retried): a 2xx whose body is not JSON;
- ``AuthError`` / ``MappingError`` (the mapping stops): 401/403, a redirect.
"""

from __future__ import annotations

import html
import re
from typing import Any

import httpx

from reconciler.errors import AuthError, MappingError
from reconciler.remotes.base import Rejected, Transient

# A record id as Twenty makes them (a UUID; Postgres orders them as their lower-case text).
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")

_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_HEADING_RE = re.compile(r"<h1[^>]*>(.*?)</h1>", re.IGNORECASE | re.DOTALL)
_TAG_RE = re.compile(r"<[^>]+>")
_SPACE_RE = re.compile(r"\s+")
_LIMIT_RE = re.compile(r"Limit reached \((\d{1,9}) tokens per (\d{1,12}) ms\)")
CHECK_URL = "check TWENTY_API_URL (or the mapping's api_url)"


class Unreadable(Exception):
    """A 2xx answer whose body is not JSON: nothing in it can be trusted."""


def answer(response: httpx.Response) -> Any:
    """The parsed JSON body of a successful answer; raises what any other answer means."""
    if response.is_success:
        try:
            return response.json()
        except ValueError:
            raise Unreadable(
                f"Twenty answered {response.status_code} with {describe(response)} instead of "
                f"JSON; {CHECK_URL}"
            ) from None
    raise classify(response)


def classify(response: httpx.Response) -> Exception:
    """The exception an unsuccessful answer stands for."""
    status = response.status_code
    if response.is_redirect or 300 <= status < 400:
        target = response.headers.get("Location") or "an unnamed place"
        return MappingError(
            f"Twenty's address answered {status}, redirected to {target}: {CHECK_URL}; the "
            "tool does not follow redirects"
        )
    detail = describe(response)
    if status in (408, 429) or status >= 500:
        # 429 carries no Retry-After (throttler.service.ts): the caller's backoff paces it, and
        # the pacer keeps from then to the bucket it names, when it is stricter.
        return Transient(
            f"HTTP {status}: {detail}",
            throttled=status == 429,
            status=status,
            limit=named_limit(detail) if status == 429 else None,
        )
    if status == 401:
        return AuthError(
            f"Twenty refused the API key (HTTP 401: {detail}): check TWENTY_API_KEY "
            "and TWENTY_API_URL"
        )
    if status == 403:
        # A valid key whose role may not do this (read or write this object) gets a 403 too.
        return AuthError(
            f"Twenty refused the request (HTTP 403: {detail}): check TWENTY_API_KEY and its "
            "role's permissions on this object"
        )
    if status == 413:
        return Rejected(status, f"Twenty refused the request as too large (413: {detail})")
    return Rejected(status, f"Twenty answered {status}: {detail}")


# A current server's refusal of a ``fields`` parameter naming fields the object does not have or
# the key's role may not read (parse-fields-rest-request.util.ts,
# api/rest/input-request-parsers/fields-parser-utils/).
_REFUSED_FIELDS_RE = re.compile(r"Unknown or unreadable fields on '[^']*': ([^;]+)")


def refused_fields(message: str) -> list[str]:
    """The fields a record read's ``fields`` named that the server refused to select, from its
    message (none when it refused nothing of the kind)."""
    match = _REFUSED_FIELDS_RE.search(message)
    if match is None:
        return []
    return [name.strip() for name in match.group(1).split(",") if name.strip()]


# The word a refusal of the parameter itself would use (a proxy or server that checks the
# parameters it takes, when ``fields`` is not one of them; shared docs ``twenty-api.md`` list
# none by that name).
_FIELDS_WORD_RE = re.compile(r"\bfields\b", re.IGNORECASE)


def doubts_fields(message: str) -> bool:
    """Whether a refusal may be of the ``fields`` parameter itself rather than of fields it
    named: it speaks of ``fields`` but names none the way a current server does."""
    return bool(_FIELDS_WORD_RE.search(message)) and not refused_fields(message)


def named_limit(detail: str) -> tuple[int, float] | None:
    """The bucket a 429 names, as ``(tokens, seconds)``: Twenty's throttle refuses with "Limit
    reached (${maxTokens} tokens per ${timeWindow} ms)" (``ThrottlerService.
    tokenBucketThrottleOrThrow``, ``packages/twenty-server/src/engine/core-modules/throttler/
    throttler.service.ts``): a server configured below ``TWENTY_RATE_LIMIT``, or a hosted plan
    of 50 a minute, says so in its first refusal. None when the message says otherwise."""
    match = _LIMIT_RE.search(detail)
    if match is None:
        return None
    tokens, window_ms = int(match.group(1)), int(match.group(2))
    return (tokens, window_ms / 1000) if tokens > 0 and window_ms > 0 else None


def describe(response: httpx.Response) -> str:
    """One line saying what an answer's body holds: Twenty's messages, an HTML page's title,
    the start of a text; never markup."""
    text = response.text.strip()
    if not text:
        return "an empty body"
    kind = response.headers.get("Content-Type", "")
    if "html" in kind or text.startswith("<"):
        return _html_summary(text)
    try:
        body = response.json()
    except ValueError:
        return repr(_one_line(text, 160))
    if isinstance(body, dict):
        messages = body.get("messages") or [body.get("message") or body.get("error") or ""]
        if not isinstance(messages, list):
            messages = [messages]
        return _one_line("; ".join(str(m) for m in messages), 300) or "an error without message"
    return _one_line(str(body), 160)


def _html_summary(text: str) -> str:
    match = _TITLE_RE.search(text) or _HEADING_RE.search(text)
    if match is None:
        return "an HTML page"
    title = _one_line(html.unescape(_TAG_RE.sub(" ", match.group(1))), 120)
    return f"an HTML page ({title!r})" if title else "an HTML page"


def _one_line(text: str, limit: int) -> str:
    line = _SPACE_RE.sub(" ", text).strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


def listed_records(body: Any, plural: str) -> list[dict[str, Any]]:
    """The records of a list answer (``data.<plural>``), each with a string ``id``.

    Raises:
        Unreadable: the answer does not have that shape; since nothing in it can be placed, the
            whole page is refused rather than part of it silently skipped.
    """
    data = body.get("data") if isinstance(body, dict) else None
    records = data.get(plural) if isinstance(data, dict) else None
    if not isinstance(records, list):
        raise Unreadable(f"Twenty's answer has no list of records at data.{plural}; {CHECK_URL}")
    for raw in records:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            sample = _one_line(str(raw), 120)
            raise Unreadable(f"Twenty's answer lists a record without an id: {sample}")
    return records


def written_records(body: Any) -> list[dict[str, Any]]:
    """The records a batch write answered with (``data.create<Plural>``); whatever does not
    have that shape is left out, so the records it should have named fail alone."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        return []
    records = next((v for v in data.values() if isinstance(v, list)), [])
    return [r for r in records if isinstance(r, dict) and isinstance(r.get("id"), str)]


def next_cursor(body: Any) -> str | None:
    """The cursor of the next page, or None after the last one.

    Raises:
        Unreadable: the answer does not say whether more pages follow, or not where: stopping
            there would take a partial listing for a whole one.
    """
    info = body.get("pageInfo") if isinstance(body, dict) else None
    if not isinstance(info, dict) or not isinstance(info.get("hasNextPage"), bool):
        raise Unreadable(f"Twenty's answer has no pageInfo.hasNextPage; {CHECK_URL}")
    if not info["hasNextPage"]:
        return None
    cursor = info.get("endCursor")
    if not isinstance(cursor, str) or not cursor:
        raise Unreadable("Twenty's answer says more pages follow but gives no endCursor")
    return cursor


def total_count(body: Any) -> int | None:
    """The list answer's ``totalCount`` (every record its filter matches), None when absent."""
    total = body.get("totalCount") if isinstance(body, dict) else None
    return total if isinstance(total, int) and not isinstance(total, bool) else None
