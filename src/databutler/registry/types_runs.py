"""`DatasetTypeManager`: the dataset types and runs of a `SqlRegistry`.

Both are small, append-only tables: nothing ever deletes a dataset type or a run, so their
ids are cached (see `ConnectionManager.cacheGet`) and most dataset calls cost no lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

import sqlalchemy as sa

from ..dataset_ref import checkRunName
from ..dataset_type import DatasetType
from ..dimensions import DimensionUniverse
from ..exceptions import (
    ArgumentTypeError,
    CollectionError,
    DatasetTypeConflictError,
    DatasetTypeError,
    MissingDatasetTypeError,
    MissingRunError,
    RegistryError,
    UnknownStorageClassError,
)
from ..storage_class import StorageClassFactory
from . import schema
from .associations import AssociationManager, SearchEntry
from .collections import ChainedCollectionManager, CollectionType, collectionTypes
from .connections import ConnectionManager, dialectInsert

__all__ = ["DatasetTypeManager"]

_LISTED = 10
_T = TypeVar("_T")
# One row by id, for the cached lookups (built once: building a statement costs more than a hit).
_TYPE_BY_ID = sa.select(schema.datasetTypeTable).where(schema.datasetTypeTable.c.id == sa.bindparam("id"))
_RUN_NAME_BY_ID = sa.select(schema.runTable.c.name).where(schema.runTable.c.id == sa.bindparam("id"))


def _nameOf(row: Any) -> str:
    return str(row.name)


def _describe(name: str, dimensions: Sequence[str], storageClassName: str) -> str:
    return f"DatasetType({name!r}, dimensions={list(dimensions)}, storageClass={storageClassName!r})"


def _listNames(names: Sequence[str]) -> str:
    if not names:
        return "none"
    shown = ", ".join(repr(n) for n in names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")


class DatasetTypeManager:
    """Registers and looks up the dataset types and runs of one registry database.

    The `Registry` verbs on dataset types and runs are this manager's; the dataset manager
    resolves types and runs through it (`resolveDatasetType`, `runId`...).

    Parameters
    ----------
    db : ConnectionManager
        The registry's connections.
    storageClassFactory : StorageClassFactory
        Resolves the storage class names stored with dataset types.
    universe : DimensionUniverse
        The registry's dimensions: a dataset type may use only these.
    """

    def __init__(
        self, db: ConnectionManager, storageClassFactory: StorageClassFactory, universe: DimensionUniverse
    ) -> None:
        self._db = db
        self.storageClassFactory = storageClassFactory
        self.universe = universe
        self.associations = AssociationManager(db)
        """The TAGGED and CALIBRATION collections."""
        self.chains = ChainedCollectionManager(db, self.leafType)
        """The CHAINED collections, which `resolveSearch` expands into the collections they hold."""

    def leafType(self, name: str) -> CollectionType | None:
        """Return the type of the RUN, TAGGED or CALIBRATION collection ``name``, or `None`."""
        if self._lookupRun(name) is not None:
            return CollectionType.RUN
        found = self.associations.lookup(name)
        return None if found is None else found[1]

    # -- dataset types --

    def registerDatasetType(self, datasetType: DatasetType) -> bool:
        """Register ``datasetType`` (`Registry.registerDatasetType`)."""
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
        with self._db.write(atomic=True) as connection:
            inserted = self._insertNamed(
                connection,
                schema.datasetTypeTable,
                name=datasetType.name,
                dimensions=",".join(datasetType.dimensions),
                storageClass=storageClassName,
            )
            found = self.lookupDatasetType(datasetType.name)
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

    def lookupDatasetType(self, name: str) -> tuple[int, DatasetType] | None:
        """Return the id and the dataset type registered as ``name``, or `None` (cached once committed)."""
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

    def _byId(self, key: tuple[str, int], statement: sa.Select[Any], make: Callable[[Any], _T]) -> _T:
        """Return what ``make`` builds from the one row ``statement`` reads for ``key``'s id (cached)."""
        cached = self._db.cacheGet(key)
        if cached is not None:
            return cast("_T", cached)
        with self._db.read() as connection:
            value = make(connection.execute(statement, {"id": key[1]}).one())
        self._db.cachePut(key, value)
        return value

    def datasetTypeById(self, typeId: int) -> DatasetType:
        """Return the dataset type with id ``typeId`` (cached once committed)."""
        return self._byId(("datasetTypeId", typeId), _TYPE_BY_ID, self._makeDatasetType)

    def _requireDatasetType(self, name: str) -> tuple[int, DatasetType]:
        found = self.lookupDatasetType(name)
        if found is None:
            known = [t.name for t in self.queryDatasetTypes()]
            raise MissingDatasetTypeError(
                f"Dataset type {name!r} is not registered (registered: {_listNames(known)}); "
                "register it with registerDatasetType first."
            )
        return found

    def getDatasetType(self, name: str) -> DatasetType:
        """Return the registered dataset type ``name`` (`Registry.getDatasetType`)."""
        parentName, _, component = name.partition(".")
        parent = self._requireDatasetType(parentName)[1]
        return parent.makeComponentDatasetType(component) if component else parent

    def queryDatasetTypes(self) -> list[DatasetType]:
        """Return every registered dataset type (parents only), sorted by name."""
        table = schema.datasetTypeTable
        with self._db.read() as connection:
            rows = connection.execute(sa.select(table).order_by(table.c.name)).all()
        return [self._makeDatasetType(row) for row in rows]

    def resolveDatasetType(self, datasetTypeOrName: DatasetType | str) -> tuple[int, DatasetType, str | None]:
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

    def resolveParentType(self, datasetTypeOrName: DatasetType | str, verb: str) -> tuple[int, DatasetType]:
        """Return the id and type of a parent dataset type; a component type is refused.

        Raises
        ------
        DatasetTypeError
            The type is a component: a dataset of it cannot be ``verb``-ed on its own.
        """
        typeId, parent, component = self.resolveDatasetType(datasetTypeOrName)
        if component is not None:
            raise DatasetTypeError(
                f"Cannot {verb} datasets of component type {parent.name}.{component!s}: components "
                f"are stored with their parent; {verb} a {parent.name!r} dataset instead."
            )
        return typeId, parent

    # -- runs --

    def registerRun(self, name: str) -> bool:
        """Register the run ``name`` (`Registry.registerRun`); look before taking the write lock."""
        checkRunName(name)
        if self._lookupRun(name) is not None:
            return False  # a reader (a Butler opened with its run) takes no write lock
        if self.chains.isChain(name):
            raise CollectionError(f"{name!r} is a CHAINED collection; a run needs a name of its own.")
        other = self.associations.lookup(name)
        if other is not None:
            raise CollectionError(
                f"{name!r} is a {other[1].value} collection; a run needs a name of its own."
            )
        with self._db.write(atomic=True) as connection:
            return self._insertNamed(connection, schema.runTable, name=name)

    def queryCollections(self, types: str | Sequence[str] | None = None) -> list[str]:
        """Return the names of the collections of these types, sorted (`Registry.queryCollections`)."""
        wanted = collectionTypes(types)
        names: list[str] = []
        if CollectionType.RUN in wanted:
            names += self.allRuns()
        if CollectionType.CHAINED in wanted:
            names += self.chains.chainNames()
        names += self.associations.names(wanted)
        return sorted(names)

    def getCollectionType(self, name: str) -> CollectionType:
        """Return the type of collection ``name`` (`Registry.getCollectionType`)."""
        if self.chains.isChain(name):
            return CollectionType.CHAINED
        found = self.associations.lookup(name)
        if found is not None:
            return found[1]
        self.runId(name)
        return CollectionType.RUN

    def registerCollection(self, name: str, collectionType: CollectionType | str) -> bool:
        """Register a collection of any type; return `True` if it is new (`Registry.registerCollection`)."""
        (kind,) = collectionTypes(str(collectionType))
        if kind == CollectionType.RUN:
            if self.chains.isChain(name) or self.associations.lookup(name) is not None:
                raise CollectionError(
                    f"{name!r} is a {self.getCollectionType(name).value} collection, not a RUN; use another name."
                )
            return self.registerRun(name)
        if kind == CollectionType.CHAINED:
            return self.chains.registerChain(name)
        checkRunName(name)
        if self._lookupRun(name) is not None or self.chains.isChain(name):
            raise CollectionError(
                f"{name!r} is a {self.getCollectionType(name).value} collection, not {kind.value}; "
                "use another name."
            )
        return self.associations.register(name, kind)

    def queryRuns(self) -> list[str]:
        """Return every run's name, sorted (`Registry.queryRuns`)."""
        return list(self.allRuns())

    def allRuns(self) -> dict[str, int]:
        """Return run name → id for every run, sorted by name."""
        table = schema.runTable
        with self._db.read() as connection:
            rows = connection.execute(sa.select(table.c.name, table.c.id).order_by(table.c.name)).all()
        return {row.name: row.id for row in rows}

    def runId(self, name: str) -> int:
        """Return the id of the run ``name``.

        Raises
        ------
        MissingRunError
            No such run is registered.
        RunNameError
            ``name`` is not a storable run name.
        """
        runId = self._lookupRun(name)
        if runId is None:
            raise MissingRunError(
                f"Run {name!r} is not registered (registered: {_listNames(self.queryRuns())}); "
                "register it with registerRun first."
            )
        return runId

    def _lookupRun(self, name: str) -> int | None:
        key = ("run", name)
        cached = cast("int | None", self._db.cacheGet(key))
        if cached is not None:
            return cached
        checkRunName(name)
        table = schema.runTable
        with self._db.read() as connection:
            runId = connection.execute(sa.select(table.c.id).where(table.c.name == name)).scalar()
        if runId is None:
            return None
        self._db.cachePut(key, runId)
        self._db.cachePut(("runId", runId), name)
        return int(runId)

    def runName(self, runId: int) -> str:
        """Return the name of the run with id ``runId`` (cached once committed)."""
        return self._byId(("runId", runId), _RUN_NAME_BY_ID, _nameOf)

    def currentRunId(self, name: str) -> int:
        """Return the id the ``run`` table gives run ``name`` now, not a cached one (for removals).

        A run removed by another registry, perhaps made again under its name, leaves a stale
        id in the cache; a removal through it would find nothing to remove.

        Raises
        ------
        MissingRunError
            No such run is registered.
        """
        runId = self.runId(name)
        if self.refreshRunIds({name: runId}):
            runId = self.runId(name)
        return runId

    def refreshRunIds(self, runs: Mapping[str, int]) -> bool:
        """Read the ids of the runs named in ``runs`` anew; return whether any cached id was wrong.

        The cached ids that the ``run`` table no longer gives (the run was removed, perhaps
        made again under its name, by another process) are forgotten.
        """
        table = schema.runTable
        with self._db.read() as connection:
            rows = connection.execute(
                sa.select(table.c.name, table.c.id).where(table.c.name.in_(list(runs)))
            ).all()
        current = {row.name: int(row.id) for row in rows}
        stale = [(name, runId) for name, runId in runs.items() if current.get(name) != runId]
        for name, runId in stale:
            self._db.cacheDrop(("run", name))
            self._db.cacheDrop(("runId", runId))
        return bool(stale)

    def forgetRunIds(self) -> None:
        """Forget every cached run id: another registry removed runs, perhaps made again under their names."""
        self._db.cacheDropKind("run")
        self._db.cacheDropKind("runId")

    def resolveSearch(self, collections: str | Sequence[str]) -> list[SearchEntry]:
        """Return the collections searched for ``collections``, in order, chains flattened.

        A CHAINED collection stands for its children, in its order (nested chains flattened);
        a collection met twice keeps its first place.

        Raises
        ------
        MissingRunError
            A name is not a registered collection.
        TypeError
            ``collections`` is `None`.
        """
        if collections is None:
            raise ArgumentTypeError("No collections to search: give a collection name or a list of them.")
        names = [collections] if isinstance(collections, str) else list(collections)
        out: dict[str, SearchEntry] = {}
        for name in names:
            usable = isinstance(name, str) and bool(name)
            # A run already seen costs nothing; a chain one read of the chain version token.
            runId = cast("int | None", self._db.cacheGet(("run", name))) if usable else None
            if runId is None and usable:
                checkRunName(name)  # a name no collection can have is refused before any SQL
                chainLeaves = self.chains.resolve(name)
                runId = None if chainLeaves is not None else self._lookupRun(name)
            else:
                chainLeaves = None
            if runId is not None:
                out.setdefault(name, SearchEntry(name, CollectionType.RUN, runId))
                continue
            for leaf in chainLeaves if chainLeaves is not None else [name]:
                if leaf not in out:
                    out[leaf] = self._leafEntry(leaf)
        return list(out.values())

    def _leafEntry(self, name: str) -> SearchEntry:
        """Return the search entry of RUN, TAGGED or CALIBRATION collection ``name``.

        Raises
        ------
        MissingRunError
            No such collection.
        """
        runId = self._lookupRun(name) if isinstance(name, str) and name else None
        if runId is not None:
            return SearchEntry(name, CollectionType.RUN, runId)
        found = self.associations.lookup(name)
        if found is None:
            self.runId(name)  # raises, naming the runs that exist
            raise MissingRunError(f"Collection {name!r} is not registered.")
        return SearchEntry(name, found[1], found[0])

    def resolveRuns(self, collections: str | Sequence[str]) -> dict[str, int]:
        """Return run name → id for the RUN collections `resolveSearch` finds, in search order."""
        return {e.name: e.id for e in self.resolveSearch(collections) if e.type == CollectionType.RUN}

    # -- removing --

    def _insertNamed(self, connection: sa.Connection, table: sa.Table, **values: Any) -> bool:
        """Insert the row ``values`` into ``table`` unless its ``name`` is taken; return whether it was.

        On SQLite the new row's id is above every id ever deleted from ``table`` (`_nextIdFloor`).
        """
        statement = (
            dialectInsert(self._db, table)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[table.c.name])
            .returning(table.c.id)
        )
        floor = self._nextIdFloor(connection, table)
        if floor is not None:
            statement = statement.values(id=floor)
        return connection.execute(statement).first() is not None

    def _nextIdFloor(self, connection: sa.Connection, table: sa.Table) -> int | None:
        """Return the lowest id a new row of ``table`` may take on SQLite, if rows were deleted.

        SQLite gives a new row the largest id plus one, so deleting the row with the largest id
        would let a new run (or dataset type) take the id of the deleted one, and a process that
        still caches the old id would write into the new one. The largest id ever deleted is kept
        in ``butler_attribute``; PostgreSQL's sequences never hand a value out twice.
        """
        if not self._db.isSqlite:
            return None
        attribute = schema.attributeTable
        floor = connection.execute(
            sa.select(attribute.c.value).where(attribute.c.name == f"{table.name}IdFloor")
        ).scalar_one_or_none()
        if floor is None:
            return None
        largest = connection.execute(sa.select(sa.func.max(table.c.id))).scalar_one_or_none() or 0
        return max(int(floor), int(largest)) + 1

    def _raiseIdFloor(self, connection: sa.Connection, table: sa.Table, removedId: int) -> None:
        if not self._db.isSqlite:
            return
        attribute = schema.attributeTable
        name = f"{table.name}IdFloor"
        current = connection.execute(
            sa.select(attribute.c.value).where(attribute.c.name == name)
        ).scalar_one_or_none()
        if current is None:
            connection.execute(sa.insert(attribute).values(name=name, value=str(removedId)))
        elif int(current) < removedId:
            connection.execute(
                sa.update(attribute).where(attribute.c.name == name).values(value=str(removedId))
            )

    def removeRun(self, name: str, countDatasets: Callable[[int], int]) -> None:
        """Delete run ``name``, which must hold no datasets and be in no chain.

        Raises
        ------
        MissingRunError
            No such run.
        CollectionError
            The run still holds datasets, or a chain lists it.
        """
        runId = self.currentRunId(name)
        parents = self.chains.parentsOf(name)
        if parents:
            raise CollectionError(
                f"Cannot remove run {name!r}: chain(s) {parents} list it; take it out with "
                f"removeFromCollectionChain (or `databutler collection-chain --mode remove`) first."
            )
        table = schema.runTable
        with self._db.write() as connection:
            left = countDatasets(runId)
            if left:
                raise CollectionError(f"Cannot remove run {name!r}: it still holds {left} dataset(s).")
            connection.execute(sa.delete(table).where(table.c.id == runId))
            self._raiseIdFloor(connection, table, runId)
            self.chains.noteChange(connection)  # a search resolved to this run's id is stale
        self._db.cacheDrop(("run", name))
        self._db.cacheDrop(("runId", runId))

    def removeDatasetType(self, name: str, countDatasets: Callable[[int], tuple[int, list[str]]]) -> bool:
        """Delete dataset type ``name`` if no dataset of it exists; return `False` if it was not registered.

        Raises
        ------
        DatasetTypeError
            Datasets of it exist (the message gives how many, and some runs holding them), or
            ``name`` is a component.
        """
        if "." in name:
            raise DatasetTypeError(
                f"{name!r} is a component dataset type; remove its parent {name.partition('.')[0]!r}."
            )
        found = self.lookupDatasetType(name)
        if found is None:
            return False
        typeId = found[0]
        table = schema.datasetTypeTable
        with self._db.write() as connection:
            count, runs = countDatasets(typeId)
            if count:
                raise DatasetTypeError(
                    f"Cannot remove dataset type {name!r}: {count} dataset(s) of it exist (in runs such as "
                    f"{runs}); remove them first (removeDatasets, or removeRuns for whole runs)."
                )
            connection.execute(sa.delete(table).where(table.c.id == typeId))
            self._raiseIdFloor(connection, table, typeId)
        self._db.cacheDrop(("datasetType", name))
        self._db.cacheDrop(("datasetTypeId", typeId))
        return True
