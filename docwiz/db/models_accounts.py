"""Tables of the accounts area: revoked tokens, patient profiles and their
versions, and the audit trail."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from docwiz.db.base import Base, UTCDateTime, new_id, utcnow

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
AutoIncrement = BigInteger().with_variant(Integer(), "sqlite")

# Marks a column holding a Fernet token; `docwiz keys rotate` re-encrypts every
# column carrying it, in any table of any area.
ENCRYPTED: dict[str, Any] = {"encrypted": True}


class RevokedToken(Base):
    """An access token refused before its expiry (logout, refresh)."""

    __tablename__ = "revoked_tokens"

    token_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PatientProfile(Base):
    """One patient's profile; the policy number and history are encrypted."""

    __tablename__ = "patient_profiles"

    id: Mapped[str] = mapped_column(
        String(40), primary_key=True, default=lambda: new_id("profile")
    )
    user_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("users.id", ondelete="CASCADE"), unique=True
    )
    name: Mapped[str] = mapped_column(String(200))
    date_of_birth: Mapped[date] = mapped_column(Date)
    location: Mapped[dict[str, Any]] = mapped_column(JSON)
    insurance: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    """``insurance_info`` without the policy number, which lives encrypted below."""
    policy_number_encrypted: Mapped[str | None] = mapped_column(
        Text, nullable=True, info=ENCRYPTED
    )
    medical_history_encrypted: Mapped[str | None] = mapped_column(
        Text, nullable=True, info=ENCRYPTED
    )
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PatientProfileVersion(Base):
    """What one version of a profile changed: dotted paths to new values.

    Encrypted fields are listed with a marker instead of their value.
    """

    __tablename__ = "patient_profile_versions"
    # A second writer of the same version fails here rather than losing an update.
    __table_args__ = (UniqueConstraint("profile_id", "version"),)

    id: Mapped[int] = mapped_column(AutoIncrement, primary_key=True)
    profile_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("patient_profiles.id", ondelete="CASCADE")
    )
    version: Mapped[int] = mapped_column(Integer)
    changes: Mapped[dict[str, Any]] = mapped_column(JSON)
    changed_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AuditEvent(Base):
    """Who did what to which record, when, and how it ended; never the data.

    No foreign keys: the trail outlives the accounts and records it names.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(AutoIncrement, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, index=True
    )
    user_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    resource_type: Mapped[str] = mapped_column(String(40))
    resource_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    patient_id: Mapped[str | None] = mapped_column(
        String(40), nullable=True, index=True
    )
    outcome: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    client_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
