"""The Twenty emulator's data model: ``GET /rest/metadata/objects`` (shapes, paging, the
data-model permission) and the field types a workspace may hold."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from reconciler.emulators.twenty import REP_PROGRESSION_FIELDS, TwentyEmulator
from tests.test_emulator_twenty import PATH, assert_bad_request
from tests.twenty_fixtures import client, em, shared_server  # noqa: F401  (fixtures)

METADATA = "/rest/metadata/objects"


def objects_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The objects of a metadata answer, whichever shape it has."""
    data = body["data"]
    result: list[dict[str, Any]] = data if isinstance(data, list) else data["objects"]
    return result


def add_objects(em: TwentyEmulator, count: int) -> None:
    """Declare ``count`` more objects (a workspace has dozens of standard ones)."""
    for i in range(count):
        em.add_object(f"thing{i}", f"things{i}", {"title": "TEXT"})


# -- shapes and fields -----------------------------------------------------------------------------


def test_metadata__default_is_the_bare_list_of_new_workspaces(client: httpx.Client) -> None:
    body = client.get(METADATA).json()
    assert isinstance(body["data"], list)
    assert body["totalCount"] == 1
    assert set(body["pageInfo"]) == {"hasNextPage", "hasPreviousPage", "startCursor", "endCursor"}
    [obj] = body["data"]
    assert (obj["nameSingular"], obj["namePlural"]) == ("repProgression", "repProgressions")
    assert body["pageInfo"]["startCursor"] == body["pageInfo"]["endCursor"] == obj["id"]


def test_metadata__legacy_shape_nests_objects(em: TwentyEmulator, client: httpx.Client) -> None:
    em.metadata_shape = "objects"
    body = client.get(METADATA).json()
    assert [obj["namePlural"] for obj in body["data"]["objects"]] == ["repProgressions"]
    assert body["totalCount"] == 1 and "pageInfo" in body
    em.reset()
    assert em.metadata_shape == "list"
    with pytest.raises(ValueError):
        TwentyEmulator(metadata_shape="tree")


def test_metadata__fields_carry_what_a_client_checks(client: httpx.Client) -> None:
    [obj] = objects_of(client.get(METADATA).json())
    fields = {field["name"]: field for field in obj["fields"]}
    types = {name: field["type"] for name, field in fields.items()}
    assert {name: types[name] for name in REP_PROGRESSION_FIELDS} == REP_PROGRESSION_FIELDS
    assert (types["id"], types["updatedAt"], types["position"]) == ("UUID", "DATE_TIME", "POSITION")
    assert types["createdBy"] == "ACTOR"
    assert fields["name"]["isSystem"] is False and fields["id"]["isSystem"] is True
    assert fields["name"]["isNullable"] is True and fields["id"]["isNullable"] is False
    assert all(field["objectMetadataId"] == obj["id"] for field in fields.values())
    assert "options" not in fields["name"]


