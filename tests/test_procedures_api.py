"""Procedure endpoints: list, filters, search, detail, ETags, initialize."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

LIST_ITEM_FIELDS = {
    "id",
    "name",
    "category",
    "description",
    "typical_cost_min",
    "typical_cost_max",
    "recovery_days",
    "risk_level",
    "cpt_codes",
    "icd10_codes",
}


async def test_fresh_install_lists_the_catalog_without_initialize(
    client: TestClient[Any, Any],
) -> None:
    response = await client.get("/api/procedures")

    assert response.status == 200
    body = await response.json()
    assert body["total"] == len(body["procedures"]) >= 25
    assert LIST_ITEM_FIELDS <= set(body["procedures"][0])
    ids = {p["id"] for p in body["procedures"]}
    assert "proc_rhinoplasty" in ids
    assert all(i.startswith("proc_") for i in ids)


async def test_category_filter_and_categories(client: TestClient[Any, Any]) -> None:
    categories = await (await client.get("/api/procedures/categories")).json()
    facial = await (await client.get("/api/procedures?category=Facial")).json()

    assert categories == {
        "categories": ["facial", "body", "reconstructive", "cosmetic"],
        "total": 4,
    }
    assert facial["total"] > 0
    assert {p["category"] for p in facial["procedures"]} == {"facial"}


async def test_unknown_category_is_a_400(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/procedures?category=dental")

    assert response.status == 400
    assert "facial" in (await response.json())["detail"]


async def test_search_uses_synonyms_and_ignores_case(
    client: TestClient[Any, Any],
) -> None:
    nose = await (await client.get("/api/procedures?search=NOSE")).json()
    nothing = await (await client.get("/api/procedures?search=xylophone")).json()

    assert "proc_rhinoplasty" in {p["id"] for p in nose["procedures"]}
    assert nothing == {"procedures": [], "total": 0}


async def test_detail_has_the_documented_shape(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/procedures/proc_rhinoplasty")

    assert response.status == 200
    body = await response.json()
    assert {
        "id",
        "name",
        "category",
        "description",
        "recovery_days",
        "risk_level",
        "cost_range",
    } <= set(body)
    assert body["cost_range"]["min"] < body["cost_range"]["max"]
    missing = await client.get("/api/procedures/proc_teleportation")
    assert missing.status == 404
    assert (await missing.json())["code"] == "not_found"


async def test_etag_answers_304_for_a_cached_copy(client: TestClient[Any, Any]) -> None:
    first = await client.get("/api/procedures?category=body")
    etag = first.headers["ETag"]

    again = await client.get(
        "/api/procedures?category=body", headers={"If-None-Match": etag}
    )
    other = await client.get(
        "/api/procedures?category=facial", headers={"If-None-Match": etag}
    )

    assert again.status == 304
    assert await again.read() == b""
    assert other.status == 200
    assert other.headers["ETag"] != etag


async def test_initialize_is_admin_only_and_idempotent(
    client: TestClient[Any, Any], account: Any, admin: Any
) -> None:
    anonymous = await client.post("/api/procedures/initialize")
    ordinary = await client.post("/api/procedures/initialize", headers=account.headers)
    first = await client.post("/api/procedures/initialize", headers=admin.headers)
    second = await client.post("/api/procedures/initialize", headers=admin.headers)

    assert (anonymous.status, ordinary.status) == (401, 403)
    body = await first.json()
    assert body == await second.json()
    assert body["message"] == f"Successfully initialized {body['count']} procedures"
    listed = await (await client.get("/api/procedures")).json()
    assert body["count"] == listed["total"]
