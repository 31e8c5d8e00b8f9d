"""The built-in mappings, read on first use from the packaged ``builtin_mappings.toml``.

Nothing is parsed at import time: reading the file needs the config reader (and pydantic), which
commands that never look at a mapping (``--help``) should not pay for.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources

from reconciler.model.mapping import Mapping

BUILTIN_FILE = "builtin_mappings.toml"


@cache
def builtin_mappings() -> tuple[Mapping, ...]:
    """The built-in mappings (``leads``, ``rep_progressions``), parsed once and cached.

    Returns:
        The mappings in file order.
    """
    from reconciler.model.reader import parse_mappings  # the reader loads pydantic: only now

    text = resources.files(__package__).joinpath(BUILTIN_FILE).read_text(encoding="utf-8")
    return parse_mappings(tomllib.loads(text), BUILTIN_FILE)


def builtin(name: str) -> Mapping:
    """One built-in mapping by name; raises KeyError for an unknown name."""
    for mapping in builtin_mappings():
        if mapping.name == name:
            return mapping
    raise KeyError(name)
