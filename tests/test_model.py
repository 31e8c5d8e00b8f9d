"""The mapping model package: one direction of imports, cheap to import, built-ins on demand."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import reconciler.model
from reconciler.errors import UsageError
from reconciler.model import BUILTIN_MAPPINGS, parse_mappings

MODEL_DIR = Path(reconciler.model.__file__).parent
OUTSIDE = ("reconciler.config", "reconciler.remotes", "reconciler.engine", "reconciler.store")


def _loaded_after(code: str) -> list[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return list(json.loads(done.stdout.splitlines()[-1]))


def _is_outside(module: str) -> bool:
    forbidden = (*OUTSIDE, "reconciler.cli", "pydantic")
    return any(module == name or module.startswith(name + ".") for name in forbidden)


def test_import__loads_neither_the_rest_of_the_package_nor_pydantic() -> None:
    loaded = _loaded_after("import reconciler.model")
    assert [m for m in loaded if _is_outside(m)] == []
    assert "reconciler.model.reader" not in loaded  # the reader (and its pydantic) is lazy


def test_import__the_settings_module_does_not_parse_or_load_pydantic() -> None:
    loaded = _loaded_after("import reconciler.config")
    assert "pydantic" not in loaded and "reconciler.model.reader" not in loaded


def test_builtins__are_parsed_on_first_access_only() -> None:
    loaded = _loaded_after("from reconciler.model import LEADS\nassert LEADS.name == 'leads'")
    assert "reconciler.model.reader" in loaded and "pydantic" in loaded
    assert [m for m in loaded if _is_outside(m) and not m.startswith("pydantic")] == []


def test_source__no_model_module_imports_outside_the_model_even_for_typing() -> None:
    for path in MODEL_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith("reconciler"):
                    assert name == "reconciler.errors" or name.startswith("reconciler.model"), (
                        f"{path.name} imports {name}"
                    )


def test_builtins__are_cached_and_lazy_names_resolve() -> None:
    from reconciler.model import BUILTIN_MAPPINGS, LEADS, REP_PROGRESSIONS, builtin_mappings

    assert builtin_mappings() is builtin_mappings() is BUILTIN_MAPPINGS
    assert BUILTIN_MAPPINGS == (LEADS, REP_PROGRESSIONS)
    assert not hasattr(reconciler.model, "NO_SUCH_NAME")


SHAPE_ERRORS = [
    ("[mappings]\nleads = 3", "config.toml: mappings.leads: must be a table (got 3)"),
    ("[mappings.leads]\nfields = [3]", "config.toml: mappings.leads.fields[0]: must be a table"),
    (
        '[mappings.leads]\ndrop_fields = "phone"',
        "config.toml: mappings.leads.drop_fields: must be an array (got 'phone')",
    ),
    (
        '[mappings.leads]\nfields = [{ column = "notes", colour = "red" }]',
        "config.toml: mappings.leads.fields[0].colour: unknown key (allowed: remote, column, "
        "kind, direction, merge, json_as_text)",
    ),
    (
        '[mappings.leads]\nfields = [{ column = "notes", remote = " " }]',
        "config.toml: mappings.leads.fields[0].remote: must be a non-empty string (got ' ')",
    ),
    (
        "[mappings.leads]\nrate_limit = true",
        "config.toml: mappings.leads.rate_limit: must be a number above 0 (got True)",
    ),
    (
        "[mappings.leads]\nmodified_field = [1]",
        "config.toml: mappings.leads.modified_field: must be a non-empty string (got an array)",
    ),
    (
        '[mappings.leads]\nfields = [{ column = "x{message}" }]',
        "config.toml: mappings.leads.fields[0].column: must be a plain SQL identifier "
        "(got 'x{message}')",
    ),
]


@pytest.mark.parametrize(("text", "message"), SHAPE_ERRORS)
def test_reader__turns_pydantic_errors_into_one_line(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_mappings(tomllib.loads(text), "config.toml", BUILTIN_MAPPINGS)
    assert str(caught.value).startswith(message), str(caught.value)
    assert "\n" not in str(caught.value)
