"""The procedure catalog: loaded once from the seed file, served from memory."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from docwiz.providers import BODY_REGIONS, FACIAL_REGIONS, ProcedureInfo

log = logging.getLogger("docwiz.catalog")

DEFAULT_SEED_PATH: Final = (
    Path(__file__).resolve().parents[2] / "seeds" / "procedures.json"
)

# Code formats from the design notes; X12 writes ICD codes without the dot.
CPT_PATTERN: Final = r"^(\d{5}|\d{4}[FT])$"
ICD10_PATTERN: Final = r"^[A-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?$"

CptCode = Annotated[str, StringConstraints(pattern=CPT_PATTERN)]
Icd10Code = Annotated[str, StringConstraints(pattern=ICD10_PATTERN)]
Category = Literal["facial", "body", "reconstructive", "cosmetic"]
RiskLevel = Literal["low", "medium", "high"]
Coverage = Literal["cosmetic", "reconstructive", "medically_necessary"]

CATEGORIES: Final[tuple[Category, ...]] = (
    "facial",
    "body",
    "reconstructive",
    "cosmetic",
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Source(_Frozen):
    """A publication or rule a figure in the seed file comes from."""

    title: str = Field(min_length=1)
    publisher: str = Field(min_length=1)
    year: int = Field(ge=1900, le=2100)
    url: Annotated[str, StringConstraints(pattern=r"^https://\S+$")] | None = None
    note: str = ""


class FigureSource(_Frozen):
    """Where one figure of a procedure comes from and how it was obtained."""

    refs: tuple[str, ...] = Field(min_length=1)
    basis: Literal["published", "derived", "estimate"]
    note: str = Field(min_length=1)
    surgeon_fee_usd: int | None = Field(default=None, gt=0)
    """For a cost derived from a published surgeon fee: that fee."""


class ProcedureSources(_Frozen):
    typical_cost: FigureSource
    recovery_days: FigureSource
    risk_level: FigureSource
    cpt_codes: FigureSource
    icd10_codes: FigureSource
    coverage: FigureSource


class CostRange(_Frozen):
    min: int
    max: int


class ProcedureListItem(_Frozen):
    """One entry of ``GET /api/procedures``."""

    id: str
    name: str
    category: Category
    description: str
    typical_cost_min: int
    typical_cost_max: int
    recovery_days: int
    risk_level: RiskLevel
    cpt_codes: tuple[str, ...]
    icd10_codes: tuple[str, ...]


class ProcedureDetail(_Frozen):
    """The body of ``GET /api/procedures/{id}``."""

    id: str
    name: str
    category: Category
    description: str
    recovery_days: int
    risk_level: RiskLevel
    cost_range: CostRange


class Procedure(_Frozen):
    """A catalog procedure: the API fields plus what generators and insurance
    rules need (body region, coverage) and where every figure comes from."""

    id: Annotated[str, StringConstraints(pattern=r"^proc_[a-z0-9]+(_[a-z0-9]+)*$")]
    name: str = Field(min_length=1)
    category: Category
    description: str = Field(min_length=1)
    typical_cost_min: int = Field(gt=0)
    typical_cost_max: int = Field(gt=0)
    recovery_days: int = Field(ge=0)
    risk_level: RiskLevel
    cpt_codes: tuple[CptCode, ...] = Field(min_length=1)
    icd10_codes: tuple[Icd10Code, ...] = Field(min_length=1)
    body_region: str
    coverage: Coverage
    synonyms: tuple[str, ...] = ()
    sources: ProcedureSources

    @field_validator("body_region")
    @classmethod
    def _known_region(cls, region: str) -> str:
        if region not in FACIAL_REGIONS + BODY_REGIONS:
            known = ", ".join(FACIAL_REGIONS + BODY_REGIONS)
            raise ValueError(f"unknown body region {region!r}; one of {known}")
        return region

    @model_validator(mode="after")
    def _cost_range_in_order(self) -> Procedure:
        if self.typical_cost_min > self.typical_cost_max:
            raise ValueError(
                f"typical_cost_min {self.typical_cost_min} is above"
                f" typical_cost_max {self.typical_cost_max}"
            )
        return self

    def matches(self, tokens: Sequence[str]) -> bool:
        """True when every casefolded token occurs in the searchable text."""
        return all(token in self._search_text for token in tokens)

    @property
    def _search_text(self) -> str:
        return " ".join((self.name, self.description, *self.synonyms)).casefold()

    def to_list_item(self) -> ProcedureListItem:
        return ProcedureListItem(
            id=self.id,
            name=self.name,
            category=self.category,
            description=self.description,
            typical_cost_min=self.typical_cost_min,
            typical_cost_max=self.typical_cost_max,
            recovery_days=self.recovery_days,
            risk_level=self.risk_level,
            cpt_codes=self.cpt_codes,
            icd10_codes=self.icd10_codes,
        )

    def to_detail(self) -> ProcedureDetail:
        return ProcedureDetail(
            id=self.id,
            name=self.name,
            category=self.category,
            description=self.description,
            recovery_days=self.recovery_days,
            risk_level=self.risk_level,
            cost_range=CostRange(min=self.typical_cost_min, max=self.typical_cost_max),
        )

    def to_info(self) -> ProcedureInfo:
        return ProcedureInfo(
            id=self.id,
            name=self.name,
            category=self.category,
            body_region=self.body_region,
            coverage=self.coverage,
            cpt_codes=self.cpt_codes,
            icd10_codes=self.icd10_codes,
            description=self.description,
        )


class SeedFile(_Frozen):
    """The whole of ``seeds/procedures.json``."""

    format_version: Literal[1]
    about: str = ""
    sources: dict[str, Source]
    procedures: tuple[Procedure, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> SeedFile:
        seen: set[str] = set()
        for procedure in self.procedures:
            if procedure.id in seen:
                raise ValueError(f"duplicate procedure id {procedure.id!r}")
            seen.add(procedure.id)
            for figure, origin in procedure.sources:
                unknown = set(origin.refs) - self.sources.keys()
                if unknown:
                    raise ValueError(
                        f"{procedure.id}: {figure} cites unknown source(s)"
                        f" {', '.join(sorted(unknown))}"
                    )
        return self


class CatalogError(Exception):
    """The seed file is missing, unreadable or fails validation."""


class ProcedureNotFound(LookupError):
    """No catalog procedure has the requested id."""

    def __init__(self, procedure_id: str) -> None:
        super().__init__(f"no procedure with id {procedure_id!r}")
        self.procedure_id = procedure_id


class ProcedureListResponse(_Frozen):
    """The body of ``GET /api/procedures``."""

    procedures: tuple[ProcedureListItem, ...]
    total: int


class CategoriesResponse(_Frozen):
    """The body of ``GET /api/procedures/categories``."""

    categories: tuple[Category, ...]
    total: int


class Catalog:
    """Validated procedures kept in memory, in seed-file order."""

    def __init__(self, seed: SeedFile, etag: str) -> None:
        self._procedures = seed.procedures
        self._by_id = {procedure.id: procedure for procedure in seed.procedures}
        self.sources: Mapping[str, Source] = seed.sources
        self.etag = etag
        """A strong HTTP ETag (quoted) that changes whenever the content does."""

    @classmethod
    def load(cls, path: Path | str | None = None) -> Catalog:
        """Read and validate a seed file; the repository's by default."""
        seed_path = Path(path) if path is not None else DEFAULT_SEED_PATH
        try:
            raw = seed_path.read_bytes()
        except OSError as exc:
            raise CatalogError(
                f"cannot read procedure seed file {seed_path}: {exc.strerror}"
            ) from None
        catalog = cls.from_bytes(raw, origin=str(seed_path))
        log.info("procedure catalog loaded: %d procedures", len(catalog))
        return catalog

    @classmethod
    def from_bytes(cls, raw: bytes, *, origin: str = "<bytes>") -> Catalog:
        """Validate seed content already in memory (e.g. package data)."""
        try:
            document = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CatalogError(f"{origin} is not valid JSON: {exc}") from None
        try:
            seed = SeedFile.model_validate(document)
        except ValidationError as exc:
            raise CatalogError(f"{origin} is not a valid catalog:\n{exc}") from None
        return cls(seed, _etag_of(document))

    def __len__(self) -> int:
        return len(self._procedures)

    def __iter__(self) -> Iterator[Procedure]:
        return iter(self._procedures)

    def __contains__(self, procedure_id: object) -> bool:
        return procedure_id in self._by_id

    def list(
        self, category: str | None = None, search: str | None = None
    ) -> tuple[Procedure, ...]:
        """Procedures in ``category`` whose text holds every word of ``search``.

        Search is case-insensitive over name, description and synonyms, so
        "nose" finds rhinoplasty. An unknown category matches nothing.
        """
        tokens = search.casefold().split() if search else []
        return tuple(
            procedure
            for procedure in self._procedures
            if (category is None or procedure.category == category)
            and procedure.matches(tokens)
        )

    def categories(self) -> tuple[Category, ...]:
        """The categories that hold at least one procedure, in fixed order."""
        present = {procedure.category for procedure in self._procedures}
        return tuple(category for category in CATEGORIES if category in present)

    def get(self, procedure_id: str) -> Procedure:
        """The procedure with this id; raises :class:`ProcedureNotFound`."""
        try:
            return self._by_id[procedure_id]
        except KeyError:
            raise ProcedureNotFound(procedure_id) from None

    def procedure_info(self, procedure_id: str) -> ProcedureInfo:
        """What providers receive about a procedure."""
        return self.get(procedure_id).to_info()

    def list_response(
        self, category: str | None = None, search: str | None = None
    ) -> ProcedureListResponse:
        items = tuple(p.to_list_item() for p in self.list(category, search))
        return ProcedureListResponse(procedures=items, total=len(items))

    def categories_response(self) -> CategoriesResponse:
        categories = self.categories()
        return CategoriesResponse(categories=categories, total=len(categories))


def _etag_of(document: object) -> str:
    # Hash the parsed content, not the bytes, so reformatting the file keeps
    # client caches valid while any changed value invalidates them.
    canonical = json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f'"{digest[:32]}"'
