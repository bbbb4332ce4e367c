"""Durable checkpoints for activity streams: where each agent's stream was left.

A :class:`Checkpoint` records where one stream (one agent's activities, under a key of your
choosing) was left: ``high_water``, the ``created_at`` of the newest activity delivered, and
``recent_ids``, the ids delivered near that mark. The watcher polls with ``since`` at the high
water mark and uses the ids to drop activities it already delivered there (activities that
share a timestamp, or arrive late within the lookback).

The guarantee: a checkpoint whose ``save`` has returned survives a crash of the process. The
watcher saves a checkpoint only *after* the consumer has taken the activity, so delivery is
at-least-once across crashes (an activity taken but not yet checkpointed when the process dies
is delivered again after the restart) and exactly-once without them.

Two stores implement the :class:`CheckpointStore` protocol:

- :class:`SQLiteCheckpointStore`, the embedded default: one SQLite file holds the checkpoints of
  any number of agents (a fleet of 1,000+ watchers in one process shares one store). Every call
  runs on one worker thread the store owns, so the event loop never waits for the disk. ``save``
  commits before it returns. With the default ``synchronous="NORMAL"`` (WAL mode) a saved
  checkpoint survives the process being killed; ``synchronous="FULL"`` also makes it survive an
  OS crash or power loss, for the price of an fsync per save.
- :class:`MemoryCheckpointStore`, a dict: for tests and short-lived workers. Nothing survives
  the process.

::

    async with (
        SQLiteCheckpointStore("checkpoints.sqlite3") as store,
        zd.activities.watch(checkpoint=store, key=f"agent:{agent_id}") as stream,
    ):
        async for activity in stream:
            ...

Any object with ``load``/``save``/``close`` coroutines (say, backed by Redis or Postgres) can
stand in for these; ``isinstance(obj, CheckpointStore)`` checks the shape.

A store may also commit a consumer's writes together with a checkpoint, which makes output kept
in the store's own database exactly once (``Fleet.writes``): it then offers ``writes(key)``, an
object on which the handler stages them, and ``save(key, checkpoint, writes=...)``, which
stores both or neither. :class:`SQLiteCheckpointStore` does (:class:`SQLiteWrites`: SQL
statements run in the transaction that saves the checkpoint), and so does
:class:`zdactivity.redis.RedisCheckpointStore`; :class:`MemoryCheckpointStore` does not, and
``Fleet.writes`` raises :class:`WritesNotSupportedError` with it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol, TypeVar, runtime_checkable

import msgspec

from ._aio import AsyncClosing
from .errors import CheckpointError

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "CheckpointStore",
    "MemoryCheckpointStore",
    "SQLiteCheckpointStore",
    "SQLiteWrites",
    "WritesNotSupportedError",
]

_T = TypeVar("_T")

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

#: Version of the table layout, kept in SQLite's ``user_version``.
_SCHEMA_VERSION = 2  # 2 added the position column
_TABLE = "zdactivity_checkpoints"


class WritesNotSupportedError(TypeError):
    """This checkpoint store cannot commit a consumer's writes together with a checkpoint."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where one stream was left: the newest delivered created_at, and the ids delivered near it."""

    #: Aware UTC datetime of the newest delivered activity; ``None`` before the first one.
    high_water: datetime | None = None
    #: Ids delivered with ``created_at >= high_water - lookback`` (the watcher prunes them).
    recent_ids: frozenset[int] = frozenset()
    #: Where an unfinished poll stands (opaque text the watcher writes; None between polls), so
    #: that a restart continues that poll's listing instead of losing or repeating its pages.
    position: str | None = None


@runtime_checkable
class CheckpointStore(Protocol):
    """Where watchers keep their checkpoints, one per key."""

    async def load(self, key: str) -> Checkpoint | None:
        """The checkpoint last saved under ``key``, or ``None`` if there is none."""
        ...

    async def save(self, key: str, checkpoint: Checkpoint) -> None:
        """Store ``checkpoint`` under ``key``, replacing the previous one; durable on return."""
        ...

    async def close(self) -> None:
        """Release the store's resources (after pending operations finished); idempotent."""
        ...


