"""The database: a deferred peewee database, initialised once from configuration.

SQLite (the embedded default) runs in WAL mode with a busy timeout; callers
take a pooled connection per unit of work (``connection()``) so no thread holds
one for ever, except a server's handler threads, which keep theirs from call to
call for a bounded time (``held_connection()``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import pathlib
import re
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import peewee
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

from service import metrics
from service.config import Config

log = logging.getLogger(__name__)

#: The one database every model binds to; ``init`` gives it its real target.
database = peewee.DatabaseProxy()

#: Errors that mean the database is out of reach (answered BACKEND_UNAVAILABLE).
UNAVAILABLE = (peewee.OperationalError, peewee.InterfaceError)

_SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "busy_timeout": 10_000,
    "foreign_keys": 1,
    "synchronous": "normal",
    "cache_size": -16_000,
    # WalCheckpoints keeps the log short; a commit checkpoints only past this mark.
    "wal_autocheckpoint": 20_000,
}


#: A pooled connection used less than this many seconds ago is handed out
#: without asking the server whether it is still there.
TRUSTED_SECONDS = 1.0


class _PostgresPool(PooledPostgresqlDatabase):
    """peewee's pool, without a round trip per checkout, closing the connections
    it discards as broken.

    peewee pings (``SELECT 1``) every connection it hands out. Here only one
    unused for TRUSTED_SECONDS or more is pinged; one used since then is
    trusted on its client-side state (a broken one fails its next statement,
    answered UNAVAILABLE, and is discarded on its way back). After a server
    restart the pool finds its connections dead and drops them without closing
    their client side, which leaks them (psycopg warns).
    """

    def __init__(self, *args, **kwargs):
        self.last_used: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        super().__init__(*args, **kwargs)

    def _is_closed(self, conn):
        used = self.last_used.get(conn)
        if used is not None and time.monotonic() - used < TRUSTED_SECONDS:
            closed = conn.closed or self._adapter.txn_status(conn) == self._adapter.txn_unknown
        else:
            closed = super()._is_closed(conn)
        if closed and not conn.closed:
            with contextlib.suppress(Exception):
                conn.close()
        return closed

    def _close(self, conn, close_conn=False):
        self.last_used[conn] = time.monotonic()
        super()._close(conn, close_conn)


_initialised_url: str | None = None


def init(config: Config) -> peewee.Database:
    """Points ``database`` at the configured database and returns it.

    Calling it again with the same URL keeps the open database; with another,
    the previous one's connections are closed first.
    """
    global _initialised_url, group
    url = config.database_url
    if url == _initialised_url and database.obj is not None:
        return database.obj
    close()
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # A pool: each unit of work checks a connection out and back in, so no
        # thread holds one for ever, and none pays for a new one every call.
        target = PooledSqliteDatabase(
            str(path),
            pragmas=_SQLITE_PRAGMAS,
            timeout=10,
            check_same_thread=False,
            max_connections=config.max_workers + config.worker_threads + 4,
            stale_timeout=300,
        )
    else:
        parts = urllib.parse.urlsplit(url)
        target = _PostgresPool(
            parts.path.lstrip("/"),
            host=parts.hostname,
            port=parts.port or 5432,
            user=urllib.parse.unquote(parts.username or ""),
            password=urllib.parse.unquote(parts.password or ""),
            max_connections=config.max_workers + config.worker_threads + 4,
            stale_timeout=300,
            prefer_psycopg3=True,
        )
    database.initialize(target)
    _initialised_url = url
    group = (
        GroupCommit(config.group_commit) if path is not None and config.group_commit > 1 else None
    )
    return target


def sqlite_path(url: str) -> pathlib.Path | None:
    """The file of a ``sqlite:///`` URL; None for any other database."""
    return pathlib.Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def close() -> None:
    """Closes every connection of the current database (all of a pool's)."""
    global _initialised_url, group
    target = database.obj
    if target is None:
        return
    if group is not None:
        group.close()
        group = None
    if isinstance(target, (PooledPostgresqlDatabase, PooledSqliteDatabase)):
        target.close_all()
    elif not target.is_closed():
        target.close()
    _initialised_url = None


