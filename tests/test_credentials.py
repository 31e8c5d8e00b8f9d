"""Per-mapping credentials: each mapping's own base, server and variables, and their secrets."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from reconciler.config import (
    AirtableTarget,
    RunOptions,
    Secret,
    TwentyTarget,
    load_mappings,
    load_settings,
    missing_credentials,
    select_mappings,
)
from reconciler.errors import UsageError
from reconciler.model import LEADS, REP_PROGRESSIONS
from tests.helpers import rows, seed_leads, seed_progressions

SALES_BASE = "appSALES000000001"
SALES = dataclasses.replace(LEADS, base=SALES_BASE, token_env="SALES_AIRTABLE_TOKEN")
CRM = dataclasses.replace(
    REP_PROGRESSIONS, api_url="https://crm.example.com", api_key_env="CRM_KEY", rate_limit=30.0
)
ENV = {
    "AIRTABLE_TOKEN": "default-airtable-token",
    "AIRTABLE_BASE_ID": "appDEFAULT0000001",
    "TWENTY_API_KEY": "default-twenty-key",
    "SALES_AIRTABLE_TOKEN": "sales-airtable-token",
    "CRM_KEY": "crm-twenty-key",
}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


# -- resolving ---------------------------------------------------------------------------------


def test_targets__a_mapping_uses_its_own_base_server_and_variables() -> None:
    settings = dataclasses.replace(load_settings(ENV), mappings=(SALES, CRM))
    assert settings.airtable_target(SALES) == AirtableTarget(
        Secret("sales-airtable-token"),
        "SALES_AIRTABLE_TOKEN",
        SALES_BASE,
        "https://api.airtable.com",
        5.0,
    )
    assert settings.twenty_target(CRM) == TwentyTarget(
        Secret("crm-twenty-key"), "CRM_KEY", "https://crm.example.com", 30.0
    )


def test_targets__without_keys_a_mapping_uses_the_default_variables() -> None:
    settings = load_settings({**ENV, "TWENTY_API_URL": "http://twenty.local/"})
    leads = settings.airtable_target(LEADS)
    assert (leads.token.value, leads.token_env) == ("default-airtable-token", "AIRTABLE_TOKEN")
    assert leads.base_id == "appDEFAULT0000001"
    reps = settings.twenty_target(REP_PROGRESSIONS)
    assert (reps.api_key.value, reps.api_key_env) == ("default-twenty-key", "TWENTY_API_KEY")
    assert (reps.api_url, reps.rate) == ("http://twenty.local", 100.0)


def test_missing_credentials__names_the_mappings_own_variables() -> None:
    settings = load_settings({})
    assert missing_credentials(SALES, settings) == ["SALES_AIRTABLE_TOKEN"]  # base is its own
    assert missing_credentials(LEADS, settings) == ["AIRTABLE_TOKEN", "AIRTABLE_BASE_ID"]
    assert missing_credentials(CRM, settings) == ["CRM_KEY"]
    with pytest.raises(UsageError, match="mapping 'leads': not configured: SALES_AIRTABLE_TOKEN"):
        settings.airtable_target(SALES)
    with pytest.raises(UsageError, match="is for airtable, not twenty"):
        load_settings(ENV).twenty_target(SALES)
    settings = load_settings({"SALES_AIRTABLE_TOKEN": "s", "TWENTY_API_KEY": "k"})
    assert missing_credentials(SALES, settings) == []
    assert missing_credentials(CRM, settings) == ["CRM_KEY"]


def test_select_mappings__skips_a_mapping_without_its_own_token() -> None:
    settings = dataclasses.replace(load_settings({"CRM_KEY": "k"}), mappings=(SALES, CRM))
    assert select_mappings(RunOptions(), settings) == [
        (SALES, "not configured: SALES_AIRTABLE_TOKEN"),
        (CRM, None),
    ]
    with pytest.raises(UsageError, match="no mapping can run: set SALES_AIRTABLE_TOKEN"):
        select_mappings(RunOptions(mappings=("leads",)), settings)


def test_secrets__lists_every_secret_a_configured_mapping_uses_and_repr_hides_them(
    tmp_path: Path,
) -> None:
    settings = load_settings({**ENV, "UNUSED_TOKEN": "not-a-mapping-secret"})
    assert "sales-airtable-token" not in settings.secrets  # no mapping names it yet
    config = _write(tmp_path, '[mappings.leads]\ntoken_env = "SALES_AIRTABLE_TOKEN"\n')
    settings = load_mappings(settings, config)  # names from a file read later still resolve
    assert settings.airtable_target(settings.mappings[0]).token.value == "sales-airtable-token"
    assert set(settings.secrets) == {
        "default-airtable-token",
        "default-twenty-key",
        "sales-airtable-token",
    }
    text = repr(settings) + str(settings) + repr(settings.airtable_target(settings.mappings[0]))
    hidden = [v for k, v in ENV.items() if k != "AIRTABLE_BASE_ID"] + ["not-a-mapping-secret"]
    assert not [value for value in hidden if value in text]  # the env snapshot is not shown


# -- against the emulators ---------------------------------------------------------------------


@pytest.fixture
def sales_config(airtable: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A config giving leads its own token variable and base; the default variables unset."""
    monkeypatch.delenv("AIRTABLE_TOKEN")
    monkeypatch.delenv("AIRTABLE_BASE_ID")
    return _write(
        tmp_path,
        f'[mappings.leads]\ntoken_env = "SALES_AIRTABLE_TOKEN"\nbase = "{airtable.base_id}"\n',
    )


