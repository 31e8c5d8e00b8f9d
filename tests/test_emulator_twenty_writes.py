"""The Twenty emulator's writes over real HTTP: create, update, delete, batches and upsert
(current servers and servers older than upsert)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from reconciler.emulators.base import iso_ms, parse_iso
from reconciler.emulators.twenty import REP_PROGRESSION_FIELDS, TwentyEmulator
from tests.test_emulator_twenty import (
    BY_AGE,
    PATH,
    T0,
    assert_bad_request,
    names,
    seed,
)
from tests.twenty_fixtures import client, em, shared_server  # noqa: F401  (fixtures)

BATCH = "/rest/batch/repProgressions"
UPSERT = {"upsert": "true"}


def test_create__returns_201_with_every_field(em: TwentyEmulator, client: httpx.Client) -> None:
    response = client.post(PATH, json={"name": "Ann", "totalXp": 1.5, "badges": "[]"})
    assert response.status_code == 201, response.text
    record = response.json()["data"]["createRepProgression"]
    expected = {"id", *REP_PROGRESSION_FIELDS, "createdAt", "updatedAt", "deletedAt"}
    assert expected | {"createdBy", "position"} == set(record)
    assert record["lastActivityDate"] is None and record["deletedAt"] is None
    assert uuid.UUID(record["id"]).version == 4
    assert em.get(record["id"]) == record


def test_create__duplicate_id_is_rejected(em: TwentyEmulator, client: httpx.Client) -> None:
    chosen = str(uuid.uuid4())
    assert client.post(PATH, json={"id": chosen, "name": "first"}).status_code == 201
    assert_bad_request(client.post(PATH, json={"id": chosen, "name": "second"}))
    assert [row["name"] for row in em.records()] == ["first"]


@pytest.mark.parametrize(
    "body",
    [
        {"totalXp": "5"},
        {"totalXp": True},
        {"name": 5},
        {"lastActivityDate": "yesterday"},
        {"lastActivityDate": "2026-11-20T25:00:00Z"},
        {"unknownField": "x"},
        {"id": "not-a-uuid"},
    ],
)
def test_create__rejects_invalid_values(
    em: TwentyEmulator, client: httpx.Client, body: dict[str, Any]
) -> None:
    response = client.post(PATH, json=body)
    assert_bad_request(response)
    assert any(name in response.json()["messages"][0] for name in body)
    assert em.records() == []


@pytest.mark.parametrize("field", ["updatedAt", "createdAt", "deletedAt", "createdBy"])
def test_write__rejects_server_maintained_fields(
    em: TwentyEmulator, client: httpx.Client, field: str
) -> None:
    record = em.create({"name": "x"})
    value: Any = {"source": "API"} if field == "createdBy" else iso_ms(T0)
    assert_bad_request(client.post(PATH, json={"name": "y", field: value}))
    assert_bad_request(client.patch(f"{PATH}/{record['id']}", json={field: value}))
    assert em.get(record["id"]) == record


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": 5}, 'Invalid string value 5 for text field "name"'),
        ({"totalXp": "5"}, "Invalid number value '5' for field \"totalXp\""),
        ({"totalXp": True}, 'Invalid number value true for field "totalXp"'),
        (
            {"lastActivityDate": "yesterday"},
            "Invalid value 'yesterday' for date-time field \"lastActivityDate\". "
            "Expected format: 'YYYY-MM-DDTHH:mm:ssZ'",
        ),
        ({"id": "not-a-uuid"}, "Invalid UUID value 'not-a-uuid' for field \"id\""),
        ({"unknownField": "x"}, 'Object repProgression doesn\'t have any "unknownField" field.'),
    ],
)
def test_create__invalid_values_answer_the_servers_messages(
    em: TwentyEmulator, client: httpx.Client, body: dict[str, Any], message: str
) -> None:
    """The validators of DataArgProcessorService word each type's refusal."""
    response = client.post(PATH, json=body)
    assert_bad_request(response)
    assert response.json()["messages"] == [message]


