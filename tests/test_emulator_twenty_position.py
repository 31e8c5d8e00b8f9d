"""The Twenty emulator's ``position`` rule (RecordPositionService), over real HTTP."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from reconciler.emulators.base import iso_ms
from reconciler.emulators.twenty import TwentyEmulator
from tests.test_emulator_twenty import PATH, T0, assert_bad_request
from tests.twenty_fixtures import client, em, shared_server  # noqa: F401  (fixtures)

BATCH = "/rest/batch/repProgressions"
UPSERT = {"upsert": "true"}


def position_of(em: TwentyEmulator, record_id: str) -> Any:
    """The stored position of a record."""
    record = em.get(record_id)
    assert record is not None
    return record["position"]


def created(response: httpx.Response) -> list[dict[str, Any]]:
    """The records of a batch answer (asserting it succeeded)."""
    assert response.status_code == 201, response.text
    result: list[dict[str, Any]] = response.json()["data"]["createRepProgressions"]
    return result


def test_create_one__backfills_min_minus_one(em: TwentyEmulator, client: httpx.Client) -> None:
    first = client.post(PATH, json={"name": "a"}).json()["data"]["createRepProgression"]
    assert first["position"] == 0  # no positioned record yet: 1 - 0 - 1
    second = client.post(PATH, json={"name": "b"}).json()["data"]["createRepProgression"]
    assert second["position"] == -1
    em.create({"name": "by hand"})
    assert [row["position"] for row in em.records()] == [0, -1, -2]


def test_create_many__backfills_in_request_order_below_the_minimum(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    em.create({"name": "x", "position": 5})
    rows = created(client.post(BATCH, json=[{"name": "a"}, {"name": "b"}, {"name": "c"}]))
    assert [row["position"] for row in rows] == [4, 3, 2]


def test_create_many__explicit_numbers_are_kept_and_lower_the_base(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    em.create({"name": "x", "position": 0})
    batch = [{"name": "a"}, {"name": "b", "position": -10}, {"name": "c"}]
    rows = created(client.post(BATCH, json=batch))
    assert [row["position"] for row in rows] == [-11, -10, -12]


def test_create__first_and_last_resolve_against_min_and_max(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    em.create({"name": "low", "position": -3})
    em.create({"name": "high", "position": 7.5})
    batch = [{"position": "last"}, {"position": "first"}, {"position": "last"}]
    rows = created(client.post(BATCH, json=batch))
    assert [row["position"] for row in rows] == [8.5, -4, 9.5]


def test_create__ignores_soft_deleted_records_for_the_minimum(em: TwentyEmulator) -> None:
    em.create({"name": "a"})
    hidden = em.create({"name": "b"})
    em.soft_delete(hidden["id"])
    assert em.create({"name": "c"})["position"] == -1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, 'Invalid position value null for field "position"'),
        ("top", "Invalid position value 'top' for field \"position\""),
        ("123", "Invalid position value '123' for field \"position\""),
        (True, 'Invalid position value true for field "position"'),
    ],
)
def test_write__rejects_a_position_that_is_not_a_number(
    em: TwentyEmulator, client: httpx.Client, value: Any, message: str
) -> None:
    response = client.post(PATH, json={"name": "x", "position": value})
    assert_bad_request(response)
    assert response.json()["messages"] == [message]
    record = em.create({"name": "y"})
    patched = client.patch(f"{PATH}/{record['id']}", json={"position": value})
    assert patched.json()["messages"] == [message]


def test_patch_one_and_many__never_backfill(em: TwentyEmulator, client: httpx.Client) -> None:
    a, b = em.create({"name": "a"}), em.create({"name": "b", "totalXp": 1})
    client.patch(f"{PATH}/{a['id']}", json={"totalXp": 3})
    client.patch(PATH, params={"filter": "totalXp[gte]:0"}, json={"currentRank": "E-1"})
    assert (position_of(em, a["id"]), position_of(em, b["id"])) == (0, -1)


def test_patch__first_moves_to_the_top(em: TwentyEmulator, client: httpx.Client) -> None:
    a, _ = em.create({"name": "a"}), em.create({"name": "b"})
    response = client.patch(f"{PATH}/{a['id']}", json={"position": "first"})
    assert response.json()["data"]["updateRepProgression"]["position"] == -2


def test_upsert__update_path_keeps_position_on_current_servers(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    a, b = em.create({"name": "a"}), em.create({"name": "b"})
    rows = created(client.post(BATCH, params=UPSERT, json=[{"id": a["id"], "totalXp": 2}]))
    assert rows[0]["position"] == 0
    assert (position_of(em, a["id"]), position_of(em, b["id"])) == (0, -1)


def test_upsert__insert_path_backfills(em: TwentyEmulator, client: httpx.Client) -> None:
    a = em.create({"name": "a"})
    fresh = "1c2d3e4f-0000-4000-8000-000000000001"
    batch = [{"id": a["id"], "totalXp": 2}, {"id": fresh, "name": "new"}]
    rows = created(client.post(BATCH, params=UPSERT, json=batch))
    assert {row["id"]: row["position"] for row in rows} == {a["id"]: 0, fresh: -1}


def test_upsert__older_servers_move_updated_records_to_the_top(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    em.upsert_moves_position = True
    a, b = em.create({"name": "a"}), em.create({"name": "b"})
    fresh = "1c2d3e4f-0000-4000-8000-000000000002"
    batch = [{"id": a["id"], "totalXp": 2}, {"id": fresh, "name": "new"}]
    rows = created(client.post(BATCH, params=UPSERT, json=batch))
    assert {row["id"]: row["position"] for row in rows} == {a["id"]: -2, fresh: -3}
    assert position_of(em, b["id"]) == -1
    em.reset()
    assert em.upsert_moves_position is False


def test_upsert__explicit_position_is_written_on_both_paths(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    a = em.create({"name": "a"})
    fresh = "1c2d3e4f-0000-4000-8000-000000000003"
    batch = [{"id": a["id"], "position": 42}, {"id": fresh, "position": 43}]
    rows = created(client.post(BATCH, params=UPSERT, json=batch))
    assert {row["id"]: row["position"] for row in rows} == {a["id"]: 42, fresh: 43}


def test_python_api__dragging_a_record_moves_it_and_bumps_updated_at(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    em.clock.frozen = T0
    a, b = em.create({"name": "a"}), em.create({"name": "b"})
    em.clock.frozen = T0 + timedelta(minutes=5)
    moved = em.update(a["id"], position=-10)
    assert moved["position"] == -10 and moved["updatedAt"] == iso_ms(T0 + timedelta(minutes=5))
    assert em.update(b["id"], position="first")["position"] == -11
    listed = client.get(PATH, params={"order_by": "position"}).json()["data"]["repProgressions"]
    assert [row["name"] for row in listed] == ["b", "a"]
