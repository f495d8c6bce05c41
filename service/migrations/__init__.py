"""Versioned schema migrations (``python -m service migrate``).

Each migration is a file ``NNNN_name.<dialect>.sql`` beside this module, one
per database dialect, frozen once released: a schema change is a new file,
never an edit. ``schema_version`` records what has run.
"""

from __future__ import annotations

import pathlib
import re

from service import db
from service.models import SchemaVersion

HERE = pathlib.Path(__file__).parent
_NAME = re.compile(r"^(\d{4})_(\w+)\.(sqlite|postgresql)\.sql$")


def available(dialect: str) -> list[tuple[int, str, pathlib.Path]]:
    """The migrations for ``dialect``, as (version, name, path), oldest first."""
    found = []
    for path in HERE.iterdir():
        match = _NAME.match(path.name)
        if match and match.group(3) == dialect:
            found.append((int(match.group(1)), match.group(2), path))
    return sorted(found)


def migrate() -> list[int]:
    """Applies the pending migrations to ``db.database``; returns the versions applied."""
    dialect = "sqlite" if db.is_sqlite() else "postgresql"
    applied = []
    with db.connection():
        SchemaVersion.create_table(safe=True)
        for version, name, path in available(dialect):
            with db.write():
                if not db.is_sqlite():
                    # Several processes may migrate at once: one at a time.
                    db.database.execute_sql("SELECT pg_advisory_xact_lock(4242)")
                if SchemaVersion.get_or_none(SchemaVersion.version == version):
                    continue
                for statement in path.read_text().split(";\n"):
                    if statement.strip():
                        db.database.execute_sql(statement)
                SchemaVersion.create(version=version, name=name, applied_at=db.utcnow())
            applied.append(version)
    return applied


def current_version() -> int:
    """The newest applied migration, 0 when none."""
    with db.connection():
        if not SchemaVersion.table_exists():
            return 0
        row = SchemaVersion.select().order_by(SchemaVersion.version.desc()).first()
        return row.version if row else 0


def pending() -> bool:
    """True when migrations remain to be applied."""
    dialect = "sqlite" if db.is_sqlite() else "postgresql"
    return current_version() < available(dialect)[-1][0]