def test_write__datetime_values_are_normalized_to_ms_utc(client: httpx.Client) -> None:
    body = {"lastActivityDate": "2026-11-20T11:00:00.123456+01:00"}
    record = client.post(PATH, json=body).json()["data"]["createRepProgression"]
    assert record["lastActivityDate"] == "2026-11-20T10:00:00.123Z"


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("2026-11-20T10:00:00", "2026-11-20T10:00:00.000Z"),
        ("2026-11-20", "2026-11-20T00:00:00.000Z"),
    ],
)
def test_write__a_datetime_without_an_offset_is_utc(
    client: httpx.Client, sent: str, stored: str
) -> None:
    """parseToInstantOrThrow falls back to a plain date-time in UTC."""
    response = client.post(PATH, json={"lastActivityDate": sent})
    assert response.status_code == 201, response.text
    assert response.json()["data"]["createRepProgression"]["lastActivityDate"] == stored


def test_write__empty_text_is_stored_as_null(em: TwentyEmulator, client: httpx.Client) -> None:
    """transformTextField: a TEXT value "" is written as null, on create and on update."""
    created = client.post(PATH, json={"name": "", "currentRank": "Gold"}).json()
    record = created["data"]["createRepProgression"]
    assert record["name"] is None
    path = f"{PATH}/{record['id']}"
    updated = client.patch(path, json={"currentRank": ""}).json()["data"]["updateRepProgression"]
    assert updated["currentRank"] is None
    assert em.get(record["id"])["currentRank"] is None  # type: ignore[index]
    stored = em.update(record["id"], {"currentRank": ""}, stored=True)  # an older write
    assert stored["currentRank"] == ""


def test_write__updated_at_is_server_set_and_follows_the_clock(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    em.clock.frozen = datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=UTC)
    created = client.post(PATH, json={"name": "x"}).json()["data"]["createRepProgression"]
    assert created["updatedAt"] == created["createdAt"] == "2026-11-20T10:00:00.123Z"
    em.clock.frozen = None
    em.clock.skew = timedelta(hours=2)
    path = f"{PATH}/{created['id']}"
    updated = client.patch(path, json={"totalXp": 3}).json()["data"]["updateRepProgression"]
    stamp = parse_iso(updated["updatedAt"])
    assert abs(stamp - (datetime.now(UTC) + timedelta(hours=2))) < timedelta(seconds=5)
    assert len(updated["updatedAt"]) == len("2026-11-20T10:00:00.000Z")
    assert updated["createdAt"] == created["createdAt"] and updated["totalXp"] == 3


def test_update__patch_changes_only_sent_keys(em: TwentyEmulator, client: httpx.Client) -> None:
    record = em.create({"name": "x", "totalXp": 1, "currentRank": "E-1"})
    response = client.patch(f"{PATH}/{record['id']}", json={"totalXp": 2, "currentRank": None})
    assert response.status_code == 200
    assert response.json()["data"]["updateRepProgression"]["totalXp"] == 2
    stored = em.get(record["id"])
    assert stored is not None
    assert (stored["name"], stored["totalXp"], stored["currentRank"]) == ("x", 2, None)


