"""Visualization endpoints end to end: the offline generator on the real portrait,
owner checks, refusals, no orphaned files, and similar cases with their filters."""

from __future__ import annotations

import io
import math
import random
import sqlite3
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient
from PIL import Image, ImageDraw, ImageFilter

from docwiz.appkeys import DATABASE, SETTINGS
from docwiz.builtin.offline_generator import MODEL_NAME, RECIPES, locate_region
from docwiz.config import Settings
from docwiz.db.base import new_id
from docwiz.db.models_visualizations import SimilarCase, Visualization

FIXTURES = Path(__file__).parent / "fixtures"
PORTRAIT = (FIXTURES / "images" / "astronaut.jpg").read_bytes()
DOCUMENTED_KEYS = {
    "id",
    "patient_id",
    "procedure_id",
    "before_image_url",
    "after_image_url",
    "prompt_used",
    "generated_at",
    "confidence_score",
    "metadata",
}
CASE_KEYS = {
    "id",
    "before_image_url",
    "after_image_url",
    "procedure_type",
    "similarity_score",
    "outcome_rating",
    "patient_satisfaction",
    "age_range",
    "anonymized",
    "matching_criteria",
    "demo",
}
PROFILE: dict[str, Any] = {
    "name": "Jane Roe",
    "date_of_birth": "1988-04-02",
    "location": {"zip_code": "94102", "city": "San Francisco", "state": "CA"},
    "insurance_info": {
        "provider": "Aetna",
        "policy_number": "AE0000001",
        "plan_type": "PPO",
    },
    "medical_history": "None",
}


