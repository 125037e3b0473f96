"""The dataset-type and run half of `SqlRegistry`.

Both are small, append-only tables: nothing ever deletes a dataset type or a run, so their
ids are cached (see `ConnectionManager.cacheGet`) and most dataset calls cost no lookup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ..dataset_ref import checkRunName
from ..dataset_type import DatasetType
from ..dimensions import DimensionUniverse
from ..exceptions import (
    ArgumentTypeError,
    DatasetTypeConflictError,
    DatasetTypeError,
    MissingDatasetTypeError,
    MissingRunError,
    RegistryError,
    UnknownStorageClassError,
)
from ..storage_class import StorageClassFactory
from . import schema
from .collections import CollectionType, collectionTypes
from .connections import ConnectionManager
from .dimension_records import DimensionRecordStorage

__all__ = ["DatasetTypesAndRuns"]

_LISTED = 10


def _describe(name: str, dimensions: Sequence[str], storageClassName: str) -> str:
    return f"DatasetType({name!r}, dimensions={list(dimensions)}, storageClass={storageClassName!r})"


def _listNames(names: Sequence[str]) -> str:
    if not names:
        return "none"
    shown = ", ".join(repr(n) for n in names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")


class DatasetTypesAndRuns:
    """Registers and looks up dataset types and runs; `SqlRegistry` builds on it."""

    _db: ConnectionManager
    storageClassFactory: StorageClassFactory
    isSqlite: bool
    namespace: str | None
    _insertedSinceAnalyze: int
    _analyzeEvery: int
    universe: DimensionUniverse
    _dimensionRecords: DimensionRecordStorage

    def _coerceDataId(self, datasetType: DatasetType, dataId: Any) -> Any:
        """Return ``dataId`` with its values coerced to their dimensions' types (``"101"`` → 101).

        Raises
        ------
        DataIdError
            A value cannot be read as its dimension's type; the message names both.
        """
        if not isinstance(dataId, Mapping):
            return dataId  # encodeDataId says what is wrong
        return self.universe.coerceDataId(dataId, f"Data ID of {datasetType.name!r}:")

    def _coerceWhere(self, datasetType: DatasetType, where: Any) -> Any:
        """Return a ``where`` mapping with its values coerced as in `_coerceDataId`."""
        if not isinstance(where, Mapping):
            return where
        out: dict[str, Any] = {}
        for key, given in where.items():
            if key not in self.universe:
                out[key] = given
            elif isinstance(given, list | tuple | set | frozenset):
                out[key] = [
                    self.universe.coerceValue(key, v, f"where of {datasetType.name!r}:") for v in given
                ]
            else:
                out[key] = self.universe.coerceValue(key, given, f"where of {datasetType.name!r}:")
        return out

    def _insert(self, table: sa.Table) -> Any:
        """Return an INSERT for ``table`` with this dialect's ``on_conflict_do_nothing``."""
        return sqlite.insert(table) if self.isSqlite else postgresql.insert(table)

    # -- dataset types --

    def registerDatasetType(self, datasetType: DatasetType) -> bool:
        """Register ``datasetType``; return `True` if it is new, `False` if already registered.

        Raises
        ------
        DatasetTypeConflictError
            A different dataset type of that name is registered; both are named.
        DatasetTypeError
            ``datasetType`` is a component type: register its parent.
        UnknownStorageClassError
            The registry's storage class factory does not know the storage class, so it could
            not read the dataset type back.
        DataIdError
            A dimension of ``datasetType`` is not in the registry's dimension universe.
        TypeError
            ``datasetType`` is not a DatasetType.
        """
        if not isinstance(datasetType, DatasetType):
            raise ArgumentTypeError(
                f"registerDatasetType needs a DatasetType, not {type(datasetType).__name__}."
            )
        if datasetType.isComponent():
            raise DatasetTypeError(
                f"Dataset type {datasetType.name!r} is a component; register its parent "
                f"{datasetType.nameAndComponent()[0]!r} and its components come with it."
            )
        self.universe.checkDimensions(datasetType.dimensions, f"Dataset type {datasetType.name!r}")
        storageClassName = datasetType.storageClass.name
        if storageClassName not in self.storageClassFactory:
            raise UnknownStorageClassError(
                f"Cannot register {datasetType!r}: the registry's storage class factory has no "
                f"{storageClassName!r}; define it in the repository's storageClasses config."
            )
        table = schema.datasetTypeTable
        statement = (
            self._insert(table)
            .values(
                name=datasetType.name,
                dimensions=",".join(datasetType.dimensions),
                storageClass=storageClassName,
            )
            .on_conflict_do_nothing(index_elements=[table.c.name])
            .returning(table.c.id)
        )
        with self._db.write(atomic=True) as connection:
            inserted = connection.execute(statement).first() is not None
            found = self._lookupDatasetType(datasetType.name)
        if found is None:
            raise RegistryError(f"Dataset type {datasetType.name!r} vanished while being registered.")
        existing = found[1]
        if existing.dimensions != datasetType.dimensions or existing.storageClass.name != storageClassName:
            raise DatasetTypeConflictError(
                f"Dataset type {datasetType.name!r} is already registered as "
                f"{_describe(existing.name, existing.dimensions, existing.storageClass.name)}; cannot "
                f"register {_describe(datasetType.name, datasetType.dimensions, storageClassName)}. "
                "Use another name for the new definition."
            )
        return inserted

    def _lookupDatasetType(self, name: str) -> tuple[int, DatasetType] | None:
        key = ("datasetType", name)
        cached = cast("tuple[int, DatasetType] | None", self._db.cacheGet(key))
        if cached is not None:
            return cached
        table = schema.datasetTypeTable
        with self._db.read() as connection:
            row = connection.execute(sa.select(table).where(table.c.name == name)).first()
        if row is None:
            return None
        found = (row.id, self._makeDatasetType(row))
        self._db.cachePut(key, found)
        self._db.cachePut(("datasetTypeId", row.id), found[1])
        return found

    def _makeDatasetType(self, row: Any) -> DatasetType:
        dimensions = tuple(row.dimensions.split(",")) if row.dimensions else ()
        storageClass = self.storageClassFactory.getStorageClass(row.storageClass)
        return DatasetType(row.name, dimensions, storageClass, storageClassFactory=self.storageClassFactory)

    def _datasetTypeById(self, typeId: int) -> DatasetType:
        cached = cast("DatasetType | None", self._db.cacheGet(("datasetTypeId", typeId)))
        if cached is not None:
            return cached
        table = schema.datasetTypeTable
        with self._db.read() as connection:
            row = connection.execute(sa.select(table).where(table.c.id == typeId)).one()
        datasetType = self._makeDatasetType(row)
        self._db.cachePut(("datasetTypeId", typeId), datasetType)
        return datasetType

    def _requireDatasetType(self, name: str) -> tuple[int, DatasetType]:
        found = self._lookupDatasetType(name)
        if found is None:
            known = [t.name for t in self.queryDatasetTypes()]
            raise MissingDatasetTypeError(
                f"Dataset type {name!r} is not registered (registered: {_listNames(known)}); "
                "register it with registerDatasetType first."
            )
        return found

    def getDatasetType(self, name: str) -> DatasetType:
        """Return the registered dataset type ``name``; ``"parent.component"`` names a component.

        Raises
        ------
        MissingDatasetTypeError
            No dataset type of that (parent) name is registered.
        UnknownComponentError
            The parent's storage class has no such component.
        """
        parentName, _, component = name.partition(".")
        parent = self._requireDatasetType(parentName)[1]
        return parent.makeComponentDatasetType(component) if component else parent

    def queryDatasetTypes(self) -> list[DatasetType]:
        """Return every registered dataset type (parents only), sorted by name."""
        table = schema.datasetTypeTable
        with self._db.read() as connection:
            rows = connection.execute(sa.select(table).order_by(table.c.name)).all()
        return [self._makeDatasetType(row) for row in rows]

    def _resolveDatasetType(
        self, datasetTypeOrName: DatasetType | str
    ) -> tuple[int, DatasetType, str | None]:
        """Return the parent's id, the parent type and the component name (or `None`)."""
        if isinstance(datasetTypeOrName, str):
            given = None
            parentName, _, component = datasetTypeOrName.partition(".")
        elif isinstance(datasetTypeOrName, DatasetType):
            given = datasetTypeOrName
            parentName, componentOrNone = given.nameAndComponent()
            component = componentOrNone or ""
        else:
            raise ArgumentTypeError(
                f"Expected a DatasetType or its name, not {type(datasetTypeOrName).__name__}."
            )
        typeId, parent = self._requireDatasetType(parentName)
        resolved = parent.makeComponentDatasetType(component) if component else parent
        if given is not None and (
            given.dimensions != resolved.dimensions or given.storageClass.name != resolved.storageClass.name
        ):
            raise DatasetTypeConflictError(
                f"{_describe(given.name, given.dimensions, given.storageClass.name)} differs from the "
                f"registered {_describe(resolved.name, resolved.dimensions, resolved.storageClass.name)}."
            )
        return typeId, parent, component or None

    def _resolveParentType(self, datasetTypeOrName: DatasetType | str, verb: str) -> tuple[int, DatasetType]:
        typeId, parent, component = self._resolveDatasetType(datasetTypeOrName)
        if component is not None:
            raise DatasetTypeError(
                f"Cannot {verb} datasets of component type {parent.name}.{component!s}: components "
                f"are stored with their parent; {verb} a {parent.name!r} dataset instead."
            )
        return typeId, parent

    # -- runs --

    def registerRun(self, name: str) -> bool:
        """Register the run ``name``; return `True` if it is new, `False` if it already exists.

        Raises
        ------
        RunNameError
            ``name`` is not a non-empty str of at most 128 characters of storable text (also a
            TypeError and a ValueError).
        """
        checkRunName(name)
        table = schema.runTable
        statement = (
            self._insert(table)
            .values(name=name)
            .on_conflict_do_nothing(index_elements=[table.c.name])
            .returning(table.c.id)
        )
        with self._db.write(atomic=True) as connection:
            return connection.execute(statement).first() is not None

    def queryCollections(self, types: str | Sequence[str] | None = None) -> list[str]:
        """Return the names of the collections of the given types (every type by default), sorted.

        Raises
        ------
        InvalidQueryError
            A type is not a collection type.
        """
        wanted = collectionTypes(types)
        names: list[str] = []
        if CollectionType.RUN in wanted:
            names += self._allRuns()
        return sorted(names)

    def getCollectionType(self, name: str) -> CollectionType:
        """Return the type of collection ``name``.

        Raises
        ------
        MissingRunError
            No collection of that name exists.
        """
        self._runId(name)
        return CollectionType.RUN

    def queryRuns(self) -> list[str]:
        """Return the names of every registered run, sorted."""
        return list(self._allRuns())

    def _allRuns(self) -> dict[str, int]:
        table = schema.runTable
        with self._db.read() as connection:
            rows = connection.execute(sa.select(table.c.name, table.c.id).order_by(table.c.name)).all()
        return {row.name: row.id for row in rows}

    def _runId(self, name: str) -> int:
        key = ("run", name)
        cached = cast("int | None", self._db.cacheGet(key))
        if cached is not None:
            return cached
        checkRunName(name)
        table = schema.runTable
        with self._db.read() as connection:
            runId = connection.execute(sa.select(table.c.id).where(table.c.name == name)).scalar()
        if runId is None:
            raise MissingRunError(
                f"Run {name!r} is not registered (registered: {_listNames(self.queryRuns())}); "
                "register it with registerRun first."
            )
        self._db.cachePut(key, runId)
        self._db.cachePut(("runId", runId), name)
        return int(runId)

    def _runName(self, runId: int) -> str:
        cached = cast("str | None", self._db.cacheGet(("runId", runId)))
        if cached is not None:
            return cached
        table = schema.runTable
        with self._db.read() as connection:
            name = connection.execute(sa.select(table.c.name).where(table.c.id == runId)).scalar_one()
        self._db.cachePut(("runId", runId), name)
        return str(name)

    def _resolveRuns(self, collections: str | Sequence[str]) -> dict[str, int]:
        """Return run name → id for ``collections``, in search order.

        Raises
        ------
        MissingRunError
            A name is not a registered run.
        TypeError
            ``collections`` is `None`.
        """
        if collections is None:
            raise ArgumentTypeError("No collections to search: give a run name or a list of run names.")
        names = [collections] if isinstance(collections, str) else list(collections)
        return {name: self._runId(name) for name in names}
