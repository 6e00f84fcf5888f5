"""Add projects.description (only the v3 build carries this revision).

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"


def upgrade():
    op.add_column("projects", sa.Column("description", sa.Text, nullable=True))


def downgrade():
    op.drop_column("projects", "description")
