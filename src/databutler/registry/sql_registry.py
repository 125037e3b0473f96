"""SqlRegistry: the SQL catalogue of dataset types, runs, datasets and their locations.

Built on SQLAlchemy 2 Core. SQLite (a file in the repository) is the default; PostgreSQL is
for registries shared by many processes and machines. The pieces:

- `databutler.registry.schema`: every table, and how data IDs are stored;
- `databutler.registry.databases`: the URL, the engine and its SQLite settings;
- `databutler.registry.connections`: transactions, SAVEPOINTs and the id cache;
- `databutler.registry.types_runs`: dataset types and runs;
- `databutler.registry.datasets`: adding, finding, querying and removing datasets;
- this module: opening and creating the database, and where datasets are stored (the
  `DatasetLocationRegistry` protocol that datastores call).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from ..config import Config
from ..dataset_ref import DatasetRef
from ..dimensions import DimensionRecord, DimensionUniverse
from ..exceptions import (
    ConfigError,
    DatabaseAccessError,
    ForeignRegistryError,
    MissingDatasetError,
    MissingRegistryError,
    ReadOnlyRepositoryError,
    RegistryError,
)
from ..storage_class import StorageClassFactory
from . import schema
from .connections import ConnectionManager
from .data_id_queries import DataIdQueries
from .data_ids import CHUNK, chunks
from .databases import ROOT_PLACEHOLDER, RegistryConfig, isSqliteUrl, makeEngine, parseUrl, sqliteFile
from .dimension_records import DimensionRecordStorage

__all__ = ["SqlRegistry"]

_UNIVERSE_KEY = "dimensionUniverse"


def _plain(value: Any) -> Any:
    """Return a config section as plain dicts (or `None`)."""
    if value is None:
        return None
    return value.toDict() if isinstance(value, Config) else dict(value)


def _universeFrom(dimensions: DimensionUniverse | Mapping[str, Any] | None) -> DimensionUniverse:
    if isinstance(dimensions, DimensionUniverse):
        return dimensions
    default = DimensionUniverse.default()
    if not dimensions:
        return default
    return DimensionUniverse.fromConfig({**default.toConfig(), **dict(dimensions)})


_location = schema.datasetLocationTable
_REMOVE_LOCATIONS = sa.delete(_location).where(
    _location.c.datastoreName == sa.bindparam("datastoreName"),
    _location.c.datasetId.in_(sa.bindparam("ids", expanding=True)),
)
_HELD_LOCATIONS = sa.select(_location.c.datasetId).where(
    _location.c.datastoreName == sa.bindparam("datastoreName"),
    _location.c.datasetId.in_(sa.bindparam("ids", expanding=True)),
)
_REPOSITORY_ID = "repositoryId"
_REPOSITORY_ROOT = "repositoryRoot"
_GET_LOCATIONS = sa.select(_location.c.datastoreName).where(_location.c.datasetId == sa.bindparam("id"))


def _isWriteable(path: Path) -> bool:
    """Whether this process can write the SQLite database ``path`` and make files beside it."""
    return os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


class SqlRegistry(DataIdQueries):
    """The SQL registry: which dataset types, runs and datasets exist, and where they are stored.

    Parameters
    ----------
    url : str or sqlalchemy.engine.URL
        ``sqlite:///path/registry.sqlite3`` or ``postgresql://user@host:port/dbname``.
    create : bool
        Create the tables (and the SQLite file or PostgreSQL schema) if missing; harmless when
        they exist. Without it, opening a database that holds no registry is an error.
    storageClassFactory : StorageClassFactory, optional
        Resolves the storage class names stored with dataset types; by default the packaged
        definitions.
    namespace : str, optional
        PostgreSQL only: the schema holding the tables.
    busyTimeout : float
        Seconds a writer waits for another writer's lock (SQLite's busy timeout, PostgreSQL's
        ``lock_timeout``) before a `DatabaseLockedError`.
    readOnly : bool
        Never write: every write is refused with `ReadOnlyRepositoryError`, and the database
        itself is opened read-only (see `databutler.registry.databases`), so a registry on a
        read-only mount or in a folder without write permission opens and reads.
    dimensions : DimensionUniverse or mapping, optional
        With ``create``, the dimension universe of a new registry: a universe, or a mapping in
        the form of ``configs/dimensions.yaml`` whose entries add to (or replace) the default
        dimensions. A registry keeps the universe it was made with.

    Raises
    ------
    ConfigError
        ``url`` is not a SQLite or PostgreSQL URL, ``namespace`` is given for SQLite, or both
        ``create`` and ``readOnly`` are given.
    MissingRegistryError
        ``create`` is false and the database does not exist or holds no registry.
    RegistryError
        The database cannot be reached, or its schema version is not this code's.
    ReadOnlyRepositoryError
        A SQLite database that this process cannot write is opened without ``readOnly``.

    Examples
    --------
    >>> registry = SqlRegistry("sqlite://", create=True)
    >>> registry.registerRun("run1")
    True
    >>> registry.close()
    """

    def __init__(
        self,
        url: str | URL,
        *,
        create: bool = False,
        storageClassFactory: StorageClassFactory | None = None,
        namespace: str | None = None,
        busyTimeout: float = 30.0,
        readOnly: bool = False,
        dimensions: DimensionUniverse | Mapping[str, Any] | None = None,
    ) -> None:
        self.url = parseUrl(url)
        self.isReadOnly = readOnly
        self.namespace = namespace
        self.storageClassFactory = storageClassFactory or StorageClassFactory.fromDefaults()
        self.isSqlite = isSqliteUrl(self.url)
        shown = self.url.render_as_string(hide_password=True)
        if namespace:
            shown += f" (namespace {namespace!r})"
        if self.isSqlite and namespace:
            raise ConfigError(f"Registry {shown!r}: namespace is for PostgreSQL, not SQLite.")
        if create and readOnly:
            raise ConfigError(f"Registry {shown!r}: cannot be created read-only; drop create or readOnly.")
        path = sqliteFile(self.url) if self.isSqlite else None
        if path is not None and not create and not path.exists():
            raise MissingRegistryError(
                f"No registry database at {str(path)!r}; create one with create=True "
                "(Butler.makeRepo or `databutler create`)."
            )
        if path is not None and create:
            path.parent.mkdir(parents=True, exist_ok=True)
        # A SQLite file gets per-thread read connections (see ConnectionManager.read).
        readerEngine = (
            makeEngine(self.url, busyTimeout=busyTimeout, pooled=False, readOnly=readOnly) if path else None
        )
        self._db = ConnectionManager(
            makeEngine(self.url, busyTimeout=busyTimeout, readOnly=readOnly),
            namespace,
            readerEngine,
            readOnlyWhat=f"registry {shown!r}" if readOnly else None,
            database=repr(shown),
            busyTimeout=busyTimeout,
        )
        self._insertedSinceAnalyze = 0
        self._analyzeEvery = 10_000
        self._insertLocations = self._insert(_location).on_conflict_do_nothing(
            index_elements=[_location.c.datasetId, _location.c.datastoreName]
        )
        try:
            if create:
                self._createSchema(_universeFrom(dimensions))
            self._checkSchema(shown)
            self.universe = self._openUniverse(create)
            self._dimensionRecords = DimensionRecordStorage(self._db, self.universe, self.isSqlite)
        except (sa.exc.OperationalError, DatabaseAccessError) as exc:
            self._db.dispose()
            failure = exc.__cause__ if isinstance(exc, DatabaseAccessError) else exc
            reason = getattr(failure, "orig", None) or failure or exc
            if path is not None and not readOnly and not _isWriteable(path):
                raise ReadOnlyRepositoryError(
                    f"Could not open registry {shown!r} for writing: {str(path.parent)!r} cannot be "
                    "written (a read-only mount, or no write permission); open it read-only: "
                    "Butler(root, writeable=False), or a reading command such as "
                    "`databutler query-datasets` (read-only by default)."
                ) from exc
            raise DatabaseAccessError(f"Could not open registry {shown!r}: {reason}") from exc
        except BaseException:
            self._db.dispose()
            raise

    @classmethod
    def fromConfig(
        cls,
        config: Config | Mapping[str, Any] | str | os.PathLike[str],
        *,
        root: str | os.PathLike[str] | None = None,
        create: bool = False,
        storageClassFactory: StorageClassFactory | None = None,
        readOnly: bool = False,
    ) -> SqlRegistry:
        """Open (or with ``create``, create) the registry a configuration describes.

        Parameters
        ----------
        config : Config, mapping, str or path-like
            A registry or full repository configuration; its ``registry`` section is used,
            over the defaults in ``configs/registry.yaml``.
        root : str or path-like, optional
            The repository root, put in place of ``<butlerRoot>`` in ``registry.db``.
        create, storageClassFactory, readOnly
            As for `SqlRegistry`.

        Raises
        ------
        ConfigError
            ``registry.db`` mentions ``<butlerRoot>`` and no ``root`` is given, or is not a
            SQLite or PostgreSQL URL.
        MissingRegistryError, RegistryError
            As for `SqlRegistry`.
        """
        registryConfig = config if isinstance(config, RegistryConfig) else RegistryConfig(config)
        db = str(registryConfig["db"])
        if ROOT_PLACEHOLDER in db:
            if root is None:
                raise ConfigError(
                    f"registry.db {db!r} is relative to the repository root ({ROOT_PLACEHOLDER}); "
                    "pass root= to SqlRegistry.fromConfig."
                )
            db = db.replace(ROOT_PLACEHOLDER, Path(root).absolute().as_posix())
        namespace = registryConfig.get("namespace")
        return cls(
            db,
            create=create,
            storageClassFactory=storageClassFactory,
            namespace=str(namespace) if namespace else None,
            busyTimeout=float(registryConfig.get("busyTimeout", 30.0)),
            readOnly=readOnly,
            dimensions=_plain(registryConfig.get("dimensions")),
        )

    def _createSchema(self, universe: DimensionUniverse) -> None:
        if self.namespace:
            with self._db.baseEngine.begin() as connection:
                connection.execute(sa.schema.CreateSchema(self.namespace, if_not_exists=True))
        with self._db.write() as connection:
            schema.metadata.create_all(connection)
            for name, value in (("schemaVersion", schema.SCHEMA_VERSION), (_UNIVERSE_KEY, universe.toJson())):
                connection.execute(
                    self._insert(schema.attributeTable)
                    .values(name=name, value=value)
                    .on_conflict_do_nothing(index_elements=[schema.attributeTable.c.name])
                )

    def _storedUniverse(self) -> DimensionUniverse | None:
        table = schema.attributeTable
        with self._db.read() as connection:
            stored = connection.execute(
                sa.select(table.c.value).where(table.c.name == _UNIVERSE_KEY)
            ).scalar_one_or_none()
        return None if stored is None else DimensionUniverse.fromJson(stored)

    def _openUniverse(self, create: bool) -> DimensionUniverse:
        """Return the stored universe; a registry made before universes existed gets one (migration).

        The migration adds what older registries lack and changes nothing they hold: the default
        universe, plus each dimension their dataset types use that it lacks, typed by the values
        stored (a default dimension whose stored values are all of the other type takes that
        type), and the empty record tables. A registry that cannot be written keeps the
        universe in memory only.
        """
        stored = self._storedUniverse()
        if stored is not None:
            if create:
                with self._db.write() as connection:
                    DimensionRecordStorage(self._db, stored, self.isSqlite).createTables(connection)
            return stored
        universe = self._inferUniverse()
        table = schema.attributeTable
        try:
            with self._db.write() as connection:
                connection.execute(
                    self._insert(table)
                    .values(name=_UNIVERSE_KEY, value=universe.toJson())
                    .on_conflict_do_nothing(index_elements=[table.c.name])
                )
                DimensionRecordStorage(self._db, universe, self.isSqlite).createTables(connection)
        except (
            ReadOnlyRepositoryError,
            sa.exc.OperationalError,
            sa.exc.ProgrammingError,
            sa.exc.InternalError,
        ):
            return universe  # read-only: the universe lives in this process only
        return self._storedUniverse() or universe

    def _inferUniverse(self) -> DimensionUniverse:
        default = DimensionUniverse.default()
        values = schema.datasetDimensionTable
        with self._db.read() as connection:
            used = {
                name
                for text in connection.execute(sa.select(schema.datasetTypeTable.c.dimensions)).scalars()
                for name in text.split(",")
                if name
            }
            kinds: dict[str, set[str]] = {}
            rows = connection.execute(
                sa.select(values.c.dimension, values.c.intValue.is_(None).label("isStr")).distinct()
            )
            for name, isStr in rows:
                kinds.setdefault(name, set()).add("str" if isStr else "int")
        config = default.toConfig()
        for name in sorted(used | set(kinds)):
            found = kinds.get(name, set())
            if len(found) > 1:
                raise RegistryError(
                    f"Registry {self!r} was made before dimension types existed and holds both int and "
                    f"str values of dimension {name!r}; give {name!r} one type by removing or re-adding "
                    "the datasets of one kind with an older databutler, then open it again."
                )
            if name not in config:
                config[name] = {"type": found.pop() if found else "int"}
            elif found and found != {config[name]["type"]}:
                config[name] = {"type": found.pop()}  # keep what is stored readable; no records for it
        return DimensionUniverse.fromConfig(config)

    def _checkSchema(self, shown: str) -> None:
        with self._db.read() as connection:
            if not sa.inspect(connection).has_table(schema.attributeTable.name, schema=self.namespace):
                raise MissingRegistryError(
                    f"Database {shown!r} holds no databutler registry; create one with create=True."
                )
            table = schema.attributeTable
            version = connection.execute(
                sa.select(table.c.value).where(table.c.name == "schemaVersion")
            ).scalar_one_or_none()
        if version != schema.SCHEMA_VERSION:
            raise RegistryError(
                f"Registry {shown!r} has schema version {version!r}; this databutler reads version "
                f"{schema.SCHEMA_VERSION!r}. Use a matching databutler, or migrate the registry."
            )

    # -- which repository the registry belongs to --

    def getRepositoryId(self) -> str | None:
        """Return the id of the data repository this registry belongs to (`None`: unclaimed)."""
        table = schema.attributeTable
        with self._db.read() as connection:
            value = connection.execute(
                sa.select(table.c.value).where(table.c.name == _REPOSITORY_ID)
            ).scalar_one_or_none()
        return None if value is None else str(value)

    def claim(self, repositoryId: str, where: str) -> None:
        """Make this registry belong to the repository ``repositoryId`` (made at ``where``).

        A registry belongs to one repository: its datastores' locations and records are kept
        under names only that repository gives meaning to.

        Raises
        ------
        ForeignRegistryError
            The registry already belongs to another repository.
        """
        table = schema.attributeTable
        with self._db.write() as connection:
            selected = sa.select(table.c.name, table.c.value).where(
                table.c.name.in_([_REPOSITORY_ID, _REPOSITORY_ROOT])
            )
            rows = {str(name): str(value) for name, value in connection.execute(selected)}
            owner = rows.get(_REPOSITORY_ID)
            if owner is not None and owner != repositoryId:
                raise ForeignRegistryError(
                    f"Registry {self._shown()!r} already belongs to the data repository made at "
                    f"{rows.get(_REPOSITORY_ROOT)!r} (id {owner}); give this repository a registry of its "
                    "own: another database, or for PostgreSQL another registry.namespace."
                )
            if owner is None and self._holdsAnything(connection):
                raise ForeignRegistryError(
                    f"Registry {self._shown()!r} already holds runs or dataset types of a repository "
                    "made before registries recorded their repository; give this repository a "
                    "registry of its own: another database, or for PostgreSQL another registry.namespace."
                )
            if owner is None:
                connection.execute(
                    sa.insert(table),
                    [
                        {"name": _REPOSITORY_ID, "value": repositoryId},
                        {"name": _REPOSITORY_ROOT, "value": where},
                    ],
                )

    @staticmethod
    def _holdsAnything(connection: sa.Connection) -> bool:
        for table in (schema.runTable, schema.datasetTypeTable):
            if connection.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first():
                return True
        return False

    def checkOwner(self, repositoryId: str, where: str) -> None:
        """Check that this registry belongs to the repository ``repositoryId`` at ``where``.

        Raises
        ------
        ForeignRegistryError
            The registry belongs to another repository, or to none.
        """
        owner = self.getRepositoryId()
        if owner != repositoryId:
            whose = f"repository id {owner}" if owner else "no repository"
            raise ForeignRegistryError(
                f"Data repository {where!r} (id {repositoryId}) names registry {self._shown()!r}, which "
                f"belongs to {whose}; its butler.yaml points at the wrong registry.db (or namespace)."
            )

    def _shown(self) -> str:
        shown = self.url.render_as_string(hide_password=True)
        return f"{shown} (namespace {self.namespace!r})" if self.namespace else shown

    # -- life cycle --

    def close(self) -> None:
        """Close every database connection; the registry must not be used afterwards."""
        self._db.dispose()

    def __enter__(self) -> SqlRegistry:
        """Return this registry, to be closed when the ``with`` block ends."""
        return self

    def __exit__(
        self, excType: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the registry (`close`) when the ``with`` block ends, whether or not it raised."""
        self.close()

    def __repr__(self) -> str:
        """Show the database URL (password hidden) and the namespace, if any."""
        where = f", namespace={self.namespace!r}" if self.namespace else ""
        return f"SqlRegistry({self.url.render_as_string(hide_password=True)!r}{where})"

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group registry calls: if the block raises, none of them takes effect.

        Nested blocks are SAVEPOINTs. Calls from other threads are not part of the transaction.
        On SQLite the transaction holds the write lock until it ends, so keep it short.
        """
        with self._db.transaction():
            yield

    # -- where datasets are stored: the DatasetLocationRegistry protocol --

    def recordsDatabase(self) -> ConnectionManager:
        """Return the registry's connections, for a datastore to keep its own records table in.

        A datastore's writes through it join this thread's registry `transaction`, so a
        dataset's row, its location and the datastore's records are committed together.
        """
        return self._db

    def addDatasetLocations(self, datastoreName: str, refs: Iterable[DatasetRef]) -> None:
        """Record that datastore ``datastoreName`` holds ``refs`` (already-recorded ones are fine).

        Raises
        ------
        MissingDatasetError
            A ref is not a registered dataset.
        """
        ids = list(dict.fromkeys(ref.id for ref in refs))
        if not ids:
            return
        rows = [{"datasetId": i, "datastoreName": datastoreName} for i in ids]
        try:
            with self._db.write(atomic=len(rows) == 1) as connection:
                self._db.insertRows(connection, self._insertLocations, rows)
        except sa.exc.IntegrityError as exc:
            raise self._explainMissing(ids, datastoreName, exc) from exc

    def _explainMissing(self, ids: list[uuid.UUID], datastoreName: str, exc: Exception) -> RegistryError:
        table = schema.datasetTable
        with self._db.read() as connection:
            for chunk in chunks(ids):
                known = set(connection.execute(sa.select(table.c.id).where(table.c.id.in_(chunk))).scalars())
                missing = [i for i in chunk if i not in known]
                if missing:
                    return MissingDatasetError(
                        f"Datastore {datastoreName!r} cannot record dataset {missing[0]}: no dataset with "
                        "that id is registered; add it to the registry first."
                    )
        return RegistryError(f"Could not record locations in {datastoreName!r}: {exc}")

    def removeDatasetLocations(self, datastoreName: str, refs: Iterable[DatasetRef]) -> None:
        """Record that datastore ``datastoreName`` no longer holds ``refs``."""
        ids = list(dict.fromkeys(ref.id for ref in refs))
        if not ids:
            return
        if not self._db.inTransaction:
            # Look before taking the write lock: undoing a put whose registry transaction has
            # already rolled back (and most evictions) has nothing to remove. A caller that
            # holds a lock of its own while telling the registry (a datastore keeping its
            # notifications in order) then never waits here for another thread's transaction.
            with self._db.read() as connection:
                held = {
                    ident
                    for chunk in chunks(ids)
                    for ident in connection.execute(
                        _HELD_LOCATIONS, {"datastoreName": datastoreName, "ids": list(chunk)}
                    ).scalars()
                }
            ids = [ident for ident in ids if ident in held]
            if not ids:
                return
        with self._db.write(atomic=len(ids) <= CHUNK) as connection:
            for chunk in chunks(ids):
                connection.execute(_REMOVE_LOCATIONS, {"datastoreName": datastoreName, "ids": list(chunk)})

    def getDatasetLocations(self, ref: DatasetRef) -> set[str]:
        """Return the names of the datastores that hold ``ref``."""
        with self._db.read() as connection:
            return set(connection.execute(_GET_LOCATIONS, {"id": ref.id}).scalars())

    # -- dimension records --

    @property
    def dimensions(self) -> DimensionUniverse:
        """The registry's dimension universe."""
        return self.universe

    def insertDimensionData(
        self, element: str, *records: Mapping[str, Any] | Iterable[Mapping[str, Any]]
    ) -> None:
        """Insert records of dimension ``element`` (mappings of key, implied and field values), all or none.

        ``registry.insertDimensionData("visit", {"instrument": "HSC", "visit": 1, "band": "r"})``;
        a list of records may be given instead. A timespan is a ``(begin, end)`` pair of datetimes.

        Raises
        ------
        DataIdError
            ``element`` is not a dimension, or a record has an unknown field, lacks a key or
            has a value of the wrong type.
        ConflictingRecordError
            A record with one of these keys exists.
        """
        rows: list[Mapping[str, Any]] = []
        for item in records:
            if isinstance(item, Mapping | DimensionRecord):
                rows.append(item)  # type: ignore[arg-type]
            else:
                rows.extend(item)
        self._dimensionRecords.insert(element, rows)

    def syncDimensionData(
        self, element: str, record: Mapping[str, Any] | DimensionRecord, update: bool = False
    ) -> bool:
        """Insert ``record`` unless an identical one exists; return `True` if it was written.

        Raises
        ------
        DataIdError
            As for `insertDimensionData`.
        ConflictingRecordError
            A record with this key and other values exists, and ``update`` is false.
        """
        return self._dimensionRecords.sync(element, record, update)

    def queryDimensionRecords(
        self,
        element: str,
        where: str | None = None,
        *,
        bind: Mapping[str, Any] | None = None,
        dataId: Mapping[str, Any] | None = None,
    ) -> list[DimensionRecord]:
        """Return the records of ``element`` matching ``where`` (e.g. ``"band = 'r'"``) and ``dataId``.

        Raises
        ------
        DataIdError
            ``element`` is not a dimension, or ``dataId`` names something its records lack.
        InvalidQueryError
            ``where`` does not parse or names a field the records do not have.
        """
        return self._dimensionRecords.query(element, where, bind, dataId)