def reachable() -> bool:
    """True when the database answers a read of the schema (a server's health)."""
    try:
        with connection():
            database.execute_sql('SELECT 1 FROM "workspace" LIMIT 1').fetchall()
    except (peewee.DatabaseError, peewee.InterfaceError):  # also a schema gone missing
        return False
    return True


def is_sqlite() -> bool:
    """True on the embedded SQLite database."""
    return isinstance(database.obj, peewee.SqliteDatabase)


# ------------------------------------------------- a PostgreSQL not set up for us

#: The errors ``setup_problem`` may explain.
SETUP_ERRORS = (peewee.DatabaseError, peewee.InterfaceError)
#: Where the SQL that sets PostgreSQL up is shown.
_SETUP_DOC = "see the README's production steps"
_FATAL = re.compile(r"FATAL:\s+(.*?)\s*$", re.MULTILINE)
_INSUFFICIENT_PRIVILEGE = "42501"


def setup_problem(error: BaseException) -> str | None:
    """What a PostgreSQL that is not set up for the service (no such role or
    database, the role refused, the server out of reach) means and what to do,
    on one line; None for any other error, which stays unexpected."""
    target = database.obj
    if not isinstance(error, SETUP_ERRORS) or not isinstance(target, peewee.PostgresqlDatabase):
        return None
    original = getattr(error, "orig", None) or error
    params = target.connect_params
    role, name = params.get("user") or "?", target.database
    where = f"{params.get('host')}:{params.get('port')}"
    text = str(original)
    if getattr(original, "sqlstate", None) == _INSUFFICIENT_PRIVILEGE:
        refusal = getattr(getattr(original, "diag", None), "message_primary", None) or text
        if "schema public" in refusal:
            return (
                f'role "{role}" may not create tables in schema public of database "{name}"'
                f" (since PostgreSQL 15, only the database's owner may): as a superuser, run"
                f' ALTER DATABASE "{name}" OWNER TO "{role}" (or, in database "{name}",'
                f' GRANT CREATE ON SCHEMA public TO "{role}"), then migrate; {_SETUP_DOC}'
            )
        return (
            f'role "{role}" is refused in database "{name}" ({refusal}): migrate and serve'
            f" as the role that owns the database and its tables; {_SETUP_DOC}"
        )
    if not text.startswith("connection failed"):
        return None
    fatal = _FATAL.search(text)
    reason = fatal.group(1) if fatal else text.splitlines()[0].rsplit(" failed: ", 1)[-1]
    if re.fullmatch(r'role ".*" does not exist', reason):
        return (
            f'PostgreSQL at {where} has no role "{role}" (the user of POSTS_DATABASE_URL):'
            f" as a superuser, run CREATE ROLE \"{role}\" LOGIN PASSWORD '…'; {_SETUP_DOC}"
        )
    if re.fullmatch(r'database ".*" does not exist', reason):
        return (
            f'PostgreSQL at {where} has no database "{name}" (POSTS_DATABASE_URL): as a'
            f' superuser, run CREATE DATABASE "{name}" OWNER "{role}"; {_SETUP_DOC}'
        )
    if reason.startswith("password authentication failed"):
        # PostgreSQL answers the same for a role that does not exist.
        return (
            f'PostgreSQL at {where} refused the password of role "{role}"'
            f' (POSTS_DATABASE_URL): check it, or set it with ALTER ROLE "{role}"'
            f" PASSWORD '…'; if there is no such role, as a superuser, run CREATE ROLE"
            f" \"{role}\" LOGIN PASSWORD '…'; {_SETUP_DOC}"
        )
    return f"cannot connect to PostgreSQL at {where} (POSTS_DATABASE_URL): {reason}"


