"""A plugin implementing a hook DocWiz never declared (a typo)."""

from docwiz.hookspecs import hookimpl


@hookimpl
def docwiz_storage_backend() -> list[object]:
    return []
