"""The procedure catalog: the shipped seed data, its validation, filters and shapes."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from docwiz.providers import BODY_REGIONS, FACIAL_REGIONS, ProcedureInfo
from docwiz.services.catalog import (
    CPT_PATTERN,
    DEFAULT_SEED_PATH,
    ICD10_PATTERN,
    Catalog,
    CatalogError,
    ProcedureNotFound,
)

SEED = json.loads(DEFAULT_SEED_PATH.read_text(encoding="utf-8"))

# ASPS 2018 national average surgeon fees as given in shared/DESIGN.md.
DESIGN_SURGEON_FEES = {
    "proc_breast_augmentation": 3824,
    "proc_liposuction": 3518,
    "proc_blepharoplasty": 3156,
    "proc_rhinoplasty": 5350,
    "proc_abdominoplasty": 6253,
    "proc_facelift": 7655,
    "proc_breast_reduction": 5680,
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def ids(procedures) -> list[str]:
    return [procedure.id for procedure in procedures]


# -- the shipped data ---------------------------------------------------------


def test_ships_at_least_25_procedures_in_four_categories(catalog: Catalog):
    assert len(catalog) >= 25
    assert catalog.categories() == ("facial", "body", "reconstructive", "cosmetic")
    for category in catalog.categories():
        assert len(catalog.list(category=category)) >= 4


def test_ships_the_procedures_the_issue_names(catalog: Catalog):
    for name in (
        "rhinoplasty",
        "septoplasty",
        "blepharoplasty",
        "facelift",
        "breast_augmentation",
        "breast_reduction",
        "abdominoplasty",
        "liposuction",
        "otoplasty",
        "genioplasty",
    ):
        assert f"proc_{name}" in catalog


def test_codes_regions_and_coverage_are_well_formed():
    regions = set(FACIAL_REGIONS + BODY_REGIONS)
    for entry in SEED["procedures"]:
        assert all(re.match(CPT_PATTERN, code) for code in entry["cpt_codes"])
        assert all(re.match(ICD10_PATTERN, code) for code in entry["icd10_codes"])
        assert entry["body_region"] in regions
        assert entry["coverage"] in {
            "cosmetic",
            "reconstructive",
            "medically_necessary",
        }
        assert entry["typical_cost_min"] <= entry["typical_cost_max"]


def test_every_figure_names_a_listed_source_and_basis():
    figures = {
        "typical_cost",
        "recovery_days",
        "risk_level",
        "cpt_codes",
        "icd10_codes",
        "coverage",
    }
    for entry in SEED["procedures"]:
        assert set(entry["sources"]) == figures, entry["id"]
        for origin in entry["sources"].values():
            assert origin["refs"] and set(origin["refs"]) <= SEED["sources"].keys()
            assert origin["basis"] in {"published", "derived", "estimate"}
            assert origin["note"].strip()
    for source in SEED["sources"].values():
        assert source["title"] and source["publisher"] and source["year"]


def test_derived_costs_are_the_arithmetic_they_claim():
    derived = {
        entry["id"]: entry
        for entry in SEED["procedures"]
        if entry["sources"]["typical_cost"]["basis"] == "derived"
    }
    assert set(derived) == set(DESIGN_SURGEON_FEES)
    for procedure_id, entry in derived.items():
        fee = entry["sources"]["typical_cost"]["surgeon_fee_usd"]
        assert fee == DESIGN_SURGEON_FEES[procedure_id]
        # The surgeon's share of a total is 55-65% (DESIGN.md), rounded to $100.
        assert entry["typical_cost_min"] == round(fee / 0.65 / 100) * 100
        assert entry["typical_cost_max"] == round(fee / 0.55 / 100) * 100


def test_estimates_say_they_are_estimates():
    for entry in SEED["procedures"]:
        cost = entry["sources"]["typical_cost"]
        if cost["basis"] == "estimate":
            assert "docwiz_editorial" in cost["refs"], entry["id"]


# -- filters and search -------------------------------------------------------


def test_category_filter(catalog: Catalog):
    facial = catalog.list(category="facial")

    assert facial
    assert {procedure.category for procedure in facial} == {"facial"}
    assert len(facial) < len(catalog.list())


def test_unknown_category_matches_nothing(catalog: Catalog):
    assert catalog.list(category="dental") == ()


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("nose", "proc_rhinoplasty"),
        ("NOSE JOB", "proc_rhinoplasty"),
        ("tummy tuck", "proc_abdominoplasty"),
        ("boob job", "proc_breast_augmentation"),
        ("eyelid", "proc_blepharoplasty"),
        ("deviated septum", "proc_septoplasty"),
        ("bbl", "proc_buttock_fat_transfer"),
        ("Botox", "proc_botulinum_toxin"),
    ],
)
def test_search_finds_by_synonym_and_name(catalog: Catalog, search: str, expected):
    assert expected in ids(catalog.list(search=search))


def test_every_search_word_must_match(catalog: Catalog):
    found = ids(catalog.list(search="breast reduction"))

    assert "proc_breast_reduction" in found
    assert "proc_breast_augmentation" not in found
    assert catalog.list(search="nose tummy") == ()


def test_search_within_a_category(catalog: Catalog):
    found = ids(catalog.list(category="reconstructive", search="nose"))

    assert "proc_septoplasty" in found
    assert "proc_rhinoplasty" not in found


def test_blank_search_lists_everything(catalog: Catalog):
    assert len(catalog.list(search="   ")) == len(catalog)


# -- lookups and response shapes ----------------------------------------------


def test_unknown_id_is_not_found(catalog: Catalog):
    with pytest.raises(ProcedureNotFound) as caught:
        catalog.get("proc_teleportation")

    assert caught.value.procedure_id == "proc_teleportation"
    assert "proc_teleportation" not in catalog


def test_procedure_info_carries_region_and_coverage(catalog: Catalog):
    info = catalog.procedure_info("proc_septoplasty")

    assert isinstance(info, ProcedureInfo)
    assert (info.body_region, info.coverage) == ("nose", "medically_necessary")
    assert info.cpt_codes == ("30520",)
    assert "J34.2" in info.icd10_codes


def test_list_response_has_the_api_shape(catalog: Catalog):
    body = catalog.list_response(search="rhinoplasty").model_dump(mode="json")

    assert body["total"] == len(body["procedures"]) == 1
    item = body["procedures"][0]
    assert set(item) == {
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
    assert item["id"] == "proc_rhinoplasty"
    assert isinstance(item["cpt_codes"], list)


def test_detail_has_the_api_shape(catalog: Catalog):
    procedure = catalog.get("proc_rhinoplasty")

    body = procedure.to_detail().model_dump(mode="json")

    assert set(body) == {
        "id",
        "name",
        "category",
        "description",
        "recovery_days",
        "risk_level",
        "cost_range",
    }
    assert body["cost_range"] == {
        "min": procedure.typical_cost_min,
        "max": procedure.typical_cost_max,
    }


def test_categories_response(catalog: Catalog):
    assert catalog.categories_response().model_dump(mode="json") == {
        "categories": ["facial", "body", "reconstructive", "cosmetic"],
        "total": 4,
    }


# -- the ETag -----------------------------------------------------------------


def test_etag_follows_content_not_formatting(tmp_path: Path, catalog: Catalog):
    reformatted = tmp_path / "compact.json"
    reformatted.write_text(json.dumps(SEED, separators=(",", ":")), encoding="utf-8")
    changed_seed = copy.deepcopy(SEED)
    changed_seed["procedures"][0]["recovery_days"] += 1
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(changed_seed), encoding="utf-8")

    assert Catalog.load().etag == catalog.etag
    assert Catalog.load(reformatted).etag == catalog.etag
    assert Catalog.load(changed).etag != catalog.etag
    assert re.fullmatch(r'"[0-9a-f]{32}"', catalog.etag)


def test_loads_from_bytes_as_packaged_data(catalog: Catalog):
    loaded = Catalog.from_bytes(DEFAULT_SEED_PATH.read_bytes(), origin="package")

    assert ids(loaded) == ids(catalog)
    assert loaded.etag == catalog.etag


# -- refused seed files -------------------------------------------------------


def _first(seed: dict[str, Any]) -> dict[str, Any]:
    return seed["procedures"][0]


def _duplicate(seed: dict[str, Any]) -> None:
    seed["procedures"].append(copy.deepcopy(_first(seed)))


def _set(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(seed: dict[str, Any]) -> None:
        _first(seed)[field] = value

    return mutate


def _cite_unknown_source(seed: dict[str, Any]) -> None:
    _first(seed)["sources"]["typical_cost"]["refs"] = ["a_blog_post"]


def _drop_a_figure_source(seed: dict[str, Any]) -> None:
    del _first(seed)["sources"]["recovery_days"]


@pytest.mark.parametrize(
    ("mutate", "complaint"),
    [
        (_duplicate, "duplicate procedure id"),
        (_set("cpt_codes", ["3040"]), "cpt_codes"),
        (_set("cpt_codes", ["30400", "3040A"]), "cpt_codes"),
        (_set("icd10_codes", ["34.2J"]), "icd10_codes"),
        (_set("icd10_codes", ["J34.23456"]), "icd10_codes"),
        (_set("body_region", "elbow"), "unknown body region"),
        (_set("typical_cost_min", 99999), "typical_cost_min"),
        (_set("category", "dental"), "category"),
        (_set("risk_level", "extreme"), "risk_level"),
        (_set("coverage", "sometimes"), "coverage"),
        (_set("id", "rhinoplasty"), "id"),
        (_set("unexpected", True), "unexpected"),
        (_cite_unknown_source, "a_blog_post"),
        (_drop_a_figure_source, "recovery_days"),
    ],
    ids=lambda value: getattr(value, "__name__", None),
)
def test_refuses_a_bad_seed_file(tmp_path: Path, mutate, complaint: str):
    seed = copy.deepcopy(SEED)
    mutate(seed)
    bad = tmp_path / "procedures.json"
    bad.write_text(json.dumps(seed), encoding="utf-8")

    with pytest.raises(CatalogError) as caught:
        Catalog.load(bad)

    assert complaint in str(caught.value)
    assert str(bad) in str(caught.value)


def test_refuses_invalid_json(tmp_path: Path):
    bad = tmp_path / "procedures.json"
    bad.write_text('{"format_version": 1, "procedures": [', encoding="utf-8")

    with pytest.raises(CatalogError, match="not valid JSON"):
        Catalog.load(bad)


def test_refuses_a_missing_file(tmp_path: Path):
    with pytest.raises(CatalogError, match="cannot read"):
        Catalog.load(tmp_path / "absent.json")