def test_run__a_mapping_without_its_token_is_skipped_and_runs_once_it_is_set(
    airtable: Any, twenty: Any, db: Any, cli: Any, sales_config: Path, monkeypatch: Any
) -> None:
    seed_leads(airtable, 2)
    seed_progressions(twenty, 1)
    skipped = cli("--config", str(sales_config))
    assert skipped.exit_code == 0, skipped.output
    assert skipped.mapping("leads")["skipped"] == "not configured: SALES_AIRTABLE_TOKEN"
    assert skipped.mapping("rep_progressions")["skipped"] is None
    assert rows(db) == []

    monkeypatch.setenv("SALES_AIRTABLE_TOKEN", airtable.token)
    ran = cli("--config", str(sales_config), "--json", "-v")
    assert ran.exit_code == 0, ran.output
    assert ran.mapping("leads")["skipped"] is None
    assert ran.mapping("leads")["pull"]["inserted"] == 2 and len(rows(db)) == 2
    checked = cli("check", "--config", str(sales_config))
    assert checked.exit_code == 0, checked.output
    assert "credentials for leads (airtable): present" in checked.stdout
    seen = skipped.output + ran.output + checked.output + ran.report_path.read_text()
    assert airtable.token not in seen and twenty.token not in seen


def test_run__a_wrong_custom_token_is_refused_without_showing_it(
    airtable: Any, database_url: str, cli: Any, sales_config: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("SALES_AIRTABLE_TOKEN", "wrong-sales-secret")
    result = cli("--config", str(sales_config), "-v", "--mapping", "leads")
    assert result.exit_code == 3, result.output
    checked = cli("check", "--config", str(sales_config))
    assert "hint: check SALES_AIRTABLE_TOKEN" in checked.stdout, checked.stdout
    seen = result.output + checked.output + result.report_path.read_text()
    assert "wrong-sales-secret" not in seen


ODD = "holds a character no token has (tokens are printable ASCII): copy the token again"
QUOTED = (
    "is in quotes, which are not part of a token: set it without them (an env file read by "
    "docker --env-file keeps them)"
)
BEARER = "starts with 'Bearer ', which the tool sends itself: set the token alone"
SPACED = "holds a space, which no token has: copy the token again"


@pytest.mark.parametrize(
    ("variable", "value", "custom", "problem"),
    [
        ("AIRTABLE_TOKEN", "patAbc…def", False, ODD),  # beyond Latin-1: could not even be sent
        ("TWENTY_API_KEY", "eyJhbGci\u00a0Oi", False, ODD),  # a non-breaking space pasted in
        ("SALES_AIRTABLE_TOKEN", "pat\x07abc", True, ODD),  # a control character, own variable
        ("AIRTABLE_TOKEN", '"patAbc.def"', False, QUOTED),
        ("TWENTY_API_KEY", "'eyJhbGciOi'", False, QUOTED),
        ("TWENTY_API_KEY", "Bearer eyJhbGciOi", False, BEARER),  # copied with the header's word
        ("AIRTABLE_TOKEN", "patAbc def", False, SPACED),
    ],
)
def test_a_token_as_no_token_is__exit_2_naming_the_variable_before_any_request(
    airtable: Any,
    twenty: Any,
    database_url: str,
    cli: Any,
    tmp_path: Path,
    monkeypatch: Any,
    variable: str,
    value: str,
    custom: bool,
    problem: str,
) -> None:
    config: list[str] = []
    if custom:
        text = f'[mappings.leads]\ntoken_env = "{variable}"\n'
        config = ["--config", str(_write(tmp_path, text))]
    monkeypatch.setenv(variable, value)
    result = cli(*config)
    assert result.exit_code == 2, result.output
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert line == f"reconcile: error: {variable} {problem}"
    assert result.report_path is not None and not result.report_path.exists()
    assert airtable.requests == [] and twenty.requests == []  # nothing was contacted
    checked = cli("check", *config)
    assert checked.exit_code == 2, checked.output
    assert f"credentials for {'leads' if 'AIRTABLE' in variable else 'rep_progressions'}" in (
        next(x for x in checked.stdout.splitlines() if problem in x)
    )
    assert "internal error" not in checked.output and value not in checked.output


def test_check__names_a_missing_custom_variable(
    database_url: str, cli: Any, sales_config: Path
) -> None:
    result = cli("check", "--config", str(sales_config))
    assert result.exit_code == 2, result.output
    assert "✗ credentials for leads (airtable): missing SALES_AIRTABLE_TOKEN" in result.stdout
    assert "hint: set SALES_AIRTABLE_TOKEN" in result.stdout


@pytest.mark.parametrize(("path", "v0"), [("/rest", "/v0"), ("/rest/", "/v0/"), ("/REST", "/V0")])
def test_targets__a_url_given_with_the_path_the_tool_appends_names_the_server(
    path: str, v0: str
) -> None:
    """API docs show the URLs with their API path (``https://api.twenty.com/rest/``); the
    tool appends it itself, and twice it would name no route."""
    crm = dataclasses.replace(CRM, api_url=None)
    settings = load_settings(
        {
            **ENV,
            "TWENTY_API_URL": f"HTTPS://CRM.Example.com/twenty{path}",
            "AIRTABLE_API_URL": f"https://api.airtable.com{v0}",
        }
    )
    assert settings.twenty_target(crm).api_url == "https://crm.example.com/twenty"
    assert settings.airtable_target(LEADS).api_url == "https://api.airtable.com"
    host_named_rest = load_settings({**ENV, "TWENTY_API_URL": "https://rest/"})
    assert host_named_rest.twenty_target(crm).api_url == "https://rest"  # a host, not a path


def test_run__urls_given_with_their_api_paths_reach_both_servers(
    airtable: Any, twenty: Any, db: Any, cli: Any, monkeypatch: Any, tmp_path: Path
) -> None:
    monkeypatch.setenv("AIRTABLE_API_URL", f"{airtable.url}/v0/")
    monkeypatch.setenv("TWENTY_API_URL", "http://127.0.0.1:9")  # the config's own is used
    config = _write(tmp_path, f'[mappings.rep_progressions]\napi_url = "{twenty.url}/rest/"\n')
    seed_leads(airtable, 2)
    seed_progressions(twenty, 2)
    result = cli("--config", str(config))
    assert result.exit_code == 0, result.output
    assert result.mapping("leads")["pull"]["inserted"] == 2
    assert result.mapping("rep_progressions")["pull"]["inserted"] == 2


def test_run__a_twenty_mapping_uses_its_own_server_and_key(
    twenty: Any, db: Any, cli: Any, monkeypatch: Any, tmp_path: Path
) -> None:
    monkeypatch.setenv("TWENTY_API_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("TWENTY_API_KEY")
    monkeypatch.setenv("CRM_KEY", twenty.token)
    config = _write(
        tmp_path,
        f'[mappings.rep_progressions]\napi_url = "{twenty.url}/"\napi_key_env = "CRM_KEY"\n',
    )
    seed_progressions(twenty, 2)
    result = cli("--config", str(config), "--mapping", "rep_progressions", "-v")
    assert result.exit_code == 0, result.output
    assert result.mapping("rep_progressions")["pull"]["inserted"] == 2
    assert twenty.token not in result.output + result.report_path.read_text()
