"""The similar-case library: importing anonymized cases and ranking them against
a preview by procedure and by the geometry of the treated region.

Similarity of a case to a visualization, in [0, 1]::

    similarity = 0.4 * procedure_match + 0.6 * geometry_match

``procedure_match`` is 1 for the same procedure and 0.5 for another procedure
on the same body region; cases of other regions are never candidates.
``geometry_match`` compares the region features of the two before photos
(:class:`~docwiz.builtin.offline_generator.RegionFeatures`) over the
anatomical features both have (see :data:`COMPARED_FEATURES`), each distance
``z_i = |a_i - b_i| / spread_i`` in typical spreads between two people::

    d = sqrt(sum(w_i * z_i ** 2) / sum(w_i))
    geometry_match = exp(-d ** 2 / 2)

where ``w_i`` is 2 for the feature that describes the treated region itself
(:data:`REGION_FEATURE`: the nose-to-face width ratio for the nose, ...) and 1
for the others. Identical geometry gives 1; features one spread apart give
about 0.61. When either photo has no features, ``geometry_match`` is 0 and
the case ranks on its procedure alone (at most 0.4).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from docwiz.builtin.offline_generator import describe_region
from docwiz.db.base import new_id
from docwiz.db.models_visualizations import SimilarCase
from docwiz.db.session import Database
from docwiz.providers import BODY_REGIONS, GenerationRefused, StorageBackend
from docwiz.services.catalog import Catalog, Procedure, ProcedureNotFound
from docwiz.services.images import (
    MAX_UPLOAD_BYTES,
    ImageRejected,
    process_upload,
    sniff_format,
)

log = logging.getLogger("docwiz.cases")

DEMO_LIBRARY: Final = Path(__file__).resolve().parents[2] / "seeds" / "cases"
CSV_NAME: Final = "cases.csv"
DEMO_PREFIX: Final = "demo-"
"""Case ids of the shipped demo library start with this; practices may not."""
MAX_CASES_PER_IMPORT: Final = 5000

REQUIRED_COLUMNS: Final = (
    "case_id",
    "procedure_id",
    "age_range",
    "outcome_rating",
    "patient_satisfaction",
    "before_image",
    "after_image",
)
OPTIONAL_COLUMNS: Final = ("notes", "feature_anchor", "features")
"""``feature_anchor`` and ``features`` carry region features computed earlier
(the demo library ships them); without them features are computed."""

# Words that mark a column as identifying a person (HIPAA Safe Harbor
# identifiers: names, dates, contact details, record and account numbers).
IDENTITY_WORDS: Final = frozenset(
    {
        "name",
        "firstname",
        "lastname",
        "surname",
        "fullname",
        "initials",
        "dob",
        "birth",
        "birthdate",
        "birthday",
        "born",
        "date",
        "age",
        "email",
        "mail",
        "phone",
        "telephone",
        "mobile",
        "fax",
        "address",
        "street",
        "city",
        "zip",
        "zipcode",
        "postcode",
        "postal",
        "ssn",
        "social",
        "mrn",
        "record",
        "chart",
        "policy",
        "member",
        "insurance",
        "account",
        "license",
        "ip",
        "url",
        "patient",
    }
)

AGE_RANGE_PATTERN: Final = re.compile(r"^\s*(\d{1,3})\s*-\s*(\d{1,3})\s*$")
CASE_ID_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MIN_CASE_AGE_SPAN: Final = 4
"""A case's age range spans at least five years ("25-29", "25-30")."""
OLDEST_EXACT_AGE: Final = 89
"""Safe Harbor: ages over 89 are only said as "90 or older" (``90-120``)."""
MAX_AGE: Final = 120

