"""Example plugin: price procedures from a practice's own fee schedule.

A practice that knows its own fees lists them per CPT code; DocWiz then
quotes those instead of regional benchmarks. Options (``[plugins.practice-fees]``
in ``docwiz.toml``)::

    fees = {"30400" = 7200.0, "15823" = 4100.0}   # surgeon fee per CPT code
    facility_share = 0.25                          # of the surgeon fee
    anesthesia_share = 0.15
    post_op_share = 0.05
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from docwiz.hookspecs import hookimpl
from docwiz.providers import (
    PriceLocation,
    PriceQuote,
    PricingSource,
    ProcedureInfo,
    Provider,
    ProviderContext,
)

SOURCE_NAME = "Practice fee schedule"


class PracticeFeeSchedule:
    """Quotes the surgeon fee of the first listed CPT code the practice prices."""

    def __init__(self, fees: Mapping[str, float], shares: Mapping[str, float]) -> None:
        self.fees = {code: float(fee) for code, fee in fees.items()}
        self.shares = shares

    async def quote(
        self, procedure: ProcedureInfo, location: PriceLocation
    ) -> PriceQuote | None:
        surgeon_fee = next(
            (self.fees[code] for code in procedure.cpt_codes if code in self.fees), None
        )
        if surgeon_fee is None:
            return None
        return PriceQuote(
            surgeon_fee=round(surgeon_fee, 2),
            facility_fee=round(surgeon_fee * self.shares["facility_share"], 2),
            anesthesia_fee=round(surgeon_fee * self.shares["anesthesia_share"], 2),
            post_op_care=round(surgeon_fee * self.shares["post_op_share"], 2),
            data_sources=(SOURCE_NAME,),
        )


def _build(context: ProviderContext) -> PracticeFeeSchedule:
    options: dict[str, Any] = dict(context.options)
    fees = options.get("fees")
    if not isinstance(fees, Mapping) or not fees:
        raise ValueError("option 'fees' must map CPT codes to surgeon fees")
    shares = {
        "facility_share": float(options.get("facility_share", 0.25)),
        "anesthesia_share": float(options.get("anesthesia_share", 0.15)),
        "post_op_share": float(options.get("post_op_share", 0.05)),
    }
    return PracticeFeeSchedule(fees, shares)


@hookimpl
def docwiz_pricing_sources() -> Sequence[Provider[PricingSource]]:
    return [Provider("practice-fees", _build, "Fees from the practice's own table")]
