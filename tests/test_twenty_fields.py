"""Twenty fields verified before a run reads or writes anything: a missing field or object, or a
type that cannot hold the mapping's kind, stops the mapping (exit 3) with no row changed; the
data model is read once and kept a day; a key that may not read it syncs unverified."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from reconciler.emulators.twenty import TwentyEmulator, metadata
from tests.helpers import (
    TWENTY_MODEL,
    execute,
    rows,
    seed_progressions,
    twenty_model_reads,
    twenty_reads,
    twenty_writes,
)
from tests.processes import scalar

Cli = Callable[..., Any]
M = "rep_progressions"
M_PATH = "/rest/repProgressions"


def _config(tmp_path: Path, fields: str) -> str:
    path = tmp_path / "fields.toml"
    path.write_text(f"[mappings.{M}]\nfields = [{fields}]\n")
    return str(path)


def _kept_schema(db: sa.Engine) -> Any:
    return scalar(db, f"SELECT schema FROM reconciler.remote_state WHERE mapping = '{M}'")


def _age_kept_schema(db: sa.Engine, hours: int) -> None:
    """Pretend the kept schema was read ``hours`` ago."""
    execute(
        db,
        "UPDATE reconciler.remote_state SET schema = jsonb_set(schema, '{fetched_at}', "
        "to_jsonb(to_char((now() - make_interval(hours => :h)) AT TIME ZONE 'UTC', "
        '\'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"\'))) WHERE mapping = :m',
        h=hours,
        m=M,
    )


def _synced(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli, count: int = 4
) -> list[dict[str, Any]]:
    """``count`` records pulled by a first run; the local rows as they then are."""
    seed_progressions(twenty, count)
    assert cli("--mapping", M).exit_code == 0
    twenty.reset_log()
    return rows(db, M)


def _stopped(result: Any) -> str:
    """The one mapping-level error of a run that stopped the mapping."""
    assert result.exit_code == 3, result.output
    (error,) = result.report["errors"]
    assert error["mapping"] == M and error["record"] is None
    assert "\n" not in error["message"] and "Traceback" not in result.output
    return str(error["message"])


def test_misspelled_field__stops_the_mapping_before_any_row_changes(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli, tmp_path: Path
) -> None:
    """A record lacks the unknown key: read as null, it would clear the column on every row."""
    before = _synced(twenty, db, cli)
    config = _config(
        tmp_path, '{ remote = "currentRankk", column = "current_rank", direction = "both" }'
    )

    result = cli("--config", config, "--mapping", M, "--full")

    message = _stopped(result)
    assert "Twenty object 'repProgressions' has no field 'currentRankk'" in message
    assert "fix the mapping's `remote`, or add the field in Twenty" in message
    assert "`reconcile check` lists what is wrong" in message
    assert rows(db, M) == before  # current_rank and updated_at alike
    assert {r["current_rank"] for r in before} == {"E-1", "E-2", "E-3", "E-4"}
    assert twenty_model_reads(twenty) == 1
    assert twenty_reads(twenty) == [] and twenty_writes(twenty) == []  # nothing read or written


def test_misspelled_field__a_pending_local_edit_is_not_pushed(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli, tmp_path: Path
) -> None:
    before = _synced(twenty, db, cli)
    execute(db, "UPDATE rep_progressions SET current_rank = 'E-9' WHERE id = 1")
    config = _config(
        tmp_path, '{ remote = "currentRankk", column = "current_rank", direction = "both" }'
    )

    result = cli("--config", config, "--mapping", M, "--stage", "push")

    assert "has no field 'currentRankk'" in _stopped(result)
    assert twenty_writes(twenty) == []
    assert [r["current_rank"] for r in rows(db, M)] == [
        "E-9",
        *(r["current_rank"] for r in before[1:]),
    ]


def test_wrong_type__stops_the_mapping_naming_the_field_and_the_fix(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli, tmp_path: Path
) -> None:
    before = _synced(twenty, db, cli)
    twenty.add_field("xpLabel", "TEXT")
    config = _config(tmp_path, '{ remote = "xpLabel", column = "total_xp" }')

    result = cli("--config", config, "--mapping", M, "--full")

    message = _stopped(result)
    assert message.startswith(
        "Twenty object 'repProgressions' has fields whose type does not fit the mapping: "
        "'xpLabel' is TEXT, mapped as number (needs NUMBER)"
    )
    assert "change the field's type in Twenty, or its `kind` in the mapping config" in message
    assert rows(db, M) == before
    assert twenty_reads(twenty) == [] and twenty_writes(twenty) == []


def test_missing_object__stops_the_mapping_naming_the_object(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli, tmp_path: Path
) -> None:
    before = _synced(twenty, db, cli)
    config = tmp_path / "object.toml"
    config.write_text(f'[mappings.{M}]\ntable = "repProgression"\n')

    result = cli("--config", str(config), "--mapping", M)

    message = _stopped(result)
    assert "Twenty has no object 'repProgression' (custom objects: 'repProgressions')" in message
    assert "fix `table` in the mapping config" in message
    assert rows(db, M) == before


def test_missing_object__the_message_names_custom_objects_only(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli, tmp_path: Path
) -> None:
    """Twenty's standard objects (people, companies …) are no candidates for a misspelled
    custom object's name."""
    objects = [metadata.object_dto(spec) for spec in twenty.store.objects.values()]
    standard = {**metadata.object_dto(next(iter(twenty.store.objects.values()))), "id": "p1"}
    standard.update(nameSingular="person", namePlural="people", isCustom=False)
    body = json.dumps({"data": [standard, *objects], "pageInfo": {"hasNextPage": False}})
    twenty.faults.raw(200, body, content_type="application/json", path=TWENTY_MODEL)
    config = tmp_path / "object.toml"
    config.write_text(f'[mappings.{M}]\ntable = "repProgression"\n')

    result = cli("--config", str(config), "--mapping", M)

    message = _stopped(result)
    assert "Twenty has no object 'repProgression' (custom objects: 'repProgressions'):" in message
    assert "'people'" not in message