def landscape_jpeg() -> bytes:
    """Sky, three ridges and grass texture: a sharp, contrasty photo with no face."""
    rng = random.Random(7)
    width, height = 640, 480
    photo = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(photo)
    for y in range(height // 2):
        t = y / (height / 2)
        draw.line(
            [(0, y), (width, y)], fill=(int(90 + 100 * t), int(150 + 70 * t), 235)
        )
    for layer, (base, colour) in enumerate(
        [(260, (70, 110, 60)), (320, (50, 90, 40)), (380, (40, 70, 35))]
    ):
        ridge = [(0, height)]
        for x in range(0, width + 20, 20):
            wave = 40 * math.sin(x / 70 + layer * 2)
            ridge.append((x, base + int(wave) + rng.randint(-8, 8)))
        ridge.append((width, height))
        draw.polygon(ridge, fill=colour)
    for _ in range(4000):
        green = rng.randint(40, 120)
        draw.point(
            (rng.randrange(width), rng.randrange(height // 2, height)),
            fill=(green // 2, green, green // 3),
        )
    encoded = io.BytesIO()
    photo.filter(ImageFilter.SMOOTH).save(encoded, "JPEG", quality=90)
    return encoded.getvalue()


async def upload(client: TestClient[Any, Any], account: Any, data: bytes) -> str:
    form = FormData()
    form.add_field("file", data, filename="photo.jpg", content_type="image/jpeg")
    response = await client.post(
        "/api/images/upload", data=form, headers=account.headers
    )
    assert response.status == 200, await response.text()
    image_id: str = (await response.json())["id"]
    return image_id


async def make_profile(client: TestClient[Any, Any], account: Any) -> str:
    response = await client.post("/api/profiles", json=PROFILE, headers=account.headers)
    assert response.status == 201, await response.text()
    profile_id: str = (await response.json())["id"]
    return profile_id


async def request_preview(
    client: TestClient[Any, Any],
    account: Any,
    *,
    image_id: str,
    patient_id: str,
    procedure_id: str = "proc_rhinoplasty",
    params: dict[str, str] | None = None,
) -> Any:
    return await client.post(
        "/api/visualizations",
        json={
            "image_id": image_id,
            "procedure_id": procedure_id,
            "patient_id": patient_id,
        },
        params=params,
        headers=account.headers,
    )


@pytest.fixture
async def patient(client: TestClient[Any, Any], account: Any) -> dict[str, str]:
    """The account's profile and its uploaded portrait."""
    return {
        "patient_id": await make_profile(client, account),
        "image_id": await upload(client, account, PORTRAIT),
    }


@pytest.fixture
async def visualization(
    client: TestClient[Any, Any], account: Any, patient: dict[str, str]
) -> dict[str, Any]:
    response = await request_preview(client, account, **patient)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def stored_files(settings: Settings, folder: str) -> list[Path]:
    root = settings.data_dir / "files" / folder
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def assert_error_body(body: dict[str, Any], status: int) -> None:
    assert body["status"] == status
    assert {"detail", "code", "status", "request_id"} <= set(body)


def decode(data: bytes) -> Any:
    # The generator decodes with OpenCV; decode the same way so that pixels
    # compare exactly.
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


# -- creating and reading ----------------------------------------------------------


async def test_a_rhinoplasty_preview_of_the_portrait(
    client: TestClient[Any, Any],
    account: Any,
    patient: dict[str, str],
    visualization: dict[str, Any],
) -> None:
    body = visualization
    assert set(body) == DOCUMENTED_KEYS
    assert body["id"].startswith("viz_")
    assert body["patient_id"] == patient["patient_id"]
    assert body["procedure_id"] == "proc_rhinoplasty"
    assert body["metadata"]["model"] == MODEL_NAME
    assert body["metadata"]["processing_time_ms"] >= 0
    assert 0.5 < body["confidence_score"] <= 1.0
    assert "region=nose" in body["prompt_used"]

    before = await client.get(body["before_image_url"])
    after = await client.get(body["after_image_url"])
    assert (before.status, after.status) == (200, 200)
    assert after.content_type == "image/png"
    before_pixels, after_pixels = (
        decode(await before.read()),
        decode(await after.read()),
    )
    assert before_pixels.shape == after_pixels.shape == (512, 512, 3)

    # Far from the nose (the top-left corner) nothing changed at all...
    assert np.array_equal(before_pixels[:120, :150], after_pixels[:120, :150])
    # ...and outside the nose ellipses only the corner mark may differ.
    left, top, right, bottom = locate_region(
        before_pixels, "nose", RECIPES["nose"]
    ).bounds
    changed = np.any(before_pixels != after_pixels, axis=2)
    assert changed[top:bottom, left:right].sum() > 200
    outside = changed.copy()
    outside[top:bottom, left:right] = False
    rows = np.nonzero(outside)[0]
    assert rows.size > 0 and rows.min() > 512 * 0.85  # the "SIMULATION" plate


async def test_reading_a_preview_gives_fresh_links(
    client: TestClient[Any, Any], account: Any, visualization: dict[str, Any]
) -> None:
    response = await client.get(
        f"/api/visualizations/{visualization['id']}", headers=account.headers
    )

    assert response.status == 200
    body = await response.json()
    assert set(body) == DOCUMENTED_KEYS
    for key in ("id", "prompt_used", "confidence_score", "metadata", "generated_at"):
        assert body[key] == visualization[key]
    assert (await client.get(body["after_image_url"])).status == 200
    assert (await client.get(body["before_image_url"])).status == 200


async def test_reads_are_audited(
    client: TestClient[Any, Any],
    account: Any,
    settings: Settings,
    visualization: dict[str, Any],
) -> None:
    await client.get(
        f"/api/visualizations/{visualization['id']}", headers=account.headers
    )
    await client.get(
        f"/api/visualizations/{visualization['id']}/similar", headers=account.headers
    )

    with sqlite3.connect(settings.data_dir / "docwiz.db") as db:
        events = db.execute(
            "SELECT action, resource_id, patient_id, outcome FROM audit_events "
            "WHERE resource_type = 'visualization' ORDER BY id"
        ).fetchall()
    expected_ids = (visualization["id"], visualization["patient_id"], "success")
    assert events == [
        ("visualization.create", *expected_ids),
        ("visualization.read", *expected_ids),
        ("similar_cases.read", *expected_ids),
    ]


# -- owner checks and refusals -----------------------------------------------------


async def test_someone_elses_preview_is_403_and_an_unknown_one_404(
    client: TestClient[Any, Any], make_account: Any, visualization: dict[str, Any]
) -> None:
    stranger = await make_account()
    for suffix in ("", "/similar"):
        theirs = await client.get(
            f"/api/visualizations/{visualization['id']}{suffix}",
            headers=stranger.headers,
        )
        unknown = await client.get(
            f"/api/visualizations/viz_0000000000000000{suffix}",
            headers=stranger.headers,
        )
        assert theirs.status == 403
        assert_error_body(await theirs.json(), 403)
        assert unknown.status == 404
        assert_error_body(await unknown.json(), 404)


async def test_someone_elses_photo_or_profile_is_403(
    client: TestClient[Any, Any], make_account: Any, patient: dict[str, str]
) -> None:
    stranger = await make_account()
    own_profile = await make_profile(client, stranger)
    own_image = await upload(client, stranger, PORTRAIT)

    with_their_photo = await request_preview(
        client, stranger, image_id=patient["image_id"], patient_id=own_profile
    )
    with_their_profile = await request_preview(
        client, stranger, image_id=own_image, patient_id=patient["patient_id"]
    )

    assert with_their_photo.status == 403
    assert_error_body(await with_their_photo.json(), 403)
    assert with_their_profile.status == 403
    assert_error_body(await with_their_profile.json(), 403)


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"image_id": "img_0000000000000000"}, 400, "image_not_found"),
        ({"procedure_id": "proc_unknown"}, 400, "procedure_not_found"),
        ({"patient_id": "profile_0000000000000000"}, 404, "not_found"),
    ],
    ids=["image", "procedure", "profile"],
)
async def test_missing_records(
    client: TestClient[Any, Any],
    account: Any,
    settings: Settings,
    patient: dict[str, str],
    change: dict[str, str],
    status: int,
    code: str,
) -> None:
    response = await request_preview(client, account, **{**patient, **change})

    assert response.status == status
    body = await response.json()
    assert_error_body(body, status)
    assert body["code"] == code
    assert stored_files(settings, "visualizations") == []


