"""Patient profiles without HTTP: validation, encryption, merging updates,
versions and their history.

Other areas that act on a patient (cost estimates, claims, exports) load the
profile with :func:`find_profile` and :func:`ensure_owner` inside
:func:`docwiz.services.audit.audited`, and read it through :func:`read_profile`.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from docwiz.db.base import utcnow
from docwiz.db.models import User
from docwiz.db.models_accounts import PatientProfile, PatientProfileVersion
from docwiz.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ValidationFailed,
    field_errors_from_pydantic,
)
from docwiz.security.fields import FieldCipher

ENCRYPTED_MARK = "[encrypted]"
ENCRYPTED_PATHS = frozenset({"insurance_info.policy_number", "medical_history"})
MAX_AGE_YEARS = 130

# USPS codes: the states, DC, the inhabited territories and military mail.
# fmt: off
US_STATE_CODES = frozenset({
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL",
    "IN", "IA", "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT",
    "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI",
    "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY", "DC", "AS",
    "GU", "MP", "PR", "VI", "AA", "AE", "AP",
})
# fmt: on
_COUNTRY_ALIASES = {"US", "USA", "UNITED STATES", "UNITED STATES OF AMERICA"}
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


# -- field types ---------------------------------------------------------------


def _no_control_characters(value: str) -> str:
    if _CONTROL_CHARACTERS.search(value):
        raise ValueError("must not contain control characters")
    return value


def _state_code(value: str) -> str:
    code = value.strip().upper()
    if code not in US_STATE_CODES:
        raise ValueError("must be a two-letter US state or territory code, e.g. CA")
    return code


def _country(value: Any) -> Any:
    if isinstance(value, str) and value.strip().upper() in _COUNTRY_ALIASES:
        return "USA"
    return value


def _birth_date(value: date) -> date:
    today = datetime.now(UTC).date()
    if value >= today:
        raise ValueError("must be in the past")
    try:
        oldest = today.replace(year=today.year - MAX_AGE_YEARS)
    except ValueError:  # 29 February
        oldest = today.replace(year=today.year - MAX_AGE_YEARS, day=28)
    if value < oldest:
        raise ValueError(f"must be within the last {MAX_AGE_YEARS} years")
    return value


AsNumber = PlainSerializer(float, return_type=float, when_used="json")

PlainText = AfterValidator(_no_control_characters)


def _length(most: int) -> StringConstraints:
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=most)


Name = Annotated[str, _length(200), PlainText]
City = Annotated[str, _length(100), PlainText]
InsurerName = Annotated[str, _length(120), PlainText]
PolicyNumber = Annotated[str, _length(64), PlainText]
PlanType = Annotated[str, _length(40), PlainText]
ZipCode = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^\d{5}(-\d{4})?$"),
]
StateCode = Annotated[str, AfterValidator(_state_code)]
Country = Annotated[Literal["USA"], BeforeValidator(_country)]
BirthDate = Annotated[date, AfterValidator(_birth_date)]
MedicalHistory = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=20_000)
]
Money = Annotated[
    Decimal, Field(ge=0, le=10_000_000, decimal_places=2, allow_inf_nan=False), AsNumber
]
Fraction = Annotated[Decimal, Field(ge=0, le=1, allow_inf_nan=False), AsNumber]
MoneyOut = Annotated[Decimal, AsNumber]


# -- request and response models -----------------------------------------------


class LocationIn(BaseModel):
    zip_code: ZipCode = Field(examples=["94102"])
    city: City
    state: StateCode = Field(examples=["CA"])
    country: Country = "USA"


class InsuranceIn(BaseModel):
    """The insurer and, optionally, the plan figures cost estimates use."""

    provider: InsurerName
    policy_number: PolicyNumber | None = None
    plan_type: PlanType | None = Field(default=None, examples=["PPO"])
    deductible: Money | None = None
    deductible_met: Money | None = None
    coinsurance: Fraction | None = Field(
        default=None, description="The patient's share after the deductible, 0..1"
    )
    copay: Money | None = None
    out_of_pocket_max: Money | None = None
    out_of_pocket_met: Money | None = None

    @field_validator("deductible_met")
    @classmethod
    def _met_within_deductible(
        cls, value: Decimal | None, info: ValidationInfo
    ) -> Decimal | None:
        deductible = info.data.get("deductible")
        if value is not None and deductible is not None and value > deductible:
            raise ValueError("cannot exceed the deductible")
        return value

    @field_validator("out_of_pocket_max")
    @classmethod
    def _maximum_covers_deductible(
        cls, value: Decimal | None, info: ValidationInfo
    ) -> Decimal | None:
        deductible = info.data.get("deductible")
        if value is not None and deductible is not None and deductible > value:
            raise ValueError("cannot be below the deductible, which counts toward it")
        return value

    @field_validator("out_of_pocket_met")
    @classmethod
    def _met_within_maximum(
        cls, value: Decimal | None, info: ValidationInfo
    ) -> Decimal | None:
        maximum = info.data.get("out_of_pocket_max")
        if value is not None and maximum is not None and value > maximum:
            raise ValueError("cannot exceed the out-of-pocket maximum")
        return value


class ProfileIn(BaseModel):
    """A whole profile: the body of ``POST /profiles``."""

    name: Name = Field(examples=["John Doe"])
    date_of_birth: BirthDate
    location: LocationIn
    insurance_info: InsuranceIn | None = None
    medical_history: MedicalHistory | None = None


class LocationPatch(BaseModel):
    zip_code: ZipCode | None = None
    city: City | None = None
    state: StateCode | None = None
    country: Country | None = None


class InsurancePatch(BaseModel):
    provider: InsurerName | None = None
    policy_number: PolicyNumber | None = None
    plan_type: PlanType | None = None
    deductible: Money | None = None
    deductible_met: Money | None = None
    coinsurance: Fraction | None = None
    copay: Money | None = None
    out_of_pocket_max: Money | None = None
    out_of_pocket_met: Money | None = None


class ProfilePatch(BaseModel):
    """The body of ``PUT /profiles/{id}``: only the fields to change.

    Nested objects merge into the stored ones; ``null`` clears an optional
    field. ``version`` (or an ``If-Match`` header) makes the update
    conditional on the version the client read.
    """

    name: Name | None = None
    date_of_birth: BirthDate | None = None
    location: LocationPatch | None = None
    insurance_info: InsurancePatch | None = None
    medical_history: MedicalHistory | None = None
    version: int | None = Field(
        default=None, ge=1, description="The version this update is based on"
    )


class LocationOut(BaseModel):
    zip_code: str
    city: str
    state: str
    country: str


class InsuranceOut(BaseModel):
    provider: str
    policy_number: str | None = None
    plan_type: str | None = None
    deductible: MoneyOut | None = None
    deductible_met: MoneyOut | None = None
    coinsurance: MoneyOut | None = None
    copay: MoneyOut | None = None
    out_of_pocket_max: MoneyOut | None = None
    out_of_pocket_met: MoneyOut | None = None


class ProfileOut(BaseModel):
    id: str
    user_id: str
    name: str
    date_of_birth: date
    location: LocationOut
    insurance_info: InsuranceOut | None
    medical_history: str | None
    created_at: datetime
    updated_at: datetime
    version: int


class ProfileVersionOut(BaseModel):
    version: int
    updated_at: datetime
    changes: dict[str, Any]


# -- reading -------------------------------------------------------------------


class ProfileExists(BadRequest):
    code = "profile_exists"


def read_profile(profile: PatientProfile, cipher: FieldCipher) -> ProfileOut:
    """The profile as the API shows it, with the encrypted fields opened."""
    insurance = None
    if profile.insurance is not None:
        insurance = InsuranceOut.model_validate(
            {
                **profile.insurance,
                "policy_number": cipher.decrypt_optional(
                    profile.policy_number_encrypted
                ),
            }
        )
    return ProfileOut(
        id=profile.id,
        user_id=profile.user_id,
        name=profile.name,
        date_of_birth=profile.date_of_birth,
        location=LocationOut.model_validate(profile.location),
        insurance_info=insurance,
        medical_history=cipher.decrypt_optional(profile.medical_history_encrypted),
        created_at=profile.created_at,
        updated_at=profile.updated_at,
        version=profile.version,
    )


async def find_profile(
    session: AsyncSession, profile_id: str, *, lock: bool = False
) -> PatientProfile:
    """The profile ``profile_id``; NotFound if there is none.

    With ``lock``, no one else can change it until the transaction ends: a
    row lock on PostgreSQL; on SQLite, which has no row locks, a no-op write
    first takes the database's write lock, so the read sees the latest
    version and nobody commits in between.
    """
    if lock and session.get_bind().dialect.name == "sqlite":
        await session.execute(
            update(PatientProfile)
            .where(PatientProfile.id == profile_id)
            .values(version=PatientProfile.version)
        )
    query = select(PatientProfile).where(PatientProfile.id == profile_id)
    if lock:
        query = query.with_for_update()
    profile = await session.scalar(query.execution_options(populate_existing=True))
    if profile is None:
        raise NotFound("Profile not found")
    return profile


async def profile_of_user(session: AsyncSession, user_id: str) -> PatientProfile:
    profile = await session.scalar(
        select(PatientProfile).where(PatientProfile.user_id == user_id)
    )
    if profile is None:
        raise NotFound("Profile not found")
    return profile


def ensure_owner(profile: PatientProfile, user: User) -> None:
    """Forbidden unless ``user`` is the patient the profile belongs to."""
    if profile.user_id != user.id:
        raise Forbidden("Not authorized to access this profile")


async def versions(
    session: AsyncSession, profile_id: str
) -> list[PatientProfileVersion]:
    rows = await session.scalars(
        select(PatientProfileVersion)
        .where(PatientProfileVersion.profile_id == profile_id)
        .order_by(PatientProfileVersion.version)
    )
    return list(rows.all())


# -- writing -------------------------------------------------------------------


def _store(profile: PatientProfile, data: ProfileIn, cipher: FieldCipher) -> None:
    """Copy ``data`` onto the row, encrypting what must not be stored plain."""
    profile.name = data.name
    profile.date_of_birth = data.date_of_birth
    profile.location = data.location.model_dump(mode="json")
    if data.insurance_info is None:
        profile.insurance = None
        profile.policy_number_encrypted = None
    else:
        profile.insurance = data.insurance_info.model_dump(
            mode="json", exclude={"policy_number"}
        )
        profile.policy_number_encrypted = cipher.encrypt_optional(
            data.insurance_info.policy_number
        )
    profile.medical_history_encrypted = cipher.encrypt_optional(data.medical_history)


async def create_profile(
    session: AsyncSession, cipher: FieldCipher, user: User, data: ProfileIn
) -> PatientProfile:
    """The user's one profile, at version 1; ProfileExists for a second one."""
    existing = await session.scalar(
        select(PatientProfile.id).where(PatientProfile.user_id == user.id)
    )
    if existing is not None:
        raise ProfileExists(
            "A profile already exists for this user; change it with "
            f"PUT /api/profiles/{existing}"
        )
    now = utcnow()
    profile = PatientProfile(user_id=user.id, version=1, created_at=now, updated_at=now)
    _store(profile, data, cipher)
    session.add(profile)
    await session.flush()
    session.add(
        PatientProfileVersion(
            profile_id=profile.id,
            version=1,
            changes={"created": True},
            changed_by=user.id,
            created_at=now,
        )
    )
    await session.flush()
    return profile


