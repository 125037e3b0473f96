"""SqlRegistry: the SQL catalogue of dataset types, runs, datasets and their locations.

Built on SQLAlchemy 2 Core. SQLite (a file in the repository) is the default; PostgreSQL is
for registries shared by many processes and machines. The tables are in
`databutler.registry.schema`, the engines in `databutler.registry.databases`, and connection
and transaction handling in `databutler.registry.connections`.

Consistency does not rest on this process checking first: one dataset per (type, data ID, run)
is a UNIQUE constraint, so two processes racing to add the same dataset get one row and one
`ConflictingDatasetError`, whichever database is used.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from ..config import Config
from ..dataset_ref import DatasetRef
from ..dataset_type import DatasetType
from ..exceptions import (
    ConfigError,
    ConflictingDatasetError,
    MissingDatasetError,
    MissingRegistryError,
    MissingRunError,
    RegistryError,
)
from ..storage_class import StorageClassFactory
from . import schema
from .connections import ConnectionManager
from .data_ids import decodeDataId, dimensionRows, encodeDataId, parseWhere, whereConditions
from .databases import ROOT_PLACEHOLDER, RegistryConfig, isSqliteUrl, makeEngine, parseUrl, sqliteFile
from .types_runs import DatasetTypesAndRuns

__all__ = ["SqlRegistry"]

_CHUNK = 500
"""Most values bound in one IN (...) list."""


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _toUuid(value: uuid.UUID | str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise TypeError(f"Dataset id {value!r} is not a UUID.") from None


def _sortKey(dataId: Mapping[str, Any]) -> tuple[tuple[bool, Any], ...]:
    return tuple((isinstance(v, str), v) for v in dataId.values())


class SqlRegistry(DatasetTypesAndRuns):
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
        SQLite only: seconds a writer waits for another writer's lock.

    Raises
    ------
    ConfigError
        ``url`` is not a SQLite or PostgreSQL URL, or ``namespace`` is given for SQLite.
    MissingRegistryError
        ``create`` is false and the database does not exist or holds no registry.
    RegistryError
        The database cannot be reached, or its schema version is not this code's.

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
    ) -> None:
        self.url = parseUrl(url)
        self.namespace = namespace
        self.storageClassFactory = storageClassFactory or StorageClassFactory.fromDefaults()
        self.isSqlite = isSqliteUrl(self.url)
        shown = self.url.render_as_string(hide_password=True)
        if self.isSqlite and namespace:
            raise ConfigError(f"Registry {shown!r}: namespace is for PostgreSQL, not SQLite.")
        path = sqliteFile(self.url) if self.isSqlite else None
        if path is not None and not create and not path.exists():
            raise MissingRegistryError(
                f"No registry database at {str(path)!r}; create one with create=True "
                "(Butler.makeRepo or `databutler create`)."
            )
        if path is not None and create:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = ConnectionManager(makeEngine(self.url, busyTimeout=busyTimeout), namespace)
        try:
            if create:
                self._createSchema()
            self._checkSchema(shown)
        except sa.exc.OperationalError as exc:
            self._db.dispose()
            raise RegistryError(f"Could not open registry {shown!r}: {exc.orig or exc}") from exc
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
    ) -> SqlRegistry:
        """Open (or with ``create``, create) the registry a configuration describes.

        Parameters
        ----------
        config : Config, mapping, str or path-like
            A registry or full repository configuration; its ``registry`` section is used,
            over the defaults in ``configs/registry.yaml``.
        root : str or path-like, optional
            The repository root, put in place of ``<butlerRoot>`` in ``registry.db``.
        create, storageClassFactory
            As for `SqlRegistry`.

        Raises
        ------
        ConfigError
            ``registry.db`` is missing or mentions ``<butlerRoot>`` and no ``root`` is given.
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
        )

    def _createSchema(self) -> None:
        if self.namespace:
            with self._db.baseEngine.begin() as connection:
                connection.execute(sa.schema.CreateSchema(self.namespace, if_not_exists=True))
        with self._db.write() as connection:
            schema.metadata.create_all(connection)
            connection.execute(
                self._insert(schema.attributeTable)
                .values(name="schemaVersion", value=schema.SCHEMA_VERSION)
                .on_conflict_do_nothing(index_elements=[schema.attributeTable.c.name])
            )

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

    # -- life cycle --

    def close(self) -> None:
        """Close every database connection; the registry must not be used afterwards."""
        self._db.dispose()

    def __enter__(self) -> SqlRegistry:
        return self

    def __exit__(
        self, excType: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
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

    # -- datasets --

    def addDataset(
        self,
        datasetTypeOrName: DatasetType | str,
        dataId: Mapping[str, Any] | None,
        run: str,
        id: uuid.UUID | str | None = None,
    ) -> DatasetRef:
        """Add one dataset to ``run`` and return its ref.

        Parameters
        ----------
        datasetTypeOrName : DatasetType or str
            A registered (parent) dataset type, or its name.
        dataId : mapping
            One int or str value for each dimension of the dataset type.
        run : str
            A registered run.
        id : uuid.UUID or str, optional
            The dataset's id; a new random UUID by default.

        Raises
        ------
        MissingDatasetTypeError
            The dataset type is not registered.
        DatasetTypeConflictError
            A DatasetType is given that differs from the registered one of that name.
        DatasetTypeError
            The dataset type is a component (add its parent instead).
        MissingRunError
            ``run`` is not registered.
        DataIdError
            The data ID does not match the dimensions, or a value cannot be stored.
        ConflictingDatasetError
            The run already holds a dataset of this type and data ID, or the id is taken.
        """
        ids = None if id is None else [id]
        return self.addDatasets(datasetTypeOrName, [dataId], run, ids=ids)[0]

    def addDatasets(
        self,
        datasetTypeOrName: DatasetType | str,
        dataIds: Iterable[Mapping[str, Any] | None],
        run: str,
        ids: Iterable[uuid.UUID | str] | None = None,
    ) -> list[DatasetRef]:
        """Add datasets of one type to ``run``, all or none, and return their refs.

        Parameters
        ----------
        datasetTypeOrName, run
            As for `addDataset`.
        dataIds : iterable of mapping
            One data ID per dataset.
        ids : iterable of uuid.UUID or str, optional
            One id per data ID; new random UUIDs by default.

        Raises
        ------
        MissingDatasetTypeError, DatasetTypeConflictError, DatasetTypeError, MissingRunError, DataIdError
            As for `addDataset`.
        ConflictingDatasetError
            A data ID is given twice, is already in the run, or an id is taken.
        ValueError
            ``ids`` and ``dataIds`` differ in length.
        """
        typeId, datasetType = self._resolveParentType(datasetTypeOrName, "add")
        dataIdList = list(dataIds)
        idList = [uuid.uuid4() for _ in dataIdList] if ids is None else [_toUuid(i) for i in ids]
        if len(idList) != len(dataIdList):
            raise ValueError(f"addDatasets got {len(dataIdList)} data IDs but {len(idList)} ids.")
        runId = self._runId(run)
        refs = []
        encoded = []
        for dataId, ident in zip(dataIdList, idList, strict=True):
            normalized, text = encodeDataId(datasetType, dataId)
            refs.append(DatasetRef._trusted(datasetType, normalized, ident, run))
            encoded.append(text)
        self._insertDatasets(typeId, runId, refs, encoded)
        return refs

    def addDatasetRefs(self, refs: Iterable[DatasetRef]) -> list[DatasetRef]:
        """Add existing refs with their own ids and runs, all or none (e.g. to copy a repository).

        Raises
        ------
        MissingDatasetTypeError, DatasetTypeConflictError, DataIdError, ConflictingDatasetError
            As for `addDatasets`.
        DatasetTypeError
            A ref is a component ref.
        MissingRunError
            A ref has no run, or its run is not registered.
        """
        refList = list(refs)
        groups: dict[tuple[str, str], list[DatasetRef]] = {}
        for ref in refList:
            if ref.run is None:
                raise MissingRunError(f"Dataset {ref} has no run; the registry keeps every dataset in a run.")
            groups.setdefault((ref.datasetType.name, ref.run), []).append(ref)
        with self._db.write():
            for (_, run), group in groups.items():
                typeId, datasetType = self._resolveParentType(group[0].datasetType, "add")
                encoded = [encodeDataId(datasetType, ref.dataId)[1] for ref in group]
                self._insertDatasets(typeId, self._runId(run), group, encoded)
        return refList

    def _insertDatasets(self, typeId: int, runId: int, refs: list[DatasetRef], encoded: list[str]) -> None:
        seen: dict[str, DatasetRef] = {}
        for ref, text in zip(refs, encoded, strict=True):
            if text in seen:
                raise ConflictingDatasetError(
                    f"Dataset {ref.datasetType.name!r} with data ID {dict(ref.dataId)!r} is given twice "
                    f"for run {ref.run!r}; one dataset per type, data ID and run."
                )
            seen[text] = ref
        rows = [
            {"id": ref.id, "datasetTypeId": typeId, "runId": runId, "dataId": text}
            for ref, text in zip(refs, encoded, strict=True)
        ]
        dimensions = [row for ref in refs for row in dimensionRows(ref.id, ref.dataId)]
        try:
            with self._db.write() as connection:
                connection.execute(sa.insert(schema.datasetTable), rows)
                if dimensions:
                    connection.execute(sa.insert(schema.datasetDimensionTable), dimensions)
        except sa.exc.IntegrityError as exc:
            raise self._explainConflict(typeId, runId, seen, exc) from exc

    def _explainConflict(
        self, typeId: int, runId: int, byDataId: dict[str, DatasetRef], exc: sa.exc.IntegrityError
    ) -> RegistryError:
        table = schema.datasetTable
        texts = list(byDataId)
        with self._db.read() as connection:
            for chunk in _chunks(texts):
                row = connection.execute(
                    sa.select(table.c.id, table.c.dataId).where(
                        table.c.datasetTypeId == typeId, table.c.runId == runId, table.c.dataId.in_(chunk)
                    )
                ).first()
                if row is not None:
                    ref = byDataId[row.dataId]
                    return ConflictingDatasetError(
                        f"Dataset {ref.datasetType.name!r} with data ID {dict(ref.dataId)!r} already exists "
                        f"in run {ref.run!r} (id {row.id}); remove it first, or use another run."
                    )
            ids = [ref.id for ref in byDataId.values()]
            for chunk in _chunks(ids):
                taken = connection.execute(sa.select(table.c.id).where(table.c.id.in_(chunk))).scalar()
                if taken is not None:
                    existing = self.getDataset(taken)
                    return ConflictingDatasetError(
                        f"A dataset with id {taken} already exists ({existing}); ids must be unique."
                    )
        return RegistryError(f"Could not add datasets: {exc.orig or exc}")

    def findDataset(
        self,
        datasetTypeOrName: DatasetType | str,
        dataId: Mapping[str, Any] | None,
        collections: str | Sequence[str],
    ) -> DatasetRef | None:
        """Return the dataset of this type and data ID in the first of ``collections`` holding one.

        A component type (``"calexp.wcs"``) returns the component ref of the parent dataset.

        Parameters
        ----------
        datasetTypeOrName : DatasetType or str
            The dataset type or its name.
        dataId : mapping
            One value for each dimension.
        collections : str or sequence of str
            A run, or runs searched in order.

        Returns
        -------
        ref : DatasetRef or None
            The ref found, or `None` if no run searched holds such a dataset.

        Raises
        ------
        MissingDatasetTypeError, DatasetTypeConflictError, DataIdError
            As for `addDataset`.
        UnknownComponentError
            The component is not one of the storage class's.
        MissingRunError
            A collection is not a registered run.
        """
        typeId, datasetType, component = self._resolveDatasetType(datasetTypeOrName)
        normalized, text = encodeDataId(datasetType, dataId)
        runs = self._resolveRuns(collections)
        if not runs:
            return None
        table = schema.datasetTable
        statement = sa.select(table.c.id, table.c.runId).where(
            table.c.datasetTypeId == typeId, table.c.dataId == text, table.c.runId.in_(list(runs.values()))
        )
        with self._db.read() as connection:
            found = {row.runId: row.id for row in connection.execute(statement)}
        for name, runId in runs.items():
            if runId in found:
                ref = DatasetRef._trusted(datasetType, normalized, found[runId], name)
                return ref.makeComponentRef(component) if component else ref
        return None

    def queryDatasets(
        self,
        datasetTypeOrName: DatasetType | str,
        collections: str | Sequence[str] | None = None,
        where: Mapping[str, Any] | None = None,
        *,
        findFirst: bool = False,
    ) -> list[DatasetRef]:
        """Return the datasets of one type in ``collections`` whose data IDs match ``where``.

        Parameters
        ----------
        datasetTypeOrName : DatasetType or str
            The dataset type (a component type gives component refs) or its name.
        collections : str or sequence of str, optional
            Runs to search; `None` searches every run.
        where : mapping, optional
            Dimension → a value or a list of values, e.g. ``{"visit": [1, 2], "band": "r"}``.
        findFirst : bool
            Keep, for each data ID, only the dataset in the earliest of ``collections``.

        Returns
        -------
        refs : list of DatasetRef
            Sorted by run (in ``collections`` order, else by name), then by data ID.

        Raises
        ------
        MissingDatasetTypeError, DatasetTypeConflictError, UnknownComponentError, MissingRunError
            As for `findDataset`.
        DataIdError
            ``where`` names a dimension the dataset type does not have, or a bad value.
        """
        typeId, datasetType, component = self._resolveDatasetType(datasetTypeOrName)
        terms = parseWhere(datasetType, where)
        runs = self._resolveRuns(collections) if collections is not None else self._allRuns()
        if not runs:
            return []
        table = schema.datasetTable
        statement = sa.select(table.c.id, table.c.runId, table.c.dataId).where(
            table.c.datasetTypeId == typeId, *whereConditions(terms)
        )
        if collections is not None:
            statement = statement.where(table.c.runId.in_(list(runs.values())))
        with self._db.read() as connection:
            rows = connection.execute(statement).all()
        order = {runId: index for index, runId in enumerate(runs.values())}
        names = {runId: name for name, runId in runs.items()}
        decoded = [(order[row.runId], decodeDataId(row.dataId), row) for row in rows]
        decoded.sort(key=lambda item: (item[0], _sortKey(item[1])))
        refs = []
        seen: set[str] = set()
        for _, dataId, row in decoded:
            if findFirst:
                if row.dataId in seen:
                    continue
                seen.add(row.dataId)
            ref = DatasetRef._trusted(datasetType, dataId, row.id, names[row.runId])
            refs.append(ref.makeComponentRef(component) if component else ref)
        return refs

    def getDataset(self, id: uuid.UUID | str) -> DatasetRef | None:
        """Return the ref of the dataset with this id, or `None` if there is none.

        Raises
        ------
        TypeError
            ``id`` is not a UUID.
        """
        table = schema.datasetTable
        statement = sa.select(table.c.datasetTypeId, table.c.runId, table.c.dataId).where(
            table.c.id == _toUuid(id)
        )
        with self._db.read() as connection:
            row = connection.execute(statement).first()
        if row is None:
            return None
        datasetType = self._datasetTypeById(row.datasetTypeId)
        return DatasetRef._trusted(
            datasetType, decodeDataId(row.dataId), _toUuid(id), self._runName(row.runId)
        )

    def removeDatasets(self, refs: Iterable[DatasetRef]) -> None:
        """Remove datasets, and the record of where they are stored; unknown refs are ignored.

        Only the registry's records go: removing the stored data is the datastore's job (the
        Butler does both in one transaction).
        """
        ids = list(dict.fromkeys(ref.id for ref in refs))
        with self._db.write() as connection:
            for chunk in _chunks(ids):
                for table in (schema.datasetLocationTable, schema.datasetDimensionTable):
                    connection.execute(sa.delete(table).where(table.c.datasetId.in_(chunk)))
                connection.execute(sa.delete(schema.datasetTable).where(schema.datasetTable.c.id.in_(chunk)))

    # -- where datasets are stored: the DatasetLocationRegistry protocol --

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
        table = schema.datasetLocationTable
        statement = self._insert(table).on_conflict_do_nothing(
            index_elements=[table.c.datasetId, table.c.datastoreName]
        )
        try:
            with self._db.write() as connection:
                connection.execute(statement, [{"datasetId": i, "datastoreName": datastoreName} for i in ids])
        except sa.exc.IntegrityError as exc:
            raise self._explainMissing(ids, datastoreName, exc) from exc

    def _explainMissing(self, ids: list[uuid.UUID], datastoreName: str, exc: Exception) -> RegistryError:
        table = schema.datasetTable
        with self._db.read() as connection:
            for chunk in _chunks(ids):
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
        table = schema.datasetLocationTable
        with self._db.write() as connection:
            for chunk in _chunks(ids):
                connection.execute(
                    sa.delete(table).where(
                        table.c.datastoreName == datastoreName, table.c.datasetId.in_(chunk)
                    )
                )

    def getDatasetLocations(self, ref: DatasetRef) -> set[str]:
        """Return the names of the datastores that hold ``ref``."""
        table = schema.datasetLocationTable
        with self._db.read() as connection:
            return set(
                connection.execute(
                    sa.select(table.c.datastoreName).where(table.c.datasetId == ref.id)
                ).scalars()
            )
