"""Patient profiles: create, read, merge updates, versions, history, validation."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from docwiz.errors import ErrorBody

MakeAccount = Callable[..., Awaitable[Any]]

PROFILE: dict[str, Any] = {
    "name": "John Doe",
    "date_of_birth": "1990-01-15",
    "location": {"zip_code": "94102", "city": "San Francisco", "state": "CA"},
    "insurance_info": {
        "provider": "Blue Cross Blue Shield",
        "policy_number": "BC123456789",
        "plan_type": "PPO",
    },
    "medical_history": "No significant medical history",
}


def profile(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(PROFILE)
    body.update(changes)
    return body


async def create(
    client: TestClient[Any, Any], account: Any, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    response = await client.post(
        "/api/profiles", json=body or PROFILE, headers=account.headers
    )
    assert response.status == 201, await response.text()
    created: dict[str, Any] = await response.json()
    return created


async def put(
    client: TestClient[Any, Any],
    account: Any,
    profile_id: str,
    body: dict[str, Any],
    **headers: str,
) -> Any:
    return await client.put(
        f"/api/profiles/{profile_id}",
        json=body,
        headers={**account.headers, **headers},
    )


async def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    body: dict[str, Any] = await response.json()
    ErrorBody.model_validate(body)
    return body


# -- create and read -----------------------------------------------------------


async def test_create_returns_the_documented_profile(
    client: TestClient[Any, Any], account: Any
) -> None:
    response = await client.post("/api/profiles", json=PROFILE, headers=account.headers)

    assert response.status == 201
    body = await response.json()
    assert set(body) == {
        "id",
        "user_id",
        "name",
        "date_of_birth",
        "location",
        "insurance_info",
        "medical_history",
        "created_at",
        "updated_at",
        "version",
    }
    assert body["id"].startswith("profile_")
    assert body["user_id"] == account.id
    assert body["location"] == {
        "zip_code": "94102",
        "city": "San Francisco",
        "state": "CA",
        "country": "USA",
    }
    assert body["insurance_info"]["policy_number"] == "BC123456789"
    assert body["medical_history"] == "No significant medical history"
    assert body["date_of_birth"] == "1990-01-15"
    assert body["version"] == 1
    assert body["created_at"] == body["updated_at"]
    assert response.headers["ETag"] == '"1"'


async def test_a_second_profile_is_a_400(
    client: TestClient[Any, Any], account: Any
) -> None:
    first = await create(client, account)

    second = await client.post("/api/profiles", json=PROFILE, headers=account.headers)

    body = await error_of(second, 400)
    assert body["code"] == "profile_exists"
    assert first["id"] in body["detail"]


async def test_profiles_need_a_token(client: TestClient[Any, Any]) -> None:
    assert (await client.post("/api/profiles", json=PROFILE)).status == 401
    assert (await client.get("/api/profiles/me")).status == 401


async def test_me_is_a_404_until_created_then_the_profile(
    client: TestClient[Any, Any], account: Any
) -> None:
    before = await client.get("/api/profiles/me", headers=account.headers)
    await error_of(before, 404)

    created = await create(client, account)
    after = await client.get("/api/profiles/me", headers=account.headers)

    assert after.status == 200
    assert await after.json() == created


async def test_by_id_is_200_for_the_owner_403_for_others_404_for_none(
    client: TestClient[Any, Any], make_account: MakeAccount
) -> None:
    owner, stranger = await make_account(), await make_account()
    created = await create(client, owner)
    url = f"/api/profiles/{created['id']}"

    mine = await client.get(url, headers=owner.headers)
    theirs = await client.get(url, headers=stranger.headers)
    nobody = await client.get("/api/profiles/profile_0000", headers=owner.headers)

    assert mine.status == 200
    assert await mine.json() == created
    body = await error_of(theirs, 403)
    assert "BC123456789" not in str(body)
    await error_of(nobody, 404)


async def test_insurance_and_history_are_optional(
    client: TestClient[Any, Any], account: Any
) -> None:
    body = profile()
    del body["insurance_info"], body["medical_history"]

    created = await create(client, account, body)

    assert created["insurance_info"] is None
    assert created["medical_history"] is None


async def test_plan_figures_round_trip_as_numbers(
    client: TestClient[Any, Any], account: Any
) -> None:
    figures = {
        "deductible": 1500,
        "deductible_met": 250.5,
        "coinsurance": 0.2,
        "copay": 40,
        "out_of_pocket_max": 6000,
        "out_of_pocket_met": 900.25,
    }
    body = profile(insurance_info={**PROFILE["insurance_info"], **figures})

    created = await create(client, account, body)

    for name, value in figures.items():
        assert created["insurance_info"][name] == value


# -- validation ----------------------------------------------------------------

TOO_OLD = (datetime.now(UTC).date() - timedelta(days=365 * 131)).isoformat()
TOMORROW = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
INSURANCE = PROFILE["insurance_info"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"date_of_birth": TOMORROW}, "date_of_birth"),
        ({"date_of_birth": TOO_OLD}, "date_of_birth"),
        ({"date_of_birth": "15/01/1990"}, "date_of_birth"),
        (
            {"location": {**PROFILE["location"], "zip_code": "9410"}},
            "location.zip_code",
        ),
        (
            {"location": {**PROFILE["location"], "zip_code": "94102-12"}},
            "location.zip_code",
        ),
        ({"location": {**PROFILE["location"], "state": "XX"}}, "location.state"),
        ({"location": {**PROFILE["location"], "state": "Cal"}}, "location.state"),
        (
            {"location": {**PROFILE["location"], "country": "Canada"}},
            "location.country",
        ),
        ({"location": {"zip_code": "94102", "state": "CA"}}, "location.city"),
        ({"insurance_info": {"policy_number": "X1"}}, "insurance_info.provider"),
        (
            {"insurance_info": {**INSURANCE, "coinsurance": 1.5}},
            "insurance_info.coinsurance",
        ),
        ({"insurance_info": {**INSURANCE, "copay": -5}}, "insurance_info.copay"),
        (
            {"insurance_info": {**INSURANCE, "deductible": 12.345}},
            "insurance_info.deductible",
        ),
        (
            {"insurance_info": {**INSURANCE, "deductible": 500, "deductible_met": 600}},
            "insurance_info.deductible_met",
        ),
        (
            {
                "insurance_info": {
                    **INSURANCE,
                    "out_of_pocket_max": 1000,
                    "out_of_pocket_met": 1000.01,
                }
            },
            "insurance_info.out_of_pocket_met",
        ),
        (
            {
                "insurance_info": {
                    **INSURANCE,
                    "deductible": 3000,
                    "out_of_pocket_max": 2000,
                }
            },
            "insurance_info.out_of_pocket_max",
        ),
    ],
)
async def test_invalid_profiles_are_a_422_naming_the_field(
    client: TestClient[Any, Any], account: Any, changes: dict[str, Any], field: str
) -> None:
    response = await client.post(
        "/api/profiles", json=profile(**changes), headers=account.headers
    )

    body = await error_of(response, 422)
    assert [error["field"] for error in body["errors"]] == [field]
    assert "BC123456789" not in str(body), "submitted values are not echoed"


async def test_lenient_spellings_are_normalized(
    client: TestClient[Any, Any], account: Any
) -> None:
    location = {
        "zip_code": " 94102-1234 ",
        "city": "San Francisco",
        "state": "ca",
        "country": "United States",
    }

    created = await create(client, account, profile(location=location))

    assert created["location"] == {
        "zip_code": "94102-1234",
        "city": "San Francisco",
        "state": "CA",
        "country": "USA",
    }


async def test_missing_fields_are_all_named(
    client: TestClient[Any, Any], account: Any
) -> None:
    response = await client.post("/api/profiles", json={}, headers=account.headers)

    body = await error_of(response, 422)
    assert {e["field"] for e in body["errors"]} == {
        "name",
        "date_of_birth",
        "location",
    }


# -- update --------------------------------------------------------------------


async def test_put_merges_nested_objects(
    client: TestClient[Any, Any], account: Any
) -> None:
    created = await create(client, account)

    response = await put(
        client,
        account,
        created["id"],
        {
            "name": "John Doe",
            "location": {"zip_code": "94103"},
            "insurance_info": {"plan_type": "HMO"},
        },
    )

    assert response.status == 200
    body = await response.json()
    assert body["location"] == {
        "zip_code": "94103",
        "city": "San Francisco",
        "state": "CA",
        "country": "USA",
    }
    assert body["insurance_info"]["provider"] == "Blue Cross Blue Shield"
    assert body["insurance_info"]["policy_number"] == "BC123456789"
    assert body["insurance_info"]["plan_type"] == "HMO"
    assert body["medical_history"] == PROFILE["medical_history"]
    assert body["version"] == 2
    assert body["created_at"] == created["created_at"]
    assert body["updated_at"] > created["updated_at"]
    assert response.headers["ETag"] == '"2"'


async def test_every_update_raises_the_version_by_exactly_one(
    client: TestClient[Any, Any], account: Any
) -> None:
    created = await create(client, account)

    versions = []
    for zip_code in ("94103", "94104", "94104"):
        response = await put(
            client, account, created["id"], {"location": {"zip_code": zip_code}}
        )
        versions.append((await response.json())["version"])

    assert versions == [2, 3, 4]


async def test_null_clears_an_optional_field(
    client: TestClient[Any, Any], account: Any
) -> None:
    created = await create(client, account)

    response = await put(client, account, created["id"], {"medical_history": None})

    assert (await response.json())["medical_history"] is None


async def test_put_checks_the_merged_profile(
    client: TestClient[Any, Any], account: Any
) -> None:
    insurance = {**INSURANCE, "deductible": 1000, "deductible_met": 100}
    created = await create(client, account, profile(insurance_info=insurance))

    response = await put(
        client, account, created["id"], {"insurance_info": {"deductible_met": 1200}}
    )
    cleared = await put(client, account, created["id"], {"name": None})

    body = await error_of(response, 422)
    assert [e["field"] for e in body["errors"]] == ["insurance_info.deductible_met"]
    await error_of(cleared, 422)
    unchanged = await client.get("/api/profiles/me", headers=account.headers)
    assert (await unchanged.json())["version"] == 1


async def test_put_refuses_bad_field_values(
    client: TestClient[Any, Any], account: Any
) -> None:
    created = await create(client, account)

    response = await put(client, account, created["id"], {"location": {"state": "ZZ"}})

    body = await error_of(response, 422)
    assert [e["field"] for e in body["errors"]] == ["location.state"]


async def test_put_is_403_for_others_and_404_for_none(
    client: TestClient[Any, Any], make_account: MakeAccount
) -> None:
    owner, stranger = await make_account(), await make_account()
    created = await create(client, owner)

    theirs = await put(client, stranger, created["id"], {"name": "Mallory"})
    nobody = await put(client, owner, "profile_missing", {"name": "Nobody"})

    await error_of(theirs, 403)
    await error_of(nobody, 404)
    after = await client.get("/api/profiles/me", headers=owner.headers)
    assert (await after.json())["name"] == "John Doe"


# -- optimistic concurrency ----------------------------------------------------


async def test_a_stale_version_is_a_409(
    client: TestClient[Any, Any], account: Any
) -> None:
    created = await create(client, account)
    await put(client, account, created["id"], {"name": "First Writer", "version": 1})

    stale = await put(client, account, created["id"], {"name": "Late", "version": 1})
    current = await put(
        client, account, created["id"], {"name": "Second Writer", "version": 2}
    )

    body = await error_of(stale, 409)
    assert body["code"] == "version_conflict"
    assert "version 2" in body["detail"]
    assert current.status == 200
    assert (await current.json())["version"] == 3


async def test_if_match_works_like_the_body_version(
    client: TestClient[Any, Any], account: Any
) -> None:
    created = await create(client, account)

    fresh = await put(
        client, account, created["id"], {"name": "Via Header"}, **{"If-Match": '"1"'}
    )
    stale = await put(
        client, account, created["id"], {"name": "Stale"}, **{"If-Match": 'W/"1"'}
    )
    malformed = await put(
        client, account, created["id"], {"name": "X"}, **{"If-Match": "*, abc"}
    )
    disagreeing = await put(
        client,
        account,
        created["id"],
        {"name": "X", "version": 2},
        **{"If-Match": '"1"'},
    )

    assert fresh.status == 200
    await error_of(stale, 409)
    await error_of(malformed, 400)
    await error_of(disagreeing, 400)


async def test_concurrent_updates_never_lose_one(
    client: TestClient[Any, Any], account: Any
) -> None:
    created = await create(client, account)
    writers = 20

    responses = await asyncio.gather(
        *(
            put(
                client,
                account,
                created["id"],
                {"location": {"zip_code": f"{90000 + n:05d}"}},
            )
            for n in range(writers)
        )
    )

    assert [r.status for r in responses] == [200] * writers
    seen_versions = sorted([(await r.json())["version"] for r in responses])
    assert seen_versions == list(range(2, writers + 2))
    final = await (await client.get("/api/profiles/me", headers=account.headers)).json()
    assert final["version"] == 1 + writers
    history = await client.get(
        f"/api/profiles/{created['id']}/history", headers=account.headers
    )
    entries = await history.json()
    assert [e["version"] for e in entries] == list(range(1, writers + 2))
    zips = {e["changes"].get("location.zip_code") for e in entries[1:]}
    assert len(zips) == writers, "each writer's change is a version of its own"


# -- history -------------------------------------------------------------------


async def test_history_lists_each_version_with_dotted_changes(
    client: TestClient[Any, Any], account: Any
) -> None:
    created = await create(client, account)
    await put(
        client,
        account,
        created["id"],
        {
            "name": "John Doe",
            "location": {"zip_code": "94103"},
            "insurance_info": {"plan_type": "HMO"},
        },
    )
    await put(
        client,
        account,
        created["id"],
        {
            "insurance_info": {"policy_number": "ZZ99999"},
            "medical_history": "Allergic to penicillin",
        },
    )

    response = await client.get(
        f"/api/profiles/{created['id']}/history", headers=account.headers
    )

    assert response.status == 200
    entries = await response.json()
    assert [e["version"] for e in entries] == [1, 2, 3]
    assert entries[0]["changes"] == {"created": True}
    assert entries[1]["changes"] == {
        "location.zip_code": "94103",
        "insurance_info.plan_type": "HMO",
    }
    assert entries[2]["changes"] == {
        "insurance_info.policy_number": "[encrypted]",
        "medical_history": "[encrypted]",
    }
    assert "ZZ99999" not in str(entries)
    assert "penicillin" not in str(entries)
    assert entries[0]["updated_at"] == created["created_at"]
    assert entries[0]["updated_at"] <= entries[1]["updated_at"]


async def test_history_shows_added_plan_figures_and_removed_insurance(
    client: TestClient[Any, Any], account: Any
) -> None:
    created = await create(client, account)
    await put(client, account, created["id"], {"insurance_info": {"deductible": 2000}})
    await put(client, account, created["id"], {"insurance_info": None})

    entries = await (
        await client.get(
            f"/api/profiles/{created['id']}/history", headers=account.headers
        )
    ).json()

    assert entries[1]["changes"] == {"insurance_info.deductible": 2000}
    assert entries[2]["changes"] == {
        "insurance_info.deductible": None,
        "insurance_info.plan_type": None,
        "insurance_info.policy_number": "[encrypted]",
        "insurance_info.provider": None,
    }


async def test_history_is_403_for_others_and_404_for_none(
    client: TestClient[Any, Any], make_account: MakeAccount
) -> None:
    owner, stranger = await make_account(), await make_account()
    created = await create(client, owner)

    theirs = await client.get(
        f"/api/profiles/{created['id']}/history", headers=stranger.headers
    )
    nobody = await client.get(
        "/api/profiles/profile_none/history", headers=owner.headers
    )

    await error_of(theirs, 403)
    await error_of(nobody, 404)


def test_the_oldest_accepted_birth_date_is_130_years_back() -> None:
    from docwiz.services.profiles import ProfileIn

    today = datetime.now(UTC).date()
    oldest = date(today.year - 130, today.month, min(today.day, 28))
    body = profile(date_of_birth=oldest.isoformat())

    assert ProfileIn.model_validate(body).date_of_birth == oldest


async def test_policy_numbers_and_histories_never_reach_the_logs(
    client: TestClient[Any, Any],
    make_account: MakeAccount,
    caplog: pytest.LogCaptureFixture,
) -> None:
    owner, stranger = await make_account(), await make_account()
    with caplog.at_level(logging.DEBUG):
        created = await create(client, owner)
        await put(
            client,
            owner,
            created["id"],
            {"insurance_info": {"policy_number": "LOG0000SECRET"}, "version": 9},
        )
        await put(
            client, owner, created["id"], {"medical_history": "Secret history note"}
        )
        await client.get(f"/api/profiles/{created['id']}", headers=stranger.headers)
        await client.post("/api/profiles", json=PROFILE, headers=owner.headers)

    logged = caplog.text + "".join(str(record.args) for record in caplog.records)
    for secret in ("BC123456789", "LOG0000SECRET", "Secret history", "significant"):
        assert secret not in logged
