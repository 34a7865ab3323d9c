"""A plugin offering a storage backend under a name the built-ins already use."""

from docwiz.hookspecs import hookimpl
from docwiz.providers import Provider


@hookimpl
def docwiz_storage_backends() -> list[Provider[object]]:
    return [Provider("local", lambda context: object(), "clashes with the built-in")]
