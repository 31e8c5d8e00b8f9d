"""What the Twenty server writes for a value it was sent, past the validators: the record
transformers of composite values (``transformCurrencyField``, ``transformEmailsValue``,
``transformLinksValue``), and JavaScript's reading of numbers they and the request parsers
rely on."""

from __future__ import annotations

import json
import math
import re
from typing import Any
from urllib.parse import urlsplit

_JS_DECIMAL_RE = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")


def is_number(value: Any) -> bool:
    """A JSON number (not a bool, not NaN or infinite)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return not (isinstance(value, float) and not math.isfinite(value))


def js_number(value: Any) -> float | None:
    """``Number(value)`` (or unary ``+``) for a number or a string, as JavaScript reads it: a
    decimal, with an exponent or not, between blanks; an empty or blank string is 0 (hex and
    ``Infinity`` are not modelled). None where JavaScript reads NaN, or the value is not a
    finite number."""
    if isinstance(value, bool):
        return float(value)
    if is_number(value):
        return float(value)
    if isinstance(value, str):
        if not value.strip():
            return 0.0
        if _JS_DECIMAL_RE.match(value):
            number = float(value)
            return number if math.isfinite(number) else None
    return None


def currency(sent: dict[str, Any]) -> dict[str, Any]:
    """``transformCurrencyField`` (``…/transformer-utils/transform-currency-field.util.ts`` and
    its spec): ``amountMicros`` as ``Number(…)`` (a string of digits becomes the number; the
    validator's own null for ``""`` is not what is written, so ``""`` becomes 0),
    ``currencyCode`` ``""`` null; a sub-field not sent stays unsent."""
    written = dict(sent)
    if sent.get("amountMicros") is not None:
        number = js_number(sent["amountMicros"])
        whole = number is not None and number.is_integer()
        written["amountMicros"] = int(number) if whole and number is not None else number
    if sent.get("currencyCode") == "":
        written["currencyCode"] = None
    return written


def emails(value: dict[str, Any]) -> dict[str, Any]:
    """An EMAILS value as ``transformEmailsValue`` writes it
    (``packages/twenty-server/src/engine/core-modules/record-transformer/utils/
    transform-emails-value.util.ts`` and its spec, called by ``DataArgProcessorService``):
    each address canonical (``canonicalizeEmail``: trimmed and lower-cased; its IDN and
    full-width-dot rewriting is not modelled), an empty ``primaryEmail`` null, an empty
    ``additionalEmails`` list null. ``primaryEmail`` is always in the result, so a write that
    sends only ``additionalEmails`` clears it; ``additionalEmails`` only when it was sent."""
    primary = value.get("primaryEmail")
    written: dict[str, Any] = {
        "primaryEmail": (_email(primary) or None) if isinstance(primary, str) else None
    }
    if "additionalEmails" in value:
        extra = value["additionalEmails"]
        if extra not in (None, "", 0, False):  # JavaScript's truthiness (``[]`` is true)
            try:
                items = json.loads(extra) if isinstance(extra, str) else extra
                extra = ([_email(e) for e in items] or None) if isinstance(items, list) else None
            except (ValueError, AttributeError):  # the source's catch keeps the value as sent
                pass
        written["additionalEmails"] = extra
    return written


def _email(address: str) -> str:
    return address.strip().lower()


def links(value: dict[str, Any]) -> dict[str, Any]:
    """A LINKS value with its URLs as ``transformLinksValue`` writes them
    (``packages/twenty-server/src/engine/core-modules/record-transformer/utils/
    transform-links-value.util.ts`` and its spec): ``primaryLinkUrl`` and each secondary link's
    ``url`` through :func:`url_origin_lowered`. Not modelled, as releases differ in them
    (**unconfirmed**): the first secondary link taking an empty primary's place
    (``remove-empty-links.ts``), the refusal of an invalid URL, the secondary links' JSON text
    form."""
    written = dict(value)
    if isinstance(value.get("primaryLinkUrl"), str):
        written["primaryLinkUrl"] = url_origin_lowered(value["primaryLinkUrl"])
    links = value.get("secondaryLinks")
    if isinstance(links, list):
        written["secondaryLinks"] = [
            {**link, "url": url_origin_lowered(link["url"])}
            if isinstance(link, dict) and isinstance(link.get("url"), str)
            else link
            for link in links
        ]
    return written


_DEFAULT_PORTS = {"http": 80, "https": 443}


def url_origin_lowered(raw: str) -> str:
    """``lowercaseUrlOriginAndRemoveTrailingSlash``
    (``packages/twenty-shared/src/utils/url/lowercaseUrlOriginAndRemoveTrailingSlash.ts``): an
    http(s) URL's origin (scheme, host, a port other than the default) lower-cased, the rest
    kept as written, then one trailing ``/`` removed; anything else (no scheme, another
    scheme, not a URL) as it is. IDN hosts are not turned to punycode here."""
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        return raw
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or "://" not in raw:
        return raw
    start = raw.index("://") + 3
    ends = [raw.find(mark, start) for mark in ("/", "\\", "?", "#")]
    end = min([at for at in ends if at != -1], default=len(raw))
    shown_port = f":{port}" if port is not None and port != _DEFAULT_PORTS[scheme] else ""
    host = parts.hostname.lower()
    origin = f"{scheme}://{f'[{host}]' if ':' in host else host}{shown_port}"
    result = origin + raw[end:]
    return result[:-1] if result.endswith("/") else result