async def test_asynchronous_processing_is_refused_honestly(
    client: TestClient[Any, Any], account: Any, patient: dict[str, str]
) -> None:
    response = await request_preview(
        client, account, **patient, params={"async_processing": "true"}
    )
    unknown_option = await request_preview(
        client, account, **patient, params={"priority": "high"}
    )

    assert response.status == 400
    body = await response.json()
    assert_error_body(body, 400)
    assert body["detail"] == "asynchronous processing is not available yet"
    assert unknown_option.status == 400


async def test_a_facial_procedure_on_a_photo_without_a_face_is_400(
    client: TestClient[Any, Any], account: Any, settings: Settings
) -> None:
    profile_id = await make_profile(client, account)
    landscape = await upload(client, account, landscape_jpeg())

    response = await request_preview(
        client, account, image_id=landscape, patient_id=profile_id
    )

    assert response.status == 400
    body = await response.json()
    assert_error_body(body, 400)
    assert body["code"] == "generation_refused"
    assert "no front-facing face" in body["detail"]
    assert stored_files(settings, "visualizations") == []


async def test_no_after_image_is_left_when_the_row_cannot_be_written(
    client: TestClient[Any, Any],
    account: Any,
    settings: Settings,
    patient: dict[str, str],
) -> None:
    with sqlite3.connect(settings.data_dir / "docwiz.db") as db:
        db.execute(
            "CREATE TRIGGER refuse_previews BEFORE INSERT ON visualizations "
            "BEGIN SELECT RAISE(ABORT, 'disk full (simulated)'); END"
        )

    response = await request_preview(client, account, **patient)

    assert response.status == 500
    assert_error_body(await response.json(), 500)
    assert stored_files(settings, "visualizations") == []


# -- similar cases -----------------------------------------------------------------


async def similar(
    client: TestClient[Any, Any],
    account: Any,
    visualization_id: str,
    params: dict[str, str] | list[tuple[str, str]] | None = None,
) -> Any:
    return await client.get(
        f"/api/visualizations/{visualization_id}/similar",
        params=params,
        headers=account.headers,
    )


