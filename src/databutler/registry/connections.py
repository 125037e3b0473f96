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

Dataset types and runs are never deleted, so their ids can be cached for the life of the
registry, but only once committed: what a transaction learns is kept in a layer of its own,
merged on commit and dropped on rollback, so a rolled-back `registerRun` leaves no trace.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections.abc import Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..exceptions import ReadOnlyRepositoryError
from .databases import SQLITE_BEGIN

__all__ = ["ConnectionManager"]


class _DriverStatement:
    """A statement compiled once for SQLite, run on the driver's own connection.

    SQLAlchemy's ``Connection.execute`` costs some 25 µs per call in Python (events, result
    set-up, parameter processing) against a few µs for sqlite3 itself; on the per-dataset paths
    (a put's inserts, a get's lookups) that overhead is most of the time. The SQL text and the
    type conversions still come from SQLAlchemy (the statement's own compilation and its
    column types' bind and result processors), so the two paths store and read the same values.
    """

    __slots__ = ("names", "processors", "resultProcessors", "sql")

    def __init__(self, statement: Any, dialect: sa.Dialect, keys: list[str] | None) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=keys)
        if not compiled.positional or compiled.positiontup is None:
            raise TypeError(f"{dialect.name} does not use positional parameters.")
        self.sql: str = compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup)
        self.processors = tuple(compiled.binds[name].type.bind_processor(dialect) for name in self.names)
        columns = statement.selected_columns if isinstance(statement, sa.Select) else ()
        self.resultProcessors = tuple(column.type.result_processor(dialect, None) for column in columns)

    def bind(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(
            value if process is None or value is None else process(value)
            for value, process in zip(map(params.get, self.names), self.processors, strict=True)
        )

    def convert(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        if not any(self.resultProcessors):
            return row
        return tuple(
            value if process is None or value is None else process(value)
            for value, process in zip(row, self.resultProcessors, strict=True)
        )


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
    """

    def __init__(
        self,
        engine: Engine,
        namespace: str | None = None,
        readerEngine: Engine | None = None,
        readOnlyWhat: str | None = None,
    ) -> None:
        self.readOnlyWhat = readOnlyWhat
        self.baseEngine = engine
        self.readerEngine = readerEngine
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
            savepoint = outer.begin_nested()
            state.layers.append({})
            try:
                yield outer
            except BaseException:
                state.layers.pop()
                if savepoint.is_active:
                    savepoint.rollback()
                raise
            savepoint.commit()
            layer = state.layers.pop()
            state.layers[-1].update(layer)
            return
        if self.readerEngine is None:
            with self.engine.connect() as connection:
                yield from self._runTransaction(connection)
            return
        # A SQLite file: the thread's own connection, which its reads use too (no pool
        # check-out and reset per transaction). A read may have left SQLAlchemy's implicit
        # transaction open on it; in autocommit SQLite that holds nothing, so end it first.
        connection = self._threadConnection()
        if connection.get_transaction() is not None:
            connection.rollback()
        try:
            yield from self._runTransaction(connection)
        except BaseException:
            self._settle(connection)
            raise

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
        if self.readerEngine is None:
            with self.readEngine.connect() as connection:
                yield connection
            return
        yield self._threadConnection()

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
        params = [compiled.bind(row) for row in rows]
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
