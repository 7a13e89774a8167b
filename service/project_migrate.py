"""`mersemi migrate DIR` (moved from service/project.py): upgrade a project's store to this
version's schema, after a backup copy of a SQLite file beside it."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..db.connect import make_engine, masked, schema_version
from ..db.errors import StoreError
from ..db.migrate import backup_sqlite, upgrade
from ..db.models import SCHEMA_VERSION
from ..engine.disk import require_space

from .errors import ProjectError
from .store_location import store_label, store_url


def migrate_project(root: str | Path, say: Callable[[str], None]) -> tuple[int, int]:
    """`mersemi migrate DIR`: upgrade DIR's store to this version's schema, after a backup
    copy of a SQLite file beside it; returns (from, to) versions."""
    root = Path(root)
    url = store_url(root)
    db = root / "project.db"
    if str(url).startswith("sqlite"):   # before opening it: opening an old store turns on WAL, a write
        size = sum(f.stat().st_size for f in (db, Path(f"{db}-wal")) if f.is_file())
        require_space(root, size, "the backup copy of project.db")
    engine = make_engine(url)
    try:
        found = schema_version(engine)
        if found is None:
            raise ProjectError(f"{store_label(root, url)}: not a mersemi project database (no meta table)")
        if found == SCHEMA_VERSION:
            say(f"{root}: already at schema version {found}; nothing to do")
            return found, found
        if found < SCHEMA_VERSION:
            if str(url).startswith("sqlite"):
                say(f"backed up {db} to {backup_sqlite(db, found)}")
            else:
                say(f"{masked(url)}: no file to copy; the upgrade runs in one transaction "
                    "(pg_dump the database first to keep a copy)")
        before, after = upgrade(engine)
    except StoreError as e:
        raise ProjectError(f"{store_label(root, url)}: {e}") from None
    finally:
        engine.dispose()
    say(f"upgraded {root} from schema version {before} to {after}")
    return before, after
