"""SqlRegistry: the SQL implementation of `Registry`, built from managers.

Built on SQLAlchemy 2 Core. SQLite (a file in the repository) is the default; PostgreSQL is
for registries shared by many processes and machines. `SqlRegistry` opens (or creates) the
database and holds one manager per group of verbs, each over the same `ConnectionManager`. A
verb a manager implements as it is becomes the manager's method by one line
(``queryRuns = _Verb(Registry.queryRuns).of("datasetTypes", DatasetTypeManager.queryRuns)``),
so its signature and documentation are written once, in `Registry`; the few verbs that take
several managers are methods here. The managers:

- ``datasetTypes`` (`types_runs.DatasetTypeManager`): dataset types and runs;
- ``datasets`` (`datasets.DatasetManager`): adding, finding, querying and removing datasets;
- ``collections`` (`collections.ChainedCollectionManager`, held by ``datasetTypes``, which
  expands chains): CHAINED collections;
- ``locations`` (`locations.LocationManager`): which datastores hold which datasets;
- ``recordStorage`` (`records.SqlRecordStorage`): the datastores' own records tables.

The other modules: `schema` (the registry's tables, and how data IDs are stored), `databases`
(the URL, the engine and its SQLite settings), `connections` (transactions, SAVEPOINTs, the id
cache) and `data_ids`. A new group of verbs (dimensions, collections) is a new manager built in
`SqlRegistry.__init__` and one `_Verb` line here for each of its verbs.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar, overload

import sqlalchemy as sa
from sqlalchemy.engine import URL
from typing_extensions import override

from ..config import Config
from ..dimensions import DimensionRecord, DimensionUniverse
from ..exceptions import (
    CollectionError,
    ConfigError,
    DatabaseAccessError,
    ForeignRegistryError,
    MissingRegistryError,
    ReadOnlyRepositoryError,
    RegistryError,
)
from ..storage_class import StorageClassFactory
from . import schema
from .collections import ChainedCollectionManager, CollectionType
from .connections import ConnectionManager, dialectInsert
from .data_id_queries import DataIdQueryManager
from .databases import ROOT_PLACEHOLDER, RegistryConfig, isSqliteUrl, parseUrl, sqliteFile
from .datasets import DatasetManager
from .dimension_records import DimensionRecordStorage
from .interface import Registry
from .locations import LocationManager
from .records import SqlRecordStorage
from .types_runs import DatasetTypeManager

__all__ = ["SqlRegistry"]

_UNIVERSE_KEY = "dimensionUniverse"

REMOVAL_CHUNK = 1000
"""Datasets removed per transaction by `SqlRegistry.removeRun` and `Butler.removeRuns`."""


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


_REPOSITORY_ID = "repositoryId"
_REPOSITORY_ROOT = "repositoryRoot"


_P = ParamSpec("_P")
_R = TypeVar("_R")


class _Verb(Generic[_P, _R]):
    """A registry verb that one of `SqlRegistry`'s managers implements as it is.

    ``queryRuns = _Verb(Registry.queryRuns).of("datasetTypes", DatasetTypeManager.queryRuns)``
    names the manager and its method once: the signature and the documentation stay with
    `Registry`, and mypy checks that the method takes the verb's arguments and returns its type.
    Read from a registry, the attribute is the manager's bound method, so a call goes straight
    to the manager; read from the class, a function with the verb's name, signature and
    documentation (for `help` and `inspect`).
    """

    def __init__(self, verb: Callable[Concatenate[Any, _P], _R]) -> None:
        self.__doc__ = verb.__doc__
        self._verb = verb
        self._manager = ""
        self._method = ""
        self._unbound: Callable[Concatenate[Any, _P], _R] = verb

    def of(self, manager: str, method: Callable[Concatenate[Any, _P], _R]) -> Self:
        """Return this verb, implemented by ``method`` of the registry's attribute ``manager``."""
        self._manager = manager
        self._method = method.__name__
        return self

    def __set_name__(self, owner: type, name: str) -> None:
        """Check that the attribute is named for its verb and has a manager; make the class's function."""
        if name != self._verb.__name__ or not self._manager:
            raise TypeError(f"{owner.__name__}.{name} must be _Verb(Registry.{name}).of(manager, method).")
        manager, method = self._manager, self._method

        def unbound(registry: Any, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
            result: _R = getattr(getattr(registry, manager), method)(*args, **kwargs)
            return result

        # Not the verb's __dict__: it holds __isabstractmethod__, which would make the class abstract.
        functools.update_wrapper(unbound, self._verb, updated=())
        unbound.__module__ = owner.__module__
        unbound.__qualname__ = f"{owner.__qualname__}.{name}"
        self._unbound = unbound

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> Callable[Concatenate[Any, _P], _R]: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> Callable[_P, _R]: ...
    def __get__(
        self, instance: object | None, owner: type | None = None
    ) -> Callable[Concatenate[Any, _P], _R] | Callable[_P, _R]:
        """Return the manager's bound method (from the class: a function taking the registry first)."""
        if instance is None:
            return self._unbound
        method: Callable[_P, _R] = getattr(getattr(instance, self._manager), self._method)
        return method


def _isWriteable(path: Path) -> bool:
    """Whether this process can write the SQLite database ``path`` and make files beside it."""
    return os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


class SqlRegistry(Registry):
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
        self._db = db = ConnectionManager.fromUrl(
            self.url,
            busyTimeout=busyTimeout,
            namespace=namespace,
            readOnlyWhat=f"registry {shown!r}" if readOnly else None,
            database=repr(shown),
        )
        try:
            if create:
                self._createSchema(_universeFrom(dimensions))
            self._checkSchema(shown)
            self.universe = self._openUniverse(create)
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
        self.dimensionRecords = DimensionRecordStorage(db, self.universe, self.isSqlite)
        self.datasetTypes = DatasetTypeManager(db, self.storageClassFactory, self.universe)
        self.collections = self.datasetTypes.chains
        self.collections.createTables()  # registries made before chains get the tables
        self.datasetTypes.associations.createTables()  # ...and those for TAGGED and CALIBRATION
        self.datasets = DatasetManager(db, self.datasetTypes, namespace, self.dimensionRecords)
        self.locations = LocationManager(db)
        self.dataIdQueries = DataIdQueryManager(db, self.datasetTypes, self.datasets, self.dimensionRecords)
        self._recordStorage = SqlRecordStorage(db)

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
            schema.createAll(connection)
            for name, value in (("schemaVersion", schema.SCHEMA_VERSION), (_UNIVERSE_KEY, universe.toJson())):
                connection.execute(
                    dialectInsert(self._db, schema.attributeTable)
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
                    dialectInsert(self._db, table)
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

    @override
    def getRepositoryId(self) -> str | None:
        table = schema.attributeTable
        with self._db.read() as connection:
            value = connection.execute(
                sa.select(table.c.value).where(table.c.name == _REPOSITORY_ID)
            ).scalar_one_or_none()
        return None if value is None else str(value)

    @override
    def claim(self, repositoryId: str, where: str) -> None:
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

    @override
    def checkOwner(self, repositoryId: str, where: str) -> None:
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

    @override
    def close(self) -> None:
        self._db.dispose()

    def __repr__(self) -> str:
        """Show the database URL (password hidden) and the namespace, if any."""
        where = f", namespace={self.namespace!r}" if self.namespace else ""
        return f"SqlRegistry({self.url.render_as_string(hide_password=True)!r}{where})"

    @override
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group registry calls (`Registry.transaction`); nested blocks are SAVEPOINTs.

        On SQLite the transaction holds the write lock until it ends, so keep it short.
        """
        with self._db.transaction():
            yield

    @property
    @override
    def recordStorage(self) -> SqlRecordStorage:
        return self._recordStorage

    @property
    @override
    def dimensions(self) -> DimensionUniverse:
        return self.universe

    # -- the verbs that are one manager's, unchanged --

    registerDatasetType = _Verb(Registry.registerDatasetType).of(
        "datasetTypes", DatasetTypeManager.registerDatasetType
    )
    getDatasetType = _Verb(Registry.getDatasetType).of("datasetTypes", DatasetTypeManager.getDatasetType)
    queryDatasetTypes = _Verb(Registry.queryDatasetTypes).of(
        "datasetTypes", DatasetTypeManager.queryDatasetTypes
    )
    registerRun = _Verb(Registry.registerRun).of("datasetTypes", DatasetTypeManager.registerRun)
    queryRuns = _Verb(Registry.queryRuns).of("datasetTypes", DatasetTypeManager.queryRuns)
    queryCollections = _Verb(Registry.queryCollections).of(
        "datasetTypes", DatasetTypeManager.queryCollections
    )
    getCollectionType = _Verb(Registry.getCollectionType).of(
        "datasetTypes", DatasetTypeManager.getCollectionType
    )
    registerCollection = _Verb(Registry.registerCollection).of(
        "datasetTypes", DatasetTypeManager.registerCollection
    )

    setCollectionChain = _Verb(Registry.setCollectionChain).of(
        "collections", ChainedCollectionManager.setCollectionChain
    )
    getCollectionChain = _Verb(Registry.getCollectionChain).of(
        "collections", ChainedCollectionManager.getCollectionChain
    )
    prependCollectionChain = _Verb(Registry.prependCollectionChain).of(
        "collections", ChainedCollectionManager.prependCollectionChain
    )
    extendCollectionChain = _Verb(Registry.extendCollectionChain).of(
        "collections", ChainedCollectionManager.extendCollectionChain
    )
    removeFromCollectionChain = _Verb(Registry.removeFromCollectionChain).of(
        "collections", ChainedCollectionManager.removeFromCollectionChain
    )

    addDatasets = _Verb(Registry.addDatasets).of("datasets", DatasetManager.addDatasets)
    addDatasetRefs = _Verb(Registry.addDatasetRefs).of("datasets", DatasetManager.addDatasetRefs)
    findDataset = _Verb(Registry.findDataset).of("datasets", DatasetManager.findDataset)
    queryDatasets = _Verb(Registry.queryDatasets).of("datasets", DatasetManager.queryDatasets)
    countDatasets = _Verb(Registry.countDatasets).of("datasets", DatasetManager.countDatasets)
    explainQuery = _Verb(DatasetManager.explainQuery).of("datasets", DatasetManager.explainQuery)
    getDataset = _Verb(Registry.getDataset).of("datasets", DatasetManager.getDataset)
    getDatasets = _Verb(Registry.getDatasets).of("datasets", DatasetManager.getDatasets)
    removeDatasets = _Verb(Registry.removeDatasets).of("datasets", DatasetManager.removeDatasets)
    addRemovalListener = _Verb(Registry.addRemovalListener).of("datasets", DatasetManager.addRemovalListener)
    someDatasetsInRun = _Verb(Registry.someDatasetsInRun).of("datasets", DatasetManager.someDatasetsInRun)
    associate = _Verb(Registry.associate).of("datasets", DatasetManager.associate)
    disassociate = _Verb(Registry.disassociate).of("datasets", DatasetManager.disassociate)
    certify = _Verb(Registry.certify).of("datasets", DatasetManager.certify)
    decertify = _Verb(Registry.decertify).of("datasets", DatasetManager.decertify)
    queryCertifications = _Verb(Registry.queryCertifications).of(
        "datasets", DatasetManager.queryCertifications
    )

    queryDataIds = _Verb(Registry.queryDataIds).of("dataIdQueries", DataIdQueryManager.queryDataIds)
    explainDatasetQuery = _Verb(Registry.explainDatasetQuery).of(
        "dataIdQueries", DataIdQueryManager.explainDatasetQuery
    )

    addDatasetLocations = _Verb(Registry.addDatasetLocations).of(
        "locations", LocationManager.addDatasetLocations
    )
    removeDatasetLocations = _Verb(Registry.removeDatasetLocations).of(
        "locations", LocationManager.removeDatasetLocations
    )
    getDatasetLocations = _Verb(Registry.getDatasetLocations).of(
        "locations", LocationManager.getDatasetLocations
    )

    syncDimensionData = _Verb(Registry.syncDimensionData).of("dimensionRecords", DimensionRecordStorage.sync)
    queryDimensionRecords = _Verb(Registry.queryDimensionRecords).of(
        "dimensionRecords", DimensionRecordStorage.query
    )

    # -- the verbs that take more than one manager --

    @override
    def insertDimensionData(
        self, element: str, *records: Mapping[str, Any] | Iterable[Mapping[str, Any]]
    ) -> None:
        rows: list[Mapping[str, Any]] = []
        for item in records:
            if isinstance(item, Mapping | DimensionRecord):
                rows.append(item)  # type: ignore[arg-type]
            else:
                rows.extend(item)
        self.dimensionRecords.insert(element, rows)

    @override
    def removeCollection(self, name: str) -> None:
        kind = self.datasetTypes.getCollectionType(name)
        if kind == CollectionType.RUN:
            raise CollectionError(
                f"{name!r} is a RUN collection, which holds its datasets; remove it with removeRuns "
                "(Butler.removeRuns or `databutler remove-runs`, which also delete the files)."
            )
        parents = self.collections.parentsOf(name)
        if parents:
            raise CollectionError(
                f"Cannot remove {kind.value} collection {name!r}: chain(s) {parents} list it; take it out "
                "with removeFromCollectionChain first."
            )
        if kind == CollectionType.CHAINED:
            self.collections.removeChain(name)
        else:
            found = self.datasetTypes.associations.lookup(name)
            assert found is not None
            self.datasetTypes.associations.remove(found[0])

    @override
    def removeRun(self, name: str) -> int:
        self.datasetTypes.runId(name)
        parents = self.collections.parentsOf(name)
        if parents:
            raise CollectionError(
                f"Cannot remove run {name!r}: chain(s) {parents} list it; take it out with "
                "removeFromCollectionChain (or `databutler collection-chain --mode remove`) first."
            )
        removed = 0
        while True:
            chunk = self.datasets.someDatasetsInRun(name, REMOVAL_CHUNK)
            if not chunk:
                break
            self.datasets.removeDatasets(chunk)
            removed += len(chunk)

        def leftInRun(runId: int) -> int:  # in the run's removal transaction
            left = len(self.datasets.someDatasetsInRun(name, 1))
            if not left:  # another registry's cached id of the run goes stale: tell it
                self.datasets.noteRunRemoval()
            return left

        self.datasetTypes.removeRun(name, leftInRun)
        return removed

    @override
    def removeDatasetType(self, name: str) -> bool:
        return self.datasetTypes.removeDatasetType(name, self.datasets.countByType)
