"""Add projects.status and an index on it.

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"


def upgrade():
    op.add_column("projects", sa.Column("status", sa.String(20), nullable=False, server_default="active"))
    op.create_index("ix_projects_status", "projects", ["status"])


def downgrade():
    op.drop_index("ix_projects_status", table_name="projects")
    op.drop_column("projects", "status")