def test_missing_object__many_custom_objects_are_named_ten_and_counted(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli, tmp_path: Path
) -> None:
    for i in range(11):
        twenty.add_object(f"extra{i:02}", f"extras{i:02}", {"title": "TEXT"})
    config = tmp_path / "object.toml"
    config.write_text(f'[mappings.{M}]\ntable = "repProgression"\n')

    result = cli("--config", str(config), "--mapping", M)

    message = _stopped(result)
    (listed,) = [part for part in message.split("(") if part.startswith("custom objects: ")]
    assert listed.count("'") == 20  # ten names of twelve
    assert " and 2 more): fix `table` in the mapping config" in message


# Servers before the ``fields`` parameter answer records without the fields the key's role may
# not read; current ones refuse a read that names one (the tool names every field it reads).
SERVERS = pytest.mark.parametrize(
    ("selects_fields", "said"),
    [
        (True, "Twenty refuses to read {} of repProgressions records"),
        (False, "Twenty sends repProgressions records without {}"),
    ],
    ids=["current", "before-fields"],
)


@SERVERS
def test_unreadable_field__stops_the_mapping_before_any_row_changes(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli, selects_fields: bool, said: str
) -> None:
    """A field the key's role may not read is left out of every record Twenty sends while the
    data model still lists it: read as empty, it would clear the column on every row edited in
    Twenty. The mapping stops on the first such record (or refused read), naming the field and
    the fix."""
    twenty.selects_fields = selects_fields
    before = _synced(twenty, db, cli)
    edited = twenty.records()[0]
    twenty.update(edited["id"], {"name": "Renamed in Twenty"})
    twenty.unreadable_fields = frozenset({"currentRank"})

    result = cli("--mapping", M)

    message = _stopped(result)
    assert said.format("currentRank") + ":" in message
    assert "this API key's role may not read them, or they were renamed or deleted" in message
    assert rows(db, M) == before  # current_rank and the edited name alike
    assert twenty_writes(twenty) == []


