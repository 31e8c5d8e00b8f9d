"""Mapping configuration in TOML: the built-ins, overrides, new mappings, validation errors."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest

from reconciler.config import Secret, Settings, load_mappings, load_settings
from reconciler.errors import UsageError
from reconciler.model import (
    BUILTIN_MAPPINGS,
    LEADS,
    REP_PROGRESSIONS,
    Direction,
    Kind,
    Merge,
    parse_mappings,
)
from reconciler.remotes.factory import build_remote
from tests.helpers import execute, rows, seed_leads


def _write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _parse(text: str) -> tuple[Any, ...]:
    return parse_mappings(tomllib.loads(text), "config.toml", BUILTIN_MAPPINGS)


def test_builtins__are_loaded_from_the_toml_file_with_the_contract_values() -> None:
    assert BUILTIN_MAPPINGS == (LEADS, REP_PROGRESSIONS)
    assert (LEADS.remote, LEADS.remote_table, LEADS.key_column) == (
        "airtable",
        "Leads",
        "airtable_record_id",
    )
    assert LEADS.create_remote is False and REP_PROGRESSIONS.create_remote is True
    assert len(LEADS.fields) == 22 and len(REP_PROGRESSIONS.fields) == 14
    both = {f.column for f in LEADS.fields if f.direction is Direction.BOTH}
    assert both == {"processing_status", "campaign_id", "claimed_by", "claimed_at", "notes"}
    unions = {f.remote for f in REP_PROGRESSIONS.fields if f.merge is Merge.UNION}
    assert unions == {"completedModules", "certifications", "defeatedBosses", "passedExams"}
    assert LEADS.field("icp_score").kind is Kind.NUMBER
    assert REP_PROGRESSIONS.field("badges").json_as_text is True
    assert REP_PROGRESSIONS.modified_field == "updatedAt"


def test_override__changes_one_fields_direction_and_keeps_the_rest() -> None:
    leads, reps = _parse('[mappings.leads]\nfields = [{ column = "notes", direction = "pull" }]\n')
    assert leads.field("notes").direction is Direction.PULL
    assert leads.field("notes").remote == "Notes"
    assert [f for f in leads.fields if f.column != "notes"] == [
        f for f in LEADS.fields if f.column != "notes"
    ]
    assert reps == REP_PROGRESSIONS


def test_override__drops_and_adds_fields_and_sets_a_rate_budget() -> None:
    (leads, _) = _parse(
        "[mappings.leads]\n"
        'drop_fields = ["phone"]\n'
        "rate_limit = 2\n"
        'fields = [{ remote = "Owner", column = "owner", direction = "both" }]\n'
    )
    assert "phone" not in leads.columns
    assert leads.field("owner").direction is Direction.BOTH
    assert leads.rate_limit == 2.0


def test_new_mapping__gets_defaults_from_its_remote() -> None:
    *_, deals = _parse(
        "[mappings.deals]\n"
        'remote = "twenty"\n'
        'table = "opportunities"\n'
        'local_table = "deals"\n'
        'key_column = "twenty_id"\n'
        "create_remote = true\n"
        'fields = [{ remote = "name", column = "name", direction = "both" },\n'
        '  { remote = "tags", column = "tags", kind = "json", merge = "union" }]\n'
    )
    assert deals.name == "deals" and deals.modified_field == "updatedAt"
    assert deals.field("tags").merge is Merge.UNION and deals.field("name").kind is Kind.TEXT


BAD_CONFIGS = [
    (
        '[mappings.leads]\nfields = [{ column = "notes", direction = "sideways" }]',
        "config.toml: mappings.leads.fields[0].direction: must be pull, push or both "
        "(got 'sideways')",
    ),
    (
        '[mappings.leads]\nfields = [{ column = "notes" }, { column = "email", kind = "time" }]',
        "config.toml: mappings.leads.fields[1].kind: must be text, number, integer, boolean, "
        "datetime, date or json (got 'time')",
    ),
    (
        "[mappings.leads]\ncolour = 'red'",
        "config.toml: mappings.leads.colour: unknown key (allowed: remote, table, local_table, "
        "key_column, modified_field, create_remote, rate_limit, fields, drop_fields, match_on, "
        "base, token_env, api_url, api_key_env)",
    ),
    ("[settings]\nx = 1", "config.toml: settings: unknown key"),
    (
        '[mappings.leads]\nfields = [{ column = "notes", merge = "union" }]',
        "config.toml: mappings.leads.fields[0].merge: merge = 'union' needs kind = 'json'",
    ),
    (
        '[mappings.leads]\nfields = [{ column = "new_col" }]',
        "config.toml: mappings.leads.fields[0].remote: missing",
    ),
    (
        '[mappings.leads]\nfields = [{ remote = "X" }]',
        "config.toml: mappings.leads.fields[0].column: missing",
    ),
    (
        '[mappings.leads]\nfields = [{ column = "notes" }, { column = "notes" }]',
        "config.toml: mappings.leads.fields[1].column: column 'notes' is mapped twice",
    ),
    (
        '[mappings.leads]\nfields = [{ column = "notes", remote = "Email" }]',
        "config.toml: mappings.leads.fields: remote field 'Email' is mapped twice",
    ),
    (
        '[mappings.leads]\ndrop_fields = ["nope"]',
        "config.toml: mappings.leads.drop_fields[0]: no field maps column 'nope'",
    ),
    ("[mappings.leads]\ncreate_remote = true", "config.toml: mappings.leads.create_remote:"),
    (
        "[mappings.leads]\ncreate_remote = 'yes'",
        "config.toml: mappings.leads.create_remote: must be true or false (got 'yes')",
    ),
    ("[mappings.leads]\nrate_limit = 0", "config.toml: mappings.leads.rate_limit: must be a"),
    (
        '[mappings.leads]\nlocal_table = "crm.leads"',
        "config.toml: mappings.leads.local_table: must be a table name without its schema (got "
        "'crm.leads'): put crm in the connection's search path instead "
        "(DATABASE_URL=…?options=-csearch_path%3Dcrm,public)",
    ),
    (
        '[mappings.leads]\nlocal_table = "leads; drop table x"',
        "config.toml: mappings.leads.local_table: must be a plain SQL identifier",
    ),
    (
        '[mappings.deals]\nremote = "twenty"\ntable = "x"\nlocal_table = "deals"\n'
        'fields = [{ remote = "a", column = "a" }]',
        "config.toml: mappings.deals.key_column: missing",
    ),
    (
        '[mappings.deals]\nremote = "salesforce"',
        "config.toml: mappings.deals.remote: must be airtable or twenty (got 'salesforce')",
    ),
    (
        '[mappings.deals]\nremote = "twenty"\ntable = "x"\nlocal_table = "leads"\n'
        'key_column = "airtable_record_id"\nfields = [{ remote = "a", column = "a" }]',
        "config.toml: mappings.deals.key_column: 'airtable_record_id' is also the key column of "
        "'leads' (both map table 'leads')",
    ),
    ("[mappings.Leads2]\nremote = 'twenty'", "config.toml: mappings.Leads2: a mapping name"),
    ("mappings = 3", "config.toml: mappings: must be a table (got 3)"),
    (
        "[mappings.leads]\nfields = 'all'",
        "config.toml: mappings.leads.fields: must be an array (got 'all')",
    ),
    (
        '[mappings.leads]\nfields = [{ column = "notes", json_as_text = true }]',
        "config.toml: mappings.leads.fields[0].json_as_text: json_as_text = true needs "
        "kind = 'json'",
    ),
    (
        '[mappings.deals]\nremote = "twenty"\ntable = "x"\nlocal_table = "deals"\n'
        'key_column = "twenty_id"\nfields = []',
        "config.toml: mappings.deals.fields: a mapping needs at least one field",
    ),
    (
        '[mappings.leads]\nfields = [{ remote = "Record", column = "airtable_record_id" }]',
        "config.toml: mappings.leads.key_column: 'airtable_record_id' is also a mapped field's "
        "column",
    ),
    (
        '[mappings.rep_progressions]\napi_url = "https://"',
        "config.toml: mappings.rep_progressions.api_url: must be an http(s) URL (got 'https://')",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS)
def test_validation__names_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(UsageError) as caught:
        load_mappings(load_settings({}), path)
    shown = str(caught.value).replace(str(tmp_path) + "/", "")
    assert shown.startswith(message), shown
    assert "\n" not in shown


def test_validation__invalid_toml_and_a_missing_file(tmp_path: Path) -> None:
    broken = _write(tmp_path, "[mappings.leads\n")
    with pytest.raises(UsageError, match=r"config\.toml: not valid TOML: .*line 1"):
        load_mappings(load_settings({}), broken)
    with pytest.raises(UsageError, match=r"absent\.toml: cannot read the config file"):
        load_mappings(load_settings({}), tmp_path / "absent.toml")


def test_config_file__a_byte_order_mark_and_windows_line_ends_are_read(tmp_path: Path) -> None:
    """As a Windows editor saves it: a UTF-8 byte order mark first, CRLF line ends."""
    path = tmp_path / "config.toml"
    text = '[mappings.leads]\r\nfields = [{ column = "notes", direction = "pull" }]\r\n'
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    (leads, _) = load_mappings(load_settings({}), path).mappings
    assert leads.field("notes").direction is Direction.PULL


def test_cli__a_bad_config_exits_2_with_one_line_and_no_report(cli, tmp_path: Path) -> None:
    path = _write(tmp_path, '[mappings.leads]\nfields = [{ column = "notes", direction = "up" }]')
    result = cli("--config", str(path))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "config.toml: mappings.leads.fields[0].direction: must be pull, push or both" in lines[0]
    assert result.report_path is not None and not result.report_path.exists()


def test_cli__reads_the_config_from_reconciler_config(cli, tmp_path, monkeypatch) -> None:
    path = _write(tmp_path, "[mappings.leads]\nkey_column = 'Bad Key!'")
    monkeypatch.setenv("RECONCILER_CONFIG", str(path))
    result = cli()
    assert result.exit_code == 2
    assert "mappings.leads.key_column: must be a plain SQL identifier" in result.stderr


def test_run__an_override_to_pull_only_stops_the_push(airtable, db, cli, tmp_path) -> None:
    seed_leads(airtable, 2)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET notes = 'local only', claimed_by = 'rep@x.com'")
    airtable.reset_log()
    path = _write(tmp_path, '[mappings.leads]\nfields = [{ column = "notes", direction = "pull" }]')
    result = cli("--config", str(path))
    assert result.exit_code == 0, result.output
    sent = [
        rec["fields"] for r in airtable.requests if r.method == "PATCH" for rec in r.body["records"]
    ]
    claimed_by = airtable.field_id("Leads", "Claimed By")  # writes name fields by id
    assert sent and all(set(fields) == {claimed_by} for fields in sent)
    assert {r["notes"] for r in rows(db)} == {"local only"}
    assert all("Notes" not in r["fields"] for r in airtable.records("Leads"))


def _settings(**changes: Any) -> Settings:
    return dataclasses.replace(load_settings({}), **changes)


def test_rate_budget__lowers_the_remote_rate_but_never_raises_it() -> None:
    settings = _settings(
        airtable_rate=5.0,
        twenty_rate=100.0,
        airtable_token=Secret("t"),
        airtable_base_id="appX",
        twenty_api_key=Secret("k"),
    )

    def rate(mapping: Any) -> float:
        remote = build_remote(mapping, settings)
        remote.close()
        return float(remote._call.pacer.per_second)  # type: ignore[attr-defined]

    assert rate(dataclasses.replace(LEADS, rate_limit=2.0)) == 2.0
    assert rate(dataclasses.replace(LEADS, rate_limit=50.0)) == 5.0
    assert rate(dataclasses.replace(REP_PROGRESSIONS, rate_limit=30.0)) == 30.0 / 60
    assert rate(REP_PROGRESSIONS) == 100.0 / 60
