"""Local values at the edges of what Postgres holds: a number that is not finite or a time at
infinity fails its own record alone (in either stage) and every other record goes through; the
session's time zone is UTC whatever the database's is; years before 1000 are sent in four
digits. Empty text from Twenty is NULL locally; a NULL sent to Twenty clears the field; an empty
list is the empty value of a JSON field on either remote, and so is an empty object (Twenty's
RAW_JSON); an address Twenty lower-cases settles in the next run."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from reconciler.emulators.airtable import AirtableEmulator
from reconciler.emulators.twenty import TwentyEmulator
from tests.helpers import (
    ago,
    dated_events,
    execute,
    rows,
    seed_leads,
    seed_progressions,
    twenty_writes,
)
from tests.hubs import airtable_writes

M = "rep_progressions"


def _failures(db: sa.Engine) -> list[tuple[str, str, bool]]:
    with db.connect() as conn:
        found = conn.execute(
            sa.text("SELECT stage, record_key, dead FROM reconciler.failures ORDER BY stage")
        )
        return [tuple(r) for r in found]  # type: ignore[misc]


def _remote_id(db: sa.Engine, table: str, key: str) -> str:
    """The remote id of row 1 (read alone: psycopg cannot load its other values)."""
    with db.connect() as conn:
        return str(conn.execute(sa.text(f"SELECT {key}::text FROM {table} WHERE id = 1")).scalar())


def _errors(result: Any) -> list[tuple[str, str, str]]:
    return [(e["stage"], e["record"], e["message"]) for e in result.report["errors"]]


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_push__a_number_no_remote_can_hold_fails_its_record_alone(
    airtable: AirtableEmulator, twenty: TwentyEmulator, db: sa.Engine, cli: Any, value: str
) -> None:
    bad, good = seed_progressions(twenty, 2)
    (lead,) = seed_leads(airtable, 1)
    assert cli().exit_code == 0
    execute(db, f"UPDATE {M} SET total_xp = :v WHERE twenty_id = :id", v=value, id=bad)
    execute(db, f"UPDATE {M} SET total_xp = 7 WHERE twenty_id = :id", id=good)
    execute(db, "UPDATE leads SET notes = 'Called.'")

    result = cli()

    assert result.exit_code == 1, result.output
    assert _errors(result) == [("push", bad, f"total_xp is {value}, which the remote cannot hold")]
    assert (twenty.get(good) or {})["totalXp"] == 7
    assert (twenty.get(bad) or {})["totalXp"] == 1000
    assert (airtable.get("Leads", lead) or {})["fields"]["Notes"] == "Called."
    assert _failures(db) == [("push", bad, False)]  # tried again, as any failed push

    execute(db, f"UPDATE {M} SET total_xp = 12 WHERE twenty_id = :id", id=bad)  # mended
    mended = cli()

    assert mended.exit_code == 0, mended.output
    assert (twenty.get(bad) or {})["totalXp"] == 12
    assert _failures(db) == []


def test_pull__a_record_whose_row_holds_nan_fails_alone_and_is_retried(
    twenty: TwentyEmulator, db: sa.Engine, cli: Any
) -> None:
    bad, good = seed_progressions(twenty, 2)
    assert cli("--mapping", M).exit_code == 0
    execute(db, f"UPDATE {M} SET total_xp = 'NaN' WHERE twenty_id = :id", id=bad)
    for rid in (bad, good):
        twenty.update(rid, {"currentRank": "S-1"}, updated_at=ago(1))

    result = cli("--mapping", M)

    assert result.exit_code == 1, result.output
    errors = _errors(result)
    assert ("pull", bad, "total_xp is NaN, which the remote cannot hold") in errors
    assert {stage for stage, record, _ in errors if record == bad} == {"pull", "push"}
    assert len(errors) == 2
    ranks = {str(r["twenty_id"]): r["current_rank"] for r in rows(db, M)}
    assert ranks == {bad: "E-1", good: "S-1"}
    assert ("pull", bad, False) in _failures(db)  # not dead-lettered at its first attempt


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        (M, "last_activity_date", "infinity"),
        (M, "last_activity_date", "-infinity"),
        ("leads", "claimed_at", "infinity"),
    ],
)
def test_push__a_time_at_infinity_fails_its_record_alone(
    airtable: AirtableEmulator,
    twenty: TwentyEmulator,
    db: sa.Engine,
    cli: Any,
    table: str,
    column: str,
    value: str,
) -> None:
    seed_progressions(twenty, 2)
    seed_leads(airtable, 2)
    assert cli().exit_code == 0
    execute(db, f"UPDATE {table} SET {column} = :v WHERE id = 1", v=value)
    execute(db, "UPDATE leads SET notes = 'Called.' WHERE id = 2")
    execute(db, f"UPDATE {M} SET name = 'Renamed' WHERE id = 2")

    result = cli()

    assert result.exit_code == 1, result.output
    ((stage, record, message),) = _errors(result)
    key = "airtable_record_id" if table == "leads" else "twenty_id"
    assert (stage, record) == ("push", _remote_id(db, table, key))
    assert message == f"{column} is {value}, which the remote cannot hold"
    assert {r["fields"].get("Notes") for r in airtable.records("Leads")} >= {"Called."}
    assert "Renamed" in {r["name"] for r in twenty.records()}


def test_session__is_in_utc_whatever_the_database_zone(
    airtable: AirtableEmulator, db: sa.Engine, database_url: str, cli: Any
) -> None:
    """In Tokyo, 9999-12-31T23:59:59.999Z is written in the year 10000, which psycopg cannot
    read: a session in the database's zone could not read the row at all."""
    (lead,) = seed_leads(airtable, 1)
    name = database_url.partition("?")[0].rsplit("/", 1)[1]
    execute(db, f"ALTER DATABASE {name} SET timezone = 'Asia/Tokyo'")
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET claimed_at = '9999-12-31T23:59:59.999Z'")

    result = cli()

    assert result.exit_code == 0, result.output
    assert result.mapping("leads")["push"]["updated"] == 1
    fields = (airtable.get("Leads", lead) or {})["fields"]
    assert fields["Claimed At"] == "9999-12-31T23:59:59.999Z"