class WalCheckpoints:
    """Copies SQLite's write-ahead log into the database file, in a thread.

    Left to SQLite, the commit that crosses ``wal_autocheckpoint`` pages does
    it, with its fsyncs: 1 % of UpdatePost's commits took two thirds of their
    time. PASSIVE checkpoints here never wait for readers or writers.
    """

    def __init__(self, interval: float = 0.5):
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoints", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                with connection():
                    database.execute_sql("PRAGMA wal_checkpoint(PASSIVE)")
            except UNAVAILABLE as error:
                log.warning(
                    "WAL checkpoint failed (%s); the next commit past the mark will do it", error
                )


class GroupCommit:
    """Concurrent ``write()`` transactions of this process, committed together (SQLite).

    SQLite has one writer, so this process's writes take turns anyway. Here a
    write's turn ends at the end of its body, not at its commit: while other
    threads wait for a turn, the transaction stays open and the next one runs
    its body in it, each in a savepoint of its own (a body that raises rolls
    back only its own changes), until no one waits or ``limit`` bodies ran.
    The last one commits for all. Every caller returns (or raises) only once the
    transaction holding its changes has committed, so no answer is sent, and no
    ``after_commit`` callback runs, before its changes are durable.

    All the bodies of one batch run, one at a time, on one connection of the
    group's own: the running thread's peewee connection state points at it for
    the body's length, so the body reads what the batch wrote before it.
    PostgreSQL keeps a transaction per write. It already lets the transactions
    committing at once share one flush of its log; a batch would take as many
    round trips (SAVEPOINT and RELEASE for BEGIN and COMMIT), and, holding
    several posts' row locks at once, could deadlock with another process's.
    """

    def __init__(self, limit: int):
        self.limit = limit
        # Plain locks, handed from thread to thread: a Condition's Python-level
        # wait and notify cost more than the rest of the hand-over.
        self._turn = threading.Lock()  # held to run a body, open or commit the batch
        self._counting = threading.Lock()
        self._waiting = 0  # threads waiting for the turn
        self._batch: _Batch | None = None
        self._conn = None
        #: Batches committed and bodies run in them (for tests and metrics).
        self.batches = 0
        self.bodies = 0

    @contextlib.contextmanager
    def body(self):
        """One caller's write, in the open batch; returns once the batch commits."""
        batch = self._take_turn()
        failure: BaseException | None = None
        # The first body has the transaction to itself: if it fails, the whole
        # transaction rolls back, so it needs no savepoint of its own.
        first = batch.bodies == 0
        saved = _point(batch.conn, batch.transactions)
        try:
            with contextlib.nullcontext() if first else database.atomic():  # a savepoint
                yield
        except BaseException as error:  # noqa: BLE001 (raised again once the batch ends)
            failure = error
        finally:
            _restore(saved)
            self._end_turn(batch, rollback=first and failure is not None)
        if failure is not None:
            raise failure
        if batch.error is not None:
            raise batch.error

    def close(self) -> None:
        """Closes the group's connection (the database is being closed)."""
        with self._turn:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _take_turn(self) -> _Batch:
        with self._counting:
            self._waiting += 1
        self._turn.acquire()
        with self._counting:
            self._waiting -= 1
        batch = self._batch
        if batch is not None:
            return batch
        try:
            if self._conn is None:
                # The plain SQLite connect (pragmas included), outside the pool:
                # the connection is the group's, not a thread's.
                sqlite: Any = peewee.SqliteDatabase  # _connect: private, not in peewee's stubs
                self._conn = sqlite._connect(database.obj)
            batch = _Batch(self._conn)
            saved = _point(batch.conn, batch.transactions)
            try:
                database.obj.begin("IMMEDIATE")
            finally:
                _restore(saved)
        except BaseException:
            self._turn.release()
            raise
        self._batch = batch
        return batch

    def _end_turn(self, batch: _Batch, rollback: bool) -> None:
        batch.bodies += 1
        if not rollback and self._waiting > 0 and batch.bodies < self.limit:
            self._turn.release()  # the next body runs in this transaction
            batch.done.acquire()  # released by the commit, then passed along
            batch.done.release()
            return
        saved = _point(batch.conn, batch.transactions)
        try:
            if rollback:
                database.obj.rollback()
            else:
                database.obj.commit()
        except BaseException as error:  # noqa: BLE001 (raised in every caller)
            batch.error = error
            with contextlib.suppress(Exception):
                database.obj.rollback()
        finally:
            _restore(saved)
            self._batch = None
            if not rollback:  # a first body that failed alone committed nothing
                self.batches += 1
                self.bodies += batch.bodies
            self._turn.release()
            batch.done.release()
        if not rollback:
            metrics.group_commit(batch.bodies)