# Free-text notes must not carry identifiers either.
_NOTE_IDENTIFIERS: Final = (
    (re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"), "an e-mail address"),
    (re.compile(r"\b\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}\b"), "a date"),
    (re.compile(r"\d(?:[\s().-]*\d){6,}"), "a long number (phone, record, ID)"),
)
MAX_NOTES_CHARS: Final = 500


# -- features compared -------------------------------------------------------------


@dataclass(frozen=True)
class ComparedFeature:
    spread: float
    """A typical difference between two people, in the feature's units."""
    label: str


COMPARED_FEATURES: Final[Mapping[str, ComparedFeature]] = {
    # Facial photos (anchor "face").
    "nose_width_to_face_width": ComparedFeature(0.03, "nose-to-face width ratio"),
    "ipd_to_face_width": ComparedFeature(0.05, "eye spacing to face width ratio"),
    "eye_width_to_ipd": ComparedFeature(0.10, "eye size"),
    "mouth_line_below_pupils": ComparedFeature(0.10, "eyes-to-mouth height"),
    "mouth_width_to_ipd": ComparedFeature(0.15, "mouth width"),
    # Body photos (anchors "face-estimated-body" and "image-centre").
    "region_width_to_image_width": ComparedFeature(0.10, "region width"),
    "region_height_to_image_height": ComparedFeature(0.10, "region height"),
    # Both.
    "region_texture_roughness": ComparedFeature(0.03, "skin texture in the region"),
}
"""The anatomical features similarity uses, with their spreads.

Left out on purpose: framing and pose (``face_width_to_image_width``,
``roll_degrees``, ``region_centre_*``, ``visible_fraction``), the detector's
own state (``eyes_detected_fraction``, ``anchored_on_face``), and the region
box relative to the face, which is placed in IPD units and so repeats
``ipd_to_face_width``. ``nose_width_to_face_width`` is 0.55 times
``ipd_to_face_width`` until the alae are measured, so only one of the two
counts when both are present.
"""

ANCHOR_NAMES: Final = ("face", "face-estimated-body", "image-centre")
FACE_FEATURE_NAMES: Final = frozenset(
    {
        "face_width_to_image_width",
        "ipd_to_face_width",
        "roll_degrees",
        "eyes_detected_fraction",
        "eye_width_to_ipd",
        "mouth_line_below_pupils",
        "mouth_width_to_ipd",
        "region_width_to_face_width",
        "region_height_to_face_width",
        "nose_width_to_face_width",
        "region_texture_roughness",
    }
)
BODY_FEATURE_NAMES: Final = frozenset(
    {
        "anchored_on_face",
        "region_centre_x",
        "region_centre_y",
        "region_width_to_image_width",
        "region_height_to_image_height",
        "visible_fraction",
        "region_texture_roughness",
    }
)

REGION_FEATURE: Final[Mapping[str, str]] = {
    "nose": "nose_width_to_face_width",
    "eyelids": "eye_width_to_ipd",
    "brow": "eye_width_to_ipd",
    "lips": "mouth_width_to_ipd",
    "chin": "mouth_line_below_pupils",
    "jawline": "ipd_to_face_width",
    "cheeks": "ipd_to_face_width",
    "ears": "ipd_to_face_width",
    "face": "ipd_to_face_width",
    "neck": "mouth_line_below_pupils",
    "skin": "region_texture_roughness",
    **{
        region: "region_width_to_image_width"
        for region in BODY_REGIONS
        if region != "skin"
    },
}
"""The feature that describes each treated region best; it counts twice."""

PROCEDURE_WEIGHT: Final = 0.4
GEOMETRY_WEIGHT: Final = 0.6
SAME_REGION_MATCH: Final = 0.5
CLOSE_SPREADS: Final = 1.0
"""A feature within this many spreads is "similar" in matching criteria."""


@dataclass(frozen=True)
class MeasuredRegion:
    """Region features of one before photo, as stored with a case or preview."""

    anchor: str
    values: Mapping[str, float]


def geometry_match(
    mine: MeasuredRegion | None, theirs: MeasuredRegion | None, body_region: str
) -> tuple[float, list[tuple[float, str]]]:
    """The geometry term in [0, 1] and, per compared feature, its distance in
    spreads with its label, the region's own feature first and the rest
    closest first. ``(0.0, [])`` without features to compare."""
    if mine is None or theirs is None:
        return 0.0, []
    shared = [
        name
        for name in COMPARED_FEATURES
        if name in mine.values and name in theirs.values
    ]
    if "nose_width_to_face_width" in shared and "ipd_to_face_width" in shared:
        shared.remove("ipd_to_face_width")
    if not shared:
        return 0.0, []

    own = REGION_FEATURE.get(body_region)
    weighted = [
        (
            abs(mine.values[name] - theirs.values[name])
            / COMPARED_FEATURES[name].spread,
            2.0 if name == own else 1.0,
            name,
        )
        for name in shared
    ]
    mean_square = sum(w * z * z for z, w, _ in weighted) / sum(
        w for _, w, _ in weighted
    )
    ordered = sorted(weighted, key=lambda item: (item[2] != own, item[0], item[2]))
    distances = [(z, COMPARED_FEATURES[name].label) for z, _, name in ordered]
    return math.exp(-mean_square / 2.0), distances


@dataclass(frozen=True)
class RankedCase:
    case: SimilarCase
    similarity_score: float
    matching_criteria: str


def rank_case(
    case: SimilarCase,
    *,
    procedure_id: str,
    body_region: str,
    features: MeasuredRegion | None,
    catalog: Catalog,
) -> RankedCase:
    """Score one case of the same body region and say why it matched."""
    same_procedure = case.procedure_id == procedure_id
    procedure_match = 1.0 if same_procedure else SAME_REGION_MATCH
    geometry, distances = geometry_match(features, stored_features(case), body_region)
    score = PROCEDURE_WEIGHT * procedure_match + GEOMETRY_WEIGHT * geometry

    if same_procedure:
        reasons = [f"same procedure ({procedure_label(catalog, procedure_id)})"]
    else:
        other = procedure_label(catalog, case.procedure_id)
        reasons = [f"same treated region ({body_region}), {other}"]
    close = [label for z, label in distances if z <= CLOSE_SPREADS]
    if close:
        reasons.extend(f"similar {label}" for label in close[:2])
    elif distances:
        closest = min(distances)[1]
        reasons.append(f"different region geometry (closest: {closest})")
    else:
        reasons.append("no region geometry to compare, ranked on the procedure")
    if case.is_demo:
        reasons.append("demo case (synthetic, not a real patient)")
    return RankedCase(case, round(min(1.0, max(0.0, score)), 4), "; ".join(reasons))


def procedure_label(catalog: Catalog, procedure_id: str) -> str:
    """The procedure's name in lower case, or its short id if the catalog lost it."""
    if procedure_id in catalog:
        return catalog.get(procedure_id).name.lower()
    return short_procedure_name(procedure_id)


def stored_features(case: SimilarCase) -> MeasuredRegion | None:
    if case.features is None or case.feature_anchor is None:
        return None
    return MeasuredRegion(case.feature_anchor, case.features)


# -- finding cases -----------------------------------------------------------------


def short_procedure_name(procedure_id: str) -> str:
    """``proc_rhinoplasty`` -> ``rhinoplasty``: the API's ``procedure_type``."""
    return procedure_id.removeprefix("proc_")


def resolve_procedure(catalog: Catalog, text: str) -> Procedure:
    """A catalog procedure from its id, short name or name, in any case.

    ``proc_rhinoplasty``, ``rhinoplasty``, ``Rhinoplasty`` and ``breast
    augmentation`` all resolve; raises :class:`ProcedureNotFound` otherwise.
    """
    wanted = text.strip().casefold()
    if wanted in catalog:
        return catalog.get(wanted)
    slug = re.sub(r"[^a-z0-9]+", "_", wanted).strip("_")
    if f"proc_{slug}" in catalog:
        return catalog.get(f"proc_{slug}")
    for procedure in catalog:
        if procedure.name.casefold() == wanted:
            return procedure
    raise ProcedureNotFound(text)


@dataclass(frozen=True)
class AgeRange:
    low: int
    high: int

    @classmethod
    def parse(cls, text: str) -> AgeRange:
        """``"20-30"`` -> ``AgeRange(20, 30)``; ``ValueError`` when malformed."""
        found = AGE_RANGE_PATTERN.match(text)
        if found is None:
            raise ValueError("an age range is two whole numbers like 20-30")
        low, high = int(found.group(1)), int(found.group(2))
        if low > high:
            raise ValueError("the age range starts after it ends")
        if high > MAX_AGE:
            raise ValueError(f"ages above {MAX_AGE} are not valid")
        return cls(low, high)

    def __str__(self) -> str:
        return f"{self.low}-{self.high}"


@dataclass(frozen=True)
class CaseFilters:
    procedure_id: str | None = None
    age_range: AgeRange | None = None
    min_outcome_rating: float | None = None
    include_demo: bool = True


async def find_similar_cases(
    session: AsyncSession,
    *,
    catalog: Catalog,
    procedure_id: str,
    body_region: str,
    features: MeasuredRegion | None,
    filters: CaseFilters,
    limit: int,
) -> tuple[list[RankedCase], int]:
    """The best ``limit`` cases of ``body_region`` that pass the filters, most
    similar to a preview of ``procedure_id`` first, and how many passed."""
    query = select(SimilarCase).where(SimilarCase.body_region == body_region)
    if not filters.include_demo:
        query = query.where(SimilarCase.is_demo.is_(False))
    if filters.procedure_id is not None:
        query = query.where(SimilarCase.procedure_id == filters.procedure_id)
    if filters.min_outcome_rating is not None:
        query = query.where(SimilarCase.outcome_rating >= filters.min_outcome_rating)
    if filters.age_range is not None:
        query = query.where(
            SimilarCase.age_min <= filters.age_range.high,
            SimilarCase.age_max >= filters.age_range.low,
        )
    candidates = (await session.scalars(query)).all()
    ranked = [
        rank_case(
            case,
            procedure_id=procedure_id,
            body_region=body_region,
            features=features,
            catalog=catalog,
        )
        for case in candidates
    ]
    # Ties go to the better outcome, then to a stable id order.
    ranked.sort(key=lambda r: (-r.similarity_score, -r.case.outcome_rating, r.case.id))
    return ranked[:limit], len(ranked)


# -- importing a library -----------------------------------------------------------


class CaseImportError(Exception):
    """The library cannot be imported; ``problems`` lists every reason found."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        summary = "; ".join(self.problems[:5])
        more = len(self.problems) - 5
        if more > 0:
            summary += f"; and {more} more"
        super().__init__(f"nothing was imported: {summary}")


@dataclass
class ImportReport:
    imported: int
    batch: str
    demo: bool
    seconds: float
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _CaseRow:
    """A CSV row whose metadata passed validation; images not checked yet."""

    line: int
    external_id: str
    procedure: Procedure
    age: AgeRange
    outcome_rating: float
    patient_satisfaction: int
    before_image: Path
    after_image: Path
    notes: str | None
    features: MeasuredRegion | None


@dataclass(frozen=True)
class _PreparedPhoto:
    content: bytes
    mime_type: str
    extension: str


@dataclass(frozen=True)
class _PreparedCase:
    row: _CaseRow
    before: _PreparedPhoto
    after: _PreparedPhoto
    features: MeasuredRegion | None
    warning: str | None


def _csv_path(source: Path) -> Path:
    return source if source.is_file() else source / CSV_NAME


def read_case_rows(source: Path, catalog: Catalog, *, demo: bool) -> list[_CaseRow]:
    """Parse and check the CSV's metadata; raise :class:`CaseImportError` with
    every problem found. Image files are checked later, one by one."""
    csv_path = _csv_path(source)
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CaseImportError(
            [
                f"{csv_path} does not exist (a case library is a folder with "
                f"{CSV_NAME} and the photos it names)"
            ]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseImportError(
            [f"{csv_path} cannot be read as UTF-8 text: {exc}"]
        ) from None

    try:
        return _parse_rows(csv_path, text, catalog, demo=demo)
    except csv.Error as exc:
        raise CaseImportError([f"{csv_path} is not a valid CSV file: {exc}"]) from None


def _parse_rows(
    csv_path: Path, text: str, catalog: Catalog, *, demo: bool
) -> list[_CaseRow]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    _check_columns(reader.fieldnames or [])
    root = csv_path.parent.resolve()
    rows: list[_CaseRow] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for record in reader:
        line = reader.line_num
        if len(rows) + len(problems) >= MAX_CASES_PER_IMPORT:
            problems.append(f"more than {MAX_CASES_PER_IMPORT} cases; split the file")
            break
        if None in record:
            problems.append(f"line {line}: more values than columns")
            continue
        try:
            row = _parse_row(line, record, catalog, root, demo=demo)
        except ValueError as exc:
            problems.append(f"line {line}: {exc}")
            continue
        if row.external_id in seen:
            problems.append(
                f"line {line}: case_id {row.external_id!r} repeats line "
                f"{seen[row.external_id]}"
            )
            continue
        seen[row.external_id] = line
        rows.append(row)
    if problems:
        raise CaseImportError(problems)
    if not rows:
        raise CaseImportError([f"{csv_path} holds no cases"])
    return rows


def _normal_column(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().casefold()).strip("_")


def _check_columns(fieldnames: Sequence[str]) -> None:
    columns = [_normal_column(name) for name in fieldnames]
    allowed = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS)
    problems: list[str] = []
    for original, column in zip(fieldnames, columns, strict=True):
        if column in allowed:
            continue
        words = set(column.split("_")) | {column.replace("_", "")}
        if words & IDENTITY_WORDS:
            problems.append(
                f"column {original!r} looks like it identifies a patient; case "
                "libraries must be anonymized (no names, dates, contact "
                "details or record numbers; ages only as ranges like 25-30): "
                "remove the column"
            )
        else:
            problems.append(
                f"unknown column {original!r}; the columns are "
                f"{', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}"
            )
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    problems.extend(f"column {c!r} appears more than once" for c in duplicated)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        problems.append(f"missing column(s): {', '.join(missing)}")
    if problems:
        raise CaseImportError(problems)


def _parse_row(
    line: int, record: Mapping[str, str], catalog: Catalog, root: Path, *, demo: bool
) -> _CaseRow:
    values = {_normal_column(k): (v or "").strip() for k, v in record.items()}

    external_id = values["case_id"]
    if not CASE_ID_PATTERN.match(external_id):
        raise ValueError(
            "case_id must be 1-64 letters, digits, '.', '_' or '-' "
            f"(got {external_id!r})"
        )
    if demo and not external_id.startswith(DEMO_PREFIX):
        raise ValueError(f"demo case ids start with {DEMO_PREFIX!r}")
    if not demo and external_id.startswith(DEMO_PREFIX):
        raise ValueError(
            f"case_id {external_id!r}: ids starting with {DEMO_PREFIX!r} are "
            "reserved for the demo library"
        )
    try:
        procedure = resolve_procedure(catalog, values["procedure_id"])
    except ProcedureNotFound:
        raise ValueError(
            f"procedure_id {values['procedure_id']!r} is not in the catalog "
            "(use an id from GET /api/procedures, e.g. proc_rhinoplasty)"
        ) from None
    return _CaseRow(
        line=line,
        external_id=external_id,
        procedure=procedure,
        age=_case_age(values["age_range"]),
        outcome_rating=_number(values["outcome_rating"], "outcome_rating", 0.0, 1.0),
        patient_satisfaction=_satisfaction(values["patient_satisfaction"]),
        before_image=_image_path(root, values["before_image"], "before_image"),
        after_image=_image_path(root, values["after_image"], "after_image"),
        notes=_notes(values.get("notes", "")),
        features=_shipped_features(
            values.get("feature_anchor", ""), values.get("features", "")
        ),
    )


def _case_age(text: str) -> AgeRange:
    try:
        age = AgeRange.parse(text)
    except ValueError as exc:
        raise ValueError(f"age_range {text!r}: {exc}") from None
    if age.low > OLDEST_EXACT_AGE and (age.low, age.high) != (90, MAX_AGE):
        raise ValueError(
            f"age_range {text!r}: ages over {OLDEST_EXACT_AGE} are written "
            f"90-{MAX_AGE} so they cannot single anyone out"
        )
    if age.high - age.low < MIN_CASE_AGE_SPAN:
        raise ValueError(
            f"age_range {text!r} is too narrow; give a range of at least five "
            "years, like 25-29"
        )
    return age


def _number(text: str, column: str, low: float, high: float) -> float:
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{column} {text!r} is not a number") from None
    if not (math.isfinite(number) and low <= number <= high):
        raise ValueError(f"{column} {text!r} is outside {low:g} to {high:g}")
    return number


def _satisfaction(text: str) -> int:
    if not re.fullmatch(r"[1-5]", text):
        raise ValueError(f"patient_satisfaction {text!r} must be a whole number 1-5")
    return int(text)


def _image_path(root: Path, name: str, column: str) -> Path:
    if not name:
        raise ValueError(f"{column} is empty")
    path = (root / name).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"{column} {name!r} points outside the library folder")
    if not path.is_file():
        raise ValueError(f"{column} {name!r} does not exist")
    return path


def _notes(text: str) -> str | None:
    if not text:
        return None
    if len(text) > MAX_NOTES_CHARS:
        raise ValueError(f"notes are longer than {MAX_NOTES_CHARS} characters")
    for pattern, what in _NOTE_IDENTIFIERS:
        if pattern.search(text):
            raise ValueError(f"notes contain {what}; notes must not identify anyone")
    return text


def _shipped_features(anchor: str, encoded: str) -> MeasuredRegion | None:
    if not anchor and not encoded:
        return None
    if anchor not in ANCHOR_NAMES:
        raise ValueError(f"feature_anchor {anchor!r} is not one of {ANCHOR_NAMES}")
    try:
        values = json.loads(encoded)
    except json.JSONDecodeError:
        raise ValueError("features is not a JSON object") from None
    known = FACE_FEATURE_NAMES if anchor == "face" else BODY_FEATURE_NAMES
    if not isinstance(values, dict) or not values or set(values) - known:
        raise ValueError(f"features must map names from {sorted(known)} to numbers")
    if not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        for v in values.values()
    ):
        raise ValueError("features must be finite numbers")
    return MeasuredRegion(anchor, {name: float(v) for name, v in values.items()})


def _prepare_case(row: _CaseRow, *, trusted: bool, max_bytes: int) -> _PreparedCase:
    """Check both photos and measure the before photo (CPU work, in a thread).

    Photos of a practice's library pass the same checks as patient uploads
    and are stored re-encoded without metadata. ``trusted`` photos (the demo
    library, made by ``seeds/cases/make_demo_cases.py`` through those same
    checks) are only sniffed, to keep the first use of the library fast.
    """
    before = _prepare_photo(row.before_image, "before_image", trusted, max_bytes)
    after = _prepare_photo(row.after_image, "after_image", trusted, max_bytes)
    features, warning = row.features, None
    if features is None:
        try:
            measured = describe_region(before.content, row.procedure.body_region)
        except GenerationRefused as exc:
            warning = (
                f"line {row.line}: no region features ({exc}); the case ranks "
                "on its procedure only"
            )
        else:
            features = MeasuredRegion(measured.anchor, measured.as_dict())
    return _PreparedCase(row, before, after, features, warning)


def _prepare_photo(
    path: Path, column: str, trusted: bool, max_bytes: int
) -> _PreparedPhoto:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{column} {path.name!r} cannot be read: {exc}") from None
    if trusted:
        kind = sniff_format(data)
        if kind is None:
            raise ValueError(f"{column} {path.name!r} is not a JPEG, PNG or WebP")
        return _PreparedPhoto(data, kind.mime_type, kind.extension)
    try:
        processed = process_upload(data, max_bytes=max_bytes)
    except ImageRejected as exc:
        raise ValueError(f"{column} {path.name!r}: {exc.message}") from None
    return _PreparedPhoto(processed.content, processed.mime_type, processed.extension)


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def import_cases(
    database: Database,
    storage: StorageBackend,
    catalog: Catalog,
    source: Path,
    *,
    demo: bool = False,
    max_bytes: int = MAX_UPLOAD_BYTES,
) -> ImportReport:
    """Import a case library folder (``cases.csv`` and its photos) all or nothing.

    Every row is checked before anything is written; on any problem a
    :class:`CaseImportError` lists them all, and the photos stored so far are
    removed again.
    """
    started = time.perf_counter()
    rows = await asyncio.to_thread(read_case_rows, source, catalog, demo=demo)
    await _refuse_known_ids(database, rows)

    batch = new_id("batch")
    stored: list[str] = []
    cases: list[SimilarCase] = []
    problems: list[str] = []
    warnings: list[str] = []
    try:
        for row in rows:
            try:
                prepared = await asyncio.to_thread(
                    _prepare_case, row, trusted=demo, max_bytes=max_bytes
                )
            except ValueError as exc:
                problems.append(f"line {row.line}: {exc}")
                continue
            if prepared.warning:
                warnings.append(prepared.warning)
            if problems:
                continue  # keep checking the rest, but store nothing more
            cases.append(await _store_case(storage, prepared, batch, stored))
        if problems:
            raise CaseImportError(problems)
        async with database.session() as session:
            session.add_all(cases)
    except BaseException:
        # All or nothing: no photo stays behind without its row.
        await asyncio.shield(_delete_all(storage, stored))
        raise

    report = ImportReport(
        imported=len(cases),
        batch=batch,
        demo=demo,
        seconds=round(time.perf_counter() - started, 3),
        warnings=warnings,
    )
    log.info(
        "imported %d %scases (batch %s) in %.3f s",
        report.imported,
        "demo " if demo else "",
        batch,
        report.seconds,
    )
    return report


async def _refuse_known_ids(database: Database, rows: Sequence[_CaseRow]) -> None:
    wanted = [row.external_id for row in rows]
    async with database.session() as session:
        known = set(
            (
                await session.scalars(
                    select(SimilarCase.external_id).where(
                        SimilarCase.external_id.in_(wanted)
                    )
                )
            ).all()
        )
    if known:
        raise CaseImportError(
            [
                f"line {row.line}: case_id {row.external_id!r} was imported before"
                for row in rows
                if row.external_id in known
            ]
        )


async def _store_case(
    storage: StorageBackend, prepared: _PreparedCase, batch: str, stored: list[str]
) -> SimilarCase:
    case_id = new_id("case")
    keys = []
    for side, photo in (("before", prepared.before), ("after", prepared.after)):
        key = f"cases/{case_id}_{side}.{photo.extension}"
        stored.append(key)
        await storage.put(key, _one_chunk(photo.content), photo.mime_type)
        keys.append(key)
    row, features = prepared.row, prepared.features
    return SimilarCase(
        id=case_id,
        external_id=row.external_id,
        procedure_id=row.procedure.id,
        body_region=row.procedure.body_region,
        age_min=row.age.low,
        age_max=row.age.high,
        outcome_rating=row.outcome_rating,
        patient_satisfaction=row.patient_satisfaction,
        before_storage_key=keys[0],
        after_storage_key=keys[1],
        feature_anchor=None if features is None else features.anchor,
        features=None if features is None else dict(features.values),
        notes=row.notes,
        is_demo=row.external_id.startswith(DEMO_PREFIX),
        import_batch=batch,
    )


async def _delete_all(storage: StorageBackend, keys: Sequence[str]) -> None:
    for key in keys:
        try:
            await storage.delete(key)
        except Exception:
            log.exception("could not remove %s after a failed case import", key)


# -- the demo library --------------------------------------------------------------


async def has_demo_cases(database: Database) -> bool:
    async with database.session() as session:
        return bool(
            await session.scalar(select(exists().where(SimilarCase.is_demo.is_(True))))
        )


async def ensure_demo_cases(
    database: Database,
    storage: StorageBackend,
    catalog: Catalog,
    library: Path = DEMO_LIBRARY,
) -> ImportReport | None:
    """Import the shipped demo library unless demo cases are already there.

    Two processes may try at once; the unique case ids let one win, and the
    other's photos are removed again.
    """
    if await has_demo_cases(database):
        return None
    try:
        return await import_cases(database, storage, catalog, library, demo=True)
    except (IntegrityError, CaseImportError) as exc:
        if await has_demo_cases(database):
            log.info("the demo case library was loaded by another process")
            return None
        log.error("the demo case library could not be loaded: %s", exc)
        raise
