"""A plugin whose registration hook returns something other than Providers."""

from docwiz.hookspecs import hookimpl


@hookimpl
def docwiz_image_generators() -> list[str]:
    return ["offline-but-a-string"]
