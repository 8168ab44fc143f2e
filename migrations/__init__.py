"""Alembic migrations of consent-replay (one history for PostgreSQL and SQLite)."""