def test_push__a_moment_before_the_year_1000_is_sent_with_a_four_digit_year(
    airtable: AirtableEmulator, db: sa.Engine, cli: Any
) -> None:
    (lead,) = seed_leads(airtable, 1)
    assert cli().exit_code == 0
    execute(db, "UPDATE leads SET claimed_at = '0001-01-01T00:00:00Z'")

    result = cli()

    assert result.exit_code == 0, result.output
    (sent,) = [r.body["records"][0]["fields"] for r in airtable.requests if r.method == "PATCH"]
    assert "0001-01-01T00:00:00.000Z" in sent.values()
    fields = (airtable.get("Leads", lead) or {})["fields"]
    assert fields["Claimed At"] == "0001-01-01T00:00:00.000Z"


def test_date_column__early_years_are_sent_in_four_digits_and_infinity_fails_alone(
    airtable: AirtableEmulator, db: sa.Engine, cli: Any, tmp_path: Path
) -> None:
    config = dated_events(airtable, db, tmp_path)
    early = airtable.create("Events", {"Title": "Early", "Day": "2024-02-29"}, modified_at=ago(5))
    never = airtable.create("Events", {"Title": "Never", "Day": "2024-03-01"}, modified_at=ago(5))
    run = ("--config", str(config), "--mapping", "events")
    assert cli(*run).exit_code == 0
    execute(db, "UPDATE events SET day = '0001-01-01' WHERE title = 'Early'")
    execute(db, "UPDATE events SET day = 'infinity' WHERE title = 'Never'")

    result = cli(*run)

    assert result.exit_code == 1, result.output
    assert _errors(result) == [
        ("push", never["id"], "day is infinity, which the remote cannot hold")
    ]
    assert (airtable.get("Events", early["id"]) or {})["fields"]["Day"] == "0001-01-01"
    assert [r["day"] for r in rows(db, "events", "title = 'Early'")] == [date(1, 1, 1)]


def test_pull__empty_text_from_twenty_is_null_locally(
    twenty: TwentyEmulator, db: sa.Engine, cli: Any
) -> None:
    """Twenty spells an empty text field ``""``; Postgres holds NULL, as for Airtable."""
    (rid,) = seed_progressions(twenty, 1)
    twenty.update(rid, {"currentRank": ""}, updated_at=ago(4), stored=True)  # an older write

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    assert [r["current_rank"] for r in rows(db, M)] == [None]


def test_push__empty_text_clears_the_twenty_field_once(
    twenty: TwentyEmulator, db: sa.Engine, cli: Any
) -> None:
    """A local '' is the empty value: it goes out as null (never as "", which current Twenty
    servers would store as null anyway, ``transformTextField``), and the next run neither pulls
    the null back over the row nor sends anything again."""
    (rid,) = seed_progressions(twenty, 1)
    twenty.update(rid, {"currentRank": "Gold"}, updated_at=ago(4))
    assert cli("--mapping", M).exit_code == 0
    execute(db, f"UPDATE {M} SET current_rank = ''")
    twenty.reset_log()

    pushed = cli("--mapping", M)

    assert pushed.exit_code == 0, pushed.output
    assert pushed.mapping(M)["push"]["updated"] == 1
    ((sent,),) = [r.body for r in twenty_writes(twenty)]
    assert "currentRank" in sent and sent["currentRank"] is None
    twenty.reset_log()
    after = cli("--mapping", M)
    assert after.exit_code == 0, after.output
    assert after.mapping(M)["pull"]["updated"] == 0
    assert after.mapping(M)["push"]["updated"] == 0
    assert twenty_writes(twenty) == []
    assert [r["current_rank"] for r in rows(db, M)] == [""]


