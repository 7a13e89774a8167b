"""Alembic migrations of the project store, shipped in the package and run from code
(mersemi.db.migrate); there is no alembic.ini."""
