"""Revoked tokens, patient profiles with their versions, and the audit trail.

Revision ID: 0002_accounts
Revises: 0001_users
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_accounts"
down_revision = "0001_users"
branch_labels = None
depends_on = None

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
AutoIncrement = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "revoked_tokens",
        sa.Column("token_id", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_id", name="pk_revoked_tokens"),
    )
    op.create_index(
        "ix_revoked_tokens_expires_at", "revoked_tokens", ["expires_at"]
    )

    op.create_table(
        "patient_profiles",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("date_of_birth", sa.Date(), nullable=False),
        sa.Column("location", sa.JSON(), nullable=False),
        sa.Column("insurance", sa.JSON(), nullable=True),
        sa.Column("policy_number_encrypted", sa.Text(), nullable=True),
        sa.Column("medical_history_encrypted", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_patient_profiles"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_patient_profiles_user_id_users",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("user_id", name="uq_patient_profiles_user_id"),
    )

    op.create_table(
        "patient_profile_versions",
        sa.Column("id", AutoIncrement, nullable=False, autoincrement=True),
        sa.Column("profile_id", sa.String(40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("changed_by", sa.String(40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_patient_profile_versions"),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["patient_profiles.id"],
            name="fk_patient_profile_versions_profile_id_patient_profiles",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "profile_id",
            "version",
            name="uq_patient_profile_versions_profile_id",
        ),
    )

    op.create_table(
        "audit_events",
        sa.Column("id", AutoIncrement, nullable=False, autoincrement=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("resource_type", sa.String(40), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=True),
        sa.Column("patient_id", sa.String(40), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("client_address", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
    )
    for column in ("occurred_at", "user_id", "action", "patient_id"):
        op.create_index(f"ix_audit_events_{column}", "audit_events", [column])


def downgrade() -> None:
    for column in ("occurred_at", "user_id", "action", "patient_id"):
        op.drop_index(f"ix_audit_events_{column}", table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_table("patient_profile_versions")
    op.drop_table("patient_profiles")
    op.drop_index("ix_revoked_tokens_expires_at", table_name="revoked_tokens")
    op.drop_table("revoked_tokens")