async def test_similar_cases_of_a_rhinoplasty_preview(
    client: TestClient[Any, Any], account: Any, visualization: dict[str, Any]
) -> None:
    response = await similar(client, account, visualization["id"])

    assert response.status == 200
    body = await response.json()
    assert set(body) == {
        "query_visualization_id",
        "similar_cases",
        "total_found",
        "filters_applied",
    }
    assert body["query_visualization_id"] == visualization["id"]
    assert body["filters_applied"] == {}
    cases = body["similar_cases"]
    assert body["total_found"] == len(cases) == 6  # the demo library's nose cases
    assert all(set(case) == CASE_KEYS for case in cases)
    scores = [case["similarity_score"] for case in cases]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= score <= 1.0 for score in scores)

    kinds = [case["procedure_type"] for case in cases]
    assert kinds == ["rhinoplasty"] * 4 + ["septoplasty"] * 2
    for case in cases:
        assert case["demo"] is True and case["anonymized"] is True
        assert "demo case" in case["matching_criteria"]
        assert "similar nose-to-face width ratio" in case["matching_criteria"]
    assert cases[0]["matching_criteria"].startswith("same procedure (rhinoplasty)")
    assert cases[-1]["matching_criteria"].startswith(
        "same treated region (nose), septoplasty"
    )
    photo = await client.get(cases[0]["after_image_url"])
    assert photo.status == 200
    assert photo.content_type == "image/jpeg"


@pytest.mark.parametrize(
    ("params", "expected_kinds", "applied"),
    [
        (
            {"procedure_type": "septoplasty"},
            ["septoplasty"] * 2,
            {"procedure_type": "septoplasty"},
        ),
        (
            {"procedure_type": "proc_Rhinoplasty"},
            ["rhinoplasty"] * 4,
            {"procedure_type": "rhinoplasty"},
        ),
        (
            {"min_outcome_rating": "0.8"},
            ["rhinoplasty", "rhinoplasty", "septoplasty"],
            {"min_outcome_rating": 0.8},
        ),
        (
            {"age_range": "20-30"},
            ["rhinoplasty", "rhinoplasty", "septoplasty"],
            {"age_range": "20-30"},
        ),
        ({"age_range": "65-70"}, [], {"age_range": "65-70"}),
    ],
    ids=["short-name", "id", "rating", "age", "no-age-match"],
)
async def test_similar_case_filters(
    client: TestClient[Any, Any],
    account: Any,
    visualization: dict[str, Any],
    params: dict[str, str],
    expected_kinds: list[str],
    applied: dict[str, Any],
) -> None:
    response = await similar(client, account, visualization["id"], params)

    assert response.status == 200
    body = await response.json()
    assert body["filters_applied"] == applied
    cases = body["similar_cases"]
    assert sorted(case["procedure_type"] for case in cases) == sorted(expected_kinds)
    if "min_outcome_rating" in params:
        assert all(case["outcome_rating"] >= 0.8 for case in cases)
    if "age_range" in params:
        low, high = (int(x) for x in params["age_range"].split("-"))
        for case in cases:
            case_low, case_high = (int(x) for x in case["age_range"].split("-"))
            assert case_low <= high and case_high >= low


async def test_limit_cuts_the_list_but_not_the_count(
    client: TestClient[Any, Any], account: Any, visualization: dict[str, Any]
) -> None:
    everything = await (await similar(client, account, visualization["id"])).json()
    first = await (
        await similar(client, account, visualization["id"], {"limit": "2"})
    ).json()

    assert first["total_found"] == everything["total_found"] == 6
    assert first["similar_cases"] == everything["similar_cases"][:2]


@pytest.mark.parametrize(
    "params",
    [
        {"sort": "score"},
        {"procedure_type": "appendectomy"},
        {"procedure_type": ""},
        {"age_range": "twenty"},
        {"age_range": "30-20"},
        {"age_range": "20-200"},
        {"min_outcome_rating": "1.5"},
        {"min_outcome_rating": "-0.1"},
        {"min_outcome_rating": "nan"},
        {"min_outcome_rating": "high"},
        {"limit": "0"},
        {"limit": "51"},
        {"limit": "ten"},
        [("limit", "5"), ("limit", "6")],
    ],
    ids=lambda p: "&".join(
        f"{k}={v}" for k, v in (p.items() if isinstance(p, dict) else p)
    ),
)
async def test_invalid_filters_are_400(
    client: TestClient[Any, Any],
    account: Any,
    visualization: dict[str, Any],
    params: dict[str, str] | list[tuple[str, str]],
) -> None:
    response = await similar(client, account, visualization["id"], params)

    assert response.status == 400
    body = await response.json()
    assert_error_body(body, 400)
    assert body["code"] == "bad_request"
    assert body["errors"]


