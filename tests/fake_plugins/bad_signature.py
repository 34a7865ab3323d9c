"""A plugin whose hook takes an argument the specification does not have."""

from docwiz.hookspecs import hookimpl


@hookimpl
def docwiz_pricing_sources(region: str) -> list[object]:
    return []
