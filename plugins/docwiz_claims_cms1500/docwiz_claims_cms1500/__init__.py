"""Claim renderer plugin: CMS-1500 (02/12) PDF and X12 837P pre-authorization.

Skeleton. It registers with DocWiz and implements ``docwiz_claim_renderers``
but offers no renderer yet; the insurance-claims work fills in a ``cms1500``
renderer with the ``pdf`` (reportlab, items 1-33) and ``x12`` (005010X222A1,
checked with pyx12) formats.
"""

from __future__ import annotations

from collections.abc import Sequence

from docwiz.hookspecs import hookimpl
from docwiz.providers import ClaimRenderer, Provider

__version__ = "0.1.0"


@hookimpl
def docwiz_claim_renderers() -> Sequence[Provider[ClaimRenderer]]:
    return []
