"""Run the ledger's Alembic migrations from code (the demo, tests, a health check), from any directory.

The migrations folder is found through the installed ``migrations`` package, not the working directory.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from worker.errors import LedgerError


def migrations_dir() -> Path:
    """The folder holding ``env.py`` and ``versions/``.

    Raises:
        LedgerError: The installed ``migrations`` package has no ``env.py`` (a broken installation).
    """
    import migrations

    # __path__, not __file__: an editable install may expose the package as a namespace package.
    for entry in migrations.__path__:
        folder = Path(entry)
        if (folder / "env.py").is_file():
            return folder.resolve()
    raise LedgerError(f"no Alembic env.py in the installed migrations package ({list(migrations.__path__)})")


def alembic_config(url: str) -> Config:
    """An Alembic config that migrates ``url`` and leaves the process's logging alone."""
    config = Config()
    # ConfigParser interpolates '%': escape it in the path. The URL goes through attributes, uninterpolated.
    config.set_main_option("script_location", str(migrations_dir()).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.attributes["url"] = url
    config.attributes["configure_logging"] = False
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the ledger at ``url`` up to ``revision`` (the newest by default)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    """Migrate the ledger at ``url`` down to ``revision`` (an empty schema by default)."""
    command.downgrade(alembic_config(url), revision)


def heads() -> tuple[str, ...]:
    """The head revision(s) of the migration scripts; exactly one unless branches were left unmerged."""
    return tuple(ScriptDirectory.from_config(alembic_config("")).get_heads())


def known_revisions() -> frozenset[str]:
    """Every revision this release's migration scripts know (a ledger at another one is newer than us)."""
    script = ScriptDirectory.from_config(alembic_config(""))
    return frozenset(revision.revision for revision in script.walk_revisions())


def current(url: str) -> str | None:
    """The revision the ledger at ``url`` is at, or None when it has never been migrated."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
