"""Connections, transactions and the transaction-aware cache of a `SqlRegistry`.

Outside `ConnectionManager.transaction` every registry call is its own transaction: a read
borrows a pooled connection, a write runs in ``BEGIN … COMMIT``. A file-based SQLite registry
instead keeps one connection per thread, in autocommit mode, for its reads and its write
transactions alike: no pool check-out and reset per call, no BEGIN/ROLLBACK around a read,
which cuts an empty write transaction from about 60 µs to 16 µs and nearly halves a lookup. It
is closed when its thread ends or the registry closes. Inside a transaction, every call on the
same thread uses the transaction's connection (so it sees its own uncommitted rows), and each
write runs in a SAVEPOINT so that a failed write — a conflicting dataset, say — can be caught
without spoiling the enclosing transaction (PostgreSQL would otherwise refuse every later
statement). Nested `transaction` blocks are SAVEPOINTs too.

The state is per thread: another thread's calls are not part of this thread's transaction.
After ``os.fork`` the child forgets the parent's pooled connections and opens its own, so a
registry made before a ``multiprocessing`` fork is safe to use in the children.

Dataset types and runs are rarely deleted (and their ids never reused: see
`DatasetTypeManager.removeRun`), so their ids can be cached for the life of the registry
(a deletion drops its own entries with `ConnectionManager.cacheDrop`), but only once committed: what a transaction learns is kept in a layer of its own,
merged on commit and dropped on rollback, so a rolled-back `registerRun` leaves no trace.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import threading
import weakref
from collections.abc import Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..exceptions import (
    DatabaseAccessError,
    DatabaseDamagedError,
    DatabaseFullError,
    DatabaseLockedError,
    DatabaseValueError,
    DatabutlerError,
    ReadOnlyRepositoryError,
)
from .databases import SQLITE_BEGIN, isSqliteUrl, makeEngine, sqliteFile

__all__ = ["ConnectionManager", "PreparedQuery", "dialectInsert", "translateDatabaseError"]


class _DriverStatement:
    """A statement compiled once for SQLite, run on the driver's own connection.

    SQLAlchemy's ``Connection.execute`` costs some 25 µs per call in Python (events, result
    set-up, parameter processing) against a few µs for sqlite3 itself; on the per-dataset paths
    (a put's inserts, a get's lookups) that overhead is most of the time. The SQL text and the
    type conversions still come from SQLAlchemy (the statement's own compilation and the bind
    and result processors of its column types as the dialect implements them: SQLite's
    ``DateTime`` has its own), so the two paths store and read the same values.
    """

    __slots__ = ("names", "order", "processed", "processors", "resultProcessors", "sql")

    def __init__(self, statement: Any, dialect: sa.Dialect, keys: list[str] | None) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=keys)
        if not compiled.positional or compiled.positiontup is None:
            raise TypeError(f"{dialect.name} does not use positional parameters.")
        self.sql: str = compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup)
        self.processors = tuple(
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in self.names
        )
        self.processed = tuple((i, p) for i, p in enumerate(self.processors) if p is not None)
        """``(position, processor)`` of the parameters that have a processor (most have none)."""
        self.order: tuple[int, ...] | None = None
        """Where each parameter is in a row given in ``keys`` order (`bindRow`); `None`: the same order."""
        if keys is not None and sorted(keys) == sorted(self.names) and list(self.names) != keys:
            self.order = tuple(keys.index(name) for name in self.names)
        columns = statement.selected_columns if isinstance(statement, sa.Select) else ()
        self.resultProcessors = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        )

    def bind(self, params: Mapping[str, Any]) -> list[Any]:
        return self._processed(list(map(params.get, self.names)))

    def bindRow(self, row: Sequence[Any]) -> list[Any]:
        """`bind` for a row of values in the order of the keys the statement was compiled for."""
        order = self.order
        return self._processed(list(row) if order is None else [row[i] for i in order])

    def _processed(self, values: list[Any]) -> list[Any]:
        for position, process in self.processed:
            value = values[position]
            if value is not None:
                values[position] = process(value)
        return values

    def convert(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        if not any(self.resultProcessors):
            return row
        return tuple(
            value if process is None or value is None else process(value)
            for value, process in zip(row, self.resultProcessors, strict=True)
        )


class PreparedQuery:
    """A query's SELECT with its values bound, made once to be run again and again.

    `StatementCache` entries hold one. On SQLite the SQL text and the driver's parameters are
    made once, by SQLAlchemy (``construct_expanded_state``, which also spells out each
    ``IN (...)`` list, and each value through its type's bind processor), and each run goes
    straight to the driver connection: ``Connection.execute`` would build the statement's
    cache key, process the parameters and set up a result again on every run, some 0.15 ms of
    a query of 1,000 rows. Elsewhere it runs through ``Connection.execute``. Either way the
    rows are the driver's own tuples (``CursorResult.cursor``): SQLAlchemy's `Row` objects and
    per-row result processing cost about 0.1 ms per 1,000 rows, and a query whose columns are
    ints and text (which the driver returns as Python ints and strs) or UUIDs (made by the
    caller) has no use for them.
    """

    __slots__ = ("parameters", "sql", "statement")

    def __init__(self, statement: sa.Select[Any], dialect: sa.Dialect, direct: bool) -> None:
        self.statement = statement
        self.sql: str | None = None
        self.parameters: tuple[Any, ...] = ()
        if not direct:
            return
        compiled = statement.compile(dialect=dialect)
        expanded = compiled.construct_expanded_state()
        values = []
        for name, value in zip(expanded.positiontup or (), expanded.positional_parameters, strict=True):
            process = (
                compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
                if name in compiled.binds
                else expanded.processors.get(name)
            )
            values.append(value if process is None or value is None else process(value))
        self.sql = expanded.statement
        self.parameters = tuple(values)


_inheritedReaders: list[Any] = []
"""A forked child's copies of its parent's read connections: kept, never used or closed."""


class _ThreadState(threading.local):
    def __init__(self) -> None:
        self.connection: sa.Connection | None = None
        self.layers: list[dict[Hashable, Any]] = []
        self.reader: sa.Connection | None = None


def _translated(sql: str, params: Any, exc: sqlite3.Error) -> sa.exc.StatementError:
    """``exc`` as the SQLAlchemy error ``Connection.execute`` would have raised."""
    return sa.exc.DBAPIError.instance(sql, params, exc, sqlite3.Error)


_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_TOOBIG, _SQLITE_NOTADB = (
    5,
    6,
    11,
    13,
    18,
    26,
)
_UNTRANSLATED = (sa.exc.IntegrityError, sa.exc.ProgrammingError, sa.exc.NotSupportedError)
"""Left as they are: constraint violations (callers turn them into their own errors) and bugs."""


def translateDatabaseError(
    exc: sa.exc.DBAPIError, database: str, busyTimeout: float | None, lockHolders: str = ""
) -> DatabutlerError | None:
    """Return the `DatabutlerError` that says what a database failure means, or `None`.

    A lock not granted within the busy timeout is a `DatabaseLockedError`, a full disk a
    `DatabaseFullError`, a damaged file a `DatabaseDamagedError` and a value the database
    refuses a `DatabaseValueError`; any other failure of the database itself (a lost
    connection, an I/O error) is a `DatabaseAccessError` naming it. Constraint violations and
    programming errors give `None`: the caller's own handling (or a traceback) applies.

    Parameters
    ----------
    exc : sqlalchemy.exc.DBAPIError
        What SQLAlchemy raised.
    database : str
        The database, as messages name it (a URL without its password).
    busyTimeout : float or None
        Seconds a writer waits for a lock, for the message.
    lockHolders : str
        Who holds the lock, when the database can tell (PostgreSQL), for the message.
    """
    if isinstance(exc, _UNTRANSLATED):
        return None
    orig = exc.orig
    reason = " ".join(str(orig or exc).split())
    code = getattr(orig, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    state = str(getattr(orig, "sqlstate", None) or "")
    waited = f" for {busyTimeout:g} s" if busyTimeout is not None else ""
    if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return DatabaseLockedError(
            f"Registry database {database} is locked: another writer (another process, or another "
            f"thread of this one) held its write lock{waited} and SQLite cannot say which. Nothing "
            "was changed. Retry when that writer is done, or raise registry.busyTimeout (seconds) in "
            "the repository's butler.yaml to wait longer."
        )
    if state in ("55P03", "40P01", "57014"):  # lock_not_available, deadlock_detected, query_canceled
        what = "a deadlock with another session" if state == "40P01" else f"a lock not granted{waited}"
        return DatabaseLockedError(
            f"Registry database {database}: {what} ({reason}). Held by: {lockHolders or 'unknown'}. "
            "Nothing was changed. Retry when that session is done, or raise registry.busyTimeout "
            "(seconds) in the repository's butler.yaml to wait longer."
        )
    if primary == _SQLITE_FULL or state.startswith("53"):  # insufficient_resources: disk_full
        full = DatabaseFullError(
            f"The disk holding registry database {database} is full ({reason}); nothing was changed. "
            "Free space on that disk and retry; Butler.removeDatasets (`databutler remove`) still "
            "runs, on space the registry keeps in reserve, to free some."
        )
        full.errno = errno.ENOSPC
        return full
    if primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or state in ("XX001", "XX002"):
        return DatabaseDamagedError(
            f"Registry database {database} is damaged ({reason}): it is not a database, or some of "
            "its pages are corrupt. Nothing was changed. Restore it from a backup; the datastore's "
            "files are untouched (`sqlite3 FILE 'PRAGMA integrity_check'` shows what is wrong)."
        )
    if primary == _SQLITE_TOOBIG or isinstance(exc, sa.exc.DataError) or state.startswith("22"):
        return DatabaseValueError(f"Registry database {database} refused a value: {reason}.")
    return DatabaseAccessError(f"Registry database {database} failed: {reason}.")


def _closeQuietly(connection: sa.Connection) -> None:
    try:
        connection.close()
    except Exception:  # closing at thread or interpreter exit: nothing left to tell
        return


def _afterFork(managerRef: weakref.ref[ConnectionManager]) -> None:
    manager = managerRef()
    if manager is not None:
        manager._forgetParent()


class ConnectionManager:
    """Hands out connections for reads and writes and runs transactions.

    Parameters
    ----------
    engine : Engine
        The engine (see `databases.makeEngine`).
    namespace : str, optional
        A PostgreSQL schema that every table is mapped into.
    readerEngine : Engine, optional
        An unpooled engine for per-thread read connections (file-based SQLite only); without
        it each read borrows a connection from ``engine``'s pool.
    readOnlyWhat : str, optional
        Set when the database was opened read-only: what to name (``"registry 'sqlite:///…'"``)
        when `transaction` refuses to begin a write.
    database : str, optional
        How error messages name the database (default: its URL without the password).
    busyTimeout : float, optional
        Seconds a writer waits for a lock, for error messages.

    Database failures that leave a transaction or a read are raised as the typed errors of
    `translateDatabaseError` (a lock timeout, a full disk, a damaged file...).
    """

    def __init__(
        self,
        engine: Engine,
        namespace: str | None = None,
        readerEngine: Engine | None = None,
        readOnlyWhat: str | None = None,
        database: str | None = None,
        busyTimeout: float | None = None,
    ) -> None:
        self.readOnlyWhat = readOnlyWhat
        self.database = database or repr(engine.url.render_as_string(hide_password=True))
        self.busyTimeout = busyTimeout
        self.baseEngine = engine
        self.readerEngine = readerEngine
        self.namespace = namespace
        self._readerFinalizers: set[weakref.finalize[Any, Any]] = set()
        self.engine = (
            engine.execution_options(schema_translate_map={None: namespace}) if namespace else engine
        )
        # A lone read needs no transaction. PostgreSQL reads autocommit, saving the BEGIN and
        # ROLLBACK round trips; SQLite reads already run without BEGIN (see databases.py).
        self.isSqlite = engine.dialect.name == "sqlite"
        self.readEngine = (
            self.engine if self.isSqlite else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._state = _ThreadState()
        self._committed: dict[Hashable, Any] = {}
        self._lock = threading.Lock()
        self._driverStatements: dict[tuple[int, tuple[str, ...] | None], _DriverStatement] = {}
        self._keepAlive: list[Any] = []
        # A forked child must not touch its parent's connections (two processes on one socket
        # or SQLite handle corrupt each other): it forgets them and opens its own on demand.
        selfRef = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _afterFork(selfRef))

    @classmethod
    def fromUrl(
        cls,
        url: sa.engine.URL,
        *,
        busyTimeout: float = 30.0,
        namespace: str | None = None,
        readOnlyWhat: str | None = None,
        database: str | None = None,
    ) -> ConnectionManager:
        """Connect to ``url`` (from `databases.parseUrl`) by the one engine recipe (`databases.makeEngine`).

        A SQLite file also gets an unpooled engine for the per-thread connections (see `read`).
        With ``readOnlyWhat`` the database is opened read-only, and `transaction` refuses.
        """
        readOnly = readOnlyWhat is not None
        isFile = isSqliteUrl(url) and sqliteFile(url) is not None
        readerEngine = (
            makeEngine(url, busyTimeout=busyTimeout, pooled=False, readOnly=readOnly) if isFile else None
        )
        engine = makeEngine(url, busyTimeout=busyTimeout, readOnly=readOnly)
        return cls(
            engine,
            namespace,
            readerEngine,
            readOnlyWhat=readOnlyWhat,
            database=database or repr(url.render_as_string(hide_password=True)),
            busyTimeout=busyTimeout,
        )

    def _forgetParent(self) -> None:
        self.baseEngine.dispose(close=False)
        if self.readerEngine is not None:
            self.readerEngine.dispose(close=False)
        for finalizer in self._readerFinalizers:
            detached = finalizer.detach()
            if detached is not None:
                _inheritedReaders.append(detached)
        self._readerFinalizers = set()
        self._state = _ThreadState()
        self._lock = threading.Lock()

    @property
    def inTransaction(self) -> bool:
        """Whether this thread is inside `transaction`."""
        return self._state.connection is not None

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """Run the block in a transaction (a SAVEPOINT when nested); roll back on exception.

        Raises
        ------
        ReadOnlyRepositoryError
            The database was opened read-only: no write transaction is begun.
        """
        if self.readOnlyWhat is not None:
            raise ReadOnlyRepositoryError(
                f"Cannot write to {self.readOnlyWhat}: it was opened read-only; "
                "open the repository with Butler(root, writeable=True) to change it."
            )
        state = self._state
        outer = state.connection
        if outer is not None:
            state.layers.append({})
            try:
                with self._savepoint(outer, len(state.layers)):
                    yield outer
            except BaseException:
                state.layers.pop()
                raise
            layer = state.layers.pop()
            state.layers[-1].update(layer)
            return
        if self.readerEngine is None:
            try:
                with self.engine.connect() as connection:
                    yield from self._runTransaction(connection)
            except sa.exc.DBAPIError as exc:
                self._raiseTyped(exc)
            return
        # A SQLite file: the thread's own connection, which its reads use too (no pool
        # check-out and reset per transaction). A read may have left SQLAlchemy's implicit
        # transaction open on it; in autocommit SQLite that holds nothing, so end it first.
        try:
            connection = self._threadConnection()
        except sa.exc.DBAPIError as exc:
            self._raiseTyped(exc)
        if connection.get_transaction() is not None:
            connection.rollback()
        try:
            yield from self._runTransaction(connection)
        except BaseException as exc:
            self._settle(connection)
            if isinstance(exc, sa.exc.DBAPIError):
                self._raiseTyped(exc)
            raise

    def _raiseTyped(self, exc: sa.exc.DBAPIError) -> NoReturn:
        """Raise what `translateDatabaseError` makes of ``exc`` (from it), or ``exc`` itself."""
        holders = self._postgresLockHolders() if str(getattr(exc.orig, "sqlstate", "")) == "55P03" else ""
        typed = translateDatabaseError(exc, self.database, self.busyTimeout, holders)
        if typed is None:
            raise exc
        raise typed from exc

    def _postgresLockHolders(self) -> str:
        """Describe the other sessions with an open write transaction on this database."""
        query = sa.text(
            "SELECT pid, usename, application_name, client_addr, "
            "EXTRACT(EPOCH FROM now() - xact_start) AS seconds, query FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_xid IS NOT NULL ORDER BY xact_start LIMIT 5"
        )
        try:
            with self.baseEngine.connect() as connection:
                rows = connection.execute(query).all()
        except Exception as exc:  # only for the message: the lock error is what matters
            return f"unknown (could not list the sessions: {type(exc).__name__})"
        if not rows:
            return "no session now (it has finished)"
        return "; ".join(
            f"PostgreSQL session pid {row.pid} (user {row.usename}, application {row.application_name!r}, "
            f"client {row.client_addr or 'local'}, in a transaction for {float(row.seconds or 0):.0f} s, "
            f"last statement {' '.join(str(row.query).split())[:80]!r})"
            for row in rows
        )

    @contextmanager
    def _savepoint(self, connection: sa.Connection, depth: int) -> Iterator[None]:
        """Run the block in a SAVEPOINT of ``connection``'s transaction; roll back to it on exception.

        SQLite gets its three statements straight from the driver, as ``BEGIN IMMEDIATE`` does:
        through SQLAlchemy (``begin_nested``) each costs a compiled, evented ``execute``, some
        60 µs for a SAVEPOINT and its RELEASE, which made a put inside a transaction nearly
        twice as slow as one on its own. SQLAlchemy need not know of these savepoints: they
        are released or rolled back before the block returns, and the transaction's own
        COMMIT or ROLLBACK ends any left open by an error. The name is unique along the
        nesting (its depth). PostgreSQL keeps ``begin_nested`` (a round trip dominates there).
        """
        if not self.isSqlite:
            savepoint = connection.begin_nested()
            try:
                yield
            except BaseException:
                if savepoint.is_active:
                    savepoint.rollback()
                raise
            savepoint.commit()
            return
        driver = connection.connection.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        name = f"databutler_{depth}"
        try:
            driver.execute(f"SAVEPOINT {name}")
        except sqlite3.Error as exc:
            raise _translated(f"SAVEPOINT {name}", (), exc) from exc
        try:
            yield
        except BaseException:
            # An error that made SQLite abandon the whole transaction has taken the savepoint
            # with it; the enclosing transaction's rollback then tidies up.
            with contextlib.suppress(sqlite3.Error):
                driver.execute(f"ROLLBACK TO {name}")
                driver.execute(f"RELEASE {name}")
            raise
        try:
            driver.execute(f"RELEASE {name}")
        except sqlite3.Error as exc:
            raise _translated(f"RELEASE {name}", (), exc) from exc

    def _settle(self, connection: sa.Connection) -> None:
        """Leave a failed transaction fully: neither SQLAlchemy nor SQLite may still be inside it.

        A failed COMMIT can leave SQLite's transaction open and its write lock held; a
        connection that cannot be brought back is discarded.
        """
        try:
            if connection.get_transaction() is not None:
                connection.rollback()
            driver = connection.connection.driver_connection
            if isinstance(driver, sqlite3.Connection) and driver.in_transaction:
                driver.rollback()
        except Exception:  # the original error is what the caller must see
            self._state.reader = None
            connection.invalidate()

    def _runTransaction(self, connection: sa.Connection) -> Iterator[sa.Connection]:
        state = self._state
        transaction = connection.begin()
        if self.isSqlite:  # BEGIN IMMEDIATE (see databases.py), straight to the driver
            driver = connection.connection.driver_connection
            assert isinstance(driver, sqlite3.Connection)
            try:
                driver.execute(SQLITE_BEGIN)
            except sqlite3.Error as exc:
                transaction.rollback()
                raise _translated(SQLITE_BEGIN, (), exc) from exc
            except BaseException:
                transaction.rollback()
                raise
        state.connection = connection
        state.layers = [{}]
        try:
            try:
                yield connection
            except BaseException:
                if transaction.is_active:
                    transaction.rollback()
                raise
            transaction.commit()
            with self._lock:
                self._committed.update(state.layers[0])
        finally:
            state.connection = None
            state.layers = []

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """Yield this thread's transaction or read connection, or a pooled one for one read."""
        state = self._state
        if state.connection is not None:
            yield state.connection
            return
        try:
            if self.readerEngine is None:
                with self.readEngine.connect() as connection:
                    yield connection
                return
            yield self._threadConnection()
        except sa.exc.DBAPIError as exc:
            self._raiseTyped(exc)

    def _threadConnection(self) -> sa.Connection:
        """Return this thread's connection to a SQLite file, for its reads and write transactions."""
        state = self._state
        reader = state.reader
        if reader is None or reader.closed or reader.invalidated:
            reader = state.reader = self._openReader()
        return reader

    def _openReader(self) -> sa.Connection:
        assert self.readerEngine is not None
        reader = self.readerEngine.connect()
        finalizer = weakref.finalize(threading.current_thread(), _closeQuietly, reader)
        with self._lock:
            self._readerFinalizers = {f for f in self._readerFinalizers if f.alive}
            self._readerFinalizers.add(finalizer)
        return reader

    @contextmanager
    def write(self, *, atomic: bool = False) -> Iterator[sa.Connection]:
        """Run one write: in its own transaction, or inside this thread's in a SAVEPOINT.

        Parameters
        ----------
        atomic : bool
            The write is one statement that cannot half-succeed. SQLite undoes a failed
            statement by itself and the transaction goes on, so inside a transaction such a
            write needs no SAVEPOINT (saving two statements). PostgreSQL aborts the whole
            transaction on any error, so there it always gets one.
        """
        connection = self._state.connection
        if connection is not None and atomic and self.isSqlite:
            yield connection
            return
        with self.transaction() as connection:
            yield connection

    # -- statements on the per-dataset paths --

    def _driverStatement(self, statement: Any, keys: Sequence[str] | None) -> _DriverStatement:
        cacheKey = (id(statement), tuple(keys) if keys else None)
        compiled = self._driverStatements.get(cacheKey)
        if compiled is None:
            compiled = _DriverStatement(statement, self.engine.dialect, list(keys) if keys else None)
            self._driverStatements[cacheKey] = compiled
            self._keepAlive.append(statement)  # the id stays this statement's
        return compiled

    def insertRows(self, connection: sa.Connection, statement: Any, rows: list[dict[str, Any]]) -> None:
        """Run an INSERT ``statement`` for ``rows`` (dicts with the same keys) on ``connection``.

        On SQLite it runs on the driver connection (see `_DriverStatement`); errors are raised
        as SQLAlchemy's (`sqlalchemy.exc.IntegrityError` for a constraint) either way.
        """
        if not rows:
            return
        if not self.isSqlite:
            connection.execute(statement, rows)
            return
        compiled = self._driverStatement(statement, list(rows[0]))
        self._executeMany(connection, compiled, [compiled.bind(row) for row in rows])

    def insertValues(
        self, connection: sa.Connection, statement: Any, keys: Sequence[str], rows: list[tuple[Any, ...]]
    ) -> None:
        """`insertRows` for rows given as tuples of values in the order of ``keys``.

        What a bulk insert saves by this: a dict per row, and on SQLite looking each value up
        by name again.
        """
        if not rows:
            return
        if not self.isSqlite:
            connection.execute(statement, [dict(zip(keys, row, strict=True)) for row in rows])
            return
        compiled = self._driverStatement(statement, keys)
        if compiled.order is None and compiled.names != tuple(keys):
            raise TypeError(f"Cannot insert rows of {list(keys)} with {compiled.sql!r}: other parameters.")
        self._executeMany(connection, compiled, list(map(compiled.bindRow, rows)))

    def _executeMany(
        self, connection: sa.Connection, compiled: _DriverStatement, params: list[list[Any]]
    ) -> None:
        driver = connection.connection.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        try:
            if len(params) == 1:
                driver.execute(compiled.sql, params[0])
            else:
                driver.executemany(compiled.sql, params)
        except sqlite3.Error as exc:
            raise _translated(compiled.sql, params, exc) from exc

    def selectRows(
        self, connection: sa.Connection, statement: Any, params: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        """Run a SELECT ``statement`` on ``connection``; return its rows as tuples, in column order."""
        if not self.isSqlite:
            return [tuple(row) for row in connection.execute(statement, params)]
        compiled = self._driverStatement(statement, None)
        bound = compiled.bind(params)
        driver = connection.connection.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        try:
            rows = driver.execute(compiled.sql, bound).fetchall()
        except sqlite3.Error as exc:
            raise _translated(compiled.sql, bound, exc) from exc
        return [compiled.convert(row) for row in rows]

    def prepareQuery(self, statement: sa.Select[Any]) -> PreparedQuery:
        """Return ``statement`` made ready to run many times (see `PreparedQuery`)."""
        return PreparedQuery(statement, self.engine.dialect, self.isSqlite and not self.namespace)

    def queryRows(self, connection: sa.Connection, query: PreparedQuery) -> list[tuple[Any, ...]]:
        """Run ``query`` on ``connection``; return its rows as the driver's tuples, in column order."""
        if query.sql is None:
            result = connection.execute(query.statement)
            try:
                rows: list[tuple[Any, ...]] = result.cursor.fetchall()  # type: ignore[assignment]
                return rows
            finally:
                result.close()
        driver = connection.connection.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        try:
            return driver.execute(query.sql, query.parameters).fetchall()
        except sqlite3.Error as exc:
            raise _translated(query.sql, query.parameters, exc) from exc

    # -- the cache --

    def cacheGet(self, key: Hashable) -> Any:
        """Return what is cached under ``key`` (this thread's transaction first), or `None`."""
        for layer in reversed(self._state.layers):
            if key in layer:
                return layer[key]
        return self._committed.get(key)

    def cachePut(self, key: Hashable, value: Any) -> None:
        """Cache ``value``; inside a transaction, only until it is rolled back."""
        layers = self._state.layers
        if layers:
            layers[-1][key] = value
        else:
            with self._lock:
                self._committed[key] = value

    def cacheDrop(self, key: Hashable) -> None:
        """Forget what is cached under ``key`` (after the row it describes is deleted)."""
        for layer in self._state.layers:
            layer.pop(key, None)
        with self._lock:
            self._committed.pop(key, None)

    def cacheDropKind(self, kind: str) -> None:
        """Forget everything cached under a key ``(kind, ...)`` (the ids of every run, say)."""
        for layer in self._state.layers:
            for key in [k for k in layer if isinstance(k, tuple) and k and k[0] == kind]:
                del layer[key]
        with self._lock:
            for key in [k for k in self._committed if isinstance(k, tuple) and k and k[0] == kind]:
                del self._committed[key]

    def dispose(self) -> None:
        """Close every connection: the pooled ones and every thread's read connection."""
        with self._lock:
            finalizers, self._readerFinalizers = self._readerFinalizers, set()
        for finalizer in finalizers:
            finalizer()
        self._state.reader = None
        self.baseEngine.dispose()
        if self.readerEngine is not None:
            self.readerEngine.dispose()


def dialectInsert(db: ConnectionManager, table: sa.Table) -> Any:
    """Return an INSERT for ``table`` with ``db``'s dialect's ``on_conflict_do_nothing``.

    The dialect is imported here, on the first write: a SQLite repository never loads the
    PostgreSQL dialect (about 20 ms of imports), and a read-only command loads neither.
    """
    if db.isSqlite:
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)
    from sqlalchemy.dialects import postgresql

    return postgresql.insert(table)
