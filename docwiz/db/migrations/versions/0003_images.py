"""Uploaded photos.

Revision ID: 0003_images
Revises: 0002_accounts
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_images"
down_revision = "0002_accounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "images",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("storage_key", sa.String(512), nullable=False),
        sa.Column("original_filename", sa.String(255), nullable=True),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("mime_type", sa.String(32), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_images"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_images_user_id_users", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("storage_key", name="uq_images_storage_key"),
    )
    op.create_index("ix_images_user_id", "images", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_images_user_id", table_name="images")
    op.drop_table("images")