async def test_ranking_puts_procedure_and_geometry_first(
    client: TestClient[Any, Any], account: Any, visualization: dict[str, Any]
) -> None:
    async with client.app[DATABASE].session() as session:
        row = await session.get(Visualization, visualization["id"])
        assert row is not None and row.features is not None
        mine = dict(row.features)
    far = {name: value + 0.3 for name, value in mine.items()}
    practice_cases = {
        "same-procedure-same-face": ("proc_rhinoplasty", mine),
        "same-region-same-face": ("proc_septoplasty", mine),
        "same-procedure-other-face": ("proc_rhinoplasty", far),
        "same-procedure-no-features": ("proc_rhinoplasty", None),
        "other-region-same-face": ("proc_genioplasty", mine),
    }
    async with client.app[DATABASE].session() as session:
        for external_id, (procedure_id, features) in practice_cases.items():
            session.add(
                SimilarCase(
                    id=new_id("case"),
                    external_id=external_id,
                    procedure_id=procedure_id,
                    body_region="chin" if "genio" in procedure_id else "nose",
                    age_min=30,
                    age_max=34,
                    outcome_rating=0.5,
                    patient_satisfaction=3,
                    before_storage_key=f"cases/{external_id}_before.jpg",
                    after_storage_key=f"cases/{external_id}_after.jpg",
                    feature_anchor=None if features is None else "face",
                    features=features,
                    is_demo=False,
                    import_batch="batch_test",
                )
            )

    body = await (
        await similar(client, account, visualization["id"], {"limit": "50"})
    ).json()

    practice = [case for case in body["similar_cases"] if not case["demo"]]
    scores = [case["similarity_score"] for case in practice]
    assert scores == [1.0, 0.8, 0.4, pytest.approx(0.4, abs=1e-3)][: len(scores)]
    assert len(practice) == 4  # the chin case is another region
    assert [case["matching_criteria"].split(";")[0] for case in practice] == [
        "same procedure (rhinoplasty)",
        "same treated region (nose), septoplasty",
        "same procedure (rhinoplasty)",
        "same procedure (rhinoplasty)",
    ]
    assert practice[0]["matching_criteria"] == (
        "same procedure (rhinoplasty); similar nose-to-face width ratio; "
        "similar eye size"
    )
    criteria = {case["matching_criteria"] for case in practice[2:]}
    assert criteria == {
        "same procedure (rhinoplasty); different region geometry "
        "(closest: mouth width)",
        "same procedure (rhinoplasty); no region geometry to compare, ranked on "
        "the procedure",
    }
    all_scores = [case["similarity_score"] for case in body["similar_cases"]]
    assert all_scores == sorted(all_scores, reverse=True)


async def test_deleting_the_photo_removes_its_previews_and_their_files(
    client: TestClient[Any, Any],
    account: Any,
    settings: Settings,
    patient: dict[str, str],
    visualization: dict[str, Any],
) -> None:
    assert stored_files(settings, "visualizations") != []

    deleted = await client.delete(
        f"/api/images/{patient['image_id']}", headers=account.headers
    )

    assert deleted.status == 200
    assert stored_files(settings, "visualizations") == []
    assert stored_files(settings, "images") == []
    gone = await client.get(
        f"/api/visualizations/{visualization['id']}", headers=account.headers
    )
    assert gone.status == 404
    assert (await client.get(visualization["after_image_url"])).status == 404


async def test_the_demo_library_can_be_left_out(
    client: TestClient[Any, Any], account: Any, visualization: dict[str, Any]
) -> None:
    assert (await (await similar(client, account, visualization["id"])).json())[
        "total_found"
    ] == 6
    client.app[SETTINGS].demo_cases = False

    body = await (await similar(client, account, visualization["id"])).json()

    assert body["similar_cases"] == []
    assert body["total_found"] == 0