@SERVERS
def test_unreadable_field__a_push_only_run_stops_before_writing(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli, selects_fields: bool, said: str
) -> None:
    """A push reads the records it writes first: it finds the field missing there."""
    twenty.selects_fields = selects_fields
    _synced(twenty, db, cli)
    execute(db, "UPDATE rep_progressions SET streak_days = 99 WHERE id = 1")
    twenty.unreadable_fields = frozenset({"currentRank", "badges"})

    result = cli("--mapping", M, "--stage", "push")

    assert said.format("currentRank, badges") + ":" in _stopped(result)
    assert twenty_writes(twenty) == []


def test_wide_object__mapped_fields_past_the_default_cap_are_read(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli
) -> None:
    """A current server answers a read that names no fields of an object with more than 200
    readable fields with 200 of them, system fields first, then by name: the mapped fields
    that sort after 200 others would come missing from every record. The tool names the fields
    it reads, so the object's width does not matter, and the answers carry nothing else."""
    for number in range(200):
        twenty.add_field(f"a{number:03}", "TEXT")
    (made,) = seed_progressions(twenty, 1)

    result = cli("--mapping", M)
    reads = twenty_reads(twenty)
    unnamed = httpx.get(  # what a read that names no fields answers
        twenty.url + M_PATH, headers={"Authorization": f"Bearer {twenty.token}"}
    )

    assert result.exit_code == 0, result.output
    (row,) = rows(db, M)
    assert str(row["twenty_id"]) == made and row["total_xp"] == twenty.get(made)["totalXp"]
    assert reads and all("a000" not in read.query["fields"][0] for read in reads)
    assert "X-Twenty-Fields-Capped" in unnamed.headers
    (capped,) = unnamed.json()["data"]["repProgressions"]
    assert "a000" in capped and "totalXp" not in capped and len(capped) == 200


def test_system_field_refused__it_is_left_out_and_the_read_sent_again(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli
) -> None:
    """Some standard objects have no ``position``, and a key's role may be denied a system
    field: a current server refuses a read naming it. Not a mapped field, it is left out of
    the reads and writes that follow, after one refused request."""
    (made,) = seed_progressions(twenty, 1)
    twenty.unreadable_fields = frozenset({"position"})
    assert cli("--mapping", M).exit_code == 0
    execute(db, "UPDATE rep_progressions SET streak_days = 99")
    twenty.reset_log()

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    assert twenty.get(made)["streakDays"] == 99
    refused = [r for r in twenty.requests if r.status == 400]
    assert len(refused) == 1
    later = twenty.requests[twenty.requests.index(refused[0]) + 1 :]
    assert later and all("position" not in r.query["fields"][0].split(",") for r in later)
    assert all(r.status < 300 for r in later)


def test_fields_parameter_refused__reads_and_writes_go_on_without_it(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli
) -> None:
    """The shared docs list no ``fields`` parameter, and a server or proxy that checks the
    parameters it takes may refuse it. The request is sent once more without it; when that goes
    through, the run's reads and writes name no fields (the server then answers every field),
    also those sent at once with the refused one, and ``check`` passes the same way."""
    made = seed_progressions(twenty, 450)  # three pages; a push reads them at once
    refusal = {
        "statusCode": 400,
        "error": "BadRequestException",
        "messages": ["Unknown query parameter: fields"],
    }
    twenty.faults.fail(400, times=10_000, body=refusal, param="fields")

    pulled = cli("--mapping", M)
    execute(db, "UPDATE rep_progressions SET streak_days = 99")
    twenty.reset_log()
    pushed = cli("--mapping", M, "--stage", "push")
    push_requests = list(twenty.requests)
    checked = cli("check")

    assert pulled.exit_code == 0, pulled.output
    assert pushed.exit_code == 0, pushed.output
    assert checked.exit_code == 0, checked.output
    assert sorted(str(r["twenty_id"]) for r in rows(db, M)) == sorted(made)
    assert all(twenty.get(i)["streakDays"] == 99 for i in made)
    assert pushed.report["mappings"][0]["push"]["updated"] == 450
    refused = [r for r in push_requests if r.status == 400]
    assert 1 <= len(refused) <= 3 and all("fields" in r.query for r in refused)
    assert all("fields" not in r.query for r in push_requests if r.status != 400)