# --------------------------------------------------------------------------- validation


def _check_key(key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"checkpoint key must be a str, not {type(key).__name__}")
    if not key:
        raise ValueError("checkpoint key must not be empty")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"checkpoint key {key!r} is not valid Unicode text") from None
    return key


def _normalize(checkpoint: object) -> Checkpoint:
    """The checkpoint with ``high_water`` in UTC and ``recent_ids`` a frozenset; or a clear
    TypeError/ValueError if it cannot be stored faithfully."""
    if not isinstance(checkpoint, Checkpoint):
        raise TypeError(f"expected a Checkpoint, not {type(checkpoint).__name__}")
    hw = checkpoint.high_water
    if hw is not None:
        if not isinstance(hw, datetime):
            raise TypeError(f"high_water must be a datetime or None, not {type(hw).__name__}")
        if hw.tzinfo is None or hw.utcoffset() is None:
            raise ValueError(f"high_water must be timezone-aware (UTC), got naive {hw!r}")
        try:
            hw = hw.astimezone(UTC)
        except OverflowError:
            raise ValueError(f"high_water {hw!r} is out of range in UTC") from None
    ids = checkpoint.recent_ids
    if not isinstance(ids, frozenset | set):
        raise TypeError(f"recent_ids must be a frozenset of int, not {type(ids).__name__}")
    plain = isinstance(ids, frozenset)
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"recent_ids must hold ints, got {i!r}")
        if not _INT64_MIN <= i <= _INT64_MAX:
            raise ValueError(f"recent id {i} does not fit in 64 bits")
        plain = plain and type(i) is int
    if not plain:  # a set, or int subclasses (IntEnum...): store a frozenset of plain ints
        ids = frozenset(int(i) for i in ids)
    position = checkpoint.position
    if position is not None and not isinstance(position, str):
        raise TypeError(f"position must be a str or None, not {type(position).__name__}")
    if hw is checkpoint.high_water and ids is checkpoint.recent_ids:
        return checkpoint
    return Checkpoint(high_water=hw, recent_ids=ids, position=position)


def _encode_high_water(hw: datetime | None) -> str | None:
    # Fixed width ("0001-01-01T00:00:00.000000Z"), so the text also sorts chronologically.
    if hw is None:
        return None
    return hw.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _encode_ids(ids: Iterable[int]) -> str:
    return msgspec.json.encode(sorted(ids)).decode()


# --------------------------------------------------------------------------- memory store


class MemoryCheckpointStore(AsyncClosing):
    """Checkpoints in a dict, for tests and short-lived workers; nothing survives the process.

    It validates and normalizes like :class:`SQLiteCheckpointStore` (a naive ``high_water`` is a
    ValueError, a loaded ``high_water`` is in UTC), and ``load``/``save`` after ``close`` raise
    RuntimeError, so code tested against it behaves the same on the durable store.
    """

    def __init__(self) -> None:
        self._data: dict[str, Checkpoint] = {}
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._data)} keys"
        return f"<MemoryCheckpointStore {state}>"

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("MemoryCheckpointStore is closed")

    async def load(self, key: str) -> Checkpoint | None:
        _check_key(key)
        self._check_open()
        return self._data.get(key)

    async def save(self, key: str, checkpoint: Checkpoint) -> None:
        _check_key(key)
        checkpoint = _normalize(checkpoint)
        self._check_open()
        self._data[key] = checkpoint

    async def keys(self) -> list[str]:
        """Every key with a checkpoint, sorted."""
        self._check_open()
        return sorted(self._data)

    def snapshot(self) -> dict[str, Checkpoint]:
        """A copy of every checkpoint by key, for assertions (works after ``close`` too)."""
        return dict(self._data)

    async def close(self) -> None:
        self._closed = True


