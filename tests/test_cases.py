"""The similar-case library: the similarity formula, `docwiz cases import` (all or
nothing, anonymized columns only), and the shipped demo library."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageOps

from docwiz.builtin.local_storage import LocalStorage
from docwiz.builtin.offline_generator import describe_region
from docwiz.cli import main
from docwiz.db import migrate
from docwiz.db.models_visualizations import SimilarCase
from docwiz.db.session import Database
from docwiz.services.cases import (
    COMPARED_FEATURES,
    DEMO_LIBRARY,
    AgeRange,
    MeasuredRegion,
    ensure_demo_cases,
    geometry_match,
    rank_case,
    resolve_procedure,
)
from docwiz.services.catalog import Catalog, ProcedureNotFound
from docwiz.services.images import process_upload

FIXTURES = Path(__file__).parent / "fixtures"
PORTRAIT = Image.open(FIXTURES / "astronaut.png").convert("RGB")
CATALOG = Catalog.load()
HEADER = [
    "case_id",
    "procedure_id",
    "age_range",
    "outcome_rating",
    "patient_satisfaction",
    "before_image",
    "after_image",
    "notes",
]

NOSE = {
    "nose_width_to_face_width": 0.26,
    "eye_width_to_ipd": 0.6,
    "mouth_line_below_pupils": 0.95,
    "mouth_width_to_ipd": 0.8,
    "region_texture_roughness": 0.04,
}


# -- the similarity formula ---------------------------------------------------------


def case(procedure_id: str, features: dict[str, float] | None, **fields: Any) -> Any:
    return SimilarCase(
        id=fields.pop("id", "case_1"),
        external_id="x",
        procedure_id=procedure_id,
        body_region=CATALOG.get(procedure_id).body_region,
        age_min=30,
        age_max=34,
        outcome_rating=0.9,
        patient_satisfaction=5,
        before_storage_key="cases/b.jpg",
        after_storage_key="cases/a.jpg",
        feature_anchor=None if features is None else "face",
        features=features,
        is_demo=fields.pop("is_demo", False),
        import_batch="batch_1",
    )


def shifted(spreads: dict[str, float]) -> dict[str, float]:
    return {
        name: value + spreads.get(name, 0.0) * COMPARED_FEATURES[name].spread
        for name, value in NOSE.items()
    }


def test_identical_geometry_matches_fully() -> None:
    mine = MeasuredRegion("face", NOSE)

    score, distances = geometry_match(mine, MeasuredRegion("face", NOSE), "nose")

    assert score == 1.0
    assert distances[0] == (0.0, "nose-to-face width ratio")


def test_one_spread_apart_everywhere_is_exp_minus_a_half() -> None:
    theirs = shifted(dict.fromkeys(NOSE, 1.0))

    score, _ = geometry_match(
        MeasuredRegion("face", NOSE), MeasuredRegion("face", theirs), "nose"
    )

    assert score == pytest.approx(math.exp(-0.5))


def test_the_regions_own_feature_counts_twice() -> None:
    mine = MeasuredRegion("face", NOSE)
    nose_differs = MeasuredRegion("face", shifted({"nose_width_to_face_width": 1.0}))
    mouth_differs = MeasuredRegion("face", shifted({"mouth_width_to_ipd": 1.0}))

    nose_score, _ = geometry_match(mine, nose_differs, "nose")
    mouth_score, _ = geometry_match(mine, mouth_differs, "nose")

    # Weights: nose 2, four others 1 -> d^2 = 2/6 and 1/6.
    assert nose_score == pytest.approx(math.exp(-1 / 6))
    assert mouth_score == pytest.approx(math.exp(-1 / 12))


def test_ipd_counts_once_beside_the_nose_ratio() -> None:
    mine = {**NOSE, "ipd_to_face_width": 0.47}
    theirs = {**NOSE, "ipd_to_face_width": 0.57}

    score, distances = geometry_match(
        MeasuredRegion("face", mine), MeasuredRegion("face", theirs), "nose"
    )

    assert score == 1.0
    assert "eye spacing to face width ratio" not in {label for _, label in distances}


@pytest.mark.parametrize(
    ("procedure_id", "features", "score", "criteria"),
    [
        (
            "proc_rhinoplasty",
            NOSE,
            1.0,
            "same procedure (rhinoplasty); similar nose-to-face width ratio; "
            "similar eye size",
        ),
        (
            "proc_septoplasty",
            NOSE,
            0.8,
            "same treated region (nose), septoplasty; similar nose-to-face width "
            "ratio; similar eye size",
        ),
        (
            "proc_rhinoplasty",
            None,
            0.4,
            "same procedure (rhinoplasty); no region geometry to compare, ranked "
            "on the procedure",
        ),
        (
            "proc_septoplasty",
            shifted(
                {
                    "nose_width_to_face_width": 4.0,
                    "eye_width_to_ipd": 2.5,
                    "mouth_line_below_pupils": 3.0,
                    "mouth_width_to_ipd": 3.0,
                    "region_texture_roughness": 3.0,
                }
            ),
            # (2 * 4^2 + 2.5^2 + 3 * 3^2) / 6 = 10.875
            round(0.2 + 0.6 * math.exp(-10.875 / 2), 4),
            "same treated region (nose), septoplasty; different region geometry "
            "(closest: eye size)",
        ),
    ],
    ids=["same-procedure", "same-region", "no-features", "far"],
)
def test_rank_case(
    procedure_id: str,
    features: dict[str, float] | None,
    score: float,
    criteria: str,
) -> None:
    ranked = rank_case(
        case(procedure_id, features),
        procedure_id="proc_rhinoplasty",
        body_region="nose",
        features=MeasuredRegion("face", NOSE),
        catalog=CATALOG,
    )

    assert ranked.similarity_score == score
    assert ranked.matching_criteria == criteria


def test_demo_cases_say_so() -> None:
    ranked = rank_case(
        case("proc_rhinoplasty", NOSE, is_demo=True),
        procedure_id="proc_rhinoplasty",
        body_region="nose",
        features=None,
        catalog=CATALOG,
    )

    assert ranked.matching_criteria.endswith(
        "; demo case (synthetic, not a real patient)"
    )


@pytest.mark.parametrize(
    "text",
    ["proc_rhinoplasty", "rhinoplasty", "Rhinoplasty", " RHINOPLASTY "],
)
def test_procedure_names_resolve(text: str) -> None:
    assert resolve_procedure(CATALOG, text).id == "proc_rhinoplasty"


def test_procedure_names_with_spaces_resolve() -> None:
    assert resolve_procedure(CATALOG, "breast augmentation").id == (
        "proc_breast_augmentation"
    )
    with pytest.raises(ProcedureNotFound):
        resolve_procedure(CATALOG, "appendectomy")


@pytest.mark.parametrize("text", ["20", "20-", "a-b", "30-20", "20-121", "-5-10"])
def test_bad_age_ranges(text: str) -> None:
    with pytest.raises(ValueError):
        AgeRange.parse(text)


# -- importing a practice's library -------------------------------------------------


def jpeg(photo: Image.Image, **save: Any) -> bytes:
    encoded = io.BytesIO()
    photo.save(encoded, "JPEG", quality=88, **save)
    return encoded.getvalue()


def portrait(crop: tuple[int, int, int, int], mirrored: bool = False) -> bytes:
    photo = PORTRAIT.crop(crop).resize((400, 400))
    if mirrored:
        photo = ImageOps.mirror(photo)
    exif = Image.Exif()
    exif[0x013B] = "Dr. Example (photographer)"  # Artist: must not be stored
    return jpeg(photo, exif=exif)


def sky_and_sea() -> bytes:
    """A sharp, contrasty photo with no face in it."""
    photo = Image.linear_gradient("L").resize((400, 400)).convert("RGB")
    stripes = Image.effect_noise((400, 200), 60).convert("RGB")
    photo.paste(stripes, (0, 200))
    return jpeg(photo)


def good_rows() -> list[dict[str, str]]:
    return [
        {
            "case_id": "p-001",
            "procedure_id": "proc_rhinoplasty",
            "age_range": "30-34",
            "outcome_rating": "0.9",
            "patient_satisfaction": "5",
            "before_image": "photos/p1_before.jpg",
            "after_image": "photos/p1_after.jpg",
            "notes": "Dorsal hump reduction.",
        },
        {
            "case_id": "p-002",
            "procedure_id": "Septoplasty",
            "age_range": "45-49",
            "outcome_rating": "0.7",
            "patient_satisfaction": "3",
            "before_image": "photos/p2_before.jpg",
            "after_image": "photos/p2_after.jpg",
            "notes": "",
        },
        {
            "case_id": "p-003",
            "procedure_id": "rhinoplasty",
            "age_range": "90-120",
            "outcome_rating": "1",
            "patient_satisfaction": "4",
            "before_image": "photos/p3_before.jpg",
            "after_image": "photos/p3_after.jpg",
            "notes": "Profile view only.",
        },
    ]


def write_library(
    folder: Path, rows: list[dict[str, str]], header: list[str] | None = None
) -> Path:
    photos = folder / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    (photos / "p1_before.jpg").write_bytes(portrait((0, 0, 512, 512)))
    (photos / "p1_after.jpg").write_bytes(portrait((0, 0, 512, 512), mirrored=True))
    (photos / "p2_before.jpg").write_bytes(portrait((60, 0, 460, 400)))
    (photos / "p2_after.jpg").write_bytes(portrait((60, 0, 460, 400), mirrored=True))
    (photos / "p3_before.jpg").write_bytes(sky_and_sea())
    (photos / "p3_after.jpg").write_bytes(sky_and_sea())
    (photos / "tiny.jpg").write_bytes(jpeg(PORTRAIT.resize((100, 100))))
    with (folder / "cases.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header or HEADER)
        writer.writeheader()
        writer.writerows(rows)
    return folder


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def case_rows(data_dir: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(data_dir / "docwiz.db") as db:
        return db.execute(
            "SELECT external_id, procedure_id, body_region, age_min, age_max, "
            "outcome_rating, patient_satisfaction, feature_anchor, features, "
            "before_storage_key, after_storage_key, is_demo "
            "FROM similar_cases ORDER BY external_id"
        ).fetchall()


def case_files(data_dir: Path) -> list[Path]:
    root = data_dir / "files" / "cases"
    if not root.exists():
        return []
    return sorted(p for p in root.iterdir() if not p.name.startswith("."))


def test_import_a_library(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    library = write_library(tmp_path / "library", good_rows())

    code, out, err = run(["cases", "import", str(library)], capsys)

    assert code == 0, err
    assert "imported 3 cases" in out
    assert "warning: line 4: no region features" in out  # the photo of the sea
    rows = case_rows(tmp_path / "var")
    assert [row[:7] for row in rows] == [
        ("p-001", "proc_rhinoplasty", "nose", 30, 34, 0.9, 5),
        ("p-002", "proc_septoplasty", "nose", 45, 49, 0.7, 3),
        ("p-003", "proc_rhinoplasty", "nose", 90, 120, 1.0, 4),
    ]
    assert [row[7] for row in rows] == ["face", "face", None]
    measured = json.loads(rows[0][8])
    assert (
        measured
        == describe_region(
            process_upload(portrait((0, 0, 512, 512))).content, "nose"
        ).as_dict()
    )
    assert not any(row[11] for row in rows)

    files = case_files(tmp_path / "var")
    assert len(files) == 6
    assert {f"cases/{p.name}" for p in files} == {
        key for row in rows for key in (row[9], row[10])
    }
    stored = Image.open(tmp_path / "var" / "files" / rows[0][9])
    assert not stored.getexif()  # re-encoded without the photographer's name


def test_a_library_cannot_be_imported_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    library = write_library(tmp_path / "library", good_rows())
    assert run(["cases", "import", str(library)], capsys)[0] == 0

    code, _, err = run(["cases", "import", str(library / "cases.csv")], capsys)

    assert code == 2
    assert "case_id 'p-001' was imported before" in err
    assert len(case_rows(tmp_path / "var")) == 3
    assert len(case_files(tmp_path / "var")) == 6


@pytest.mark.parametrize(
    "column",
    [
        "patient_name",
        "Name",
        "Date of Birth",
        "dob",
        "email",
        "Phone Number",
        "address",
        "SSN",
        "MRN",
        "surgery_date",
        "age",
    ],
)
def test_identity_columns_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], column: str
) -> None:
    rows = [{**row, column: "x"} for row in good_rows()]
    library = write_library(tmp_path / "library", rows, [*HEADER, column])

    code, _, err = run(["cases", "import", str(library)], capsys)

    assert code == 2
    assert f"column {column!r} looks like it identifies a patient" in err
    assert "nothing was imported" in err
    assert case_rows(tmp_path / "var") == []
    assert case_files(tmp_path / "var") == []


def test_unknown_columns_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [{**row, "surgeon_mood": "good"} for row in good_rows()]
    library = write_library(tmp_path / "library", rows, [*HEADER, "surgeon_mood"])

    code, _, err = run(["cases", "import", str(library)], capsys)

    assert code == 2
    assert "unknown column 'surgeon_mood'" in err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"outcome_rating": "1.4"}, "outcome_rating '1.4' is outside 0 to 1"),
        ({"outcome_rating": "nan"}, "outcome_rating 'nan' is outside 0 to 1"),
        ({"patient_satisfaction": "6"}, "must be a whole number 1-5"),
        ({"age_range": "34"}, "two whole numbers like 20-30"),
        ({"age_range": "30-31"}, "too narrow"),
        ({"age_range": "91-95"}, "written 90-120"),
        ({"procedure_id": "proc_appendectomy"}, "is not in the catalog"),
        ({"case_id": "demo-1"}, "reserved for the demo library"),
        ({"case_id": "p-001"}, "case_id 'p-001' repeats line 2"),
        ({"before_image": "photos/missing.jpg"}, "does not exist"),
        ({"before_image": "../outside.jpg"}, "points outside the library folder"),
        ({"notes": "Call 415-555-0100 for details"}, "a long number"),
        ({"notes": "seen 3/14/2021"}, "a date"),
        ({"notes": "jane@example.com"}, "an e-mail address"),
        ({"after_image": "photos/tiny.jpg"}, "after_image 'tiny.jpg'"),
    ],
)
def test_one_bad_row_and_nothing_is_imported(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, str],
    message: str,
) -> None:
    (tmp_path / "outside.jpg").write_bytes(portrait((0, 0, 512, 512)))
    rows = good_rows()
    rows[2] = {**rows[2], **change}  # the last row: earlier ones may be stored
    library = write_library(tmp_path / "library", rows)

    code, _, err = run(["cases", "import", str(library)], capsys)

    assert code == 2
    assert "nothing was imported" in err
    assert "line 4: " in err and message in err
    assert case_rows(tmp_path / "var") == []
    assert case_files(tmp_path / "var") == []


def test_every_problem_is_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = good_rows()
    rows[0]["outcome_rating"] = "high"
    rows[2]["after_image"] = "photos/nowhere.jpg"
    library = write_library(tmp_path / "library", rows)

    code, _, err = run(["cases", "import", str(library)], capsys)

    assert code == 2
    assert "line 2: outcome_rating 'high' is not a number" in err
    assert "line 4: after_image 'photos/nowhere.jpg' does not exist" in err


def test_a_folder_without_a_csv_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["cases", "import", str(tmp_path)], capsys)

    assert code == 2
    assert "cases.csv does not exist" in err


# -- the demo library -----------------------------------------------------------------


def demo_rows() -> list[dict[str, str]]:
    with (DEMO_LIBRARY / "cases.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_the_demo_library_is_small_anonymous_and_honest() -> None:
    rows = demo_rows()
    photos = [
        DEMO_LIBRARY / row[key]
        for row in rows
        for key in ("before_image", "after_image")
    ]

    assert len(rows) == 16
    assert sum(p.stat().st_size for p in photos) < 3 * 1024 * 1024
    assert len({p.read_bytes() for p in photos}) == len(photos)
    for row in rows:
        assert row["case_id"].startswith("demo-")
        assert row["notes"].startswith("Demo, not a real patient or outcome")
        assert row["procedure_id"] in CATALOG


def test_the_shipped_demo_features_are_what_the_detector_measures() -> None:
    for row in demo_rows():
        before = (DEMO_LIBRARY / row["before_image"]).read_bytes()
        region = CATALOG.get(row["procedure_id"]).body_region

        measured = describe_region(before, region)

        assert measured.anchor == row["feature_anchor"], row["case_id"]
        assert measured.as_dict() == json.loads(row["features"]), row["case_id"]
        process_upload(before)
        process_upload((DEMO_LIBRARY / row["after_image"]).read_bytes())


async def test_the_demo_library_loads_once(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}")
    storage = LocalStorage(tmp_path / "files", b"k" * 32)
    await migrate.upgrade(database)
    try:
        first, second = await asyncio.gather(
            ensure_demo_cases(database, storage, CATALOG),
            ensure_demo_cases(database, storage, CATALOG),
        )
        again = await ensure_demo_cases(database, storage, CATALOG)
    finally:
        await database.dispose()

    reports = [report for report in (first, second) if report is not None]
    assert len(reports) == 1 and reports[0].imported == 16 and reports[0].demo
    assert again is None
    with sqlite3.connect(tmp_path / "demo.db") as db:
        assert db.execute(
            "SELECT count(*), sum(is_demo) FROM similar_cases"
        ).fetchone() == (16, 16)
    stored = [p for p in (tmp_path / "files" / "cases").iterdir()]
    assert len([p for p in stored if not p.name.startswith(".")]) == 32
