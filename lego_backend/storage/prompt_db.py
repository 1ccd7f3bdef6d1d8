"""The prompt database: every prompt's queue entry, status, outputs (where its files are) and
status messages in one SQLite file in the data dir, so a server killed at any moment restarts
with its history and its unfinished prompts.

WAL journal with synchronous=NORMAL: a committed write survives the process being killed (-9)
at any instant; only an OS crash or power cut may lose the last transactions, and neither
corrupts the file. One connection behind a lock: writes are a few per prompt, tiny next to a
diffusion step."""
from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from lego_backend.errors import LegoError
from lego_backend.runtime.records import PromptRecord
from lego_backend.storage.codec import dumps, messages_to_json, public_extra, record_from_row

FILE_NAME = "lego.db"
SCHEMA_VERSION = 1  # PRAGMA user_version; each later version adds one step to _MIGRATIONS

# version reached -> the statements that get there from the version before
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: ("""
    CREATE TABLE prompts (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- submission order (ties of `number` keep it)
        prompt_id TEXT NOT NULL UNIQUE,
        number REAL NOT NULL,                   -- queue priority, lower runs first
        status TEXT NOT NULL,                   -- pending|running|success|error|interrupted
        client_id TEXT,
        prompt TEXT NOT NULL,                   -- the validated API graph (JSON)
        extra_data TEXT NOT NULL,               -- JSON, credentials removed
        outputs_to_execute TEXT NOT NULL,       -- JSON list of output node ids
        outputs TEXT NOT NULL DEFAULT '{}',     -- node id -> ui dict: where its files are
        messages TEXT NOT NULL DEFAULT '[]',    -- status messages (JSON events)
        create_time INTEGER,                    -- ms epoch
        start_time INTEGER,                     -- ms epoch of the last start
        end_time INTEGER,                       -- ms epoch
        attempts INTEGER NOT NULL DEFAULT 0,    -- executions started and not finished cleanly
        finished INTEGER                        -- history position, NULL while unfinished
    )""",
        "CREATE INDEX prompts_by_finished ON prompts(finished) WHERE finished IS NOT NULL",
        "CREATE INDEX prompts_unfinished ON prompts(seq) WHERE finished IS NULL"),
}
_COLUMNS = ("prompt_id, number, status, client_id, prompt, extra_data, outputs_to_execute, "
            "outputs, messages, create_time, start_time, end_time")


class PromptStoreError(LegoError):
    """The database cannot be used: written by a newer version, or owned by another server."""


@dataclass
class Unfinished:
    """A prompt a previous server process left queued or running."""

    record: PromptRecord  # status "pending" or "running" as it was stored
    attempts: int  # how many times its execution started without finishing