class _Batch:
    """One open transaction of a GroupCommit."""

    def __init__(self, conn):
        self.conn = conn
        # Never empty: a body's atomic() sees a transaction open and makes a savepoint.
        self.transactions: list = [peewee._transaction(database.obj)]
        self.bodies = 0
        self.done = threading.Lock()  # held until the batch has committed
        self.done.acquire()
        self.error: BaseException | None = None


def _point(conn, transactions: list) -> tuple:
    """Points this thread's peewee connection state at ``conn``; what it was."""
    state: Any = database.obj._state  # peewee's thread-local connection state
    saved = (state.closed, state.conn, state.ctx, state.transactions, state.commit_callbacks)
    state.closed, state.conn, state.ctx = False, conn, []
    state.transactions, state.commit_callbacks = transactions, []
    return saved


def _restore(saved: tuple) -> None:
    state: Any = database.obj._state
    (state.closed, state.conn, state.ctx, state.transactions, state.commit_callbacks) = saved


#: This process's group commit on SQLite (``init``); None: a transaction per write.
group: GroupCommit | None = None
_sqlite_writer = threading.RLock()
_local = threading.local()


@contextlib.contextmanager
def write():
    """A transaction for read-then-write work; ``after_commit`` callbacks run
    once the outermost one commits. A ``write()`` inside another is a savepoint.

    SQLite allows one writer: the outermost write joins this process's group
    commit (``GroupCommit``), or, with none, takes a lock handed over at once
    (instead of SQLite's busy handler, which polls with sleeps) and BEGIN
    IMMEDIATE, which takes the write lock up front instead of failing with
    "database is locked" on the first write.
    """
    pending: list[Callable[[], None]] | None = getattr(_local, "after_commit", None)
    outer = pending is None
    if pending is None:
        pending = _local.after_commit = []
    mark = len(pending)
    transaction: contextlib.AbstractContextManager
    try:
        if not outer or not is_sqlite():
            transaction = database.atomic()
        elif group is not None:
            transaction = group.body()
        else:
            transaction = _sqlite_transaction()
        with transaction:
            yield
    except BaseException:
        del pending[mark:]  # rolled back: what it did never happened
        raise
    finally:
        if outer:
            _local.after_commit = None
    if outer:
        for callback in pending:
            callback()


@contextlib.contextmanager
def _sqlite_transaction():
    with _sqlite_writer, database.atomic("IMMEDIATE"):
        yield


def after_commit(callback: Callable[[], None]) -> None:
    """Runs ``callback`` once the current ``write()`` transaction commits (none
    if it rolls back); at once outside one."""
    pending = getattr(_local, "after_commit", None)
    if pending is None:
        callback()
    else:
        pending.append(callback)


def locked(query: peewee.Select) -> peewee.Select:
    """``query`` locking the rows it reads until the transaction ends.

    PostgreSQL: FOR UPDATE. SQLite has no row locks: its write transaction
    (``write()``, BEGIN IMMEDIATE) already holds the whole database.
    """
    return query if is_sqlite() else query.for_update()


