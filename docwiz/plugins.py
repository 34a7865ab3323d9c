"""Plugin loading: entry points of the group ``docwiz``, the built-ins, checks.

:func:`load_plugins` is the one place plugins enter the service. Anything that
goes wrong raises :class:`PluginError` naming the plugin and the reason, and
the service refuses to start.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pluggy

from docwiz import hookspecs
from docwiz.builtin import DEFAULT_PLUGINS

logger = logging.getLogger("docwiz.plugins")

ENTRY_POINT_GROUP = "docwiz"


class PluginError(Exception):
    """A plugin could not be loaded or validated."""


@dataclass(frozen=True)
class PluginRecord:
    """What the loader knows of one registered plugin."""

    name: str
    source: str
    """``entry point <value>`` or ``built-in``."""
    version: str | None
    distribution: str | None


def discover_entry_points() -> Sequence[importlib.metadata.EntryPoint]:
    """Installed entry points of the ``docwiz`` group (tests replace this)."""
    return tuple(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def _register(pm: pluggy.PluginManager, plugin: object, record: PluginRecord) -> None:
    try:
        pm.register(plugin, name=record.name)
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {record.name!r} is invalid: {exc}") from None
    except ValueError as exc:
        raise PluginError(
            f"plugin {record.name!r} cannot be registered: {exc}"
        ) from None
    pm_records(pm)[record.name] = record
    logger.debug("registered plugin %s (%s)", record.name, record.source)


def pm_records(pm: pluggy.PluginManager) -> dict[str, PluginRecord]:
    """The :class:`PluginRecord` of every plugin registered through the loader."""
    records: dict[str, PluginRecord] | None = getattr(pm, "_docwiz_records", None)
    if records is None:
        records = {}
        pm._docwiz_records = records  # type: ignore[attr-defined]
    return records


def _load_entry_point(ep: importlib.metadata.EntryPoint) -> Any:
    try:
        return ep.load()
    except Exception as exc:
        raise PluginError(
            f"plugin {ep.name!r} ({ep.value}) failed to import: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def load_plugins(
    *,
    allow: Iterable[str] | None = None,
    block: Iterable[str] = (),
    extra: Iterable[tuple[str, object]] = (),
    entry_points: Sequence[importlib.metadata.EntryPoint] | None = None,
) -> pluggy.PluginManager:
    """Build the plugin manager the service runs with.

    Order: installed entry points (filtered by ``allow`` and ``block``), the
    built-ins of :data:`docwiz.builtin.DEFAULT_PLUGINS`, then ``extra``
    ``(name, plugin)`` pairs given by the caller; last, every implemented
    hook must match a specification.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    allowed = set(allow) if allow is not None else None
    blocked = set(block)

    found = discover_entry_points() if entry_points is None else entry_points
    for ep in found:
        if ep.name in blocked or (allowed is not None and ep.name not in allowed):
            logger.info("plugin %s skipped by the allow/block settings", ep.name)
            continue
        dist = getattr(ep, "dist", None)
        record = PluginRecord(
            name=ep.name,
            source=f"entry point {ep.value}",
            version=dist.version if dist is not None else None,
            distribution=dist.name if dist is not None else None,
        )
        _register(pm, _load_entry_point(ep), record)

    for module_name in DEFAULT_PLUGINS:
        module = _import_builtin(module_name)
        _register(pm, module, _builtin_record(module_name))

    for name, plugin in extra:
        _register(pm, plugin, PluginRecord(name, "given by the caller", None, None))

    _check_pending(pm)
    return pm


def _import_builtin(module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except Exception as exc:
        raise PluginError(
            f"built-in plugin {module_name!r} failed to import: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _builtin_record(module_name: str) -> PluginRecord:
    from docwiz import __version__

    return PluginRecord(module_name, "built-in", __version__, "docwiz")


def _check_pending(pm: pluggy.PluginManager) -> None:
    """Refuse hook implementations that match no specification."""
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or repr(exc.plugin)
        raise PluginError(
            f"plugin {name!r} implements a hook DocWiz does not declare "
            f"(see docwiz/hookspecs.py): {exc}"
        ) from None


def implemented_hooks(pm: pluggy.PluginManager, plugin_name: str) -> list[str]:
    """Names of the hooks the named plugin implements."""
    plugin = pm.get_plugin(plugin_name)
    return sorted(caller.name for caller in (pm.get_hookcallers(plugin) or []))