def test_metadata__select_fields_list_their_options(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    em.add_field("tier", "SELECT", options=("BRONZE", "SILVER", "GOLD"))
    em.add_field("stars", "RATING")
    [obj] = objects_of(client.get(METADATA).json())
    fields = {field["name"]: field for field in obj["fields"]}
    options = fields["tier"]["options"]
    assert [option["value"] for option in options] == ["BRONZE", "SILVER", "GOLD"]
    assert [option["position"] for option in options] == [0, 1, 2]
    assert {"id", "label", "color"} <= set(options[0])
    assert [option["value"] for option in fields["stars"]["options"]] == [
        f"RATING_{i}" for i in range(1, 6)
    ]


# -- paging ----------------------------------------------------------------------------------------


def test_metadata__pages_by_id_descending_with_object_id_cursors(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    add_objects(em, 4)
    first = client.get(METADATA, params={"limit": 2}).json()
    assert first["totalCount"] == 5 and first["pageInfo"]["hasNextPage"] is True
    assert first["pageInfo"]["hasPreviousPage"] is False
    seen = [obj["id"] for obj in objects_of(first)]
    cursor = first["pageInfo"]["endCursor"]
    while True:
        page = client.get(METADATA, params={"limit": 2, "starting_after": cursor}).json()
        assert page["pageInfo"]["hasPreviousPage"] is True
        seen += [obj["id"] for obj in objects_of(page)]
        if not page["pageInfo"]["hasNextPage"]:
            break
        cursor = page["pageInfo"]["endCursor"]
    assert seen == sorted(seen, reverse=True) and len(set(seen)) == 5


def test_metadata__ending_before_reads_the_previous_page(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    add_objects(em, 4)
    everything = [obj["id"] for obj in objects_of(client.get(METADATA).json())]
    page = client.get(METADATA, params={"limit": 2, "ending_before": everything[3]}).json()
    assert [obj["id"] for obj in objects_of(page)] == everything[1:3]
    assert page["pageInfo"] == {
        "hasNextPage": True,
        "hasPreviousPage": True,
        "startCursor": everything[1],
        "endCursor": everything[2],
    }


def test_metadata__default_page_holds_1000_objects(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    add_objects(em, 70)
    body = client.get(METADATA).json()
    assert len(objects_of(body)) == 71 and body["pageInfo"]["hasNextPage"] is False
    em.metadata_default_limit = 60  # the earlier release used the record default
    body = client.get(METADATA).json()
    assert len(objects_of(body)) == 60 and body["pageInfo"]["hasNextPage"] is True
    assert len(objects_of(client.get(METADATA, params={"limit": 5000}).json())) == 71


def test_metadata__a_page_holds_at_most_1000_objects(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    add_objects(em, 1000)
    body = client.get(METADATA, params={"limit": 1001}).json()
    assert len(objects_of(body)) == 1000 and body["pageInfo"]["hasNextPage"] is True
    assert body["totalCount"] == 1001


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": "abc"}, "limit 'abc' is invalid. Should be an integer"),
        ({"limit": "1.5"}, "limit '1.5' is invalid. Should be an integer"),
        ({"limit": "-1"}, "limit '-1' is invalid. Should be an integer"),
        ({"starting_after": "nope"}, "Invalid cursor: nope"),
        (
            {"starting_after": str(uuid.uuid4()), "ending_before": str(uuid.uuid4())},
            "'starting_after' and 'ending_before' cannot be used together.",
        ),
    ],
)
def test_metadata__rejects_bad_paging(
    client: httpx.Client, params: dict[str, str], message: str
) -> None:
    response = client.get(METADATA, params=params)
    assert_bad_request(response)
    assert response.json()["messages"] == [message]


# -- the data-model permission ---------------------------------------------------------------------


def test_metadata__key_without_data_model_permission_is_403(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    em.metadata_forbidden = True
    response = client.get(METADATA, params={"limit": "abc"})
    assert response.status_code == 403
    assert response.json() == {
        "statusCode": 403,
        "error": "ForbiddenException",
        "messages": ["User does not have permission"],
        "code": "PERMISSION_DENIED",
    }
    assert client.get(PATH).status_code == 200
    assert client.post(PATH, json={"name": "x"}).status_code == 201
    with httpx.Client(base_url=em.url) as anonymous:
        assert anonymous.get(METADATA).status_code == 401
    em.reset()
    assert client.get(METADATA).status_code == 200


# -- field types -----------------------------------------------------------------------------------


def list_names(client: httpx.Client, text: str) -> list[str]:
    """Names of the records a filter selects, by name."""
    response = client.get(PATH, params={"filter": text, "order_by": "name"})
    assert response.status_code == 200, response.text
    return [row["name"] for row in response.json()["data"]["repProgressions"]]


def test_date__is_a_plain_calendar_date(em: TwentyEmulator, client: httpx.Client) -> None:
    em.add_field("joinedOn", "DATE")
    response = client.post(PATH, json={"name": "a", "joinedOn": "2026-02-28"})
    assert response.json()["data"]["createRepProgression"]["joinedOn"] == "2026-02-28"
    em.create({"name": "b", "joinedOn": "2026-11-20"})
    em.create({"name": "c"})
    assert list_names(client, "joinedOn[gte]:2026-03-01") == ["b"]
    assert list_names(client, "joinedOn[is]:NULL") == ["c"]
    ordered = client.get(PATH, params={"order_by": "joinedOn[DescNullsLast]"}).json()
    assert [row["name"] for row in ordered["data"]["repProgressions"]] == ["b", "a", "c"]


@pytest.mark.parametrize(
    "value", ["2026-02-30", "2026-11-20T10:00:00.000Z", "20/11/2026", 20261120]
)
def test_date__rejects_anything_but_a_valid_day(
    em: TwentyEmulator, client: httpx.Client, value: Any
) -> None:
    em.add_field("joinedOn", "DATE")
    response = client.post(PATH, json={"name": "x", "joinedOn": value})
    assert_bad_request(response)
    assert "joinedOn" in response.json()["messages"][0]
    assert em.records() == []


def test_date__invalid_value_message(em: TwentyEmulator, client: httpx.Client) -> None:
    em.add_field("joinedOn", "DATE")
    for value, shown in [("2026-02-30", "'2026-02-30'"), ("2026-11-20T10:00:00Z", None), (5, "5")]:
        response = client.post(PATH, json={"joinedOn": value})
        assert_bad_request(response)
        message = response.json()["messages"][0]
        assert message.endswith("for date field \"joinedOn\". Expected format: 'YYYY-MM-DD'")
        if shown is not None:
            assert message.startswith(f"Invalid value {shown} ")
    assert_bad_request(client.get(PATH, params={"filter": "joinedOn[gte]:2026-13-01"}))
    assert em.records() == []


def test_select__values_are_options(em: TwentyEmulator, client: httpx.Client) -> None:
    em.add_field("tier", "SELECT", options=("BRONZE", "SILVER", "GOLD"))
    em.create({"name": "a", "tier": "GOLD"})
    em.create({"name": "b", "tier": "SILVER"})
    em.create({"name": "c"})
    assert list_names(client, "tier[eq]:GOLD") == ["a"]
    assert list_names(client, "tier[in]:[GOLD,SILVER]") == ["a", "b"]
    assert list_names(client, "tier[is]:NULL") == ["c"]
    assert_bad_request(client.get(PATH, params={"filter": "tier[eq]:PLATINUM"}))
    assert_bad_request(client.get(PATH, params={"filter": "tier[like]:G%"}))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("PLATINUM", "Invalid value 'PLATINUM' for field \"tier\""),
        ("gold", "Invalid value 'gold' for field \"tier\""),
        (3, 'Invalid string value 3 for text field "tier"'),
    ],
)
def test_select__invalid_option_is_the_servers_400(
    em: TwentyEmulator, client: httpx.Client, value: Any, message: str
) -> None:
    em.add_field("tier", "SELECT", options=("BRONZE", "SILVER", "GOLD"))
    record = em.create({"name": "a", "tier": "GOLD"})
    for response in (
        client.post(PATH, json={"tier": value}),
        client.patch(f"{PATH}/{record['id']}", json={"tier": value}),
        client.post("/rest/batch/repProgressions", json=[{"tier": value}]),
    ):
        assert_bad_request(response)
        assert response.json()["messages"] == [message]
    assert em.records() == [record]


def test_multi_select__lists_of_options(em: TwentyEmulator, client: httpx.Client) -> None:
    em.add_field("skills", "MULTI_SELECT", options=("COLD_CALL", "DEMO", "CLOSE"))
    em.create({"name": "a", "skills": ["DEMO", "CLOSE"]})
    em.create({"name": "b", "skills": ["COLD_CALL"]})
    assert list_names(client, "skills[containsAny]:[CLOSE]") == ["a"]
    response = client.post(PATH, json={"skills": ["DEMO", "NAP"]})
    assert response.json()["messages"] == [
        "Invalid value [ 'DEMO', 'NAP' ] for multi select field \"skills\""
    ]
    response = client.post(PATH, json={"skills": ["DEMO", 7]})
    assert response.json()["messages"] == [
        "Invalid value [ 'DEMO', 7 ] for field \"skills - Array values need to be string\""
    ]


@pytest.mark.parametrize("ftype", ["ARRAY", "MULTI_SELECT"])
def test_array_fields__a_string_is_a_list_of_one_and_an_empty_list_is_stored_as_null(
    em: TwentyEmulator, client: httpx.Client, ftype: str
) -> None:
    """``transformArrayField`` (``data-arg-processor/transformer-utils/``): a string becomes a
    list of one, and an empty list (lodash ``isEmpty``) is stored as null, on create and on
    update alike."""
    em.add_field("tags", ftype, options=("DEMO",) if ftype == "MULTI_SELECT" else None)
    created = client.post(PATH, json={"name": "a", "tags": "DEMO"}).json()
    record = created["data"]["createRepProgression"]
    assert record["tags"] == ["DEMO"]

    updated = client.patch(f"{PATH}/{record['id']}", json={"tags": []}).json()

    assert updated["data"]["updateRepProgression"]["tags"] is None
    assert em.get(record["id"])["tags"] is None
    batch = client.post("/rest/batch/repProgressions", json=[{"name": "b", "tags": []}]).json()
    assert batch["data"]["createRepProgressions"][0]["tags"] is None


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ({"theme": "dark"}, {"theme": "dark"}),
        ([1, "two"], [1, "two"]),
        ('{"a": [1]}', {"a": [1]}),
        ({}, None),
        ([], None),
        ("{}", {}),
        (None, None),
    ],
)
def test_raw_json__objects_lists_and_json_text_and_empty_ones_are_null(
    em: TwentyEmulator, client: httpx.Client, sent: Any, stored: Any
) -> None:
    """validateRawJsonFieldOrThrow takes an object, a list or JSON text; transformRawJsonField
    stores an empty object or list as null (text is parsed after, so "{}" stays {})."""
    em.add_field("settings", "RAW_JSON")
    created = client.post(PATH, json={"name": "a", "settings": sent})
    assert created.status_code == 201, created.text
    assert created.json()["data"]["createRepProgression"]["settings"] == stored