def test_fields_parameter_doubted__a_read_refused_without_it_too_stops_as_refused(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli
) -> None:
    """A refusal that speaks of ``fields`` but stands without the parameter too was not of
    it: the mapping stops on the first refusal, after one request more."""
    seed_progressions(twenty, 1)
    refusal = {"statusCode": 400, "error": "BadRequestException", "messages": ["Bad fields"]}
    twenty.faults.fail(400, times=10_000, body=refusal, method="GET", path=M_PATH)

    message = _stopped(cli("--mapping", M))

    assert "Twenty refused the listing" in message and "Bad fields" in message
    first, second = twenty_reads(twenty)
    assert "fields" in first.query and "fields" not in second.query
    assert rows(db, M) == []


def test_check__a_field_a_current_server_refuses_to_read_fails_naming_it(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli
) -> None:
    seed_progressions(twenty, 1)
    twenty.unreadable_fields = frozenset({"badges"})

    result = cli("check")

    assert result.exit_code == 2, result.output
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("✗ twenty fields of")]
    assert "records come without 'badges': this API key's role may not read them" in line


def test_kept_schema__a_second_run_within_a_day_reads_no_data_model(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli
) -> None:
    seed_progressions(twenty, 3)
    first = cli("--mapping", M)
    assert first.exit_code == 0, first.output
    assert twenty_model_reads(twenty) == 1
    kept = _kept_schema(db)
    assert kept["object"] == "repProgressions" and kept["fields"]["currentRank"] == "TEXT"
    assert kept["fields"]["updatedAt"] == "DATE_TIME"
    twenty.reset_log()

    second = cli("--mapping", M)

    assert second.exit_code == 0, second.output
    assert twenty_model_reads(twenty) == 0
    assert len(twenty.requests) == 1 == second.mapping(M)["api"]["requests"]  # the listing


def test_kept_schema__older_than_a_day_is_read_again_and_kept_anew(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli
) -> None:
    _synced(twenty, db, cli, 2)
    _age_kept_schema(db, hours=25)
    aged = _kept_schema(db)["fetched_at"]

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    assert twenty_model_reads(twenty) == 1
    assert _kept_schema(db)["fetched_at"] > aged
    twenty.reset_log()
    assert cli("--mapping", M).exit_code == 0 and twenty_model_reads(twenty) == 0


def test_kept_schema__stamped_in_the_future_is_read_again(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli
) -> None:
    """A schema kept before this host's clock was set back is of unknown age."""
    _synced(twenty, db, cli, 2)
    _age_kept_schema(db, hours=-2)

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    assert twenty_model_reads(twenty) == 1


def test_kept_schema__a_field_it_lacks_is_looked_up_at_once(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli, tmp_path: Path
) -> None:
    """A field added in Twenty and to the config the same day needs no day's wait."""
    _synced(twenty, db, cli, 2)
    twenty.add_field("rankTitle", "TEXT")
    config = _config(tmp_path, '{ remote = "rankTitle", column = "current_rank" }')

    result = cli("--config", config, "--mapping", M)

    assert result.exit_code == 0, result.output
    assert twenty_model_reads(twenty) == 1
    assert _kept_schema(db)["fields"]["rankTitle"] == "TEXT"


def test_kept_schema__a_kind_it_does_not_fit_is_looked_up_and_stops_the_mapping(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli, tmp_path: Path
) -> None:
    """A config changed the same day to a kind the kept field's type cannot hold: the data
    model is read again (it may have been changed to fit) before the mapping is stopped. (Only
    pulled: the local text column could not hold a pushed number, which stops it first.)"""
    before = _synced(twenty, db, cli, 2)
    config = _config(
        tmp_path,
        '{ remote = "currentRank", column = "current_rank", kind = "number", direction = "pull" }',
    )

    result = cli("--config", config, "--mapping", M)

    message = _stopped(result)
    assert "'currentRank' is TEXT, mapped as number (needs NUMBER)" in message
    assert twenty_model_reads(twenty) == 1
    assert rows(db, M) == before
    assert twenty_reads(twenty) == [] and twenty_writes(twenty) == []


