"""Procedure previews and the similar-case library.

Revision ID: 0004_visualizations
Revises: 0003_images
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_visualizations"
down_revision = "0003_images"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "visualizations",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("patient_id", sa.String(40), nullable=False),
        sa.Column("before_image_id", sa.String(40), nullable=False),
        sa.Column("procedure_id", sa.String(64), nullable=False),
        sa.Column("body_region", sa.String(32), nullable=False),
        sa.Column("after_storage_key", sa.String(512), nullable=False),
        sa.Column("after_mime_type", sa.String(32), nullable=False),
        sa.Column("prompt_used", sa.Text(), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("confidence_score", sa.Float(), nullable=False),
        sa.Column("processing_time_ms", sa.Integer(), nullable=False),
        sa.Column("feature_anchor", sa.String(32), nullable=True),
        sa.Column("features", sa.JSON(), nullable=True),
        sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_visualizations"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_visualizations_user_id_users",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patient_profiles.id"],
            name="fk_visualizations_patient_id_patient_profiles",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["before_image_id"],
            ["images.id"],
            name="fk_visualizations_before_image_id_images",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "after_storage_key", name="uq_visualizations_after_storage_key"
        ),
    )
    op.create_index("ix_visualizations_user_id", "visualizations", ["user_id"])
    op.create_index("ix_visualizations_patient_id", "visualizations", ["patient_id"])
    op.create_index(
        "ix_visualizations_before_image_id", "visualizations", ["before_image_id"]
    )

    op.create_table(
        "similar_cases",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("external_id", sa.String(64), nullable=False),
        sa.Column("procedure_id", sa.String(64), nullable=False),
        sa.Column("body_region", sa.String(32), nullable=False),
        sa.Column("age_min", sa.Integer(), nullable=False),
        sa.Column("age_max", sa.Integer(), nullable=False),
        sa.Column("outcome_rating", sa.Float(), nullable=False),
        sa.Column("patient_satisfaction", sa.Integer(), nullable=False),
        sa.Column("before_storage_key", sa.String(512), nullable=False),
        sa.Column("after_storage_key", sa.String(512), nullable=False),
        sa.Column("feature_anchor", sa.String(32), nullable=True),
        sa.Column("features", sa.JSON(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("is_demo", sa.Boolean(), nullable=False),
        sa.Column("import_batch", sa.String(40), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_similar_cases"),
        sa.UniqueConstraint("external_id", name="uq_similar_cases_external_id"),
        sa.UniqueConstraint(
            "before_storage_key", name="uq_similar_cases_before_storage_key"
        ),
        sa.UniqueConstraint(
            "after_storage_key", name="uq_similar_cases_after_storage_key"
        ),
    )
    op.create_index(
        "ix_similar_cases_procedure_id", "similar_cases", ["procedure_id"]
    )
    op.create_index("ix_similar_cases_body_region", "similar_cases", ["body_region"])
    op.create_index("ix_similar_cases_is_demo", "similar_cases", ["is_demo"])
    op.create_index(
        "ix_similar_cases_import_batch", "similar_cases", ["import_batch"]
    )


def downgrade() -> None:
    for index in (
        "ix_similar_cases_import_batch",
        "ix_similar_cases_is_demo",
        "ix_similar_cases_body_region",
        "ix_similar_cases_procedure_id",
    ):
        op.drop_index(index, table_name="similar_cases")
    op.drop_table("similar_cases")
    for index in (
        "ix_visualizations_before_image_id",
        "ix_visualizations_patient_id",
        "ix_visualizations_user_id",
    ):
        op.drop_index(index, table_name="visualizations")
    op.drop_table("visualizations")