class PromptStore:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._owner_fd: int | None = None
        # isolation_level=None: we open transactions ourselves; one statement = one commit.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                   timeout=10)
        self._db.row_factory = sqlite3.Row
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        self.journal_mode = str(mode).lower()
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()
        row = self._db.execute("SELECT MAX(finished) FROM prompts").fetchone()
        self._next_finished = int(row[0] or 0) + 1

    @classmethod
    def in_dir(cls, data_dir: Path) -> PromptStore:
        return cls(data_dir / FILE_NAME)

    def _migrate(self) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise PromptStoreError(f"{self.path} was written by a newer lego (schema "
                                   f"{version}, this one knows {SCHEMA_VERSION})")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _MIGRATIONS[target]:
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={target}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def claim(self) -> None:
        """Become the one server working from this database (its unfinished prompts are ours to
        re-run); PromptStoreError if another live process holds it. Released on close or when
        the process dies, however it dies. Idempotent."""
        if self._owner_fd is not None:
            return
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks here; one server per data dir is on you
            return
        fd = os.open(str(self.path) + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise PromptStoreError(f"another lego server is using {self.path.parent} "
                                   "(give this one its own --data folder)") from None
        self._owner_fd = fd

    # --- writes --------------------------------------------------------------------------------
    def add(self, record: PromptRecord) -> None:
        """A prompt was queued."""
        with self._lock:
            self._db.execute(
                f"INSERT INTO prompts ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (record.prompt_id, record.number, "pending", record.client_id,
                 dumps(record.prompt), dumps(public_extra(record.extra_data)),
                 dumps(record.outputs_to_execute), "{}", "[]", record.create_time, None, None))

    def started(self, prompt_id: str, start_time: int) -> None:
        with self._lock:
            self._db.execute("UPDATE prompts SET status='running', start_time=?, "
                             "attempts=attempts+1 WHERE prompt_id=?", (start_time, prompt_id))

    def requeue(self, prompt_id: str) -> None:
        """A run stopped by a clean shutdown: queued again, and that start does not count."""
        with self._lock:
            self._db.execute("UPDATE prompts SET status='pending', start_time=NULL, "
                             "attempts=MAX(0, attempts-1) WHERE prompt_id=? AND finished IS NULL",
                             (prompt_id,))

    def finish(self, record: PromptRecord, keep: int) -> None:
        """The prompt ended (any status): it enters the history; the oldest finished entries
        beyond `keep` are pruned."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                values = (record.status, dumps(record.outputs), messages_to_json(record.messages),
                          record.start_time, record.end_time, self._next_finished)
                cur = self._db.execute(
                    "UPDATE prompts SET status=?, outputs=?, messages=?, start_time=?, "
                    "end_time=?, finished=? WHERE prompt_id=?", (*values, record.prompt_id))
                if cur.rowcount == 0:  # finished without ever being queued here (restored)
                    self._db.execute(
                        f"INSERT INTO prompts ({_COLUMNS}, finished) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (record.prompt_id, record.number, record.status, record.client_id,
                         dumps(record.prompt), dumps(public_extra(record.extra_data)),
                         dumps(record.outputs_to_execute), values[1], values[2],
                         record.create_time, record.start_time, record.end_time,
                         self._next_finished))
                self._next_finished += 1
                self._prune(keep)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _prune(self, keep: int) -> None:
        self._db.execute(
            "DELETE FROM prompts WHERE finished <= (SELECT finished FROM prompts WHERE finished "
            "IS NOT NULL ORDER BY finished DESC LIMIT 1 OFFSET ?)", (max(0, keep),))

    def delete(self, prompt_ids: list[str], *, finished: bool) -> None:
        """Deleted from the history (finished=True) or the queue (False): gone for good. A
        history delete never touches a queued prompt of the same id, nor the reverse."""
        where = "finished IS NOT NULL" if finished else "finished IS NULL"
        with self._lock:
            self._db.executemany(f"DELETE FROM prompts WHERE prompt_id=? AND {where}",
                                 [(pid,) for pid in prompt_ids])

    def clear_finished(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM prompts WHERE finished IS NOT NULL")

    # --- reads -----------------------------------------------------------------------------------
    def finished(self, limit: int) -> list[PromptRecord]:
        """The newest `limit` finished prompts, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM prompts WHERE finished IS NOT NULL ORDER BY finished DESC "
                "LIMIT ?", (max(0, limit),)).fetchall()
        return [record_from_row(r) for r in reversed(rows)]

    def unfinished(self) -> list[Unfinished]:
        """Prompts left queued or running, in queue order: by number, then by submission (a
        running prompt had left the queue in that same order)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM prompts WHERE finished IS NULL "
                "ORDER BY number, seq").fetchall()
        return [Unfinished(record_from_row(r), int(r["attempts"])) for r in rows]

    def max_number(self) -> float:
        """The largest |number| stored, so new prompts are numbered after every old one."""
        with self._lock:
            row = self._db.execute("SELECT MAX(ABS(number)) FROM prompts").fetchone()
        return float(row[0] or 0)

    def count(self) -> dict[str, int]:
        """Rows per status (for tests and reports)."""
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM prompts GROUP BY status")
            return {str(status): int(n) for status, n in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if self._owner_fd is not None:
                os.close(self._owner_fd)  # closing the descriptor releases the flock
                self._owner_fd = None