@pytest.mark.parametrize("sent", [5, True, "not json"])
def test_raw_json__anything_else_is_the_servers_400(
    em: TwentyEmulator, client: httpx.Client, sent: Any
) -> None:
    em.add_field("settings", "RAW_JSON")
    response = client.post(PATH, json={"name": "a", "settings": sent})
    assert_bad_request(response)
    shown = {5: "5", True: "true"}.get(sent, f"'{sent}'")
    assert response.json()["messages"] == [f'Invalid object value {shown} for field "settings"']
    assert em.records() == []


def test_add_field__refuses_what_twenty_would_refuse(em: TwentyEmulator) -> None:
    with pytest.raises(ValueError):
        em.add_field("tier", "SELECT", options=("gold",))
    with pytest.raises(ValueError):
        em.add_field("tier", "SELECT")
    with pytest.raises(ValueError):
        em.add_field("name", "TEXT")
    with pytest.raises(ValueError):
        em.add_field("position", "NUMBER")
    with pytest.raises(ValueError):
        em.add_field("stars", "STARS")


def test_unknown_types__rating_links_currency_are_served(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    em.add_field("stars", "RATING")
    em.add_field("site", "LINKS")
    em.add_field("quota", "CURRENCY")
    body = {"name": "a", "stars": "RATING_4", "quota": {"amountMicros": 5_000_000}}
    record = client.post(PATH, json=body).json()["data"]["createRepProgression"]
    assert record["stars"] == "RATING_4" and record["site"] is None
    assert record["quota"] == {"amountMicros": 5_000_000, "currencyCode": None}
    patch = {"quota": {"currencyCode": "EUR"}, "site": {"primaryLinkUrl": "https://x.test"}}
    updated = client.patch(f"{PATH}/{record['id']}", json=patch).json()
    changed = updated["data"]["updateRepProgression"]
    assert changed["quota"] == {"amountMicros": 5_000_000, "currencyCode": "EUR"}
    assert changed["site"]["primaryLinkUrl"] == "https://x.test"
    assert_bad_request(client.post(PATH, json={"stars": "RATING_9"}))
    assert_bad_request(client.post(PATH, json={"quota": {"amount": 5}}))
    assert_bad_request(client.post(PATH, json={"quota": 5}))
    assert_bad_request(client.get(PATH, params={"filter": "quota[eq]:5"}))
    [obj] = objects_of(client.get(METADATA).json())
    types = {field["name"]: field["type"] for field in obj["fields"]}
    assert (types["stars"], types["site"], types["quota"]) == ("RATING", "LINKS", "CURRENCY")


@pytest.mark.parametrize(
    ("sent", "written"),
    [
        ("HTTPS://EXAMPLE.COM", "https://example.com"),
        ("https://example.com/", "https://example.com"),
        ("https://Example.COM:8443/Path/To/", "https://example.com:8443/Path/To"),
        ("HTTP://Ex.com:80/a?Q=B#C", "http://ex.com/a?Q=B#C"),
        ("example.com", "example.com"),
        ("www.example.com", "www.example.com"),
        ("https://example.com/test%2520name", "https://example.com/test%2520name"),
    ],
)
def test_links__urls_are_written_with_the_origin_lower_cased_and_no_trailing_slash(
    em: TwentyEmulator, client: httpx.Client, sent: str, written: str
) -> None:
    """transformLinksValue and lowercaseUrlOriginAndRemoveTrailingSlash (their specs' cases):
    the primary URL and each secondary one; the path, query and labels as sent."""
    em.add_field("site", "LINKS")
    body = {
        "primaryLinkUrl": sent,
        "primaryLinkLabel": "Home",
        "secondaryLinks": [{"url": sent, "label": "Also"}],
    }
    created = client.post(PATH, json={"name": "a", "site": body})
    site = created.json()["data"]["createRepProgression"]["site"]
    assert site["primaryLinkUrl"] == written and site["primaryLinkLabel"] == "Home"
    assert site["secondaryLinks"] == [{"url": written, "label": "Also"}]


def test_emails__addresses_are_written_trimmed_and_lower_cased(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    """transformEmailsValue: canonical addresses, empty ones null, and primaryEmail written
    with every EMAILS write (sending only additionalEmails clears it)."""
    em.add_field("contact", "EMAILS")
    body = {"primaryEmail": " Ann@X.Test ", "additionalEmails": ["BO@X.test", "cy@x.TEST"]}
    created = client.post(PATH, json={"name": "a", "contact": body})
    record = created.json()["data"]["createRepProgression"]
    assert record["contact"] == {
        "primaryEmail": "ann@x.test",
        "additionalEmails": ["bo@x.test", "cy@x.test"],
    }
    path = f"{PATH}/{record['id']}"
    text = client.patch(path, json={"contact": {"additionalEmails": '["DI@X.TEST"]'}})
    assert text.json()["data"]["updateRepProgression"]["contact"] == {
        "primaryEmail": None,
        "additionalEmails": ["di@x.test"],
    }
    emptied = client.patch(path, json={"contact": {"primaryEmail": "", "additionalEmails": []}})
    assert emptied.json()["data"]["updateRepProgression"]["contact"] == {
        "primaryEmail": None,
        "additionalEmails": None,
    }


@pytest.mark.parametrize(
    ("ftype", "sent", "message"),
    [
        ("CURRENCY", 5, 'Invalid object value 5 for field "extra"'),
        ("CURRENCY", {"amount": 5}, 'Invalid subfield amount for currency field "extra"'),
        ("FULL_NAME", {"first": "a"}, 'Invalid subfield first for full name field "extra"'),
        ("LINKS", {"url": "a"}, 'Invalid subfield url for links field "extra"'),
        ("PHONES", {"number": "1"}, 'Invalid subfield number for phones field "extra"'),
        ("EMAILS", '{"primaryEmail": "a"}', 'Invalid subfield 0 for emails field "extra"'),
        (
            "CURRENCY",
            {"amountMicros": "five"},
            'Invalid number value NaN for field "extra.amountMicros"',
        ),
        (  # JavaScript's Number() reads no digit separators
            "CURRENCY",
            {"amountMicros": "1_000"},
            'Invalid number value NaN for field "extra.amountMicros"',
        ),
        ("FULL_NAME", {"firstName": 5}, 'Invalid string value 5 for text field "extra.firstName"'),
        (
            "EMAILS",
            {"additionalEmails": [5]},
            'Invalid value [ 5 ] for field "extra.additionalEmails - '
            'Array values need to be string"',
        ),
    ],
)
def test_composites__refusals_are_their_validators_400s(
    em: TwentyEmulator, client: httpx.Client, ftype: str, sent: Any, message: str
) -> None:
    """validate-<type>-field-or-throw.util.ts: the RAW_JSON check on the whole value, then each
    entry of ``Object.entries`` (a JSON text's are its characters' indices) by its sub-field's
    check, the message naming ``<field>.<sub-field>``."""
    em.add_field("extra", ftype)
    response = client.post(PATH, json={"name": "a", "extra": sent})
    assert_bad_request(response)
    assert response.json()["messages"] == [message]
    assert em.records() == []


def test_composites__currency_and_full_name_are_written_as_their_transformers_write(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    """transformCurrencyField: amountMicros as Number(…), an empty currencyCode null;
    transformFullNameField: an empty first or last name null; sub-fields not sent stay."""
    em.add_field("quota", "CURRENCY")
    em.add_field("person", "FULL_NAME")
    body = {
        "name": "a",
        "quota": {"amountMicros": "2500000", "currencyCode": "EUR"},
        "person": {"firstName": "Ann", "lastName": ""},
    }
    record = client.post(PATH, json=body).json()["data"]["createRepProgression"]
    assert record["quota"] == {"amountMicros": 2500000, "currencyCode": "EUR"}
    assert record["person"] == {"firstName": "Ann", "lastName": None}
    patch = {"quota": {"currencyCode": ""}, "person": {"lastName": "Bo"}}
    changed = client.patch(f"{PATH}/{record['id']}", json=patch).json()
    updated = changed["data"]["updateRepProgression"]
    assert updated["quota"] == {"amountMicros": 2500000, "currencyCode": None}
    assert updated["person"] == {"firstName": "Ann", "lastName": "Bo"}


def test_records__a_field_the_key_may_not_read_is_left_out_of_every_answer(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    """Field permissions: a REST read selects every field but those the role may not read; the
    data model still lists them, and a null field the key may read is sent as null."""
    em.unreadable_fields = frozenset({"currentRank"})
    created = client.post(PATH, json={"name": "x", "currentRank": "E-3"}).json()
    record_id = created["data"]["createRepProgression"]["id"]
    upserted = client.post(
        f"/rest/batch{PATH.removeprefix('/rest')}",
        params={"upsert": "true"},
        json=[{"id": record_id, "currentRank": "E-4"}],
    ).json()
    answers = [
        created["data"]["createRepProgression"],
        upserted["data"]["createRepProgressions"][0],
        client.get(f"{PATH}/{record_id}").json()["data"]["repProgression"],
        client.get(PATH).json()["data"]["repProgressions"][0],
    ]

    for record in answers:
        assert "currentRank" not in record
        assert "badges" in record and record["badges"] is None
    assert em.records()[0]["currentRank"] == "E-4"  # written all the same
    [obj] = objects_of(client.get(METADATA).json())
    assert "currentRank" in {field["name"] for field in obj["fields"]}
    em.reset()  # the switch goes back to every field readable
    client.post(PATH, json={"name": "y", "currentRank": "E-1"})
    assert client.get(PATH).json()["data"]["repProgressions"][0]["currentRank"] == "E-1"


# -- a server without the REST data-model controller -----------------------------------------------


def test_metadata__a_server_without_the_controller_answers_as_for_an_unknown_object(
    em: TwentyEmulator, client: httpx.Client
) -> None:
    """``rest/metadata/*`` is its own controller; without it the path falls to the records'
    ``rest/*`` routes, where ``metadata`` is an unknown object name."""
    em.serves_metadata = False
    response = client.get(METADATA)
    assert_bad_request(response)
    assert response.json()["messages"] == ["object 'metadata' not found. eg: companies"]
    assert client.get(PATH).status_code == 200
    em.reset()
    assert client.get(METADATA).status_code == 200
