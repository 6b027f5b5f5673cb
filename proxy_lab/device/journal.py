"""The transaction journal: the meter's durable store of transaction records awaiting upload.

The guide: "Transactional usage data is uploaded and then deleted when confirmed upon receipt by PB
Infrastructure over TLS channel." So a record leaves the journal only through `acknowledge(ids)`
with ids a receipt named; nothing else deletes. SQLite (stdlib) in WAL mode with
`synchronous=FULL`: each `add` and `acknowledge` is one committed transaction, durable once it
returns, across a kill of the process.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from types import TracebackType

from proxy_lab.protocol.messages import Record

__all__ = ["Journal", "Record"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    mail_class TEXT NOT NULL,
    weight_g INTEGER NOT NULL,
    fee TEXT NOT NULL,
    date TEXT NOT NULL
)
"""


class Journal:
    """`Journal(path)` opens (or creates) the journal file; `close()` or use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT) below.
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def add(self, record: Record | None = None) -> str:
        """Store a record under a fresh uuid4 id (the record's own id is replaced) and return the id.

        Without a record, one first-class 100 g letter dated today (a mail piece just printed)."""
        new_id = str(uuid.uuid4())
        rec = dataclasses.replace(record or Record(new_id, date=date.today().isoformat()), id=new_id)
        with self._transaction():
            self._db.execute(
                "INSERT INTO records (id, mail_class, weight_g, fee, date) VALUES (?, ?, ?, ?, ?)",
                (rec.id, rec.mail_class, rec.weight_g, rec.fee, rec.date),
            )
        return new_id

    def pending(self) -> list[Record]:
        """Every record not yet acknowledged, oldest first."""
        rows = self._db.execute(
            "SELECT id, mail_class, weight_g, fee, date FROM records ORDER BY seq"
        ).fetchall()
        return [Record(i, c, w, f, d) for i, c, w, f, d in rows]

    def acknowledge(self, ids: Iterable[str]) -> int:
        """Delete exactly the records with these ids, in one transaction; return how many were deleted.
        Ids not in the journal (already acknowledged, or never ours) are ignored."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return 0
        deleted = 0
        with self._transaction():
            for i in wanted:
                deleted += self._db.execute("DELETE FROM records WHERE id = ?", (i,)).rowcount
        return deleted

    def count(self) -> int:
        (n,) = self._db.execute("SELECT COUNT(*) FROM records").fetchone()
        return int(n)

    def _transaction(self) -> _Tx:
        return _Tx(self._db)


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.db.execute("ROLLBACK" if et is not None else "COMMIT")
