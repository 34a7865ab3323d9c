"""The interfaces a plugin implements for each provider family.

Hooks in :mod:`docwiz.hookspecs` hand the core :class:`Provider` records; each
record builds an object that satisfies one of the protocols below.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

ProviderT = TypeVar("ProviderT")

Family = Literal[
    "storage", "image_generator", "pricing", "claim_renderer", "text_generator"
]
FAMILIES: tuple[Family, ...] = (
    "storage",
    "image_generator",
    "pricing",
    "claim_renderer",
    "text_generator",
)


@dataclass(frozen=True)
class ProviderContext:
    """What a provider factory receives when the service builds it.

    ``options`` are the operator's settings for this provider, taken from the
    ``[plugins.<name>]`` table of ``docwiz.toml`` or from
    ``DOCWIZ_PLUGINS__<NAME>__<KEY>`` environment variables.
    """

    name: str
    options: Mapping[str, Any]
    data_dir: Path
    mode: Literal["embedded", "scale-out"]
    secret_key: bytes
    """A service-wide secret for signing (for example file URLs)."""


@dataclass(frozen=True)
class Provider(Generic[ProviderT]):
    """A named provider of one family, as returned by a registration hook."""

    name: str
    factory: Callable[[ProviderContext], ProviderT]
    description: str = ""


# -- storage -----------------------------------------------------------------


@dataclass(frozen=True)
class StoredObject:
    key: str
    size_bytes: int
    content_type: str


class StorageError(Exception):
    """A storage backend could not complete an operation."""


class ObjectNotFound(StorageError):
    """The key names no stored object."""


@runtime_checkable
class StorageBackend(Protocol):
    """Keeps binary objects under string keys such as ``images/img_1.jpg``."""

    async def put(
        self, key: str, chunks: AsyncIterable[bytes], content_type: str
    ) -> StoredObject:
        """Store the streamed bytes under ``key``, replacing any object there."""
        ...

    def open(self, key: str) -> AsyncIterator[bytes]:
        """Stream the object's bytes; raise :class:`ObjectNotFound` if absent."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object; deleting an absent key is not an error."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def url(self, key: str, expires_in: int) -> str:
        """A URL a client can fetch the object from for ``expires_in`` seconds."""
        ...

    async def check(self) -> None:
        """Raise :class:`StorageError` when the backend is unreachable."""
        ...

    async def close(self) -> None: ...


# -- image generators --------------------------------------------------------

FACIAL_REGIONS = (
    "nose",
    "eyelids",
    "brow",
    "lips",
    "chin",
    "jawline",
    "cheeks",
    "ears",
    "face",
    "neck",
)
BODY_REGIONS = (
    "breast",
    "abdomen",
    "waist",
    "arms",
    "thighs",
    "buttocks",
    "back",
    "skin",
)
"""The body regions a catalog procedure may name; generators act on these."""


@dataclass(frozen=True)
class ProcedureInfo:
    """The parts of a catalog procedure that providers may need."""

    id: str
    name: str
    category: str
    body_region: str
    coverage: Literal["cosmetic", "reconstructive", "medically_necessary"]
    cpt_codes: tuple[str, ...] = ()
    icd10_codes: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class GenerationRequest:
    """A before image and the procedure to preview; no patient identity."""

    image: bytes
    mime_type: str
    procedure: ProcedureInfo
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GenerationResult:
    image: bytes
    mime_type: str
    prompt_used: str
    model: str
    confidence_score: float
    processing_time_ms: int
    details: Mapping[str, Any] = field(default_factory=dict)


class GenerationRefused(Exception):
    """The input cannot be used for this procedure (answered with 400)."""


class GeneratorFailed(Exception):
    """The generator or its upstream service failed (answered with 502)."""


class GeneratorTimeout(GeneratorFailed):
    """The upstream service did not answer in time (answered with 504)."""


@runtime_checkable
class ImageGenerator(Protocol):
    model_name: str

    async def generate(self, request: GenerationRequest) -> GenerationResult: ...


# -- text generators ---------------------------------------------------------


@runtime_checkable
class TextGenerator(Protocol):
    """Writes prose such as a claim's medical justification."""

    async def generate_text(self, prompt: str, *, max_words: int = 250) -> str: ...


# -- pricing -----------------------------------------------------------------


@dataclass(frozen=True)
class PriceLocation:
    zip_code: str
    state: str
    country: str = "USA"


@dataclass(frozen=True)
class PriceQuote:
    """Allowed amounts for one procedure in one place, in US dollars."""

    surgeon_fee: float
    facility_fee: float
    anesthesia_fee: float
    post_op_care: float
    data_sources: tuple[str, ...]

    @property
    def total(self) -> float:
        return round(
            self.surgeon_fee
            + self.facility_fee
            + self.anesthesia_fee
            + self.post_op_care,
            2,
        )


@runtime_checkable
class PricingSource(Protocol):
    async def quote(
        self, procedure: ProcedureInfo, location: PriceLocation
    ) -> PriceQuote | None:
        """Price the procedure, or ``None`` when the source has no figure."""
        ...


# -- claim renderers ---------------------------------------------------------


@dataclass(frozen=True)
class ClaimParty:
    name: str
    npi: str | None = None
    address: str = ""
    phone: str = ""
    tax_id: str | None = None


@dataclass(frozen=True)
class ClaimServiceLine:
    cpt_code: str
    charge: float
    units: int = 1
    diagnosis_pointers: tuple[str, ...] = ("A",)
    modifiers: tuple[str, ...] = ()
    service_date: date | None = None
    place_of_service: str = "22"


@dataclass(frozen=True)
class ClaimDocument:
    """Everything a claim form needs, already validated by the core."""

    claim_id: str
    patient_name: str
    patient_birth_date: date
    patient_address: str
    insurer: str
    insured_id: str
    plan_type: str
    diagnoses: tuple[str, ...]
    service_lines: tuple[ClaimServiceLine, ...]
    provider: ClaimParty
    medical_justification: str
    prior_authorization: str | None = None
    patient_sex: str | None = None


@dataclass(frozen=True)
class RenderedDocument:
    content: bytes
    media_type: str
    filename: str


@runtime_checkable
class ClaimRenderer(Protocol):
    formats: tuple[str, ...]

    async def render(self, claim: ClaimDocument, fmt: str) -> RenderedDocument: ...
