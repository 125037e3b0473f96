"""What a FileDatastore records about its files, and the SQL table that holds it.

One row per file: a dataset written whole has one row (``component`` empty); a composite
that is disassembled has a row for its folder (no formatter) and one per component file. Rows
live in a table ``fileDatastoreRecords`` of any SQLAlchemy database; by default a SQLite file
in the datastore's root, or the registry's own database when the datastore is given a SQL
registry: then a Butler put writes the dataset row, its location and its file records in one
transaction, with one commit. Rows are keyed by datastore name, dataset id and component, and
paths are unique per datastore, so no two datasets can ever share a file.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlalchemy.pool import StaticPool

from ...datastore.records import StoredItemInfo
from ...exceptions import ConfigError, UnknownStorageClassError
from ...registry import schema
from ...storage_class import StorageClass, StorageClassFactory

if TYPE_CHECKING:
    from ...registry.connections import ConnectionManager

__all__ = ["FileRecordTable", "StoredFileInfo"]

_WRITE = "databutlerFileWrite"


# Statements built once per process: SQLAlchemy, and a registry's driver-statement cache,
# reuse their compiled form.
_table = schema.fileDatastoreRecordsTable
_ofDataset = sa.and_(
    _table.c.datastoreName == sa.bindparam("name"), _table.c.datasetId == sa.bindparam("datasetId")
)
_ofComponent = sa.and_(_ofDataset, _table.c.component == sa.bindparam("component"))
_INSERT = _table.insert()
_SELECT_ROWS = sa.select(
    _table.c.component,
    _table.c.datasetType,
    _table.c.path,
    _table.c.formatter,
    _table.c.storageClass,
    _table.c.fileSize,
    _table.c.checksum,
    _table.c.timestamp,
).where(_ofDataset)
"""The columns `FileRecordTable._toInfo` reads, in its order."""
_SELECT_TYPE = sa.select(_table.c.datasetType).where(_ofComponent)
_DELETE_ROWS = sa.delete(_table).where(_ofDataset)
_DELETE_COMPONENT = sa.delete(_table).where(_ofComponent)
_SELECT_OWNER = sa.select(_table.c.datasetId).where(
    _table.c.datastoreName == sa.bindparam("name"), _table.c.path == sa.bindparam("path")
)
_COUNT = (
    sa.select(sa.func.count())
    .select_from(_table)
    .where(_table.c.datastoreName == sa.bindparam("name"), _table.c.component == "")
)
_SELECT_NAMED = sa.select(_table.c.datasetId, *_SELECT_ROWS.selected_columns).where(
    _table.c.datastoreName == sa.bindparam("name")
)
_SELECT_IDS = sa.select(_table.c.datasetId).where(_table.c.datastoreName == sa.bindparam("name")).distinct()
_SELECT_PATHS = sa.select(_table.c.path).where(_table.c.datastoreName == sa.bindparam("name"))
_SELECT_TAKEN = sa.select(_table.c.path).where(
    _table.c.datastoreName == sa.bindparam("name"), _table.c.path.in_(sa.bindparam("paths", expanding=True))
)
_HOLD_CHUNK = 500
"""Paths (or ids) per statement of `FileRecordTable.holdPaths` and its kin."""
_DELETE_IDS = sa.delete(_table).where(
    _table.c.datastoreName == sa.bindparam("name"),
    _table.c.datasetId.in_(sa.bindparam("ids", expanding=True)),
)

_NAME_LENGTH = 128
"""Length of the ``datastoreName`` column."""

TRASH_SUFFIX = "#trash"
"""Rows of removed files still to delete are kept under ``<datastore name>#trash``: an intent
written in the same transaction as the removal (see `FileRecordTable.trash`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredFileInfo(StoredItemInfo):
    """What a FileDatastore records about one stored file.

    Parameters
    ----------
    timestamp : float
        When the file was written, in seconds since the epoch.
    storageClass : StorageClass
        The storage class the file was written as (for a component file, the component's).
    parentID : uuid.UUID, optional
        For a component file, the id of the composite.
    path : str
        The file's path relative to the datastore root (for a disassembled composite, its folder).
    formatter : str or None
        Fully-qualified name of the formatter that wrote it; `None` for a composite's folder.
    component : str, optional
        The component held in this file, or `None` for a whole dataset.
    fileSize : int
        Size in bytes (for a composite's folder, the total of its files).
    checksum : str, optional
        ``"blake2b:<hex>"`` of the file's bytes, or `None` when checksums are off.
    """

    path: str
    formatter: str | None
    component: str | None = None
    fileSize: int = 0
    checksum: str | None = None


def _makeEngine(url: str, busyTimeout: float) -> sa.Engine:
    """Return an engine for ``url``; SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE`` writes."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigError(
            f"datastore.records.db {url!r} is not a database URL such as 'sqlite:///path'."
        ) from exc
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgres", "postgresql"):
        parsed = parsed.set(drivername=f"postgresql+{driver or 'psycopg'}")  # psycopg 3 by default
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(parsed, pool_pre_ping=True)
    inMemory = parsed.database in (None, "", ":memory:")
    if inMemory:
        engine = sa.create_engine(parsed, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        engine = sa.create_engine(parsed, connect_args={"timeout": busyTimeout, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def onConnect(dbapiConnection: Any, connectionRecord: Any) -> None:
        dbapiConnection.isolation_level = None  # we issue BEGIN ourselves
        if not inMemory:
            dbapiConnection.execute("PRAGMA journal_mode=WAL")
            dbapiConnection.execute("PRAGMA synchronous=NORMAL")

    @event.listens_for(engine, "begin")
    def onBegin(connection: sa.Connection) -> None:
        # Writes take the lock up front; a read is one statement, atomic without a transaction.
        if connection.get_execution_options().get(_WRITE, False):
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class FileRecordTable:
    """The records of one FileDatastore, in the table ``fileDatastoreRecords``.

    Parameters
    ----------
    url : str or None
        SQLAlchemy database URL; `None` when ``database`` is given.
    datastoreName : str
        Rows are scoped to this name, so datastores may share a database.
    storageClassFactory : StorageClassFactory
        Turns recorded storage class names back into storage classes.
    busyTimeout : float
        Seconds a SQLite writer waits for another process's lock.
    database : ConnectionManager, optional
        A registry's connections: the table is kept in the registry's database and every
        write joins this thread's registry transaction, if one is open.

    Raises
    ------
    ConfigError
        ``url`` is not a database URL.
    """

    def __init__(
        self,
        url: str | None,
        datastoreName: str,
        storageClassFactory: StorageClassFactory,
        busyTimeout: float = 30.0,
        database: ConnectionManager | None = None,
    ) -> None:
        self.datastoreName = datastoreName
        self.trashName = datastoreName + TRASH_SUFFIX
        if len(self.trashName) > _NAME_LENGTH:
            raise ConfigError(f"FileDatastore name {datastoreName!r} is too long (at most 120 characters).")
        self._factory = storageClassFactory
        self._shared = database
        self._lock: threading.RLock | None = None
        if database is not None:
            self.url = database.engine.url.render_as_string(hide_password=True)
        elif url is None:
            raise ConfigError("FileRecordTable needs a database URL or a registry's database.")
        else:
            self.url = url
            self._engine = _makeEngine(url, busyTimeout)
            self._writeEngine = self._engine.execution_options(**{_WRITE: True})
            # One shared connection (in-memory SQLite) must not be used by two threads at once.
            if isinstance(self._engine.pool, StaticPool):
                self._lock = threading.RLock()
        self.table = schema.fileDatastoreRecordsTable
        if database is None or database.readOnlyWhat is None:  # a read-only registry is not changed
            with self.begin() as conn:
                self.table.create(conn, checkfirst=True)

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """Open a write transaction: committed if the body succeeds, rolled back if it raises.

        In a registry's database, inside this thread's registry transaction, it is a SAVEPOINT
        of that transaction, committed only with it.
        """
        if self._shared is not None:
            with self._shared.transaction() as conn:
                yield conn
        elif self._lock is None:
            with self._writeEngine.begin() as conn:
                yield conn
        else:
            with self._lock, self._writeEngine.begin() as conn:
                yield conn

    @contextmanager
    def recording(
        self, datasetId: uuid.UUID, datasetType: str, infos: list[StoredFileInfo]
    ) -> Iterator[None]:
        """Insert the rows of ``infos``; they stay only if the body (moving the files into place) succeeds.

        Inside a registry transaction the rows are written in it without a SAVEPOINT of their
        own where one statement suffices (a lone SQLite insert is atomic), and deleted again if
        the body raises; they are committed with the registry's rows.

        Raises
        ------
        sqlalchemy.exc.IntegrityError
            A row for this dataset is already there; raised before the body runs.
        """
        shared = self._shared
        if shared is None or not shared.inTransaction:
            with self.begin() as conn:
                self.insert(conn, datasetId, datasetType, infos)
                yield
            return
        with shared.write(atomic=len(infos) == 1) as conn:
            self.insert(conn, datasetId, datasetType, infos)
        try:
            yield
        except BaseException:
            with shared.write(atomic=True) as conn:
                self.delete(conn, datasetId)
            raise

    @property
    def commitsOnExit(self) -> bool:
        """Whether a `begin` block commits when it ends.

        `False` inside a registry transaction, which commits it later (or rolls it back).
        """
        return self._shared is None or not self._shared.inTransaction

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        if self._shared is not None:
            with self._shared.read() as conn:
                yield conn
        elif self._lock is None:
            with self._engine.connect() as conn:
                yield conn
        else:
            with self._lock, self._engine.connect() as conn:
                yield conn

    def dispose(self) -> None:
        """Close the database connections (a registry's are left to the registry)."""
        if self._shared is None:
            self._engine.dispose()

    # -- rows --

    def insert(
        self,
        conn: sa.Connection,
        datasetId: uuid.UUID,
        datasetType: str,
        infos: Iterable[StoredFileInfo],
        trash: bool = False,
    ) -> None:
        """Insert one row per info (in the trash if ``trash``).

        Raises `sqlalchemy.exc.IntegrityError` on a duplicate.
        """
        rows = [
            {
                "datastoreName": self.trashName if trash else self.datastoreName,
                "datasetId": str(datasetId),
                "component": info.component or "",
                "datasetType": datasetType,
                "path": info.path,
                "formatter": info.formatter,
                "storageClass": info.storageClass.name,
                "fileSize": info.fileSize,
                "checksum": info.checksum,
                "timestamp": info.timestamp,
            }
            for info in infos
        ]
        if self._shared is not None:
            self._shared.insertRows(conn, _INSERT, rows)
        elif rows:
            conn.execute(_INSERT, rows)

    def _key(self, datasetId: uuid.UUID, component: str | None = None, trash: bool = False) -> dict[str, str]:
        key = {"name": self.trashName if trash else self.datastoreName, "datasetId": str(datasetId)}
        if component is not None:
            key["component"] = component
        return key

    def fetch(
        self, datasetId: uuid.UUID, conn: sa.Connection | None = None
    ) -> dict[str, tuple[str, StoredFileInfo]]:
        """Return ``{component or "": (datasetTypeName, info)}`` for every row of ``datasetId``."""
        if conn is not None:
            rows = self._select(conn, _SELECT_ROWS, self._key(datasetId))
        else:
            with self._read() as readConn:
                rows = self._select(readConn, _SELECT_ROWS, self._key(datasetId))
        return {row[0]: (row[1], self._toInfo(row, datasetId)) for row in rows}

    def has(self, datasetId: uuid.UUID) -> str | None:
        """Return the dataset type name recorded for ``datasetId``'s whole-dataset row, or `None`."""
        with self._read() as conn:
            rows = self._select(conn, _SELECT_TYPE, self._key(datasetId, ""))
        return rows[0][0] if rows else None

    def _select(self, conn: sa.Connection, statement: Any, params: dict[str, str]) -> list[tuple[Any, ...]]:
        if self._shared is not None:
            return self._shared.selectRows(conn, statement, params)
        return [tuple(row) for row in conn.execute(statement, params)]

    def pathOwner(self, conn: sa.Connection, path: str) -> str | None:
        """Return the dataset id (as str) whose row holds ``path``, or `None`."""
        return conn.execute(_SELECT_OWNER, {"name": self.datastoreName, "path": path}).scalars().first()

    def pathOwners(self, paths: Iterable[str]) -> dict[str, str | None]:
        """Return ``{path: dataset id (as str) whose row holds it, or None}``, read as committed."""
        with self._read() as conn:
            return {path: self.pathOwner(conn, path) for path in paths}

    def delete(
        self, conn: sa.Connection, datasetId: uuid.UUID, component: str | None = None, trash: bool = False
    ) -> int:
        """Delete the rows of ``datasetId``; return how many.

        Only ``component``'s if given; those in the trash if ``trash``.
        """
        statement = _DELETE_ROWS if component is None else _DELETE_COMPONENT
        return conn.execute(statement, self._key(datasetId, component, trash)).rowcount

    # -- removals still to finish, and paths --

    def trash(
        self, conn: sa.Connection, datasetId: uuid.UUID, datasetType: str, infos: list[StoredFileInfo]
    ) -> None:
        """Note the files of ``infos`` as to be deleted once this transaction commits.

        Called in the transaction that deletes ``datasetId``'s rows. Rows a crash left for the
        same dataset are kept (not doubled).
        """
        old = {row[0] for row in self._select(conn, _SELECT_ROWS, self._key(datasetId, trash=True))}
        new = [info for info in infos if (info.component or "") not in old]
        self.insert(conn, datasetId, datasetType, new, trash=True)

    def trashed(self, conn: sa.Connection | None = None) -> dict[uuid.UUID, list[StoredFileInfo]]:
        """Return the files of committed removals still to delete, by dataset id."""
        if conn is None:
            with self._read() as readConn:
                rows = [tuple(r) for r in readConn.execute(_SELECT_NAMED, {"name": self.trashName})]
        else:
            rows = [tuple(r) for r in conn.execute(_SELECT_NAMED, {"name": self.trashName})]
        out: dict[uuid.UUID, list[StoredFileInfo]] = {}
        for row in rows:
            datasetId = uuid.UUID(row[0])
            out.setdefault(datasetId, []).append(self._toInfo(row[1:], datasetId))
        return out

    def datasetIds(self) -> set[str]:
        """Return the id (as str) of every dataset this datastore has records of."""
        with self._read() as conn:
            return {row[0] for row in conn.execute(_SELECT_IDS, {"name": self.datastoreName})}

    def paths(self) -> set[str]:
        """Return every path this datastore's records name."""
        with self._read() as conn:
            return {row[0] for row in conn.execute(_SELECT_PATHS, {"name": self.datastoreName})}

    def holdPaths(self, conn: sa.Connection, paths: Iterable[str]) -> dict[str, str]:
        """Hold each free path of ``paths`` for the rest of the write transaction ``conn``.

        No other writer can record a held path before the transaction ends, and a path
        another transaction is recording makes this one wait for it. SQLite write transactions
        lock the whole database already, so there it is one query for the paths recorded; on
        PostgreSQL a placeholder row is inserted at each free path (one statement), whose unique
        path index makes any other writer's insert there wait. Returns ``{path: placeholder id
        or ""}`` of the paths held; a path recorded for a dataset is not held. Release them with
        `releasePaths` before committing.
        """
        wanted = list(dict.fromkeys(paths))
        held: dict[str, str] = {}
        for start in range(0, len(wanted), _HOLD_CHUNK):
            chunk = wanted[start : start + _HOLD_CHUNK]
            if conn.dialect.name == "sqlite":
                taken = {
                    row[0]
                    for row in conn.execute(_SELECT_TAKEN, {"name": self.datastoreName, "paths": chunk})
                }
                held.update((path, "") for path in chunk if path not in taken)
                continue
            rows = [
                {
                    "datastoreName": self.datastoreName,
                    "datasetId": str(uuid.uuid4()),
                    "component": "",
                    "datasetType": "",
                    "path": path,
                    "formatter": None,
                    "storageClass": "",
                    "fileSize": 0,
                    "checksum": None,
                    "timestamp": 0.0,
                }
                for path in chunk
            ]
            statement = (
                postgresql.insert(_table)
                .values(rows)
                .on_conflict_do_nothing()
                .returning(_table.c.path, _table.c.datasetId)
            )
            held.update((row[0], row[1]) for row in conn.execute(statement))
        return held

    def releasePaths(self, conn: sa.Connection, held: dict[str, str]) -> None:
        """Delete the placeholder rows of `holdPaths`."""
        ids = [placeholder for placeholder in held.values() if placeholder]
        if ids:
            conn.execute(_DELETE_IDS, {"name": self.datastoreName, "ids": ids})

    def deleteTrash(self, conn: sa.Connection, datasetIds: Iterable[uuid.UUID]) -> None:
        """Delete the trash rows of ``datasetIds`` (their files are dealt with)."""
        ids = [str(datasetId) for datasetId in datasetIds]
        for start in range(0, len(ids), _HOLD_CHUNK):
            conn.execute(_DELETE_IDS, {"name": self.trashName, "ids": ids[start : start + _HOLD_CHUNK]})

    def count(self) -> int:
        """Return how many datasets this datastore has (component files are not counted)."""
        with self._read() as conn:
            return int(conn.execute(_COUNT, {"name": self.datastoreName}).scalar_one())

    def _toInfo(self, row: tuple[Any, ...], datasetId: uuid.UUID) -> StoredFileInfo:
        """``row`` holds the columns of ``_selectRows``, in order."""
        component, _, path, formatter, storageClassName, fileSize, checksum, timestamp = row
        try:
            storageClass = self._factory.getStorageClass(storageClassName)
        except UnknownStorageClassError:
            storageClass = StorageClass(storageClassName)
        return StoredFileInfo(
            timestamp,
            storageClass,
            datasetId if component else None,
            path=path,
            formatter=formatter,
            component=component or None,
            fileSize=fileSize,
            checksum=checksum,
        )
