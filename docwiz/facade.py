"""The typed facade through which the core calls plugins.

Handlers and services never touch ``pm.hook``: they ask :class:`Providers`
for the active storage backend, image generator, and so on.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pluggy

from docwiz.config import Settings
from docwiz.plugins import PluginError, implemented_hooks, pm_records
from docwiz.providers import (
    ClaimRenderer,
    Family,
    ImageGenerator,
    PricingSource,
    Provider,
    ProviderContext,
    StorageBackend,
    TextGenerator,
)

logger = logging.getLogger("docwiz.plugins")

FAMILY_HOOKS: dict[Family, str] = {
    "storage": "docwiz_storage_backends",
    "image_generator": "docwiz_image_generators",
    "text_generator": "docwiz_text_generators",
    "pricing": "docwiz_pricing_sources",
    "claim_renderer": "docwiz_claim_renderers",
}
FAMILY_SETTINGS: dict[Family, str] = {
    "storage": "storage_backend",
    "image_generator": "image_generator",
    "text_generator": "text_generator",
    "pricing": "pricing_source",
    "claim_renderer": "claim_renderer",
}
FAMILY_PROTOCOLS: dict[Family, type] = {
    "storage": StorageBackend,
    "image_generator": ImageGenerator,
    "text_generator": TextGenerator,
    "pricing": PricingSource,
    "claim_renderer": ClaimRenderer,
}


class ProviderUnavailable(Exception):
    """No provider of a family is configured (answered with 503)."""


@dataclass(frozen=True)
class OfferedProvider:
    family: Family
    name: str
    plugin: str
    description: str
    factory: Callable[[ProviderContext], Any]


def offered_providers(pm: pluggy.PluginManager) -> list[OfferedProvider]:
    """Every provider every plugin offers, refusing two with the same name."""
    offered: list[OfferedProvider] = []
    seen: dict[tuple[Family, str], str] = {}
    for family, hook_name in FAMILY_HOOKS.items():
        caller = getattr(pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            try:
                result = impl.function()
            except Exception as exc:
                raise PluginError(
                    f"plugin {impl.plugin_name!r} failed in {hook_name}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            for provider in _as_providers(result, impl.plugin_name, hook_name):
                key = (family, provider.name)
                if key in seen:
                    raise PluginError(
                        f"plugins {seen[key]!r} and {impl.plugin_name!r} both offer "
                        f"a {family} provider named {provider.name!r}"
                    )
                seen[key] = impl.plugin_name
                offered.append(
                    OfferedProvider(
                        family,
                        provider.name,
                        impl.plugin_name,
                        provider.description,
                        provider.factory,
                    )
                )
    return offered


def _as_providers(result: object, plugin: str, hook: str) -> Sequence[Provider[Any]]:
    if result is None:
        return ()
    if not isinstance(result, Sequence) or not all(
        isinstance(item, Provider) for item in result
    ):
        raise PluginError(
            f"plugin {plugin!r}: {hook} must return a sequence of Provider records"
        )
    return result


class Providers:
    """The active provider of each family, built from the settings."""

    def __init__(
        self,
        pm: pluggy.PluginManager,
        settings: Settings,
        secret_key: bytes,
    ) -> None:
        self.pm = pm
        self.settings = settings
        self.offered = offered_providers(pm)
        self._active: dict[Family, Any] = {}
        for family in FAMILY_HOOKS:
            wanted = getattr(settings, FAMILY_SETTINGS[family])
            if wanted:
                self._active[family] = self._build(family, wanted, secret_key)

    def _build(self, family: Family, name: str, secret_key: bytes) -> Any:
        matches = [p for p in self.offered if p.family == family and p.name == name]
        if not matches:
            available = sorted(p.name for p in self.offered if p.family == family)
            raise PluginError(
                f"no {family} provider named {name!r} "
                f"(set DOCWIZ_{FAMILY_SETTINGS[family].upper()}; available: "
                f"{', '.join(available) or 'none'})"
            )
        offered = matches[0]
        context = ProviderContext(
            name=name,
            options=self.settings.provider_options(name),
            data_dir=self.settings.data_dir,
            mode=self.settings.mode,
            secret_key=secret_key,
        )
        try:
            provider = offered.factory(context)
        except Exception as exc:
            raise PluginError(
                f"plugin {offered.plugin!r} could not build {family} provider "
                f"{name!r}: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(provider, FAMILY_PROTOCOLS[family]):
            raise PluginError(
                f"plugin {offered.plugin!r}: provider {name!r} does not implement "
                f"{FAMILY_PROTOCOLS[family].__name__}"
            )
        logger.info("%s provider: %s (from %s)", family, name, offered.plugin)
        return provider

    def active_name(self, family: Family) -> str | None:
        name = getattr(self.settings, FAMILY_SETTINGS[family])
        return cast("str | None", name) if family in self._active else None

    def _get(self, family: Family) -> Any:
        try:
            return self._active[family]
        except KeyError:
            raise ProviderUnavailable(
                f"no {family.replace('_', ' ')} is configured "
                f"(set DOCWIZ_{FAMILY_SETTINGS[family].upper()})"
            ) from None

    @property
    def storage(self) -> StorageBackend:
        return cast(StorageBackend, self._get("storage"))

    @property
    def image_generator(self) -> ImageGenerator:
        return cast(ImageGenerator, self._get("image_generator"))

    @property
    def text_generator(self) -> TextGenerator:
        return cast(TextGenerator, self._get("text_generator"))

    @property
    def pricing(self) -> PricingSource:
        return cast(PricingSource, self._get("pricing"))

    @property
    def claim_renderer(self) -> ClaimRenderer:
        return cast(ClaimRenderer, self._get("claim_renderer"))

    async def close(self) -> None:
        for family, provider in self._active.items():
            close = getattr(provider, "close", None)
            if close is None:
                continue
            try:
                result = close()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("closing the %s provider failed", family)


def describe_plugins(
    pm: pluggy.PluginManager, active: dict[Family, str | None]
) -> list[dict[str, Any]]:
    """Rows for ``docwiz plugins``: each plugin, its hooks, its providers."""
    offered = offered_providers(pm)
    rows = []
    for name, record in pm_records(pm).items():
        provided = [p for p in offered if p.plugin == name]
        rows.append(
            {
                "name": name,
                "version": record.version,
                "source": record.source,
                "hooks": implemented_hooks(pm, name),
                "providers": [
                    {
                        "family": p.family,
                        "name": p.name,
                        "active": active.get(p.family) == p.name,
                        "description": p.description,
                    }
                    for p in provided
                ],
            }
        )
    return rows
