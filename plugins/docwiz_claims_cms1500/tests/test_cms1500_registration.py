"""The skeleton registers through its entry point and offers nothing yet."""

from importlib.metadata import EntryPoint

from docwiz.facade import offered_providers
from docwiz.plugins import load_plugins, pm_records


def test_registers_through_its_entry_point() -> None:
    ep = EntryPoint("cms1500", "docwiz_claims_cms1500", "docwiz")
    pm = load_plugins(entry_points=[ep])

    assert "cms1500" in pm_records(pm)
    callers = [c.name for c in pm.get_hookcallers(pm.get_plugin("cms1500")) or []]
    assert callers == ["docwiz_claim_renderers"]
    assert [p for p in offered_providers(pm) if p.plugin == "cms1500"] == []
