"""Tables of procedure previews and of the anonymized similar-case library."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from docwiz.db.base import Base, UTCDateTime, new_id, utcnow


class Visualization(Base):
    """A preview of one procedure on one of the patient's photos.

    The after image is in the storage backend at ``after_storage_key``; the
    before image is the uploaded photo ``before_image_id``. ``features`` holds
    the treated region's geometry of the before photo (see
    :class:`docwiz.builtin.offline_generator.RegionFeatures`), used to rank
    similar cases; it is ``None`` when the region could not be measured.
    """

    __tablename__ = "visualizations"

    id: Mapped[str] = mapped_column(
        String(40), primary_key=True, default=lambda: new_id("viz")
    )
    user_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    patient_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("patient_profiles.id", ondelete="CASCADE"), index=True
    )
    # Deleting the photo removes these rows and their after images
    # (docwiz.api.images.delete_image); profiles have no delete endpoint.
    before_image_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("images.id", ondelete="CASCADE"), index=True
    )
    procedure_id: Mapped[str] = mapped_column(String(64))
    body_region: Mapped[str] = mapped_column(String(32))
    after_storage_key: Mapped[str] = mapped_column(String(512), unique=True)
    after_mime_type: Mapped[str] = mapped_column(String(32))
    prompt_used: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(128))
    confidence_score: Mapped[float] = mapped_column(Float)
    processing_time_ms: Mapped[int] = mapped_column(Integer)
    feature_anchor: Mapped[str | None] = mapped_column(String(32), nullable=True)
    features: Mapped[dict[str, float] | None] = mapped_column(JSON, nullable=True)
    generated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SimilarCase(Base):
    """One anonymized past case: procedure, age range, outcome, two photos.

    No names, birth dates or record numbers: ages are ranges and
    ``external_id`` is the practice's own case number, kept only to refuse a
    second import of the same case. Demo cases (``is_demo``) ship with DocWiz
    and are marked as such in every response.
    """

    __tablename__ = "similar_cases"

    id: Mapped[str] = mapped_column(
        String(40), primary_key=True, default=lambda: new_id("case")
    )
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    procedure_id: Mapped[str] = mapped_column(String(64), index=True)
    body_region: Mapped[str] = mapped_column(String(32), index=True)
    age_min: Mapped[int] = mapped_column(Integer)
    age_max: Mapped[int] = mapped_column(Integer)
    outcome_rating: Mapped[float] = mapped_column(Float)
    patient_satisfaction: Mapped[int] = mapped_column(Integer)
    before_storage_key: Mapped[str] = mapped_column(String(512), unique=True)
    after_storage_key: Mapped[str] = mapped_column(String(512), unique=True)
    feature_anchor: Mapped[str | None] = mapped_column(String(32), nullable=True)
    features: Mapped[dict[str, float] | None] = mapped_column(JSON, nullable=True)
    notes: Mapped[str | None] = mapped_column(Text, nullable=True)
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    import_batch: Mapped[str] = mapped_column(String(40), index=True)
    """One id per import run, so a run's cases can be found (and removed) together."""
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @property
    def age_range(self) -> str:
        return f"{self.age_min}-{self.age_max}"