# --------------------------------------------------------------------------- SQLite store

#: What a consumer's statement may not do inside the checkpoint's transaction.
_DENIED = frozenset(
    {
        sqlite3.SQLITE_TRANSACTION,
        sqlite3.SQLITE_SAVEPOINT,
        sqlite3.SQLITE_ATTACH,
        sqlite3.SQLITE_DETACH,
        sqlite3.SQLITE_PRAGMA,
    }
)


def _consumer_authorizer(
    action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None
) -> int:
    if action in _DENIED:
        return sqlite3.SQLITE_DENY
    if _TABLE in (arg1, arg2) and action not in (sqlite3.SQLITE_READ, sqlite3.SQLITE_SELECT):
        return sqlite3.SQLITE_DENY  # the checkpoints are the store's
    return sqlite3.SQLITE_OK


class SQLiteWrites:
    """SQL statements staged for one activity, committed in the transaction that saves its
    checkpoint (``fleet.writes(key)`` with a :class:`SQLiteCheckpointStore`)::

        fleet.writes(key).execute("INSERT INTO inbox (id, agent) VALUES (?, ?)", (a.id, key))

    Nothing runs until the checkpoint is saved; then the statements and the checkpoint commit
    together, or none of them (a failing statement rolls everything back and the save raises
    :class:`CheckpointError`: the activity comes again). Each is one statement, on any table of
    the store's file but the checkpoints' own; it may not BEGIN, COMMIT, SAVEPOINT, ATTACH or
    run a PRAGMA.
    """

    __slots__ = ("_statements",)

    def __init__(self) -> None:
        self._statements: list[tuple[str, Sequence[object] | Mapping[str, object]]] = []

    def __repr__(self) -> str:
        return f"<SQLiteWrites {len(self._statements)} statements>"

    def __len__(self) -> int:
        return len(self._statements)

    @property
    def statements(self) -> list[tuple[str, Sequence[object] | Mapping[str, object]]]:
        """The staged ``(sql, parameters)``, in order."""
        return list(self._statements)

    def execute(
        self, sql: str, parameters: Sequence[object] | Mapping[str, object] = ()
    ) -> SQLiteWrites:
        """Stage one statement with its ``?`` or ``:name`` parameters; returns ``self``."""
        if not isinstance(sql, str):
            raise TypeError(f"sql must be a str, not {type(sql).__name__}")
        if not sql.strip():
            raise ValueError("sql must not be empty")
        if isinstance(parameters, str | bytes) or not isinstance(parameters, Sequence | Mapping):
            raise TypeError("parameters must be a sequence or a mapping")
        snapshot = dict(parameters) if isinstance(parameters, Mapping) else tuple(parameters)
        self._statements.append((sql, snapshot))
        return self