def test_kept_schema__of_another_server_is_not_used(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli
) -> None:
    """After TWENTY_API_URL points elsewhere, the schema kept of the former server does not
    stand for the new one's data model."""
    _synced(twenty, db, cli, 2)
    execute(
        db,
        "UPDATE reconciler.remote_state SET schema = jsonb_set(schema, '{api_url}', "
        "'\"https://twenty.example.com\"') WHERE mapping = :m",
        m=M,
    )

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    assert twenty_model_reads(twenty) == 1
    assert _kept_schema(db)["api_url"] != "https://twenty.example.com"


@pytest.mark.parametrize("status", [403, 400, 404])
def test_data_model_unread__the_run_goes_on_unverified_and_asks_once_a_day(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli, status: int
) -> None:
    """The records still say what they lack, so the mapping syncs unverified when the data
    model says nothing: a key whose role may not read it (403), a server without the REST
    data-model controller, whose path falls to the records' routes as an unknown object (400),
    a proxy passing only the records' routes (404)."""
    if status == 403:
        twenty.metadata_forbidden = True
    elif status == 400:
        twenty.serves_metadata = False
    else:
        twenty.faults.fail(404, times=5, path="/rest/metadata/objects")
    seed_progressions(twenty, 3)

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    assert result.mapping(M)["pull"]["inserted"] == 3 and result.report["errors"] == []
    assert twenty.count("GET", "/rest/metadata/objects", status=status) == 1
    assert _kept_schema(db)["fields"] is None
    twenty.reset_log()
    assert cli("--mapping", M).exit_code == 0 and twenty_model_reads(twenty) == 0


def test_data_model_not_served__records_without_a_mapped_field_still_stop_the_mapping(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli, tmp_path: Path
) -> None:
    twenty.serves_metadata = False
    seed_progressions(twenty, 2)
    config = _config(tmp_path, '{ remote = "nickname", column = "name" }')

    message = _stopped(cli("--mapping", M, "--config", config))

    assert "Twenty refuses to read nickname of repProgressions records" in message
    assert rows(db, M) == []


def test_data_model_unavailable__retried_like_any_request_then_a_mapping_error(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli
) -> None:
    seed_progressions(twenty, 2)
    twenty.faults.fail(503, times=2, path="/rest/metadata/objects")

    result = cli("--mapping", M)

    assert result.exit_code == 0, result.output
    assert twenty_model_reads(twenty) == 3 and result.mapping(M)["api"]["retries"] == 2
    assert len(rows(db, M)) == 2
    execute(db, "TRUNCATE reconciler.remote_state")
    twenty.faults.fail(503, times=50, path="/rest/metadata/objects")
    twenty.reset_log()

    failed = cli("--mapping", M)

    assert "Twenty kept failing after retries" in _stopped(failed)
    assert twenty_reads(twenty) == []


def test_data_model_without_system_fields__the_mapping_runs_and_checks(
    twenty: TwentyEmulator, db: sa.Engine, cli: Cli
) -> None:
    """Every record has ``updatedAt`` (and ``id``, ``createdAt`` …) whether or not the data model
    lists them beside the object's own fields: a user could not add them."""
    objects = [metadata.object_dto(spec) for spec in twenty.store.objects.values()]
    for dto in objects:
        dto["fields"] = [f for f in dto["fields"] if not f["isSystem"]]
        assert "updatedAt" not in {f["name"] for f in dto["fields"]}
    body = json.dumps({"data": objects, "pageInfo": {"hasNextPage": False}})
    seed_progressions(twenty, 3)
    for _ in range(2):
        twenty.faults.raw(200, body, content_type="application/json", path=TWENTY_MODEL)

    checked = cli("check")
    result = cli("--mapping", M)

    assert checked.exit_code == 0, checked.output
    assert "✓ twenty fields of rep_progressions" in checked.stdout
    assert result.exit_code == 0, result.output
    assert result.mapping(M)["pull"]["inserted"] == 3 and result.report["errors"] == []
    assert twenty_model_reads(twenty) == 2
