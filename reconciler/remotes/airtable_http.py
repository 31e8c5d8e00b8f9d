"""Airtable's answers as the tool reads them.

Every answer a real server, or a proxy in front of it, may give ends as one of: a JSON object
(the result), :class:`Transient` (retried: 5xx, 429, a dropped connection, a body that is not
the API's), :class:`AirtableRejected` (the request's content was refused: 4xx), or an error that
stops the mapping (:class:`AuthError`, :class:`MappingError`, :class:`RemoteUnavailable`).
Nothing else escapes, and every message is one line.
"""

from __future__ import annotations

import re
import weakref
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from pyairtable.api.params import options_to_json_and_params, options_to_params

from reconciler.errors import AuthError, MappingError, RemoteUnavailable
from reconciler.remotes.base import Rejected, Transient
from reconciler.remotes.pacing import Pacer

# "you will receive a 429 status code and will need to wait 30 seconds before subsequent
# requests will succeed" (https://airtable.com/developers/web/api/rate-limits).
LOCKOUT_SECONDS = 30.0
MAX_URL_LENGTH = 16_000  # Airtable refuses longer URLs; listings then go by POST
RATE_LIMIT_REACHED = "RATE_LIMIT_REACHED"
BILLING_LIMIT = "PUBLIC_API_BILLING_LIMIT_EXCEEDED"
ROW_DOES_NOT_EXIST = "ROW_DOES_NOT_EXIST"
ITERATOR_GONE = "LIST_RECORDS_ITERATOR_NOT_AVAILABLE"
INVALID_FORMULA = "INVALID_FILTER_BY_FORMULA"
_BAD_URL = (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema)
_BAD_SCHEMA = requests.exceptions.InvalidSchema
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class Stamping(requests.adapters.HTTPAdapter):
    """The session's transport, telling the pacer when each request really left (see
    :meth:`Pacer.sent`): once its bytes are written, so that nothing between the pacer letting
    it go and its bytes leaving (a new connection's TLS handshake, a thread waiting for the
    interpreter or the CPU on a loaded host) can bring the next requests closer to it on the
    server's side than the pacer spaced them. Airtable counts a request when it arrives, and a
    429 locks the base for 30 seconds."""

    def __init__(self, pacer: Pacer) -> None:
        self._pacer = pacer  # before the base class builds its pools
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """The standard pools, with connections that stamp each request once it is written."""
        super().init_poolmanager(*args, **kwargs)
        self._stamp(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """The same through a proxy (``HTTPS_PROXY``)."""
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        self._stamp(manager)
        return manager

    def _stamp(self, manager: urllib3.PoolManager) -> None:
        """Make ``manager``'s pools open connections that stamp each request once written."""
        pacer = self._pacer

        def stamping(pool: type[urllib3.HTTPConnectionPool]) -> type[urllib3.HTTPConnectionPool]:
            class Connection(pool.ConnectionCls):  # type: ignore[name-defined,misc]
                def request(self, *args: Any, **kwargs: Any) -> None:
                    super().request(*args, **kwargs)
                    pacer.sent()

            return type(pool.__name__, (pool,), {"ConnectionCls": Connection})

        manager.pool_classes_by_scheme = {
            "http": stamping(urllib3.HTTPConnectionPool),
            "https": stamping(urllib3.HTTPSConnectionPool),
        }


class AirtableRejected(Rejected):
    """A request Airtable refused for its content (4xx), with Airtable's error type."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(status, message)
        self.kind = kind

    @property
    def unknown_field(self) -> bool:
        """Whether Airtable may not know a field the request names (deleted or renamed): it
        says so (``UNKNOWN_FIELD_NAME``), or it refused a formula, which names fields by name
        (``INVALID_FILTER_BY_FORMULA``, whatever its message: no document fixes the wording)."""
        return self.kind in ("UNKNOWN_FIELD_NAME", INVALID_FORMULA)


class NotFound(RemoteUnavailable):
    """404, with the API's error type when the body is the API's JSON error (empty when it is
    not: a proxy's page). In answer to a batch PATCH it may mean a record of the batch is gone
    ("404 record gone" among Airtable's error answers, shared docs ``airtable-api.md``)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Forbidden(AuthError):
    """403: the token lacks access or a scope, or the base or table does not exist (Airtable
    answers the same to all of these, deliberately)."""


def one_line(text: str, limit: int = 200) -> str:
    """Text squeezed onto one line and cut to ``limit`` characters."""
    squeezed = " ".join(text.split())
    return squeezed if len(squeezed) <= limit else squeezed[: limit - 1] + "…"


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    timeout: Any,
    options: dict[str, Any] | None = None,
    json: dict[str, Any] | None = None,
    fallback: str | None = None,
    token_env: str = "AIRTABLE_TOKEN",
) -> dict[str, Any]:
    """One request, not retried; its answer's JSON object.

    ``options`` are pyairtable's list options; a GET whose URL would reach Airtable's limit goes
    as ``POST fallback`` with the options in the body, as pyairtable itself does. Redirects are
    never followed: an API answers, a login page redirects. ``token_env`` names the variable
    holding the token, for the messages of refusals.

    Raises:
        Transient, AirtableRejected, AuthError, MappingError, RemoteUnavailable: see the module.
    """
    params = query_params(options or {})
    try:
        prepared = session.prepare_request(requests.Request(method, url, params=params, json=json))
        if fallback and method == "GET" and len(str(prepared.url)) >= MAX_URL_LENGTH:
            body, params = options_to_json_and_params(options or {})
            post = requests.Request("POST", fallback, params=params, json=body)
            prepared = session.prepare_request(post)
        response = session.send(
            prepared,
            timeout=timeout,
            allow_redirects=False,
            **_environment(session, str(prepared.url)),
        )
    except (*_BAD_URL, _BAD_SCHEMA) as exc:
        raise RemoteUnavailable(
            f"Airtable: {type(exc).__name__} for the API URL: check AIRTABLE_API_URL"
        ) from None
    except requests.RequestException as exc:
        # Timeouts, refused or reset connections, a body cut off mid-way (ChunkedEncodingError).
        message = f"connection problem: {type(exc).__name__}"
        raise Transient(message, unreached=_never_connected(exc)) from None
    return answer(response, token_env)


def _never_connected(exc: requests.RequestException) -> bool:
    """Whether no connection could be opened: a connect timeout, or urllib3's
    ``NewConnectionError`` (refused, or a name that does not resolve:
    ``NameResolutionError`` is one) as the reason of the ``ConnectionError``. A connection
    dropped once open is a ``ProtocolError`` there. Sources: urllib3 ``exceptions.py``
    (``NewConnectionError``: "Raised when we fail to establish a new connection. Usually
    ECONNREFUSED."), requests ``adapters.py`` (``HTTPAdapter.send`` wraps urllib3's
    ``MaxRetryError``: ``ConnectTimeout`` for a connect timeout, ``ConnectionError`` with the
    reason kept otherwise); ``docs/fidelity.md``, "Late and lost answers"."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def query_params(options: dict[str, Any]) -> dict[str, Any]:
    """pyairtable's query parameters for list ``options``, with ``returnFieldsByFieldId`` in the
    form Airtable documents (``true``: https://airtable.com/developers/web/api/list-records,
    shared docs ``airtable-api.md`` "Reading"). pyairtable renders it ``1`` (``api/params.py``),
    which the service accepts too, but a server that holds to the documented form may ignore
    it and key every field by name: a listing would then read as all empty."""
    params = options_to_params(options)
    if "returnFieldsByFieldId" in params:
        params["returnFieldsByFieldId"] = "true" if params["returnFieldsByFieldId"] else "false"
    return params


# The settings the environment gives a session's requests to each origin (proxies, the CA
# bundle), as ``Session.request`` merges them for every request: found once per origin, as
# requests' documentation does for prepared requests, instead of reading every environment
# variable again for each page (which took as long as preparing the request).
_ENVIRONMENTS: weakref.WeakKeyDictionary[requests.Session, dict[str, dict[str, Any]]] = (
    weakref.WeakKeyDictionary()
)


def _environment(session: requests.Session, url: str) -> dict[str, Any]:
    scheme, netloc, *_ = urlsplit(url)
    known = _ENVIRONMENTS.setdefault(session, {})
    origin = f"{scheme}://{netloc}"
    if origin not in known:
        known[origin] = dict(session.merge_environment_settings(origin, {}, None, None, None))
    return known[origin]


def url_length(session: requests.Session, url: str, params: dict[str, Any]) -> int:
    """The length of a GET's URL with these query parameters."""
    prepared = session.prepare_request(requests.Request("GET", url, params=params))
    return len(str(prepared.url))


def answer(response: requests.Response, token_env: str = "AIRTABLE_TOKEN") -> dict[str, Any]:
    """The JSON object of a 2xx answer; anything else raised as described in the module."""
    status = response.status_code
    if 200 <= status < 300:
        return _json_object(response)
    raise classify(response, token_env)


def _json_object(response: requests.Response) -> dict[str, Any]:
    """A 2xx body that is not a JSON object is not the API talking (a proxy, a captive portal,
    a truncated answer): retried, and a mapping-level error if it persists. An HTML page
    counts as the API not reached (the few attempts of a server no request of the run has
    reached, :class:`~reconciler.remotes.base.RetryPolicy`): as the first answer of a run it
    is a web site at ``AIRTABLE_API_URL``, which two minutes of retries will not change."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        raise Transient(
            f"Airtable answered {status} with a body that is not JSON ({describe_body(response)})",
            unreached=html_page(response),
        ) from None
    if not isinstance(body, dict):
        kind = type(body).__name__
        raise Transient(f"Airtable answered {status} with {kind} JSON, not an object")
    return body


def classify(response: requests.Response, token_env: str = "AIRTABLE_TOKEN") -> Exception:
    """The exception an answer other than 2xx stands for."""
    status = response.status_code
    kind, message = error_of(response)
    detail = one_line(f"{kind}: {message}" if kind and message else kind or f"({message})")
    if 300 <= status < 400:
        return RemoteUnavailable(
            f"Airtable answered {status}, redirected to {_where(response)}: check "
            "AIRTABLE_API_URL (it must be the API's address, such as https://api.airtable.com)"
        )
    if status == 401:
        return AuthError(f"Airtable refused the token (401 {detail}): check {token_env}")
    if status == 403:
        return Forbidden(
            f"Airtable refused the request (403 {detail}): check the base id and that "
            f"{token_env} has access to the base with the scopes data.records:read and "
            "data.records:write"
        )
    if status == 404:
        return NotFound(
            kind,
            f"Airtable answered 404 {detail} for {urlsplit(response.url).path}: check "
            "AIRTABLE_API_URL",
        )
    if status == 429:
        return _too_many(response, kind, detail)
    if status >= 500:
        return Transient(f"Airtable answered {status} {detail}".strip(), status=status)
    if status == 413:
        return AirtableRejected(
            413, kind or "REQUEST_TOO_LARGE", "Airtable answered 413: the request is too large"
        )
    if 400 <= status < 500:
        return AirtableRejected(status, kind, f"Airtable answered {status} {detail}".strip())
    return RemoteUnavailable(f"Airtable answered an unexpected HTTP {status}")


def _too_many(response: requests.Response, kind: str, detail: str) -> Exception:
    """A 429: the monthly plan limit stops the mapping; any other holds the base for the whole
    lockout, or longer if ``Retry-After`` asks (contract "Rate limits": after a 429 from
    Airtable nothing more goes to that base for 30 seconds). Whatever its body (Airtable's
    ``RATE_LIMIT_REACHED``, another type, none, a proxy's page), a request sent sooner may fall
    into the lockout and extend it (shared docs ``airtable-api.md``, "Limits and errors")."""
    if kind == BILLING_LIMIT:
        # Retrying cannot help before the month ends, and every retry would be refused too.
        return MappingError(
            "Airtable: the workspace has used up its plan's monthly API call limit "
            f"({BILLING_LIMIT}); nothing more can be read or written until the month ends or "
            "the plan is upgraded"
        )
    message = "429" if kind == RATE_LIMIT_REACHED else f"429 {detail}".rstrip()
    hold = max(LOCKOUT_SECONDS, _retry_after(response))
    return Transient(f"rate limited ({message})", throttled=True, hold=hold)


def _retry_after(response: requests.Response) -> float:
    try:
        return max(0.0, min(float(response.headers.get("Retry-After", 0)), 300.0))
    except ValueError:
        return 0.0


def error_of(response: requests.Response) -> tuple[str, str]:
    """Airtable's error type and message, from whichever shape the body has.

    Most errors are ``{"error": {"type", "message"}}``; a 429 is ``{"errors": [{"error",
    "message"}]}`` (PipedreamHQ/pipedream#10130); an unknown route answers a bare
    ``"NOT_FOUND"``; a proxy answers HTML.
    """
    try:
        body = response.json()
    except ValueError:
        return "", describe_body(response)
    if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
        body = {"error": body["errors"][0]}
    error = body.get("error") if isinstance(body, dict) else body
    if isinstance(error, dict):
        kind = error.get("type") or error.get("error") or ""
        return str(kind), str(error.get("message") or "")
    if isinstance(error, str):
        return error, ""
    return "", one_line(str(body))


def describe_body(response: requests.Response) -> str:
    """A few words on a body that is not JSON: an HTML page's title, or its first characters."""
    text = response.text or ""
    if not text.strip():
        return "an empty body"
    if html_page(response):
        title = _TITLE.search(text)
        return f"an HTML page{': ' + one_line(title.group(1), 80) if title else ''}"
    return repr(one_line(text, 60))


def html_page(response: requests.Response) -> bool:
    """Whether a body is a web page: an HTML content type, or a title in it."""
    html = "html" in response.headers.get("Content-Type", "")
    return html or _TITLE.search(response.text or "") is not None


def _where(response: requests.Response) -> str:
    """A redirect's target without its query (which may carry a token of the login page)."""
    location = response.headers.get("Location")
    if not location:
        return "nowhere (no Location)"
    parts = urlsplit(location)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.netloc else parts.path


# -- the shapes of 2xx answers ---------------------------------------------------------------------


def _wrong_shape(what: str) -> Transient:
    return Transient(f"Airtable answered with {what} of the wrong shape")


def _records_shape(body: dict[str, Any], what: str) -> None:
    records = body.get("records")
    if not isinstance(records, list):
        raise _wrong_shape(what)
    for raw in records:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            raise _wrong_shape(what)
        if not isinstance(raw.get("fields", {}), dict):
            raise _wrong_shape(what)


def listing_shape(body: dict[str, Any]) -> None:
    """A listing page: ``records`` (each an object with an ``id`` and ``fields``), and an
    ``offset`` while more pages remain: Airtable's is a text, but the docs only say to send it
    back, so a number is sent back as its text (``next_offset``)."""
    _records_shape(body, "a listing")
    offset = body.get("offset")
    if offset is not None and (isinstance(offset, bool) or not isinstance(offset, str | int)):
        raise _wrong_shape("a listing")


def next_offset(body: dict[str, Any]) -> str | None:
    """The ``offset`` to send back for a listing's next page; None after the last page."""
    offset = body.get("offset")
    return None if offset is None or offset == "" else str(offset)


def record_shape(body: dict[str, Any]) -> None:
    """A record read by id (get record): an ``id`` and ``fields``."""
    _records_shape({"records": [body]}, "a record")


def write_shape(body: dict[str, Any]) -> None:
    """A batch write's answer: the written ``records``."""
    _records_shape(body, "a write answer")


def meta_shape(body: dict[str, Any]) -> None:
    """The meta API's answer: ``tables``, each with an ``id`` and ``fields``."""
    tables = body.get("tables")
    if not isinstance(tables, list) or not all(
        isinstance(t, dict) and isinstance(t.get("fields"), list) for t in tables
    ):
        raise _wrong_shape("a schema")