def test_push__a_json_column_set_to_null_clears_the_twenty_field(
    twenty: TwentyEmulator, db: sa.Engine, cli: Any
) -> None:
    (rid,) = seed_progressions(twenty, 1)
    assert cli("--mapping", M).exit_code == 0
    execute(db, f"UPDATE {M} SET badges = NULL")
    twenty.reset_log()

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    ((sent,),) = [r.body for r in twenty_writes(twenty)]
    assert "badges" in sent and sent["badges"] is None  # null, not the text "null"
    assert (twenty.get(rid) or {})["badges"] is None


# -- an empty list ------------------------------------------------------------------------------


def _tags(db: sa.Engine, table: str) -> list[str]:
    """Each row's ``tags`` as Postgres prints it (SQL NULL as None, JSON's null as 'null')."""
    with db.connect() as conn:
        found = conn.execute(sa.text(f"SELECT tags::text FROM {table} ORDER BY id"))
        return [r[0] for r in found]


def _tags_mapping(airtable: AirtableEmulator, db: sa.Engine, tmp_path: Path) -> tuple[str, ...]:
    """A multiple select ``Tags`` in Airtable's leads, mapped to a ``tags jsonb`` column; the
    arguments of a run of that mapping."""
    airtable.add_field("Leads", "Tags", "multipleSelects", {"choices": [{"name": "A"}]})
    execute(db, "ALTER TABLE leads ADD COLUMN tags jsonb")
    config = tmp_path / "tags.toml"
    config.write_text(
        "[mappings.leads]\nfields = [{ remote = 'First Name', column = 'first_name' },\n"
        "  { remote = 'Tags', column = 'tags', kind = 'json', direction = 'both' }]\n"
    )
    return ("--config", str(config), "--mapping", "leads")


def test_json_empty_list__airtable_leaves_it_out_and_it_is_the_empty_value(
    airtable: AirtableEmulator, db: sa.Engine, cli: Any, tmp_path: Path
) -> None:
    """Airtable leaves an empty list out of a record, as it does "" and false: an
    application's '[]' is the empty value. Set on a tagged record's row, it clears the field;
    on an untagged one, nothing is sent; and the run after brings nothing back (it used to
    report both records updated remotely and rewrite '[]' as null)."""
    run = _tags_mapping(airtable, db, tmp_path)
    tagged, _ = seed_leads(airtable, 2)
    airtable.update("Leads", tagged, {"Tags": ["A"]}, modified_at=ago(4))
    assert cli(*run).exit_code == 0
    execute(db, "UPDATE leads SET tags = '[]'")

    pushed = cli(*run)

    assert pushed.exit_code == 0, pushed.output
    assert pushed.mapping("leads")["push"]["updated"] == 1
    assert "Tags" not in (airtable.get("Leads", tagged) or {})["fields"]
    airtable.reset_log()
    after = cli(*run)
    assert after.mapping("leads")["pull"]["updated"] == 0
    assert airtable_writes(airtable) == 0
    assert _tags(db, "leads") == ["[]", "[]"]


def test_json_empty_list__a_sync_state_that_kept_one_before_sees_no_change(
    airtable: AirtableEmulator, db: sa.Engine, cli: Any, tmp_path: Path
) -> None:
    """A sync state written when an empty list was still a value keeps ``[]`` in its shadow.
    The row's '[]' and the record's missing tags (edited since) both moved from it to the same
    empty value: neither side is written, and the row keeps its '[]'."""
    run = _tags_mapping(airtable, db, tmp_path)
    (tagged,) = seed_leads(airtable, 1)
    airtable.update("Leads", tagged, {"Tags": ["A"]}, modified_at=ago(4))
    assert cli(*run).exit_code == 0
    execute(db, "UPDATE leads SET tags = '[]'")
    execute(db, "UPDATE reconciler.sync_state SET shadow = '{\"tags\": []}'")
    execute(db, "UPDATE reconciler.sync_state s SET local_updated_at = l.updated_at FROM leads l")
    airtable.update("Leads", tagged, {"Tags": None, "First Name": "Ann"}, modified_at=ago(1))
    airtable.reset_log()

    result = cli(*run)

    assert result.exit_code == 0, result.output
    assert result.mapping("leads")["push"]["updated"] == 0
    assert airtable_writes(airtable) == 0
    assert _tags(db, "leads") == ["[]"]