def test_update__another_id_in_the_body_is_400_and_changes_nothing(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    (record,) = seed(em, 1)
    other = str(uuid.uuid4())
    moved = client.patch(f"{PATH}/{record['id']}", json={"id": other, "totalXp": 9})
    assert_bad_request(moved)
    assert em.get(record["id"]) == record
    same = client.patch(f"{PATH}/{record['id']}", json={"id": record["id"], "totalXp": 9})
    assert same.status_code == 200 and (em.get(record["id"]) or {})["totalXp"] == 9


def test_update__patch_by_filter_updates_every_match(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    seed(em, 4)
    response = client.patch(PATH, params={"filter": "totalXp[gte]:2"}, json={"currentRank": "E-7"})
    assert response.status_code == 200
    assert len(response.json()["data"]["updateRepProgressions"]) == 2
    assert [row["currentRank"] for row in em.records()] == [None, None, "E-7", "E-7"]
    assert_bad_request(client.patch(PATH, json={"currentRank": "E-1"}))


def test_delete__permanent_by_default_soft_on_request(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    soft, hard = seed(em, 2)
    response = client.delete(f"{PATH}/{soft['id']}", params={"soft_delete": "true"})
    assert response.json() == {"data": {"deleteRepProgression": {"id": soft["id"]}}}
    assert client.delete(f"{PATH}/{hard['id']}").status_code == 200
    assert em.get(hard["id"]) is None
    kept = em.get(soft["id"])
    assert kept is not None and kept["deletedAt"] is not None
    assert client.delete(f"{PATH}/{hard['id']}").status_code == 404


def test_write__a_flag_other_than_true_is_false(em: TwentyEmulator, client: httpx.Client) -> None:
    """parseSoftDeleteRestRequest / parseUpsertRestRequest: ``=== 'true'``, no error: a
    mistyped soft_delete deletes for good, a mistyped upsert is a plain create."""
    soft, hard, twice = seed(em, 3)
    assert client.delete(f"{PATH}/{hard['id']}", params={"soft_delete": "yes"}).status_code == 200
    assert em.get(hard["id"]) is None
    both = [("soft_delete", "true"), ("soft_delete", "true")]
    assert client.delete(f"{PATH}/{twice['id']}", params=both).status_code == 200
    assert em.get(twice["id"]) is None
    assert client.delete(f"{PATH}/{soft['id']}", params={"soft_delete": "true"}).status_code == 200
    assert (em.get(soft["id"]) or {})["deletedAt"] is not None
    again = [{"id": soft["id"], "name": "again"}]
    assert_bad_request(client.post(BATCH, params={"upsert": "1"}, json=again))
    assert client.post(BATCH, params=UPSERT, json=again).status_code == 201
    assert (em.get(soft["id"]) or {})["deletedAt"] is None


# -- batches ---------------------------------------------------------------------------------------


def test_batch__201_records_are_rejected_and_nothing_is_applied(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    too_many = client.post(BATCH, json=[{"name": "x"}] * 201)
    assert_bad_request(too_many)
    assert too_many.json()["messages"] == ["Maximum number of records to upsert is 200."]
    assert client.post(BATCH, json=[]).json()["messages"] == ["Input must not be empty"]
    assert client.post(BATCH, json={"name": "x"}).json()["messages"] == ["Body must be an array"]
    assert em.records() == []
    response = client.post(BATCH, json=[{"name": "x"}] * 200)
    assert response.status_code == 201
    assert len(response.json()["data"]["createRepProgressions"]) == 200


def test_batch__one_invalid_record_applies_nothing(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    existing = em.create({"name": "keep", "totalXp": 1})
    good = {"id": existing["id"], "totalXp": 2}
    bad = {"name": "bad", "totalXp": "many"}
    response = client.post("/rest/batch/repProgressions?upsert=true", json=[good, bad])
    assert_bad_request(response)
    assert em.records() == [existing]
    duplicate = client.post("/rest/batch/repProgressions", json=[{"name": "new"}, good])
    assert_bad_request(duplicate)
    fresh = str(uuid.uuid4())
    repeated = [{"id": fresh, "name": "a"}, {"id": fresh, "name": "b"}]
    assert_bad_request(client.post("/rest/batch/repProgressions?upsert=true", json=repeated))
    assert em.records() == [existing]


def test_batch__upsert_twice_creates_once_and_merges_sent_keys(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(3)]
    batch = [{"id": i, "name": f"n{k}", "totalXp": k} for k, i in enumerate(ids)]
    url = "/rest/batch/repProgressions"
    assert client.post(url, params={"upsert": "true"}, json=batch).status_code == 201
    em.update(ids[0], {"currentRank": "E-3"})
    again = client.post(url, params={"upsert": "true"}, json=[{"id": ids[0], "totalXp": 50}])
    assert again.status_code == 201
    assert again.json()["data"]["createRepProgressions"][0]["totalXp"] == 50
    assert len(em.records()) == 3
    first = em.get(ids[0])
    assert first is not None
    assert (first["name"], first["totalXp"], first["currentRank"]) == ("n0", 50, "E-3")


def test_batch__upsert_restores_a_soft_deleted_record(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    em.clock.frozen = T0
    record = em.create({"name": "gone"})
    em.soft_delete(record["id"])
    em.clock.frozen = T0 + timedelta(minutes=1)
    response = client.post(
        "/rest/batch/repProgressions?upsert=true", json=[{"id": record["id"], "totalXp": 7}]
    )
    assert response.status_code == 201
    restored = em.get(record["id"])
    assert restored is not None and restored["deletedAt"] is None
    assert restored["updatedAt"] == iso_ms(T0 + timedelta(minutes=1))
    assert names(client.get(PATH, params=BY_AGE)) == ["gone"]


def test_upsert__restores_soft_deleted_and_keeps_unsent_fields(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    record = em.create({"name": "gone", "totalXp": 5, "currentRank": "E-2"})
    em.soft_delete(record["id"])
    response = client.post(BATCH, params=UPSERT, json=[{"id": record["id"], "totalXp": 9}])
    [answered] = response.json()["data"]["createRepProgressions"]
    assert (answered["deletedAt"], answered["totalXp"], answered["name"]) == (None, 9, "gone")
    assert answered["currentRank"] == "E-2"
    assert answered["createdAt"] == record["createdAt"]
    assert answered["createdBy"] == record["createdBy"]  # the upsert's update never sets it
    assert em.get(record["id"]) == answered


def test_upsert__inserts_a_destroyed_id_as_a_new_record(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    em.clock.frozen = T0
    record = em.create({"name": "destroyed", "totalXp": 5, "currentRank": "E-2"})
    em.hard_delete(record["id"])
    em.clock.frozen = T0 + timedelta(minutes=1)
    response = client.post(BATCH, params=UPSERT, json=[{"id": record["id"], "totalXp": 9}])
    assert response.status_code == 201
    [created] = response.json()["data"]["createRepProgressions"]
    assert created["id"] == record["id"]
    assert (created["name"], created["currentRank"], created["totalXp"]) == (None, None, 9)
    assert created["createdAt"] == iso_ms(T0 + timedelta(minutes=1))
    assert created["createdBy"]["source"] == "API"
    assert em.records() == [created]


def test_upsert__answers_updated_records_then_inserted_ones(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    live, deleted = em.create({"name": "live"}), em.create({"name": "deleted"})
    em.soft_delete(deleted["id"])
    fresh = str(uuid.uuid4())
    batch = [{"id": fresh, "name": "new"}, {"id": deleted["id"]}, {"id": live["id"]}]
    answered = client.post(BATCH, params=UPSERT, json=batch).json()["data"]
    assert [row["id"] for row in answered["createRepProgressions"]] == [
        deleted["id"],
        live["id"],
        fresh,
    ]
    assert len(em.records()) == 3


# -- a server older than REST upsert ---------------------------------------------------------------


def test_old_server__existing_id_is_record_already_exists(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    em.supports_upsert = False
    existing = em.create({"name": "keep", "totalXp": 1})
    batch = [{"id": str(uuid.uuid4()), "name": "new"}, {"id": existing["id"], "totalXp": 2}]
    response = client.post(BATCH, params=UPSERT, json=batch)
    assert response.status_code == 400
    assert response.json() == {
        "statusCode": 400,
        "error": "BadRequestException",
        "messages": ["Record already exists"],
    }
    assert em.records() == [existing]


def test_old_server__soft_deleted_id_fails_on_the_primary_key(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    em.supports_upsert = False
    record = em.create({"name": "gone"})
    em.soft_delete(record["id"])
    response = client.post(BATCH, params=UPSERT, json=[{"id": record["id"], "totalXp": 2}])
    assert_bad_request(response)
    message = response.json()["messages"][0]
    assert message.startswith('duplicate key value violates unique constraint "PK_')
    stored = em.get(record["id"])
    assert stored is not None and stored["deletedAt"] is not None


def test_old_server__new_ids_are_created_and_the_flag_is_not_read(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    em.supports_upsert = False
    ids = [str(uuid.uuid4()) for _ in range(3)]
    batch = [{"id": i, "name": f"n{k}"} for k, i in enumerate(ids)]
    response = client.post(BATCH, params={"upsert": "whatever"}, json=batch)
    assert response.status_code == 201
    assert [row["id"] for row in response.json()["data"]["createRepProgressions"]] == ids
    em.reset()
    assert em.supports_upsert is True


def test_old_server__constructor_switch() -> None:
    server = TwentyEmulator(supports_upsert=False)
    assert server.supports_upsert is False
    server.reset()
    assert server.supports_upsert is False