def claimable(query: peewee.Select) -> peewee.Select:
    """``query`` skipping rows another transaction has locked (PostgreSQL's
    SKIP LOCKED), so concurrent dispatchers and sweepers split the work."""
    return query if is_sqlite() else query.for_update(skip_locked=True)


_Row = TypeVar("_Row", bound=peewee.Model)


class Compiled:
    """A peewee query whose SQL text is built once per database, then reused.

    peewee builds the SQL anew on every execution, which was most of a read's
    CPU time (BENCHMARKS.md). ``build(*params)`` returns the query for
    ``params``; it must bind exactly them, in order (checked when built), as
    database values (times as microseconds), and its SQL may depend on their
    number but not on their values.
    """

    def __init__(self, build):
        self._build = build
        self._sql: dict[tuple, str] = {}
        self._columns: dict[tuple, list] = {}

    def sql(self, *params) -> str:
        key = (database.obj, len(params))
        sql = self._sql.get(key)
        if sql is None:
            sql, bound = self._build(*params).sql()
            if list(bound) != list(params):
                raise ValueError(f"query binds {bound!r}, not the parameters {params!r}")
            self._sql[key] = sql
        return sql

    def rows(self, model: type[_Row], *params) -> list[_Row]:
        """The selected rows as ``model`` instances (as peewee would make them)."""
        cursor = database.execute_sql(self.sql(*params), params)
        key = (database.obj, len(params), model)
        fields = self._columns.get(key)
        if fields is None:
            # Resolving the cursor's columns to fields is peewee's other per-call cost.
            fields = [model._meta.columns[d[0]] for d in cursor.description]
            self._columns[key] = fields
        return [row_of(model, fields, row) for row in cursor.fetchall()]

    def tuples(self, *params) -> list[tuple]:
        """The selected rows as the database answers them."""
        return database.execute_sql(self.sql(*params), params).fetchall()

    def value(self, *params):
        """The first column of the first row selected, or None."""
        row = database.execute_sql(self.sql(*params), params).fetchone()
        return row[0] if row else None

    def execute(self, *params) -> int:
        """Runs a write; the number of rows it changed."""
        return database.execute_sql(self.sql(*params), params).rowcount


def row_of(model: type[_Row], fields: Sequence[peewee.Field], values: Sequence) -> _Row:
    """A ``model`` instance of ``fields``' database ``values``, as peewee would make it."""
    instance: Any = model(__no_default__=1)  # with our _read, which Model lacks
    instance._read = {f.name: f.python_value(v) for f, v in zip(fields, values, strict=True)}
    instance.__data__ = dict(instance._read)
    return instance


_inserts: dict[tuple, Compiled] = {}


def insert(row: _Row) -> _Row:
    """Inserts a new ``row`` (as ``Model.create`` would), with SQL compiled once
    per model and set of columns; fills in an auto-increment id."""
    state: Any = row  # peewee's private _dirty, which its stubs leave out
    model = type(row)
    fields = [f for f in model._meta.sorted_fields if f.name in row.__data__]
    key = (model, tuple(f.name for f in fields))
    statement = _inserts.get(key)
    if statement is None:
        statement = _inserts[key] = Compiled(
            lambda *values: model.insert(dict(zip(fields, values, strict=True)))
        )
    params = [f.db_value(row.__data__[f.name]) for f in fields]
    cursor = database.execute_sql(statement.sql(*params), params)
    primary_key = model._meta.primary_key
    if primary_key is not False and primary_key.name not in row.__data__:
        # PostgreSQL answers the new id through the INSERT's RETURNING clause.
        returning = database.obj.returning_clause
        row.__data__[primary_key.name] = cursor.fetchone()[0] if returning else cursor.lastrowid
    state._dirty.clear()
    return row


_updates: dict[tuple, Compiled] = {}


