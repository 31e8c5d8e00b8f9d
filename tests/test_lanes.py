"""Lanes: mappings on different bases or workspaces work side by side; mappings that share a
remote budget or a local table take turns."""

from __future__ import annotations

from typing import Any

from reconciler.emulators.airtable import AirtableEmulator
from reconciler.engine.lanes import lanes, side_by_side
from tests.helpers import execute, seed_leads


def test_lanes__items_sharing_any_key_share_a_lane_in_their_order() -> None:
    items = {
        "a": ["base1", "t1"],
        "b": ["base2", "t2"],
        "c": ["base1", "t3"],  # a's base
        "d": ["base3", "t2"],  # b's table (a hub)
        "e": ["base4", "t4"],
    }
    groups = lanes(list(items), lambda name: items[name])
    assert groups == [["a", "c"], ["b", "d"], ["e"]]


def test_side_by_side__every_item_once_and_an_error_after_all_finish() -> None:
    done: list[str] = []

    def work(item: str) -> None:
        done.append(item)
        if item == "x":
            raise ValueError("boom")

    try:
        side_by_side([["a", "b"], ["x"], ["c"]], work)
    except ValueError:
        pass
    else:
        raise AssertionError("the error was swallowed")
    assert sorted(done) == ["a", "b", "c", "x"]


def test_two_bases__work_side_by_side(
    airtable: AirtableEmulator, db: Any, cli: Any, tmp_path, monkeypatch
) -> None:
    """Base B's requests are answered while base A's first request is still held: the two
    mappings ran at the same time, not one after the other."""
    other = AirtableEmulator(token=airtable.token, base_id="appOTHERBASE00001", rate_limit=0)
    other.start()
    try:
        seed_leads(airtable, 3)
        seed_leads(other, 3)
        execute(db, "CREATE TABLE leads_b (LIKE leads INCLUDING ALL)")
        config = tmp_path / "two.toml"
        config.write_text(
            "[mappings.leads_b]\nremote = 'airtable'\ntable = 'Leads'\n"
            "base = 'appOTHERBASE00001'\ntoken_env = 'OTHER_TOKEN'\nlocal_table = 'leads_b'\n"
            "key_column = 'airtable_record_id'\n"
            "fields = [{ remote = 'First Name', column = 'first_name' }]\n"
        )
        monkeypatch.setenv("OTHER_TOKEN", other.token)
        monkeypatch.setenv("AIRTABLE_API_URL", airtable.url)
        # Both bases answer on one URL in production; here base B lives on its own emulator,
        # so the mapping's base id is routed there by a second URL variable.
        monkeypatch.setattr(
            "reconciler.config.Settings.airtable_target",
            _routed(other.base_id, other.url),
        )
        airtable.faults.delay(1.0, times=1, method="GET")

        result = cli("--config", str(config), "--mapping", "leads", "--mapping", "leads_b")

        assert result.exit_code == 0, result.output
        assert result.mapping("leads")["pull"]["inserted"] == 3
        assert result.mapping("leads_b")["pull"]["inserted"] == 3
        held = min(r.at for r in airtable.requests)  # logged when answered, after the hold
        assert other.requests and max(r.at for r in other.requests) < held
    finally:
        other.stop()


def _routed(base_id: str, url: str) -> Any:
    import dataclasses

    from reconciler.config import Settings

    original = Settings.airtable_target

    def target(self: Settings, mapping: Any) -> Any:
        found = original(self, mapping)
        return dataclasses.replace(found, api_url=url) if found.base_id == base_id else found

    return target
