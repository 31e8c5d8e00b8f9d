"""`reconcile check`: one line per check, a mark, a hint on failure, and a meaningful exit code."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest


def _lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def _failed(output: str) -> list[str]:
    return [line for line in _lines(output) if line.startswith("✗")]


def _contacts_config(folder: Path) -> Path:
    """A config file (written in ``folder``) adding a mapping of Airtable's ``Contacts`` table,
    its ``Name`` field only."""
    config = folder / "config.toml"
    config.write_text(
        "[mappings.contacts]\nremote = 'airtable'\ntable = 'Contacts'\n"
        "local_table = 'contacts'\nkey_column = 'airtable_record_id'\n"
        "fields = [{ remote = 'Name', column = 'name' }]\n"
    )
    return config


def _one_failure(cli: Any) -> tuple[Any, str]:
    """Run ``check``, which must exit 3 with exactly one failed line: the result and that line."""
    result = cli("check")
    assert result.exit_code == 3, result.output
    (line,) = _failed(result.stdout)
    return result, line


def test_check__passes_against_both_emulators(airtable, twenty, database_url, cli) -> None:
    result = cli("check")
    assert result.exit_code == 0, result.output
    lines = _lines(result.stdout)
    assert lines and all(line.startswith("✓ ") for line in lines), result.stdout
    names = "\n".join(lines)
    for expected in (
        "configuration",
        "credentials for leads (airtable)",
        "credentials for rep_progressions (twenty)",
        "database reachable and migrated",
        "local table leads",
        "local table rep_progressions",
        "airtable reachable and token accepted",
        "airtable fields of leads (table Leads)",
        "twenty reachable and API key accepted",
        "twenty fields of rep_progressions (object repProgressions)",
    ):
        assert expected in names, names
    assert airtable.count("GET", "/v0/meta/bases/") == 1
    assert twenty.count("GET", "/rest/metadata/objects") == 1
    assert airtable.token not in result.output and twenty.token not in result.output


def test_check__one_remote_configured_passes_and_names_the_other(airtable, database_url, cli):
    # Runs skip a mapping without credentials while another can run: check says so, and passes.
    result = cli("check")
    assert result.exit_code == 0, result.output
    assert _failed(result.stdout) == []
    assert (
        "! credentials for rep_progressions (twenty): not configured (no TWENTY_API_KEY): runs "
        "skip this mapping — hint: set TWENTY_API_KEY to sync it" in result.stdout
    ), result.stdout
    assert "airtable fields of leads (table Leads)" in result.stdout
    assert "twenty reachable" not in result.stdout  # nothing is asked of a skipped mapping


def test_check__a_wrong_airtable_token_names_airtable_token(
    airtable, twenty, database_url, cli, monkeypatch
) -> None:
    monkeypatch.setenv("AIRTABLE_TOKEN", "not-the-token")
    result, line = _one_failure(cli)
    assert line.startswith("✗ airtable reachable and token accepted: token refused (401)")
    assert "hint: check AIRTABLE_TOKEN" in line
    assert "not-the-token" not in result.output
    assert "airtable fields" not in result.stdout  # nothing to compare without the schema


def test_check__a_mapped_airtable_field_missing_is_named(
    airtable, database_url, cli, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[mappings.leads]\nfields = [{ column = "notes", remote = "Lead Notes" }]\n')
    result = cli("check", "--config", str(config))
    assert result.exit_code == 2, result.output
    failed = _failed(result.stdout)
    assert failed[-1].startswith(
        "✗ airtable fields of leads (table Leads): missing field(s) 'Lead Notes'"
    ), result.stdout
    assert "hint: add the fields in Airtable" in failed[-1]


def test_check__a_modified_time_field_of_another_type_fails(
    airtable, database_url, cli, tmp_path: Path
) -> None:
    airtable.add_table("Contacts", {"Name": "singleLineText", "lastModifiedTime": "singleLineText"})
    config = _contacts_config(tmp_path)
    result = cli("check", "--config", str(config))
    assert result.exit_code == 2, result.output
    (line,) = [x for x in _failed(result.stdout) if "airtable modified field of contacts" in x]
    assert "'lastModifiedTime' is a singleLineText field, not a last modified time" in line
    assert any("local table contacts" in x for x in _failed(result.stdout))


def test_check__a_missing_twenty_field_is_named(twenty, database_url, cli, tmp_path) -> None:
    twenty.add_object("trophy", "trophies", {"title": "TEXT"})
    config = tmp_path / "config.toml"
    config.write_text(
        "[mappings.trophies]\nremote = 'twenty'\ntable = 'trophies'\n"
        "local_table = 'trophies'\nkey_column = 'twenty_id'\n"
        "fields = [{ remote = 'title', column = 'title' },\n"
        "  { remote = 'points', column = 'points' }]\n"
    )
    result = cli("check", "--config", str(config))
    assert result.exit_code == 2, result.output
    (line,) = [x for x in _failed(result.stdout) if "twenty fields of trophies" in x]
    assert line.startswith(
        "✗ twenty fields of trophies (object trophies): missing field(s) 'points'"
    ), result.stdout
    assert "hint: add the fields to the object in Twenty" in line


def test_check__an_unmigrated_database_names_reconcile_migrate(
    airtable, twenty, unmigrated_url, cli
) -> None:
    result, line = _one_failure(cli)
    assert line.startswith("✗ database reachable and migrated:")
    assert line.count("reconcile migrate") == 1, line  # said once, not again as the hint
    assert "local table" not in result.stdout


def test_check__missing_credentials_exit_2_naming_the_variables(database_url, cli) -> None:
    result = cli("check")
    assert result.exit_code == 2, result.output
    failed = _failed(result.stdout)
    assert any("leads (airtable): missing AIRTABLE_TOKEN, AIRTABLE_BASE_ID" in x for x in failed)
    assert any("rep_progressions (twenty): missing TWENTY_API_KEY" in x for x in failed)
    assert "reachable" in result.stdout  # the database is still checked


def test_check__an_unreachable_remote_exits_3(
    airtable, twenty, database_url, cli, monkeypatch
) -> None:
    monkeypatch.setenv("TWENTY_API_URL", "http://127.0.0.1:9")
    _, line = _one_failure(cli)
    assert line.startswith("✗ twenty reachable and API key accepted: cannot reach")
    assert "hint: check TWENTY_API_URL" in line


def test_check__a_bad_config_file_is_the_one_failing_line(cli, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[mappings.leads]\nfields = [{ column = 'notes', direction = 'sideways' }]")
    result = cli("check", "--config", str(config))
    assert result.exit_code == 2, result.output
    (line,) = _lines(result.stdout)
    assert line.startswith("✗ configuration: ")
    assert "mappings.leads.fields[0].direction: must be pull, push or both" in line


@pytest.mark.parametrize(("minutes", "says"), [(-25, "25 min ahead of"), (3, "3 min behind")])
def test_check__says_how_each_remotes_clock_compares(
    airtable, twenty, database_url, cli, minutes: int, says: str
) -> None:
    """A few minutes off is a warning (runs place their windows on the remote's clock)."""
    airtable.clock.skew = timedelta(minutes=minutes)
    result = cli("check")
    assert result.exit_code == 0, result.output
    lines = _lines(result.stdout)
    (line,) = [x for x in lines if "airtable clock" in x]
    assert line.startswith(f"! airtable clock: this host is {says} Airtable"), result.stdout
    assert "runs place their windows on Airtable's clock" in line
    assert any(line.startswith("✓ twenty clock: this host's clock agrees") for line in lines)


@pytest.mark.parametrize(
    ("remote", "days", "says"),
    [("twenty", 1, "24 h 0 min behind Twenty"), ("airtable", -1, "24 h 0 min ahead of Airtable")],
)
def test_check__a_clock_too_far_off_fails_with_exit_3(
    airtable, twenty, database_url, cli, remote: str, days: int, says: str
) -> None:
    {"airtable": airtable, "twenty": twenty}[remote].clock.skew = timedelta(days=days)
    _, line = _one_failure(cli)
    assert line.startswith(f"✗ {remote} clock: this host is {says}") and "NTP" in line


@pytest.mark.parametrize("shape", ["list", "objects"])
def test_check__pages_through_twentys_data_model_in_either_shape(
    airtable, twenty, database_url, cli, shape: str
) -> None:
    twenty.metadata_shape = shape
    twenty.metadata_default_limit = 1  # one object a page
    for i in range(3):
        twenty.add_object(f"thing{i}", f"things{i}", {"title": "TEXT"})
    result = cli("check")
    assert result.exit_code == 0, result.output
    assert "✓ twenty fields of rep_progressions (object repProgressions)" in result.stdout
    assert twenty.count("GET", "/rest/metadata/objects") == 4


@pytest.mark.parametrize(
    ("switch", "value", "says"),
    [
        ("metadata_forbidden", True, "cannot read the data model"),  # the key's role: 403
        ("serves_metadata", False, "does not serve its data model at /rest/metadata/objects (400"),
    ],
)
def test_check__a_data_model_the_key_may_not_read_or_the_server_does_not_serve_is_a_warning(
    airtable, twenty, database_url, cli, switch: str, value: bool, says: str
) -> None:
    setattr(twenty, switch, value)
    result = cli("check")
    assert result.exit_code == 0, result.output
    assert "✓ twenty reachable and API key accepted" in result.stdout
    (line,) = [x for x in _lines(result.stdout) if "twenty fields of" in x]
    assert line.startswith("! twenty fields of rep_progressions")
    assert says in line and "refused" not in line
    assert twenty.count("GET", "/rest/repProgressions") == 1  # the records are what it reads


def test_check__an_address_that_serves_no_twenty_route_is_not_reachable(
    airtable, twenty, database_url, cli
) -> None:
    """A data model answered 404 leaves the records to speak: when they are 404 too, the
    address is not a Twenty server's."""
    twenty.faults.fail(404, times=2, method="GET", path="/rest/")
    _, line = _one_failure(cli)
    assert line.startswith("✗ twenty reachable") and "Twenty answered 404" in line, line
    assert "TWENTY_API_URL" in line


def test_check__an_object_missing_where_the_data_model_said_nothing_is_named(
    twenty, database_url, cli, tmp_path
) -> None:
    """Without the data model (the key's role may not read it), the record read is the only
    word on the object: its 400 for an object Twenty does not have fails the check."""
    twenty.metadata_forbidden = True
    config = tmp_path / "config.toml"
    config.write_text(
        "[mappings.trophies]\nremote = 'twenty'\ntable = 'trophies'\n"
        "local_table = 'trophies'\nkey_column = 'twenty_id'\n"
        "fields = [{ remote = 'title', column = 'title' }]\n"
    )
    result = cli("check", "--config", str(config))
    assert result.exit_code != 0, result.output  # (2: the local table is missing too)
    (line,) = [x for x in _lines(result.stdout) if x.startswith("✗ twenty reachable")]
    assert "Twenty answered 400: object 'trophies' not found" in line, line


def test_check__a_key_refused_with_403_everywhere_is_refused(
    airtable, twenty, database_url, cli
) -> None:
    """A bad key answers 401 or 403 depending on Twenty's version: a 403 from the data model
    alone is the role's, but one from a record read too is the key's."""
    twenty.metadata_forbidden = True
    twenty.faults.fail(403, times=1, method="GET", path="/rest/repProgressions")
    _, line = _one_failure(cli)
    assert line.startswith("✗ twenty reachable") and "API key refused (403)" in line, line
    assert "TWENTY_API_KEY" in line


def test_check__an_unreachable_database_exits_3_and_the_remotes_are_still_checked(
    airtable, twenty, cli, monkeypatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://reconciler@127.0.0.1:9/reconciler")
    result, line = _one_failure(cli)
    assert line.startswith("✗ database reachable and migrated: ")
    assert "hint: check DATABASE_URL" in line
    assert "database reachable" not in result.stdout.replace(line, "")
    assert "local table" not in result.stdout
    assert "✓ airtable fields of leads (table Leads)" in result.stdout


def test_check__an_unmigrated_database_still_checks_the_remotes(
    airtable, twenty, unmigrated_url, cli
) -> None:
    result, line = _one_failure(cli)
    assert "database reachable" not in result.stdout.replace(line, "")
    assert "✓ twenty fields of rep_progressions (object repProgressions)" in result.stdout
    assert result.stderr == ""


def test_check__a_configuration_failure_outweighs_an_unavailable_database(
    unmigrated_url, cli
) -> None:
    result = cli("check")
    assert result.exit_code == 2, result.output
    failed = _failed(result.stdout)
    assert any("missing TWENTY_API_KEY" in x for x in failed)
    assert any(x.startswith("✗ database reachable and migrated:") for x in failed)


def test_check__a_refused_token_says_nothing_of_the_clock(
    airtable, twenty, database_url, cli, monkeypatch
) -> None:
    monkeypatch.setenv("AIRTABLE_TOKEN", "not-the-token")
    result = cli("check")
    assert result.exit_code == 3, result.output
    assert "airtable clock" not in result.stdout
    assert "twenty clock" in result.stdout


def test_check__one_line_per_base_and_token_shared_by_mappings(
    airtable, database_url, cli, tmp_path: Path
) -> None:
    airtable.add_table("Contacts", {"Name": "singleLineText"})
    config = _contacts_config(tmp_path)
    result = cli("check", "--config", str(config))
    reached = [x for x in _lines(result.stdout) if "airtable reachable and token accepted" in x]
    assert len(reached) == 1 and reached[0].startswith("✓ "), result.stdout
    assert "airtable fields of contacts (table Contacts)" in result.stdout


def test_check__a_field_mapped_since_the_last_full_read_is_a_warning(
    airtable, db, cli, tmp_path: Path
) -> None:
    """Rows synced before a field was mapped hold no value for it yet: the mapping's table line
    says so and names the command that fills them in; nothing fails."""
    from tests.helpers import ago, notes_config, notes_events

    config = notes_events(airtable, db, tmp_path)
    airtable.create("Events", {"Title": "A", "Note": "n", "Owner": "Ann"}, modified_at=ago(5))
    assert cli("--config", str(config), "--mapping", "events").exit_code == 0
    config.write_text(notes_config(owner=True), encoding="utf-8")

    result = cli("check", "--config", str(config))

    assert result.exit_code == 0, result.output
    (line,) = [x for x in _lines(result.stdout) if "local table events" in x]
    assert line.startswith("! local table events (events): "), line
    assert "owner mapped since the last full read" in line
    assert "`reconcile --full --mapping events` fills them in now" in line


@pytest.mark.parametrize(
    ("model_forbidden", "why"),
    [
        (False, "this API key's role may not read them (field permissions)"),
        (True, "missing from the object, or this API key's role may not read them"),
    ],
)
def test_check__a_twenty_field_the_key_may_not_read_is_named(
    twenty, database_url, cli, model_forbidden: bool, why: str
) -> None:
    """The data model lists a field the key's role may not read; its records come without it
    (runs stop the mapping): the record check reads shows it."""
    from tests.helpers import seed_progressions

    seed_progressions(twenty, 1)
    twenty.unreadable_fields = frozenset({"currentRank", "badges"})
    twenty.metadata_forbidden = model_forbidden

    result = cli("check")

    assert result.exit_code == 2, result.output
    (line,) = _failed(result.stdout)
    assert line.startswith(
        "✗ twenty fields of rep_progressions (object repProgressions): records come without "
        f"'currentRank', 'badges': {why}; runs stop this mapping"
    ), line
    assert "give the key's role read access to them in Twenty (Settings > Roles)" in line