def update_changed(row: peewee.Model, **expected) -> int:
    """Writes the fields of ``row`` changed since it was read, where its primary
    key and the ``expected`` field values match; the number of rows changed.

    Only columns whose value differs from the one read (by ``Compiled.rows``):
    SQLite rewrites an index's page for every column set, even to the same
    value. The SQL is compiled once per model and set of fields.
    """
    state: Any = row  # peewee's private _dirty and _pk, which its stubs leave out, and our _read
    model = type(row)
    meta = model._meta
    read = getattr(row, "_read", {})
    changed = [
        f
        for f in meta.sorted_fields
        if f.name in state._dirty
        and (f.name not in read or read[f.name] != row.__data__.get(f.name))
    ]
    if not changed:  # as peewee's save(only_dirty=True): nothing to write
        return 0
    conditions = [meta.primary_key, *(meta.fields[name] for name in expected)]
    key = (model, tuple(f.name for f in changed), tuple(expected))
    statement = _updates.get(key)
    if statement is None:

        def build(*values):
            where = [f == v for f, v in zip(conditions, values[len(changed) :], strict=True)]
            return model.update(dict(zip(changed, values[: len(changed)], strict=True))).where(
                *where
            )

        statement = _updates[key] = Compiled(build)
    params = [f.db_value(row.__data__.get(f.name)) for f in changed]
    params += [
        f.db_value(v) for f, v in zip(conditions, [state._pk, *expected.values()], strict=True)
    ]
    updated = statement.execute(*params)
    state._dirty.clear()
    state._read = dict(row.__data__)
    return updated


@contextlib.contextmanager
def connection():
    """A connection for one unit of work, reusing one already open on this thread."""
    if database.is_closed():
        with database.connection_context():
            yield
    else:
        yield


#: How long a thread keeps a connection (``held_connection``) at most, and how
#: long unused: then it goes back to the pool, whose checkout checks it.
HOLD_SECONDS = 60.0


class _Held:
    """The pooled connection a thread keeps between units of work."""

    def __init__(self, target: Any):  # a pool: peewee's _close, which its stubs leave out
        self.target = target
        self.conn = target.connection()
        self.since = self.used = time.monotonic()
        self.released = False

    def __del__(self):
        # The thread ended with it (its local storage is going): back to the pool.
        if not self.released:
            with contextlib.suppress(Exception):
                self.target._close(self.conn)


def _release_held() -> None:
    held: _Held | None = getattr(_local, "held", None)
    if held is None:
        return
    _local.held = None
    held.released = True
    with contextlib.suppress(Exception):
        held.target.close()  # this thread's connection, back to the pool
    last_used = getattr(held.target, "last_used", None)
    if last_used is not None:
        last_used[held.conn] = held.used  # not now: checked out again, it is checked if due


@contextlib.contextmanager
def held_connection():
    """A connection for one unit of work that this thread keeps for the next:
    a server's handler threads, which serve call after call, check one out of
    the pool once, not once per call.

    It goes back to the pool after a database error (the pool discards a broken
    one), when unused for TRUSTED_SECONDS (the pool checks it on the next
    checkout), after HOLD_SECONDS, and when the thread ends.
    """
    held: _Held | None = getattr(_local, "held", None)
    now = time.monotonic()
    if held is not None and (
        held.target is not database.obj
        or database.is_closed()  # closed on this thread by other code
        or now - held.used >= TRUSTED_SECONDS
        or now - held.since >= HOLD_SECONDS
    ):
        _release_held()
        held = None
    if held is None:
        if not database.is_closed():  # inside a connection() of its own: use that one
            yield
            return
        database.connect()
        held = _local.held = _Held(database.obj)
    try:
        yield
    except (peewee.DatabaseError, peewee.InterfaceError):
        _release_held()
        raise
    finally:
        held.used = time.monotonic()


def utcnow() -> dt.datetime:
    """The current time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)
