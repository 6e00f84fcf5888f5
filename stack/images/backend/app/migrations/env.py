"""Alembic environment: the database URL comes from the container's TD_DB_* variables."""
import os

from alembic import context
from sqlalchemy import create_engine


def database_url():
    return "postgresql+psycopg2://%s:%s@%s:%s/%s" % (
        os.environ.get("TD_DB_USER", "taylordash"), os.environ.get("TD_DB_PASSWORD", ""),
        os.environ.get("TD_DB_HOST", "127.0.0.1"), os.environ.get("TD_DB_PORT", "5432"),
        os.environ.get("TD_DB_NAME", "taylordash"))


if context.is_offline_mode():
    # `alembic downgrade --sql` prints the SQL instead of running it.
    context.configure(url=database_url(), literal_binds=True, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(database_url())
    with engine.connect() as connection:
        context.configure(connection=connection, transactional_ddl=True)
        with context.begin_transaction():
            context.run_migrations()