def _twenty_json(
    twenty: TwentyEmulator, db: sa.Engine, tmp_path: Path, field: str, ftype: str
) -> tuple[str, ...]:
    """A Twenty field ``field`` of type ``ftype`` on repProgressions, mapped to a jsonb column
    of the same name; the arguments of a run of that mapping."""
    twenty.add_field(field, ftype)
    execute(db, f"ALTER TABLE {M} ADD COLUMN {field} jsonb")
    config = tmp_path / f"{field}.toml"
    config.write_text(
        f"[mappings.{M}]\nfields = [{{ remote = 'name', column = 'name' }},\n"
        f"  {{ remote = '{field}', column = '{field}', kind = 'json', direction = 'both' }}]\n"
    )
    return ("--config", str(config), "--mapping", M)


def _column_text(db: sa.Engine, column: str) -> list[str | None]:
    """Each row's ``column`` as Postgres prints it."""
    with db.connect() as conn:
        found = conn.execute(sa.text(f"SELECT {column}::text FROM {M} ORDER BY id"))
        return [r[0] for r in found]


@pytest.mark.parametrize(
    ("ftype", "value", "empty"),
    [
        ("ARRAY", ["vip"], "[]"),
        ("RAW_JSON", {"theme": "dark"}, "{}"),
        ("RAW_JSON", {"theme": "dark"}, "[]"),
    ],
)
def test_json_empty__twenty_stores_it_as_null_and_it_is_the_empty_value(
    twenty: TwentyEmulator,
    db: sa.Engine,
    cli: Any,
    tmp_path: Path,
    ftype: str,
    value: Any,
    empty: str,
) -> None:
    """Twenty stores an empty ARRAY (or MULTI_SELECT) as null (``transformArrayField``), and an
    empty object or list in a RAW_JSON field (``transformRawJsonField``): the pushed empty value
    comes back as null, which is the same empty value, so the next run neither reports a remote
    update nor rewrites the row."""
    run = _twenty_json(twenty, db, tmp_path, "extra", ftype)
    (rid,) = seed_progressions(twenty, 1)
    twenty.update(rid, {"extra": value}, updated_at=ago(4))
    assert cli(*run).exit_code == 0
    assert _column_text(db, "extra") == [json.dumps(value)]
    execute(db, f"UPDATE {M} SET extra = '{empty}'")

    pushed = cli(*run)

    assert pushed.exit_code == 0, pushed.output
    assert pushed.mapping(M)["push"]["updated"] == 1
    assert (twenty.get(rid) or {})["extra"] is None
    twenty.reset_log()
    after = cli(*run)
    assert after.exit_code == 0, after.output
    assert after.mapping(M)["pull"]["updated"] == 0
    assert twenty_writes(twenty) == []
    assert _column_text(db, "extra") == [empty]


@pytest.mark.parametrize(
    ("ftype", "held", "key", "written"),
    [
        (
            "EMAILS",
            {"primaryEmail": "Ann@X.test", "additionalEmails": None},
            "primaryEmail",
            "ann@x.test",
        ),
        (
            "LINKS",
            {"primaryLinkUrl": "HTTPS://Example.com/Team/", "primaryLinkLabel": "Team"},
            "primaryLinkUrl",
            "https://example.com/Team",
        ),
    ],
)
def test_composite_twenty_rewrites__the_value_settles_in_one_run(
    twenty: TwentyEmulator,
    db: sa.Engine,
    cli: Any,
    tmp_path: Path,
    ftype: str,
    held: dict[str, Any],
    key: str,
    written: str,
) -> None:
    """Twenty writes some composite values in a form of its own: an EMAILS value's addresses
    lower-cased (``transformEmailsValue``), a LINKS value's URLs with the origin lower-cased and
    no trailing slash (``transformLinksValue``). A json column holding another form is sent
    once, the next run takes the server's form into the row (the change log shows it) without
    sending anything back, and the run after that finds nothing to do: no loop between the two
    spellings."""
    run = _twenty_json(twenty, db, tmp_path, "extra", ftype)
    (rid,) = seed_progressions(twenty, 1)
    assert cli(*run).exit_code == 0
    execute(db, f"UPDATE {M} SET extra = CAST(:v AS jsonb)", v=json.dumps(held))

    pushed = cli(*run)

    assert pushed.exit_code == 0, pushed.output
    assert pushed.mapping(M)["push"]["updated"] == 1
    assert (twenty.get(rid) or {})["extra"][key] == written
    twenty.reset_log()
    settled = cli(*run)
    assert settled.exit_code == 0, settled.output
    assert twenty_writes(twenty) == []
    with db.connect() as conn:
        now = conn.execute(sa.text(f"SELECT extra->>'{key}' FROM {M}")).scalar_one()
    assert now == written
    quiet = cli(*run)
    assert quiet.mapping(M)["pull"]["updated"] == 0
    assert quiet.mapping(M)["push"]["updated"] == 0
    assert twenty_writes(twenty) == []