class SQLiteCheckpointStore(AsyncClosing):
    """Checkpoints in one SQLite file, durable across crashes, shared by any number of agents.

    Every SQLite call runs on one worker thread owned by the store (opened lazily, on first use):
    calls are serialized in the order they were made, the connection never leaves that thread,
    and the event loop never blocks on the disk. The database is in WAL mode, and ``save`` is an
    upsert that commits before it returns.

    ``synchronous`` is SQLite's durability setting: ``"NORMAL"`` (the default) keeps a saved
    checkpoint through a kill of the process; after an OS crash or power loss the last few saves
    may be lost (the file stays consistent). ``"FULL"`` keeps them through that too, with an
    fsync per save.

    Several processes may open the same file (SQLite locks it; a writer waits up to 5 s for
    another), but a key should belong to one watcher: concurrent saves to a key are
    last-writer-wins. Failures of SQLite raise :class:`CheckpointError` naming the file; a
    ``save`` that is cancelled may or may not have been stored.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
    ) -> None:
        fspath = os.fspath(path)
        if not isinstance(fspath, str):
            raise TypeError(f"path must be a str or os.PathLike[str], not {type(fspath).__name__}")
        if not fspath:
            raise ValueError("path must not be empty")
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be 'NORMAL' or 'FULL', not {synchronous!r}")
        self._path = fspath
        self._synchronous = synchronous
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="zdactivity-checkpoint"
        )
        self._conn: sqlite3.Connection | None = None  # touched only on the worker thread
        self._closed = False
        self._close_future: asyncio.Future[None] | None = None

    @property
    def path(self) -> str:
        """The database file."""
        return self._path

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<SQLiteCheckpointStore {self._path!r} synchronous={self._synchronous}{state}>"

    # ---- public API (event loop side)

    async def load(self, key: str) -> Checkpoint | None:
        """The checkpoint last saved under ``key``, or ``None``."""
        _check_key(key)
        return await self._run(self._load_sync, key)

    def writes(self, key: str) -> SQLiteWrites:
        """An empty :class:`SQLiteWrites` for ``key``'s next save (``Fleet.writes`` calls it)."""
        _check_key(key)
        return SQLiteWrites()

    async def save(
        self, key: str, checkpoint: Checkpoint, *, writes: SQLiteWrites | None = None
    ) -> None:
        """Store ``checkpoint`` under ``key`` (an upsert), committed when this returns; with
        ``writes``, in one transaction with them (both or neither)."""
        _check_key(key)
        if writes is not None and not isinstance(writes, SQLiteWrites):
            raise TypeError(f"writes must be SQLiteWrites, not {type(writes).__name__}")
        await self._run(self._save_sync, key, _normalize(checkpoint), writes)

    async def keys(self) -> list[str]:
        """Every key with a checkpoint, sorted."""
        return await self._run(self._keys_sync)

    async def close(self) -> None:
        """Wait for the pending operations, close the connection and stop the worker thread.

        Idempotent; ``load``/``save``/``keys`` raise RuntimeError once ``close`` was called.
        """
        if self._close_future is not None and self._close_future.done():
            return self._close_future.result()
        if self._close_future is None:
            self._closed = True
            loop = asyncio.get_running_loop()
            # The worker runs jobs in submission order: this one comes after every pending one.
            self._close_future = loop.run_in_executor(self._executor, self._close_sync)
            # No new jobs; the worker thread exits once the queue (ending with the close) ran.
            self._executor.shutdown(wait=False)
        await asyncio.shield(self._close_future)

    async def _run(self, fn: Callable[..., _T], *args: object) -> _T:
        # No await between the check and the submission: nothing slips in after close().
        if self._closed:
            raise RuntimeError(f"SQLiteCheckpointStore({self._path!r}) is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    # ---- worker thread side

    def _error(self, action: str, exc: sqlite3.Error) -> CheckpointError:
        name = getattr(exc, "sqlite_errorname", "")
        if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or (
            "not a database" in str(exc) or "malformed" in str(exc)
        ):
            what = "is corrupt or not a SQLite database"
        else:
            what = f"could not {action}"
        return CheckpointError(f"checkpoint store {self._path!r} {what}: {exc}", self._path)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        try:
            # Autocommit (isolation_level=None): each statement commits by itself, and the
            # schema set-up below is an explicit transaction.
            conn = sqlite3.connect(self._path, isolation_level=None, timeout=5.0)
        except sqlite3.Error as exc:
            raise self._error("open the database", exc) from exc
        try:
            conn.execute("PRAGMA journal_mode=WAL").fetchone()
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("BEGIN IMMEDIATE")  # closing the connection on failure rolls back
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version > _SCHEMA_VERSION:
                raise CheckpointError(
                    f"checkpoint store {self._path!r} has schema version {version}, newer "
                    f"than this zdactivity understands ({_SCHEMA_VERSION})",
                    self._path,
                )
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {_TABLE} ("
                " key TEXT PRIMARY KEY NOT NULL,"
                " high_water TEXT,"
                " recent_ids TEXT NOT NULL,"
                " position TEXT"
                ")"
            )
            columns = {row[1] for row in conn.execute(f"PRAGMA table_info({_TABLE})")}
            if "position" not in columns:  # a version 1 file
                conn.execute(f"ALTER TABLE {_TABLE} ADD COLUMN position TEXT")
            if version < _SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.close()
            raise self._error("open the database", exc) from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _load_sync(self, key: str) -> Checkpoint | None:
        try:
            row = (
                self._connection()
                .execute(
                    f"SELECT high_water, recent_ids, position FROM {_TABLE} WHERE key = ?", (key,)
                )
                .fetchone()
            )
        except sqlite3.Error as exc:
            raise self._error(f"load {key!r}", exc) from exc
        if row is None:
            return None
        hw_text, ids_text, position = row
        try:
            hw: datetime | None = None
            if hw_text is not None:
                if not isinstance(hw_text, str):
                    raise ValueError(f"high_water is {type(hw_text).__name__}, not text")
                hw = datetime.fromisoformat(hw_text)
                if hw.tzinfo is None:
                    raise ValueError(f"high_water {hw_text!r} has no UTC offset")
                hw = hw.astimezone(UTC)
            if not isinstance(ids_text, str | bytes):
                raise ValueError(f"recent_ids is {type(ids_text).__name__}, not text")
            ids = frozenset(msgspec.json.decode(ids_text, type=list[int]))
            if position is not None and not isinstance(position, str):
                raise ValueError(f"position is {type(position).__name__}, not text")
        except (ValueError, OverflowError, msgspec.DecodeError) as exc:
            raise CheckpointError(
                f"checkpoint store {self._path!r}: the checkpoint of {key!r} does not decode:"
                f" {exc}",
                self._path,
            ) from exc
        return Checkpoint(high_water=hw, recent_ids=ids, position=position)

    def _save_sync(
        self, key: str, checkpoint: Checkpoint, writes: SQLiteWrites | None = None
    ) -> None:
        if not writes:
            self._upsert(key, checkpoint)
            return
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._error(f"save {key!r}", exc) from exc
        try:
            conn.set_authorizer(_consumer_authorizer)
            try:
                for sql, parameters in writes.statements:
                    conn.execute(sql, parameters)
            finally:
                conn.set_authorizer(None)
            if not conn.in_transaction:  # cannot happen past the authorizer; never commit half
                raise sqlite3.OperationalError("a statement ended the transaction")
        except sqlite3.Error as exc:
            self._rollback(conn)
            raise CheckpointError(
                f"checkpoint store {self._path!r} could not save {key!r} with its writes: {exc};"
                " nothing was written",
                self._path,
            ) from exc
        except BaseException:
            self._rollback(conn)
            raise
        try:
            self._upsert(key, checkpoint)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback(conn)
            raise self._error(f"save {key!r}", exc) from exc
        except BaseException:
            self._rollback(conn)
            raise

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    def _upsert(self, key: str, checkpoint: Checkpoint) -> None:
        try:
            self._connection().execute(
                f"INSERT INTO {_TABLE} (key, high_water, recent_ids, position)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET"
                " high_water = excluded.high_water, recent_ids = excluded.recent_ids,"
                " position = excluded.position",
                (
                    key,
                    _encode_high_water(checkpoint.high_water),
                    _encode_ids(checkpoint.recent_ids),
                    checkpoint.position,
                ),
            )
        except sqlite3.Error as exc:
            raise self._error(f"save {key!r}", exc) from exc

    def _keys_sync(self) -> list[str]:
        try:
            rows = self._connection().execute(f"SELECT key FROM {_TABLE} ORDER BY key").fetchall()
        except sqlite3.Error as exc:
            raise self._error("list keys", exc) from exc
        return [k for (k,) in rows]

    def _close_sync(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
