"""The mapping model: types, the config file reader, the built-in mappings, value conversion.

Imports go one way: ``reconciler.errors`` <- ``reconciler.model`` <- everything else. Nothing here
imports the settings, remotes, engine, store or CLI.

Importing this package is cheap and has no side effects. The names that need the config reader
(which loads pydantic) or the parsed built-ins are resolved on first access (PEP 562):
``BUILTIN_MAPPINGS``, ``LEADS``, ``REP_PROGRESSIONS``, ``builtin_mappings``, ``parse_mappings``,
``read_mappings`` and ``read_config``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.model.mapping import Direction, FieldSpec, Kind, Mapping, Merge
from reconciler.model.values import (
    Canon,
    Converter,
    canonical,
    converter,
    iso_ms,
    json_text,
    parse_datetime,
    to_db,
    to_wire,
    union,
)

if TYPE_CHECKING:
    from reconciler.model.builtin import builtin_mappings
    from reconciler.model.reader import parse_mappings, read_config, read_mappings

    BUILTIN_MAPPINGS: tuple[Mapping, ...]
    LEADS: Mapping
    REP_PROGRESSIONS: Mapping

__all__ = [
    "BUILTIN_MAPPINGS",
    "LEADS",
    "REP_PROGRESSIONS",
    "Canon",
    "Converter",
    "Direction",
    "FieldSpec",
    "Kind",
    "Mapping",
    "Merge",
    "builtin_mappings",
    "canonical",
    "converter",
    "iso_ms",
    "json_text",
    "parse_datetime",
    "parse_mappings",
    "read_config",
    "read_mappings",
    "to_db",
    "to_wire",
    "union",
]

_BUILTIN_NAMES = {"LEADS": "leads", "REP_PROGRESSIONS": "rep_progressions"}
_READER_NAMES = ("parse_mappings", "read_config", "read_mappings")


def __getattr__(name: str) -> object:
    """The lazy names: built-ins are parsed, and the reader imported, on first access."""
    if name in _READER_NAMES:
        from reconciler.model import reader

        return getattr(reader, name)
    if name in ("builtin_mappings", "BUILTIN_MAPPINGS", *_BUILTIN_NAMES):
        from reconciler.model.builtin import builtin, builtin_mappings

        if name == "builtin_mappings":
            return builtin_mappings
        return builtin_mappings() if name == "BUILTIN_MAPPINGS" else builtin(_BUILTIN_NAMES[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
