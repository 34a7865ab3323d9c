"""The example plugin, installed as a package, is found and used by the service."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from docwiz.app import create_app
from docwiz.appkeys import PROVIDERS
from docwiz.cli import main
from docwiz.config import Settings
from docwiz.plugins import discover_entry_points
from docwiz.providers import PriceLocation, ProcedureInfo

RHINOPLASTY = ProcedureInfo(
    id="proc_rhinoplasty",
    name="Rhinoplasty",
    category="facial",
    body_region="nose",
    coverage="cosmetic",
    cpt_codes=("30400", "30410"),
)


def test_installed_entry_point_is_discovered() -> None:
    names = {ep.name: ep.value for ep in discover_entry_points()}
    assert names.get("practice_fees") == "docwiz_pricing_example", (
        "install the example first: pip install -e examples/docwiz_pricing_example"
    )


async def test_the_service_quotes_with_the_example(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        pricing_source="practice-fees",
        plugins={"practice-fees": {"fees": {"30400": 7200.0}}},
    )
    providers = create_app(settings)[PROVIDERS]

    quote = await providers.pricing.quote(RHINOPLASTY, PriceLocation("94102", "CA"))

    assert quote is not None
    assert quote.surgeon_fee == 7200.0
    assert quote.facility_fee == 1800.0
    assert quote.total == 7200.0 + 1800.0 + 1080.0 + 360.0
    assert quote.data_sources == ("Practice fee schedule",)


async def test_unpriced_procedure_gives_no_quote(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        pricing_source="practice-fees",
        plugins={"practice-fees": {"fees": {"15823": 4100}}},
    )
    providers = create_app(settings)[PROVIDERS]

    location = PriceLocation("94102", "CA")
    assert await providers.pricing.quote(RHINOPLASTY, location) is None


def test_missing_fee_table_stops_the_start(tmp_path: Path) -> None:
    from docwiz.plugins import PluginError

    settings = Settings(data_dir=tmp_path, pricing_source="practice-fees")
    with pytest.raises(PluginError, match=r"practice_fees.*option 'fees'"):
        create_app(settings)


def test_cli_marks_it_active(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCWIZ_PRICING_SOURCE", "practice-fees")

    assert main(["plugins", "--json"]) == 0

    listing = json.loads(capsys.readouterr().out)
    example = next(p for p in listing["plugins"] if p["name"] == "practice_fees")
    assert example["version"] == "0.1.0"
    assert example["hooks"] == ["docwiz_pricing_sources"]
    assert example["providers"][0] == {
        "family": "pricing",
        "name": "practice-fees",
        "active": True,
        "description": "Fees from the practice's own table",
    }
