"""Every hook DocWiz calls. No other module declares hooks.

A plugin is any module or object with functions marked ``@hookimpl`` whose
names match the specifications below. Plugins reach the service through the
entry-point group ``docwiz``; the built-ins in :mod:`docwiz.builtin` are
registered by the same loader. Each registration hook is called once, at
start-up, and every plugin's answer is collected (none of these hooks stops
at the first result). The operator then picks one provider per family by
name in the settings; see :mod:`docwiz.facade`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from docwiz.providers import (
        ClaimRenderer,
        ImageGenerator,
        PricingSource,
        Provider,
        StorageBackend,
        TextGenerator,
    )

PROJECT = "docwiz"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# -- storage backends --------------------------------------------------------


@hookspec
def docwiz_storage_backends() -> Sequence[Provider[StorageBackend]]:
    """Name the storage backends this plugin offers.

    Called once at start-up. Return a sequence of :class:`Provider` records
    whose factories build a :class:`~docwiz.providers.StorageBackend`; every
    plugin's list is collected. The backend named by ``storage_backend`` in
    the settings is built and used for uploaded images, generated previews,
    claim forms and exports.
    """


# -- image generators --------------------------------------------------------


@hookspec
def docwiz_image_generators() -> Sequence[Provider[ImageGenerator]]:
    """Name the image generators this plugin offers.

    Called once at start-up; every plugin's list is collected. The factory
    builds an :class:`~docwiz.providers.ImageGenerator` whose ``generate``
    receives the before image, the procedure (with its body region) and
    options, and returns the after image with the prompt or parameters used,
    the model name, a confidence in [0, 1] and the processing time. It raises
    ``GenerationRefused`` for unusable input and ``GeneratorFailed`` or
    ``GeneratorTimeout`` when its upstream fails. The generator named by
    ``image_generator`` in the settings is used.
    """


# -- text generators ---------------------------------------------------------


@hookspec
def docwiz_text_generators() -> Sequence[Provider[TextGenerator]]:
    """Name the text generators this plugin offers (claim justifications).

    Called once at start-up; every plugin's list is collected. The generator
    named by ``text_generator`` in the settings writes prose from a prompt
    that carries no patient identity.
    """


# -- pricing sources ---------------------------------------------------------


@hookspec
def docwiz_pricing_sources() -> Sequence[Provider[PricingSource]]:
    """Name the pricing sources this plugin offers.

    Called once at start-up; every plugin's list is collected. The factory
    builds a :class:`~docwiz.providers.PricingSource` whose ``quote`` returns
    the allowed amounts for a procedure at a location, or ``None`` when it
    has no figure. The source named by ``pricing_source`` in the settings is
    asked first.
    """


# -- claim form renderers ----------------------------------------------------


@hookspec
def docwiz_claim_renderers() -> Sequence[Provider[ClaimRenderer]]:
    """Name the claim form renderers this plugin offers.

    Called once at start-up; every plugin's list is collected. The factory
    builds a :class:`~docwiz.providers.ClaimRenderer` that turns a validated
    claim into documents (for example ``pdf`` or ``x12``). The renderer named
    by ``claim_renderer`` in the settings is used.
    """
