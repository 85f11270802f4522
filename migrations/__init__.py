"""Alembic migrations of the ledger; ``worker.ledger.migrate`` finds this folder through this package."""
