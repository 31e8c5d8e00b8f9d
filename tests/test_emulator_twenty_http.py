"""The Twenty emulator's addressing, authentication, rate limit, faults and direct Python API."""

from __future__ import annotations

import uuid

import httpx
import pytest

from reconciler.emulators.twenty import TwentyEmulator, TwentyError
from tests.test_emulator_twenty import PATH, assert_bad_request
from tests.twenty_fixtures import client, em, shared_server  # noqa: F401  (fixtures)

# -- addressing, auth, limits, faults ------------------------------------------------------------


def test_get__one_record_by_id(em: TwentyEmulator, client: httpx.Client) -> None:
    record = em.create({"name": "x"})
    response = client.get(f"{PATH}/{record['id']}", params={"depth": 0})
    assert response.json() == {"data": {"repProgression": record}}


# -- fields: what a read answers with --------------------------------------------------------------


def test_fields__a_read_answers_id_and_the_named_fields(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    record = em.create({"name": "x", "totalXp": 5})
    repeated = [("fields", " name , totalXp,,"), ("fields", "name,updatedAt")]
    listed = client.get(PATH, params=repeated)
    one = client.get(f"{PATH}/{record['id']}", params={"fields": "totalXp"})

    (item,) = listed.json()["data"]["repProgressions"]
    assert item == {key: record[key] for key in ("id", "name", "totalXp", "updatedAt")}
    assert one.json() == {"data": {"repProgression": {"id": record["id"], "totalXp": 5}}}
    assert "X-Twenty-Fields-Capped" not in listed.headers


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (" , ", "'fields' parameter is empty. Expected a comma-separated list of field names, "
         "e.g. fields=id,name"),
        ("name,nope,alsoNope", "'fields' parameter invalid. Unknown or unreadable fields on "
         "'repProgression': nope, alsoNope"),
        ("name,badges", "'fields' parameter invalid. Unknown or unreadable fields on "
         "'repProgression': badges"),
    ],
)  # fmt: skip
def test_fields__empty_unknown_or_unreadable_is_400(
    em: TwentyEmulator, client: httpx.Client, fields: str, message: str
) -> None:
    em.unreadable_fields = frozenset({"badges"})
    response = client.get(PATH, params={"fields": fields})
    assert_bad_request(response)
    assert response.json()["messages"] == [message]


