"""Pricing source plugin: regional benchmark fees for a procedure.

Skeleton. It registers with DocWiz and implements ``docwiz_pricing_sources``
but offers no provider yet; the cost-estimate work fills in a ``fairhealth``
source that prices from the tables in ``seeds/`` (Medicare fee schedule
anchors scaled by locality GPCIs, and published national averages).
"""

from __future__ import annotations

from collections.abc import Sequence

from docwiz.hookspecs import hookimpl
from docwiz.providers import PricingSource, Provider

__version__ = "0.1.0"


@hookimpl
def docwiz_pricing_sources() -> Sequence[Provider[PricingSource]]:
    return []