def merge(stored: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``patch`` laid over ``stored``; nested objects merge key by key."""
    merged = dict(stored)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def flatten(document: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"location": {"zip_code": x}}`` -> ``{"location.zip_code": x}``."""
    flat: dict[str, Any] = {}
    for key, value in document.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Dotted paths whose value differs, with the new value (a field that is
    absent counts as null); encrypted fields show a marker, not the value."""
    old, new = flatten(before), flatten(after)
    changes = {}
    for path in sorted(old.keys() | new.keys()):
        if old.get(path) != new.get(path):
            changes[path] = ENCRYPTED_MARK if path in ENCRYPTED_PATHS else new.get(path)
    return changes


EDITABLE_FIELDS = set(ProfileIn.model_fields)


def _editable(current: ProfileOut) -> dict[str, Any]:
    return current.model_dump(mode="json", include=EDITABLE_FIELDS)


async def update_profile(
    session: AsyncSession,
    cipher: FieldCipher,
    profile: PatientProfile,
    patch: ProfilePatch,
    *,
    expected_version: int | None,
    changed_by: str,
) -> PatientProfile:
    """Merge ``patch`` into a profile locked by ``find_profile(lock=True)``.

    The version goes up by exactly one per call; Conflict when the client
    based its change on another version than the stored one.
    """
    if expected_version is not None and expected_version != profile.version:
        raise Conflict(
            f"The profile is at version {profile.version}, not {expected_version}; "
            "read it again and reapply the change",
            code="version_conflict",
        )
    before = _editable(read_profile(profile, cipher))
    requested = patch.model_dump(mode="json", exclude_unset=True, exclude={"version"})
    try:
        data = ProfileIn.model_validate(merge(before, requested))
    except ValidationError as exc:
        raise ValidationFailed(
            "The updated profile is invalid",
            errors=field_errors_from_pydantic(
                [dict(e) for e in exc.errors(include_input=False, include_url=False)]
            ),
        ) from None

    _store(profile, data, cipher)
    profile.version += 1
    profile.updated_at = utcnow()
    session.add(
        PatientProfileVersion(
            profile_id=profile.id,
            version=profile.version,
            changes=changed_fields(before, data.model_dump(mode="json")),
            changed_by=changed_by,
            created_at=profile.updated_at,
        )
    )
    await session.flush()
    return profile
