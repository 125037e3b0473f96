"""`Registry`: the interface every registry back end implements.

The Butler, the dataset lookup, transfers, the CLI functions in ``script/`` and the contract
tests (`databutler.testing.registry_tests.RegistryTests`) are written against this class, not
against `SqlRegistry`, so a second back end (a remote one, say) is a subclass to write. A
registry is also the `DatasetLocationRegistry` its datastores tell what they hold, and the
`RecordStorage` they may keep their own records in.

The verbs, in the groups a back end usually gives each to one manager:

- dataset types: `registerDatasetType`, `getDatasetType`, `queryDatasetTypes`;
- runs and collections: `registerRun`, `queryRuns`, `queryCollections`, `getCollectionType`;
- chains: `setCollectionChain`, `getCollectionChain`, `prependCollectionChain`,
  `extendCollectionChain`, `removeFromCollectionChain` (every ``collections`` argument of the
  other verbs accepts a chain's name, standing for its runs in order);
- dimensions: `dimensions`, `insertDimensionData`, `syncDimensionData`, `queryDimensionRecords`;
- datasets: `addDataset`, `addDatasets`, `addDatasetRefs`, `findDataset`, `queryDatasets`,
  `countDatasets`, `getDataset`, `removeDatasets`;
- data IDs: `queryDataIds`, `explainDatasetQuery`;
- locations: `addDatasetLocations`, `removeDatasetLocations`, `getDatasetLocations`;
- datastore records: `recordStorage`;
- ownership: `getRepositoryId`, `claim`, `checkOwner` (a registry belongs to one repository);
- life cycle: `transaction`, `close` (and ``with registry:``).
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any

from ..dataset_ref import DatasetRef
from ..dataset_type import DatasetType
from ..datastore.bridge import RecordStorage
from ..dimensions import DimensionRecord, DimensionUniverse
from .collections import CollectionType
from .queries.results import QueryResults

__all__ = ["Registry"]


class Registry(ABC):
    """Which dataset types, runs and datasets exist, and which datastores hold them."""

    # -- dataset types --

    @abstractmethod
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

    @abstractmethod
    def getDatasetType(self, name: str) -> DatasetType:
        """Return the registered dataset type ``name``; ``"parent.component"`` names a component.

        Raises
        ------
        MissingDatasetTypeError
            No dataset type of that (parent) name is registered.
        UnknownComponentError
            The parent's storage class has no such component.
        """

    @abstractmethod
    def queryDatasetTypes(self) -> list[DatasetType]:
        """Return every registered dataset type (parents only), sorted by name."""

    # -- runs --

    @abstractmethod
    def registerRun(self, name: str) -> bool:
        """Register the run ``name``; return `True` if it is new, `False` if it already exists.

        Raises
        ------
        RunNameError
            ``name`` is not a non-empty str of at most 128 characters of storable text (also a
            TypeError and a ValueError).
        """

    @abstractmethod
    def queryRuns(self) -> list[str]:
        """Return the names of every registered run, sorted."""

    @abstractmethod
    def queryCollections(self, types: str | Sequence[str] | None = None) -> list[str]:
        """Return the names of the collections of the given types (every type by default), sorted.

        Raises
        ------
        InvalidQueryError
            A type is not a collection type.
        """

    @abstractmethod
    def getCollectionType(self, name: str) -> CollectionType:
        """Return the type of collection ``name``.

        Raises
        ------
        MissingRunError
            No collection of that name exists.
        """

    # -- TAGGED and CALIBRATION collections, and removing collections --

    @abstractmethod
    def registerCollection(self, name: str, collectionType: CollectionType | str) -> bool:
        """Register an empty collection of ``collectionType``; return `True` if it is new.

        ``RUN`` is `registerRun`; ``CHAINED`` an empty chain; ``TAGGED`` and ``CALIBRATION``
        collections hold existing datasets by association (`associate`, `certify`).

        Raises
        ------
        CollectionError
            A collection of that name but another type exists.
        RunNameError
            ``name`` cannot be stored.
        InvalidQueryError
            ``collectionType`` is not a collection type.
        """

    @abstractmethod
    def associate(self, collection: str, refs: Iterable[DatasetRef]) -> None:
        """Add existing datasets to TAGGED ``collection`` (those already in it are left alone).

        A TAGGED collection holds at most one dataset per dataset type and data ID, as a run does.

        Raises
        ------
        ConflictingDatasetError
            Another dataset of the same type and data ID is in the collection (or two are
            given); nothing was added. Disassociate the other first.
        MissingDatasetError
            A ref is not in the registry; nothing was added.
        MissingRunError, CollectionError
            ``collection`` is not a registered TAGGED collection.
        """

    @abstractmethod
    def disassociate(self, collection: str, refs: Iterable[DatasetRef]) -> None:
        """Take datasets out of TAGGED ``collection`` (those not in it are ignored); they stay in their runs.

        Raises
        ------
        MissingRunError, CollectionError
            ``collection`` is not a registered TAGGED collection.
        """

    @abstractmethod
    def certify(self, collection: str, refs: Iterable[DatasetRef], timespan: Any) -> None:
        """Make existing datasets valid in CALIBRATION ``collection`` for ``timespan``.

        ``timespan`` is a `Timespan` (or a ``(begin, end)`` pair) of datetimes, half-open,
        `None` for an unbounded end.

        Raises
        ------
        ConflictingDatasetError
            A dataset of the same type and data ID is already valid there at some time within
            ``timespan``; nothing was certified.
        MissingDatasetError
            A ref is not in the registry.
        MissingRunError, CollectionError
            ``collection`` is not a registered CALIBRATION collection, or ``timespan`` is empty.
        """

    @abstractmethod
    def decertify(
        self,
        collection: str,
        datasetType: DatasetType | str,
        timespan: Any,
        *,
        dataIds: Iterable[Mapping[str, Any]] | None = None,
    ) -> int:
        """Remove ``timespan`` from the validity of the datasets of ``datasetType`` (or of these data IDs).

        A validity range partly inside ``timespan`` is shortened, or split in two when
        ``timespan`` is inside it. Returns how many validity ranges were changed or removed.

        Raises
        ------
        MissingRunError, CollectionError
            ``collection`` is not a registered CALIBRATION collection.
        """

    @abstractmethod
    def queryCertifications(
        self, collection: str, datasetType: DatasetType | str
    ) -> list[tuple[DatasetRef, Any]]:
        """Return (ref, `Timespan`) for every validity range of ``datasetType`` in CALIBRATION ``collection``."""

    @abstractmethod
    def removeCollection(self, name: str) -> None:
        """Remove a TAGGED, CALIBRATION or CHAINED collection; the datasets it holds stay in their runs.

        Raises
        ------
        CollectionError
            ``name`` is a RUN (use `removeRun`), or a chain lists it.
        MissingRunError
            No collection has that name.
        """

    @abstractmethod
    def removeRun(self, name: str) -> int:
        """Remove run ``name`` and every dataset in it (from the registry only); return how many.

        Datasets go in chunks of bounded size, each chunk its own transaction; the run goes last.
        `Butler.removeRuns` also deletes the stored files.

        Raises
        ------
        CollectionError
            A chain lists the run.
        MissingRunError
            No run has that name.
        """

    @abstractmethod
    def someDatasetsInRun(self, run: str, limit: int) -> list[DatasetRef]:
        """Return at most ``limit`` datasets of ``run`` (in no particular order)."""

    @abstractmethod
    def removeDatasetType(self, name: str) -> bool:
        """Remove dataset type ``name``; return `False` if it was not registered.

        Raises
        ------
        DatasetTypeError
            Datasets of it exist (the message says how many and in which runs); remove them first.
        """

    # -- CHAINED collections --

    @abstractmethod
    def setCollectionChain(self, parent: str, children: Sequence[str]) -> None:
        """Make ``children`` (runs or chains, searched in this order) the whole of chain ``parent``.

        The chain is registered if new. Nested chains are searched in place, in their order; a
        run reached twice is searched at its first place.

        Raises
        ------
        CollectionError
            ``parent`` is a run, a child is ``parent`` itself or contains it (a cycle), or a
            child is given twice.
        MissingRunError
            A child is not a registered run or chain.
        """

    @abstractmethod
    def getCollectionChain(self, parent: str) -> list[str]:
        """Return the children of chain ``parent``, in search order.

        Raises
        ------
        CollectionError
            ``parent`` is not a CHAINED collection.
        """

    @abstractmethod
    def prependCollectionChain(self, parent: str, children: Sequence[str]) -> None:
        """Put ``children`` at the front of chain ``parent`` (moving those already in it).

        Raises
        ------
        CollectionError, MissingRunError
            As for `setCollectionChain`; also when ``parent`` is not a chain.
        """

    @abstractmethod
    def extendCollectionChain(self, parent: str, children: Sequence[str]) -> None:
        """Put ``children`` at the end of chain ``parent`` (moving those already in it).

        Raises
        ------
        CollectionError, MissingRunError
            As for `setCollectionChain`; also when ``parent`` is not a chain.
        """

    @abstractmethod
    def removeFromCollectionChain(self, parent: str, children: Sequence[str]) -> None:
        """Take ``children`` out of chain ``parent`` (those not in it are ignored).

        Raises
        ------
        CollectionError
            ``parent`` is not a CHAINED collection.
        """

    # -- dimensions --

    @property
    @abstractmethod
    def dimensions(self) -> DimensionUniverse:
        """The registry's dimension universe: the dimensions data IDs may use, and their types."""

    @abstractmethod
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

    @abstractmethod
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

    @abstractmethod
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

    @abstractmethod
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

    @abstractmethod
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

    @abstractmethod
    def findDataset(
        self,
        datasetTypeOrName: DatasetType | str,
        dataId: Mapping[str, Any] | None,
        collections: str | Sequence[str],
        *,
        timespan: Any = None,
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
            A collection, or collections searched in order (chains stand for their children).
        timespan : datetime or Timespan, optional
            The time (or the span of times) a dataset found in a CALIBRATION collection must be
            valid for; needed only when the search reaches one.

        Returns
        -------
        ref : DatasetRef or None
            The ref found, or `None` if no collection searched holds such a dataset.

        Raises
        ------
        MissingDatasetTypeError, DatasetTypeConflictError, DataIdError
            As for `addDataset`.
        UnknownComponentError
            The component is not one of the storage class's.
        MissingRunError
            A collection is not registered.
        CollectionError
            The search reached a CALIBRATION collection and no ``timespan`` was given.
        AmbiguousDatasetError
            Several datasets certified in one CALIBRATION collection are valid within ``timespan``.
        TypeError
            ``collections`` is `None`: say which runs to search.
        """

    @abstractmethod
    def queryDatasets(
        self,
        datasetTypeOrName: DatasetType | str,
        collections: str | Sequence[str] | None = None,
        where: Mapping[str, Any] | str | None = None,
        *,
        bind: Mapping[str, Any] | None = None,
        findFirst: bool = False,
        orderBy: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[DatasetRef]:
        """Return the datasets of one type in ``collections`` whose data IDs match ``where``.

        Parameters
        ----------
        datasetTypeOrName : DatasetType or str
            The dataset type (a component type gives component refs) or its name.
        collections : str or sequence of str, optional
            Runs to search; `None` searches every run.
        where : mapping or str, optional
            Dimension → a value or a list of values, e.g. ``{"visit": [1, 2], "band": "r"}``;
            or an expression such as ``"visit > 100 AND detector IN (1..8)"`` (see
            `databutler.registry.queries.parser` for the grammar).
        bind : mapping, optional
            Values for the ``:name`` parameters of a ``where`` expression.
        findFirst : bool
            Keep, for each data ID, only the dataset in the earliest of ``collections``.
        orderBy : sequence of str, optional
            Dimensions to sort by first (``"-visit"``: descending); ties as without it.
        limit : int, optional
            Return at most this many (the first in this order).

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
        InvalidQueryError
            A ``where`` expression does not parse, names an unknown dimension, has a value of
            the wrong type or a bind parameter without a value, or ``orderBy`` names a
            dimension the dataset type lacks.
        """

    @abstractmethod
    def countDatasets(
        self,
        datasetTypeOrName: DatasetType | str,
        collections: str | Sequence[str] | None = None,
        where: Mapping[str, Any] | str | None = None,
        *,
        bind: Mapping[str, Any] | None = None,
    ) -> int:
        """Return how many datasets `queryDatasets` would find with these arguments (without findFirst).

        Raises
        ------
        MissingDatasetTypeError, MissingRunError, DataIdError, InvalidQueryError
            As for `queryDatasets`.
        """

    @abstractmethod
    def queryDataIds(
        self,
        dimensions: str | Iterable[str],
        where: str | None = None,
        *,
        bind: Mapping[str, Any] | None = None,
        datasets: str | DatasetType | Iterable[str | DatasetType] | None = None,
        collections: str | Sequence[str] | None = None,
    ) -> QueryResults[dict[str, Any]]:
        """Return the distinct data IDs over ``dimensions`` that datasets have, sorted.

        Parameters
        ----------
        dimensions : str or iterable of str
            The dimensions of the data IDs returned, e.g. ``["visit", "detector"]``.
        where : str, optional
            A condition in the query language, on these dimensions and their records.
        bind : mapping, optional
            Values of the ``:name`` parameters of ``where``.
        datasets : dataset type(s), optional
            Only data IDs of datasets of these types; by default every type that has all
            ``dimensions``.
        collections : str or sequence of str, optional
            The collections searched; every run by default.

        Raises
        ------
        DataIdError
            A dimension is not in the universe.
        MissingDatasetTypeError, MissingRunError
            A dataset type or collection is not registered.
        InvalidQueryError
            ``where`` does not parse, or names something other than these dimensions and their records.
        """

    @abstractmethod
    def explainDatasetQuery(
        self,
        datasetTypeOrName: DatasetType | str,
        collections: str | Sequence[str] | None = None,
        where: Mapping[str, Any] | str | None = None,
        bind: Mapping[str, Any] | None = None,
        *,
        quiet: bool = False,
    ) -> list[str]:
        """Return why `queryDatasets` with these arguments finds nothing (empty if it finds something).

        Each message names what emptied the query: the dataset type has no datasets at all, the
        collections searched hold none of it (and which collections do), or a condition of
        ``where`` that on its own matches nothing (for a record field: whether any records exist).
        """

    @abstractmethod
    def getDataset(self, id: uuid.UUID | str) -> DatasetRef | None:
        """Return the ref of the dataset with this id, or `None` if there is none.

        Raises
        ------
        TypeError
            ``id`` is not a UUID.
        """

    def getDatasets(self, ids: Iterable[uuid.UUID | str]) -> dict[uuid.UUID, DatasetRef]:
        """Return the datasets with these ids that exist, by id (built from `getDataset`)."""
        out: dict[uuid.UUID, DatasetRef] = {}
        for ident in ids:
            ref = self.getDataset(ident)
            if ref is not None:
                out[ref.id] = ref
        return out

    @abstractmethod
    def removeDatasets(self, refs: Iterable[DatasetRef]) -> None:
        """Remove datasets, and the record of where they are stored; unknown refs are ignored.

        Only the registry's records go: removing the stored data is the datastore's job (the
        Butler does both in one transaction).
        """

    @abstractmethod
    def addRemovalListener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` before a lookup answers, once it sees datasets were removed elsewhere.

        A dataset removed by another process (or registry) and put again under the same id may
        have other content: whatever caches datasets by id drops its copies when told. The
        lookups by data ID and by id (`findDataset`, `getDataset`) see it in their own
        statement; this registry's own removals tell nobody.
        """

    # -- where datasets are stored: the DatasetLocationRegistry protocol --

    @abstractmethod
    def addDatasetLocations(self, datastoreName: str, refs: Iterable[DatasetRef]) -> None:
        """Record that datastore ``datastoreName`` holds ``refs`` (already-recorded ones are fine).

        Raises
        ------
        MissingDatasetError
            A ref is not a registered dataset.
        """

    @abstractmethod
    def removeDatasetLocations(self, datastoreName: str, refs: Iterable[DatasetRef]) -> None:
        """Record that datastore ``datastoreName`` no longer holds ``refs``."""

    @abstractmethod
    def getDatasetLocations(self, ref: DatasetRef) -> set[str]:
        """Return the names of the datastores that hold ``ref``."""

    # -- datastore records --

    @property
    @abstractmethod
    def recordStorage(self) -> RecordStorage:
        """Where a datastore may keep its own records table, committed with this registry.

        A datastore's record writes join this thread's registry `transaction`, so a dataset's
        row, its location and the datastore's records are committed together.
        """

    # -- which repository the registry belongs to --

    @abstractmethod
    def getRepositoryId(self) -> str | None:
        """Return the id of the data repository this registry belongs to (`None`: unclaimed)."""

    @abstractmethod
    def claim(self, repositoryId: str, where: str) -> None:
        """Make this registry belong to the repository ``repositoryId`` (made at ``where``).

        A registry belongs to one repository: its datastores' locations and records are kept
        under names only that repository gives meaning to.

        Raises
        ------
        ForeignRegistryError
            The registry already belongs to another repository.
        """

    @abstractmethod
    def checkOwner(self, repositoryId: str, where: str) -> None:
        """Check that this registry belongs to the repository ``repositoryId`` at ``where``.

        Raises
        ------
        ForeignRegistryError
            The registry belongs to another repository, or to none.
        """

    # -- life cycle --

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """Group registry calls: if the block raises, none of them takes effect.

        Nested blocks nest (a failed inner block is undone on its own). Calls from other
        threads are not part of the transaction.
        """

    @abstractmethod
    def close(self) -> None:
        """Close every connection; the registry must not be used afterwards."""

    def __enter__(self) -> Registry:
        """Return this registry, to be closed when the ``with`` block ends."""
        return self

    def __exit__(
        self, excType: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the registry (`close`) when the ``with`` block ends, whether or not it raised."""
        self.close()
