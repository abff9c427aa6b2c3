"""state/schema.sql is the state file's schema as this build writes it, kept equal to a fresh migration."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from replicator.state import open_state
from replicator.state.schema import SCHEMA_VERSION

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "state" / "schema.sql"
HEADER = """-- The scim-replicator state file's schema at version {version}, as `PRAGMA user_version` tells.
-- Written by replicator/state/schema.py's migrations; this copy is for reading and querying the file with
-- sqlite3, and tests/unit/test_state_schema_file.py keeps it equal to a fresh migration (regenerate with
-- `python tests/unit/test_state_schema_file.py`).
"""


def schema_of(path: Path) -> str:
    """The CREATE statements of a state file, tables first, each ended by a semicolon."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL "
                          "ORDER BY type DESC, name").fetchall()
    db.close()
    return HEADER.format(version=SCHEMA_VERSION) + "".join(f"\n{sql};\n" for (sql,) in rows)


async def written_schema(folder: Path) -> str:
    path = folder / "state.db"
    async with open_state(str(path)):
        pass
    return schema_of(path)


async def test_the_schema_file_equals_a_fresh_state(tmp_path: Path) -> None:
    """A state file made by this build has exactly the tables and indexes that state/schema.sql shows."""
    assert "CREATE TABLE resources" in SCHEMA_FILE.read_text()
    assert SCHEMA_FILE.read_text() == await written_schema(tmp_path)


if __name__ == "__main__":
    import asyncio
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        SCHEMA_FILE.write_text(asyncio.run(written_schema(Path(folder))))
