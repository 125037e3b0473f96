"""`SqlRecordStorage`: datastore records tables in a SQL database (`RecordStorage`).

A SQL registry keeps its datastores' tables in its own database (`SqlRegistry.recordStorage`),
so their writes join the registry's transactions and a Butler put commits once. A datastore
with no registry opens a database of its own with `SqlRecordStorage.fromUrl`, built by the same
engine recipe as a registry (`databases.makeEngine`: WAL, busy timeout, ``BEGIN IMMEDIATE``
writes, per-thread SQLite connections), so there is one recipe to keep right.

A table is created only when it is missing, after a read that finds it so: opening a table
that exists takes no write lock. SQLite keeps each table in its primary key's B-tree
(``WITHOUT ROWID``), as the registry's own tables.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from ..datastore.bridge import RecordTable, RecordTableSpec
from ..exceptions import ConfigError, RecordConflictError
from .connections import ConnectionManager, dialectInsert
from .databases import parseUrl, sqliteFile

__all__ = ["SqlRecordStorage", "SqlRecordTable"]

_TYPES: dict[type, Any] = {int: sa.BigInteger, float: sa.Float}


def _column(field: Any) -> sa.Column[Any]:
    if field.type is str:
        columnType: Any = sa.String(field.length) if field.length else sa.Text
    elif field.type in _TYPES:
        columnType = _TYPES[field.type]
    else:
        raise ConfigError(f"Records field {field.name!r} has type {field.type!r}; use str, int or float.")
    return sa.Column(field.name, columnType, primary_key=field.primaryKey, nullable=field.nullable)


def _makeTable(spec: RecordTableSpec) -> sa.Table:
    return sa.Table(
        spec.name,
        sa.MetaData(),
        *(_column(field) for field in spec.fields),
        *(sa.UniqueConstraint(*fields, name=name) for name, fields in spec.unique),
        sqlite_with_rowid=False,
    )


class SqlRecordTable:
    """One records table in a SQL database; a `RecordTable`.

    Statements are built once per set of fields compared, and run through the
    `ConnectionManager`'s driver-level path on SQLite.
    """

    def __init__(self, spec: RecordTableSpec, table: sa.Table, db: ConnectionManager) -> None:
        self.spec = spec
        self.table = table
        self._db = db
        self._insert = table.insert()
        self._columns = spec.fieldNames
        self._selects: dict[tuple[str, ...], Any] = {}
        self._deletes: dict[tuple[str, ...], Any] = {}
        self._counts: dict[tuple[str, ...], Any] = {}

    def _where(self, cache: dict[Any, Any], where: Mapping[str, Any], make: Any) -> tuple[Any, bool]:
        """Return the statement for the fields of ``where`` (a list value: IN), and whether any is a list."""
        lists = tuple(isinstance(v, list | tuple | set | frozenset) for v in where.values())
        key = (tuple(where), lists)
        statement = cache.get(key)
        if statement is None:
            unknown = set(where) - set(self._columns)
            if unknown:
                raise ConfigError(f"Records table {self.spec.name!r} has no field(s) {sorted(unknown)}.")
            statement = make().where(
                *(
                    self.table.c[n].in_(sa.bindparam(n, expanding=True))
                    if isList
                    else self.table.c[n] == sa.bindparam(n)
                    for n, isList in zip(where, lists, strict=True)
                )
            )
            cache[key] = statement
        return statement, any(lists)

    @staticmethod
    def _params(where: Mapping[str, Any]) -> dict[str, Any]:
        return {n: list(v) if isinstance(v, set | frozenset | tuple) else v for n, v in where.items()}

    def insert(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``rows``, all or none; `RecordConflictError` on a duplicate key or unique value."""
        if not rows:
            return
        columns = self._columns
        values = [tuple(map(row.get, columns)) for row in rows]
        try:
            with self._db.write(atomic=len(values) == 1) as connection:
                self._db.insertValues(connection, self._insert, columns, values)
        except sa.exc.IntegrityError as exc:
            shown = [dict(zip(columns, row, strict=True)) for row in values]
            raise RecordConflictError(
                f"Records table {self.spec.name!r} already has a row with the key or a unique value of "
                f"{shown[0] if len(shown) == 1 else shown}: {exc.orig or exc}"
            ) from exc

    def insertNew(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Insert the rows that conflict with none there (one statement); return those inserted."""
        if not rows:
            return []
        values = [{name: row.get(name) for name in self._columns} for row in rows]
        statement = (
            dialectInsert(self._db, self.table)
            .values(values)
            .on_conflict_do_nothing()
            .returning(*self.table.c)
        )
        with self._db.write(atomic=True) as connection:
            inserted = connection.execute(statement).all()
        return [dict(zip(self._columns, row, strict=True)) for row in inserted]

    def fetch(self, **where: Any) -> list[dict[str, Any]]:
        """Return the rows whose fields match ``where``, field → value."""
        statement, hasLists = self._where(self._selects, where, lambda: sa.select(self.table))
        with self._db.read() as connection:
            if hasLists:
                rows = [tuple(row) for row in connection.execute(statement, self._params(where))]
            else:
                rows = self._db.selectRows(connection, statement, where)
        columns = self._columns
        return [dict(zip(columns, row, strict=True)) for row in rows]

    def delete(self, **where: Any) -> int:
        """Delete the rows whose fields equal ``where``; return how many."""
        statement, _ = self._where(self._deletes, where, lambda: sa.delete(self.table))
        with self._db.write(atomic=True) as connection:
            return int(connection.execute(statement, self._params(where)).rowcount)

    def count(self, **where: Any) -> int:
        """Return how many rows have fields equal to ``where``."""
        statement, _ = self._where(
            self._counts, where, lambda: sa.select(sa.func.count()).select_from(self.table)
        )
        with self._db.read() as connection:
            return int(connection.execute(statement, self._params(where)).scalar_one())

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group calls (a SAVEPOINT inside an open transaction of the same database)."""
        with self._db.transaction():
            yield

    @property
    def inTransaction(self) -> bool:
        """Whether this thread is inside a transaction of this database."""
        return self._db.inTransaction

    @property
    def exclusiveWrites(self) -> bool:
        """Whether a write transaction locks out every other writer: SQLite's (``BEGIN IMMEDIATE``)."""
        return self._db.isSqlite


class SqlRecordStorage:
    """Records tables in one SQL database; a `RecordStorage`.

    Parameters
    ----------
    db : ConnectionManager
        The database's connections (a registry's, or the storage's own from `fromUrl`).
    ownsDatabase : bool
        `close` closes ``db`` (a registry's connections are left to the registry).
    """

    def __init__(self, db: ConnectionManager, *, ownsDatabase: bool = False) -> None:
        self._db = db
        self._ownsDatabase = ownsDatabase
        self._tables: dict[str, SqlRecordTable] = {}
        self._lock = threading.Lock()

    @classmethod
    def fromUrl(cls, url: str | URL, *, busyTimeout: float = 30.0) -> SqlRecordStorage:
        """Open a database of its own at ``url`` (made if it is a missing SQLite file).

        Raises
        ------
        ConfigError
            ``url`` is not a SQLite or PostgreSQL URL.
        MissingOptionalDependencyError
            A PostgreSQL URL is given but psycopg is not installed.
        """
        parsed = parseUrl(url)
        path = sqliteFile(parsed) if parsed.get_backend_name() == "sqlite" else None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        return cls(ConnectionManager.fromUrl(parsed, busyTimeout=busyTimeout), ownsDatabase=True)

    @property
    def isReadOnly(self) -> bool:
        """Whether the database was opened read-only (the registry's, by a read-only Butler)."""
        return self._db.readOnlyWhat is not None

    @property
    def url(self) -> str:
        """The database URL, without a password."""
        return self._db.engine.url.render_as_string(hide_password=True)

    def registerRecordTable(self, spec: RecordTableSpec) -> RecordTable:
        """Return the table ``spec`` describes, creating it only if it is missing.

        Raises
        ------
        ConfigError
            A table of that name is registered here with another spec.
        """
        with self._lock:
            known = self._tables.get(spec.name)
            if known is not None:
                if known.spec != spec:
                    raise ConfigError(f"Records table {spec.name!r} is already registered with another spec.")
                return known
            table = _makeTable(spec)
            with self._db.read() as connection:
                exists = sa.inspect(connection).has_table(spec.name, schema=self._db.namespace)
            if not exists:
                with self._db.transaction() as connection:
                    table.create(connection, checkfirst=True)
            self._tables[spec.name] = recordTable = SqlRecordTable(spec, table, self._db)
            return recordTable

    def close(self) -> None:
        """Close the database connections, if they are this storage's own."""
        if self._ownsDatabase:
            self._db.dispose()
