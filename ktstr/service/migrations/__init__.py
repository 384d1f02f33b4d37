"""Alembic migrations of the service database, applied at every service start."""
