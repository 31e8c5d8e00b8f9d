"""The mapping model package: one direction of imports, cheap to import, built-ins on demand."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

import reconciler.model
from reconciler.errors import RecordError, UsageError
from reconciler.model import (
    BUILTIN_MAPPINGS,
    LEADS,
    REP_PROGRESSIONS,
    Direction,
    FieldSpec,
    Kind,
    Mapping,
    canonical,
    parse_mappings,
    to_db,
    to_wire,
)

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


def _parse(text: str) -> tuple[Mapping, ...]:
    return parse_mappings(tomllib.loads(text), "config.toml", BUILTIN_MAPPINGS)


def _error(text: str) -> str:
    with pytest.raises(UsageError) as caught:
        _parse(text)
    return str(caught.value)


ENV_NAME = (
    "must be the name of an environment variable (upper case letters, digits and _) that holds "
    "the secret, never the secret itself"
)
NEW_KEY_ERRORS = [
    (
        '[mappings.leads]\nbase = "app x"',
        "config.toml: mappings.leads.base: must be an Airtable base id: letters and digits, like "
        "appXXXXXXXXXXXXXX (got 'app x')",
    ),
    (  # a base's address copied whole: the id in it is named
        '[mappings.leads]\nbase = "https://airtable.com/appABCDEFGHIJ1234/tblX/viwY"',
        "config.toml: mappings.leads.base: must be an Airtable base id: letters and digits, like "
        "appXXXXXXXXXXXXXX (got 'https://airtable.com/appABCDEFGHIJ1234/tblX/viwY'; the base's "
        "id in it is appABCDEFGHIJ1234)",
    ),
    (
        '[mappings.leads]\nbase = "../appX"',
        "config.toml: mappings.leads.base: must be an Airtable base id: letters and digits, like "
        "appXXXXXXXXXXXXXX (got '../appX')",
    ),
    (
        '[mappings.rep_progressions]\nbase = "appABCDEFGHIJ1234"',
        "config.toml: mappings.rep_progressions.base: only for airtable mappings "
        "(this one is twenty)",
    ),
    (
        '[mappings.rep_progressions]\ntoken_env = "CRM_TOKEN"',
        "config.toml: mappings.rep_progressions.token_env: only for airtable mappings "
        "(this one is twenty)",
    ),
    (
        '[mappings.leads]\napi_url = "https://crm.example.com"',
        "config.toml: mappings.leads.api_url: only for twenty mappings (this one is airtable)",
    ),
    (
        '[mappings.leads]\napi_key_env = "CRM_KEY"',
        "config.toml: mappings.leads.api_key_env: only for twenty mappings (this one is airtable)",
    ),
    (
        '[mappings.leads]\ntoken_env = "sales_token"',
        f"config.toml: mappings.leads.token_env: {ENV_NAME}",
    ),
    ("[mappings.leads]\ntoken_env = 3", f"config.toml: mappings.leads.token_env: {ENV_NAME}"),
    (
        '[mappings.rep_progressions]\napi_key_env = "CRM-KEY"',
        f"config.toml: mappings.rep_progressions.api_key_env: {ENV_NAME}",
    ),
    (
        '[mappings.rep_progressions]\napi_url = "ftp://crm.example.com"',
        "config.toml: mappings.rep_progressions.api_url: must be an http(s) URL "
        "(got 'ftp://crm.example.com')",
    ),
    (
        '[mappings.rep_progressions]\napi_url = "crm.example.com"',
        "config.toml: mappings.rep_progressions.api_url: must be an http(s) URL "
        "(got 'crm.example.com')",
    ),
]


@pytest.mark.parametrize(("text", "message"), NEW_KEY_ERRORS)
def test_new_keys__validation_errors_are_one_exact_line(text: str, message: str) -> None:
    assert _error(text) == message


@pytest.mark.parametrize(
    "text",
    [
        '[mappings.leads]\ntoken_env = "patAbCdEf0123456.0123456789abcdef"',
        '[mappings.rep_progressions]\napi_key_env = "eyJhbGciOiJIUzI1NiJ9.e30.sig"',
        '[mappings.rep_progressions]\napi_url = "https://me:hunter2@crm.example.com"',
        '[mappings.rep_progressions]\napi_url = "https://crm.example.com/?key=hunter2"',
    ],
)
def test_new_keys__a_secret_written_by_mistake_is_refused_and_never_quoted(text: str) -> None:
    message = _error(text)
    for part in ("patAbCdEf", "eyJhbGci", "hunter2"):
        assert part not in message
    assert message.startswith("config.toml: mappings.")


def test_new_keys__are_read_with_their_defaults_left_to_the_environment() -> None:
    leads, reps, deals = _parse(
        "[mappings.leads]\n"
        'base = "appSALES000000001"\n'
        'token_env = "SALES_AIRTABLE_TOKEN"\n'
        "[mappings.deals]\n"
        'remote = "twenty"\ntable = "opportunities"\nlocal_table = "deals"\n'
        'key_column = "twenty_id"\napi_url = "https://crm.example.com/"\n'
        'api_key_env = "CRM_KEY"\nfields = [{ remote = "name", column = "name" }]\n'
    )
    assert (leads.base, leads.token_env) == ("appSALES000000001", "SALES_AIRTABLE_TOKEN")
    assert (leads.api_url, leads.api_key_env) == (None, None)
    assert (reps.base, reps.token_env, reps.api_url, reps.api_key_env) == (None,) * 4
    assert (deals.api_url, deals.api_key_env) == ("https://crm.example.com", "CRM_KEY")


def test_new_keys__a_base_id_of_letters_digits_dashes_and_dots_is_taken_as_it_is() -> None:
    """Real ids are app and 14 letters or digits; any id a URL path holds unchanged is taken
    (the server refuses a wrong one, naming the base)."""
    (leads, _) = _parse('[mappings.leads]\nbase = "appB2"')
    assert leads.base == "appB2"
    (leads, _) = _parse('[mappings.leads]\nbase = "base_2-eu.1"')
    assert leads.base == "base_2-eu.1"


# -- match_on --------------------------------------------------------------------------------------


def test_match_on__the_builtins_and_an_override() -> None:
    assert REP_PROGRESSIONS.match_on == ("workspace_member_id",)
    assert LEADS.match_on == ()
    (leads, _) = _parse('[mappings.leads]\nmatch_on = ["email", "phone"]')
    assert leads.match_on == ("email", "phone")


MATCH_ON_ERRORS = [
    ("[mappings.leads]\nmatch_on = []", "mappings.leads.match_on: must list at least one column"),
    (
        '[mappings.leads]\nmatch_on = "email"',
        "mappings.leads.match_on: must be an array (got 'email')",
    ),
    (
        "[mappings.leads]\nmatch_on = [3]",
        "mappings.leads.match_on[0]: must be a non-empty string (got 3)",
    ),
    (
        '[mappings.leads]\nmatch_on = ["email", "email"]',
        "mappings.leads.match_on[1]: column 'email' is listed twice",
    ),
    (
        '[mappings.leads]\nmatch_on = ["email", "nope"]',
        "mappings.leads.match_on[1]: no field maps column 'nope'",
    ),
    (
        '[mappings.leads]\nmatch_on = ["airtable_record_id"]',
        "mappings.leads.match_on[0]: no field maps column 'airtable_record_id'",
    ),
    (
        '[mappings.leads]\nmatch_on = ["booked"]',
        "mappings.leads.match_on[0]: column 'booked' is a boolean field; a natural key cannot "
        "use json or boolean fields",
    ),
    (
        '[mappings.rep_progressions]\nmatch_on = ["name", "badges"]',
        "mappings.rep_progressions.match_on[1]: column 'badges' is a json field; a natural key "
        "cannot use json or boolean fields",
    ),
    (
        '[mappings.rep_progressions]\ndrop_fields = ["workspace_member_id"]',
        "mappings.rep_progressions.match_on: no field maps column 'workspace_member_id' "
        "(kept from the mapping this overrides; set match_on too)",
    ),
    (
        '[mappings.rep_progressions]\nfields = [{ column = "workspace_member_id", kind = "json" }]',
        "mappings.rep_progressions.match_on: column 'workspace_member_id' is a json field; a "
        "natural key cannot use json or boolean fields (kept from the mapping this overrides; "
        "set match_on too)",
    ),
]


@pytest.mark.parametrize(("text", "message"), MATCH_ON_ERRORS)
def test_match_on__validation_errors_are_one_exact_line(text: str, message: str) -> None:
    assert _error(text) == f"config.toml: {message}"


# -- hub tables --------------------------------------------------------------------------------

HUB = (
    "[mappings.lead_people]\n"
    'remote = "twenty"\ntable = "people"\nlocal_table = "leads"\n'
    'key_column = "{key}"\nfields = [{fields}]\n'
)


def _hub(
    key: str = "twenty_person_id", fields: str = '{ remote = "emails", column = "email" }'
) -> str:
    return HUB.replace("{key}", key).replace("{fields}", fields)


def test_hub__a_table_shared_by_mappings_with_their_own_key_columns_is_accepted() -> None:
    leads, _, people = _parse(_hub())
    assert people.local_table == leads.local_table == "leads"
    assert people.key_column == "twenty_person_id" and people.field("email").kind is Kind.TEXT


HUB_ERRORS = [
    (
        _hub(key="airtable_record_id"),
        "mappings.lead_people.key_column: 'airtable_record_id' is also the key column of 'leads' "
        "(both map table 'leads'); mappings sharing a table need their own key columns",
    ),
    (
        _hub(key="email", fields='{ remote = "name", column = "full_name" }'),
        "mappings.lead_people.key_column: 'email' is a mapped column of 'leads' (both map table "
        "'leads'); the key column holds the remote record id only",
    ),
    (
        _hub(fields='{ remote = "airtableId", column = "airtable_record_id" }'),
        "mappings.lead_people.fields: column 'airtable_record_id' is the key column of 'leads' "
        "(both map table 'leads'); it holds that remote's ids",
    ),
    (
        _hub(fields='{ remote = "score", column = "icp_score", kind = "integer" }'),
        "mappings.lead_people.fields: column 'icp_score' is integer here but number in the "
        "mapping of 'leads' (both map table 'leads'); a column mapped by several mappings has "
        "one kind",
    ),
]


@pytest.mark.parametrize(("text", "message"), HUB_ERRORS)
def test_hub__clashing_key_columns_and_kinds_are_refused(text: str, message: str) -> None:
    assert _error(text) == f"config.toml: {message}"


def test_hub__an_override_that_retypes_a_shared_column_is_refused_too() -> None:
    text = _hub() + '[mappings.leads]\nfields = [{ column = "email", kind = "json" }]\n'
    assert _error(text).startswith(
        "config.toml: mappings.lead_people.fields: column 'email' is text here but json"
    )


# -- the date kind -----------------------------------------------------------------------------

DAY = FieldSpec("Day", "day", Kind.DATE, Direction.BOTH)


def test_date__canonical_form_from_either_side_is_an_iso_day() -> None:
    assert canonical(DAY, "2024-02-29", from_remote=True) == "2024-02-29"
    assert canonical(DAY, date(2024, 2, 29), from_remote=False) == "2024-02-29"
    assert canonical(DAY, None, from_remote=True) is None
    assert canonical(DAY, "", from_remote=True) is None
    assert canonical(DAY, None, from_remote=False) is None


@pytest.mark.parametrize(
    ("value", "from_remote"),
    [
        ("2024-02-29T10:00:00.000Z", True),
        ("2024-02-29 10:00", True),
        ("2024-02-30", True),
        ("20240229", True),
        ("2024-2-9", True),
        ("29/02/2024", True),
        (20240229, True),
        (True, True),
        (datetime(2024, 2, 29, 10, tzinfo=UTC), False),
    ],
)
def test_date__anything_but_a_day_fails_the_record_for_good(value: Any, from_remote: bool) -> None:
    with pytest.raises(RecordError) as caught:
        canonical(DAY, value, from_remote=from_remote)
    assert str(caught.value) == f"Day: expected a date, got {value!r}"
    assert caught.value.retryable is False


def test_date__to_the_database_and_the_remote() -> None:
    assert to_db(DAY, "2024-02-29") == date(2024, 2, 29)
    assert type(to_db(DAY, "2024-02-29")) is date
    assert to_db(DAY, None) is None
    assert to_wire(DAY, "2024-02-29") == "2024-02-29"
    assert to_wire(DAY, None) is None


def test_date__is_a_config_kind_and_a_postgres_date_column() -> None:
    from sqlalchemy import Date

    from reconciler.store.schema import _KIND_TYPES

    (leads, _) = _parse(
        '[mappings.leads]\nfields = [{ remote = "Born", column = "born", kind = "date" }]'
    )
    assert leads.field("born").kind is Kind.DATE
    assert isinstance(_KIND_TYPES[Kind.DATE], Date)