def test_fields__an_object_of_more_than_200_fields_answers_a_default_200(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    """System fields first, then the others by name; the header says the answer was cut."""
    em.create({"name": "x", "totalXp": 5})
    before = client.get(PATH)
    for number in range(200):
        em.add_field(f"f{number:03}", "TEXT")
    em.unreadable_fields = frozenset({"f000"})

    capped = client.get(PATH)
    named = client.get(PATH, params={"fields": "totalXp,f199"})

    assert "X-Twenty-Fields-Capped" not in before.headers
    (record,) = capped.json()["data"]["repProgressions"]
    assert "X-Twenty-Fields-Capped" in capped.headers  # its value was not read
    assert {"id", "name", "createdAt", "updatedAt", "deletedAt", "position"} <= set(record)
    assert len(record) == 200 and "f001" in record and "f000" not in record
    assert "totalXp" not in record and "f199" not in record  # by name, after f001…f194
    (picked,) = named.json()["data"]["repProgressions"]
    assert set(picked) == {"id", "totalXp", "f199"}


def test_fields__a_batch_write_answers_with_the_named_fields(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    body = [{"name": "x", "totalXp": 5}]
    written = client.post(
        "/rest/batch/repProgressions", params={"upsert": "true", "fields": "totalXp"}, json=body
    )

    assert written.status_code == 201
    (record,) = written.json()["data"]["createRepProgressions"]
    assert set(record) == {"id", "totalXp"} and em.get(record["id"])["name"] == "x"


def test_fields__a_server_before_them_ignores_the_parameter_and_answers_every_field(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    em.selects_fields = False
    em.create({"name": "x"})
    for number in range(200):
        em.add_field(f"f{number:03}", "TEXT")

    response = client.get(PATH, params={"fields": "name,nope"})

    (record,) = response.json()["data"]["repProgressions"]
    assert "totalXp" in record and "f199" in record
    assert "X-Twenty-Fields-Capped" not in response.headers


def test_get__non_uuid_is_400_and_missing_is_404(client: httpx.Client) -> None:
    assert_bad_request(client.get(f"{PATH}/12345"))
    response = client.get(f"{PATH}/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json()["error"] == "NotFoundException"
    assert client.patch(f"{PATH}/{uuid.uuid4()}", json={"name": "x"}).status_code == 404


def test_routes__singular_or_unknown_object_is_400(client: httpx.Client) -> None:
    response = client.get("/rest/repProgression")
    assert_bad_request(response)
    assert "Did you mean 'repProgressions'" in response.json()["messages"][0]
    assert_bad_request(client.get("/rest/people"))
    assert_bad_request(client.post("/rest/batch/repProgression", json=[{"name": "x"}]))


def test_auth__wrong_or_missing_token_is_401(em: TwentyEmulator) -> None:
    with httpx.Client(base_url=em.url) as anonymous:
        assert anonymous.get(PATH).status_code == 401
        wrong = anonymous.get(PATH, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "UnauthorizedException"


def test_rate_limit__fourth_rapid_request_is_429_then_recovers() -> None:
    server = TwentyEmulator(rate_per_minute=60, burst=3)
    server.start()
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": "Bearer test-key"}) as c:
            statuses = [c.get(PATH).status_code for _ in range(4)]
            assert statuses == [200, 200, 200, 429]
            refused = c.get(PATH)
            assert refused.json() == {
                "statusCode": 429,
                "error": "TooManyRequestsException",
                # the capacity and its refill time: 3 tokens at one a second
                "messages": ["Limit reached (3 tokens per 3000 ms)"],
            }
            assert "retry-after" not in refused.headers
            server.clock.advance(1.05)
            assert c.get(PATH).status_code == 200
    finally:
        server.stop()


def test_rate_limit__the_fraction_of_a_token_is_lost_when_a_request_is_admitted() -> None:
    server = TwentyEmulator(rate_per_minute=60, burst=3)  # one token a second
    server.start()
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": "Bearer test-key"}) as c:
            assert [c.get(PATH).status_code for _ in range(3)] == [200, 200, 200]
            server.clock.advance(1.5)  # one and a half tokens earned: one taken, the half lost
            assert c.get(PATH).status_code == 200
            server.clock.advance(0.7)  # the kept half would make this 1.2
            assert c.get(PATH).status_code == 429
            server.clock.advance(0.4)  # 1.1 s since the last admitted request
            assert c.get(PATH).status_code == 200
    finally:
        server.stop()


def test_rate_limit__data_model_requests_take_no_token() -> None:
    """The server takes its tokens in the record query runners; the data-model controller
    runs none (fidelity-twenty.md, Rate limit)."""
    server = TwentyEmulator(rate_per_minute=60, burst=2)
    server.start()
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": "Bearer test-key"}) as c:
            assert [c.get("/rest/metadata/objects").status_code for _ in range(5)] == [200] * 5
            assert [c.get(PATH).status_code for _ in range(3)] == [200, 200, 429]
            assert c.get("/rest/metadata/objects").status_code == 200  # even with none left
    finally:
        server.stop()


def test_faults__fail_twice_then_succeed(em: TwentyEmulator, client: httpx.Client) -> None:
    em.faults.fail(503, times=2)
    first, second, third = (client.get(PATH) for _ in range(3))
    assert [first.status_code, second.status_code, third.status_code] == [503, 503, 200]
    assert first.json()["error"] == "ServiceUnavailableException"


def test_faults__drop_gives_a_connection_error(em: TwentyEmulator, client: httpx.Client) -> None:
    em.faults.drop()
    with pytest.raises(httpx.TransportError):
        client.get(PATH)
    assert client.get(PATH).status_code == 200


def test_add_object__serves_another_object(em: TwentyEmulator, client: httpx.Client) -> None:
    em.add_object("note", "notes", {"title": "TEXT", "pinned": "BOOLEAN"})
    created = client.post("/rest/notes", json={"title": "hi", "pinned": True})
    assert created.status_code == 201
    assert created.json()["data"]["createNote"]["title"] == "hi"
    listed = client.get("/rest/notes", params={"filter": "pinned[eq]:true"})
    assert [row["title"] for row in listed.json()["data"]["notes"]] == ["hi"]
    assert em.records() == []


def test_python_api__validates_like_the_http_api(em: TwentyEmulator) -> None:
    with pytest.raises(TwentyError):
        em.create({"totalXp": "lots"})
    with pytest.raises(TwentyError):
        em.update(str(uuid.uuid4()), {"name": "x"})
    assert em.get("not-a-uuid") is None
    assert em.requests == []
