"""Butler: the user's façade over a registry (what exists) and a datastore (the bytes).

Users name datasets by what they are — ``butler.put(table, "sourceTable", visit=12,
detector=3)`` and ``butler.get("sourceTable", visit=12, detector=3)`` — and never build a
`DatasetRef` by hand. Every write goes through one transaction spanning the registry and the
datastore, so a failure in either leaves neither changed.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .artifacts import retrieveArtifacts
from .butler_config import REPOSITORY_ID_KEY, ButlerConfig, makeRepo, repoConfigPath
from .config import Config
from .dataset_lookup import DatasetLookup, collectionNames, mergeDataId
from .dataset_ref import DatasetRef, checkRunName, datasetIdNamespace, predictDatasetId
from .dataset_type import DatasetType
from .datastore.base import Datastore
from .exceptions import (
    ArgumentTypeError,
    CollectionError,
    DatabaseFullError,
    DatasetExistsError,
    DatasetNotFoundError,
    DatasetTypeError,
    InvalidQueryError,
    NoDefaultRunError,
    ReadOnlyRepositoryError,
)
from .formatters.base import prevalidated
from .ingest import ingest
from .putting import putMany, resolvedForPut
from .storage_class import StorageClassFactory
from .transfer import transferFrom

if TYPE_CHECKING:
    from .export import Manifest
    from .export.importing import ImportResult
    from .registry import Registry
    from .registry.queries.results import QueryResults
    from .workers import MapResult

__all__ = ["Butler"]

log = logging.getLogger(__name__)


class Butler:
    """Read and write datasets of one data repository by dataset type and data ID.

    Parameters
    ----------
    root : str or path-like
        The repository folder (or its ``butler.yaml``), made by `makeRepo`.
    run : str, optional
        The run that `put` writes to; registered if new.
    collections : sequence of str, optional
        The runs `get` searches, in order. Defaults to ``[run]`` when a run is given; with
        neither, `get` searches every run and asks for collections if that is ambiguous.
    writeable : bool
        `False` opens the repository for reading only: nothing is ever written (the registry
        database is opened read-only, see `databutler.registry.databases`), and `put`,
        `removeDatasets`, `registerDatasetType`, `transferFrom` and `transaction` raise
        `ReadOnlyRepositoryError`. A repository on a read-only mount, or in a folder its user
        cannot write, opens this way.

    Attributes
    ----------
    root : Path
        The repository folder.
    config : Config
        The repository's configuration, with ``<butlerRoot>`` resolved.
    registry : Registry
        What exists: dataset types, runs, datasets and their locations.
    datastore : Datastore
        Where the datasets are; told to record locations in ``registry``.
    isWriteable : bool
        Whether this Butler may write.

    Raises
    ------
    ConfigFileNotFoundError
        There is no repository at ``root``.
    ConfigError
        The repository config is malformed.
    ForeignRegistryError
        The registry the config names belongs to another repository.
    RunNameError
        ``run`` is not a name the registry can store; nothing was opened or registered.
    ArgumentTypeError
        ``collections`` is not a str or a sequence of str.

    Examples
    --------
    >>> Butler.makeRepo("/tmp/repo")  # doctest: +SKIP
    >>> butler = Butler("/tmp/repo", run="demo")  # doctest: +SKIP
    >>> butler.registerDatasetType("metrics", ("visit",), "StructuredDataDict")  # doctest: +SKIP
    >>> ref = butler.put({"seeing": 0.7}, "metrics", visit=1)  # doctest: +SKIP
    >>> butler.get("metrics", visit=1)  # doctest: +SKIP
    {'seeing': 0.7}
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        run: str | None = None,
        collections: Sequence[str] | None = None,
        *,
        writeable: bool = True,
    ) -> None:
        searched = collectionNames(collections, "Butler(collections=...)")
        if run is not None:
            checkRunName(run)
        path = repoConfigPath(root)
        self.root = path.parent.absolute()
        self.isWriteable = writeable
        self.config: Config = ButlerConfig.fromRepo(path).resolved(self.root)
        self.storageClassFactory = StorageClassFactory.fromDefaults()
        if "storageClasses" in self.config:
            self.storageClassFactory.addFromConfig({"storageClasses": self.config["storageClasses"]})
        from .registry import SqlRegistry  # SQLAlchemy is imported when a Butler is opened

        self.registry: Registry = SqlRegistry.fromConfig(
            self.config,
            root=str(self.root),
            storageClassFactory=self.storageClassFactory,
            readOnly=not writeable,
        )
        try:
            repositoryId = self.config.get(REPOSITORY_ID_KEY)
            if repositoryId is not None:
                self.registry.checkOwner(str(repositoryId), str(self.root))
            self.datastore = Datastore.fromConfig(self.config["datastore"], registry=self.registry)
            # A dataset removed elsewhere may come back under its id with other content.
            self.registry.addRemovalListener(self.datastore.dropCachedCopies)
            if run is not None and writeable:
                self._checkRun(run)  # before anything is registered
                self.registry.registerRun(run)
        except BaseException:
            self.registry.close()
            raise
        self.run = run
        # Dataset ids are UUIDv5 of (run, type, data ID) in this namespace: a driver planning work
        # for many workers knows every output id in advance. A repository made before ids were
        # recorded in its config has none, and its puts keep getting random ids.
        self.datasetIdNamespace: uuid.UUID | None = (
            datasetIdNamespace(str(repositoryId)) if repositoryId is not None else None
        )
        # Room for removals on a full disk, beside a SQLite registry (see registry/reserve.py).
        from .registry.databases import isSqliteUrl, sqliteFile
        from .registry.reserve import SpaceReserve

        databaseFile = sqliteFile(self.registry.url) if isSqliteUrl(self.registry.url) else None
        self._spaceReserve = SpaceReserve(databaseFile) if databaseFile is not None else None
        if self._spaceReserve is not None and writeable:
            self._spaceReserve.ensure()
        self._lookup = DatasetLookup(self.registry, searched or ([run] if run else []), str(self.root))

    @property
    def collections(self) -> tuple[str, ...]:
        """The runs `get` searches, in order, when a call gives none (empty: every run)."""
        return self._lookup.collections

    @collections.setter
    def collections(self, value: Sequence[str]) -> None:
        self._lookup.collections = collectionNames(value, "Butler.collections")

    # -- repositories --

    @staticmethod
    def makeRepo(
        root: str | os.PathLike[str], config: Config | Mapping[str, Any] | str | None = None
    ) -> Config:
        """Create a data repository at ``root``: write its ``butler.yaml`` and create its registry.

        Parameters
        ----------
        root : str or path-like
            The repository folder; made if missing.
        config : Config, mapping or str, optional
            Configuration over the defaults (``configs/butler.yaml``): an embedded SQLite
            registry and a memory tier in front of a file tier in the repository.

        Returns
        -------
        config : Config
            The configuration written to ``<root>/butler.yaml``.

        Raises
        ------
        RepositoryExistsError
            ``root`` already holds a repository.
        ConfigError
            The configuration is malformed or has a key its component does not accept, or
            ``root`` is a URI (``s3://...``, ``memory://...``) rather than a local folder.
        ForeignRegistryError
            The registry database it names already belongs to another repository.
        """
        return makeRepo(root, config)

    def close(self) -> None:
        """Close the registry's database connections and any the datastores hold."""
        self.datastore.close()
        self.registry.close()

    def __enter__(self) -> Butler:
        """Return this butler, to be closed when the ``with`` block ends."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the butler (`close`) when the ``with`` block ends, whether or not it raised."""
        self.close()

    def __repr__(self) -> str:
        """Show the repository root, the default run and the default collections."""
        readOnly = "" if self.isWriteable else ", writeable=False"
        return (
            f"Butler({str(self.root)!r}, run={self.run!r}, collections={list(self.collections)!r}{readOnly})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by root, run, collections and writeable flag; unpickling reopens the repository.

        The config is read again from the root, so the repository must be reachable at the same
        path (or URI) where it is unpickled; no connection or open file travels.
        """
        return (_reopenButler, (str(self.root), self.run, list(self.collections), self.isWriteable))

    def _requireWriteable(self, what: str) -> None:
        if not self.isWriteable:
            raise ReadOnlyRepositoryError(
                f"Cannot {what}: repository {str(self.root)!r} was opened read-only "
                f"(writeable=False); open it with Butler({str(self.root)!r}) to write."
            )

    def __str__(self) -> str:
        """Show the root, run and collections, and the datastore and registry in use."""
        return (
            f"Butler({str(self.root)!r}, run={self.run!r}, collections={list(self.collections)!r}, "
            f"datastore={self.datastore}, registry={self.registry})"
        )

    # -- dataset types --

    def registerDatasetType(
        self,
        datasetTypeOrName: DatasetType | str,
        dimensions: Iterable[str] | None = None,
        storageClass: str | None = None,
    ) -> bool:
        """Register a dataset type, given whole or as name, dimensions and storage class name.

        Returns
        -------
        inserted : bool
            `True` if it was new, `False` if an identical type was already registered.

        Raises
        ------
        DatasetTypeConflictError
            A different dataset type of that name is registered.
        DatasetTypeError
            The name or dimensions are invalid, or a name was given without dimensions and
            storage class.
        UnknownStorageClassError
            The storage class name is unknown.
        """
        if isinstance(datasetTypeOrName, DatasetType):
            datasetType = datasetTypeOrName
        else:
            if dimensions is None or storageClass is None:
                raise DatasetTypeError(
                    f"Registering dataset type {datasetTypeOrName!r} needs dimensions and a storage class, "
                    f"e.g. registerDatasetType({datasetTypeOrName!r}, ('visit',), 'StructuredDataDict')."
                )
            if isinstance(dimensions, str):  # a str is iterable, but "visit" is not ("i", "s", "t", "v")
                raise DatasetTypeError(
                    f"Dataset type {datasetTypeOrName!r}: dimensions must be a sequence of names such as "
                    f"({dimensions!r},), not the bare str {dimensions!r}."
                )
            datasetType = DatasetType(
                datasetTypeOrName, tuple(dimensions), self.storageClassFactory.getStorageClass(storageClass)
            )
        self._requireWriteable(f"register dataset type {datasetType.name!r}")
        inserted = self.registry.registerDatasetType(datasetType)
        self._lookup.forget(datasetType.name)
        return inserted

    def getDatasetType(self, name: str) -> DatasetType:
        """Return the registered dataset type ``name`` (``"parent.component"`` for a component).

        Raises
        ------
        MissingDatasetTypeError
            No such dataset type is registered.
        UnknownComponentError
            The parent type has no such component.
        """
        return self._lookup.getDatasetType(name)

    # -- writing --

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes: if the body raises, registry and datastore changes are both undone.

        Transactions nest; an inner one that fails is undone on its own. The datastore
        transaction encloses the registry's, so that a failing registry commit also undoes the
        datastore changes; the datastore's irreversible on-commit work (deleting removed
        datasets' files) runs only after the registry has committed.

        Raises
        ------
        ReadOnlyRepositoryError
            The Butler was opened with ``writeable=False``.
        """
        self._requireWriteable("begin a transaction")
        try:
            with (
                self.datastore.transaction(deferCommitActions=True) as datastoreTransaction,
                self.registry.transaction(),
            ):
                yield
        except BaseException:
            # Dataset types looked up inside the block may be ones it registered, now undone.
            self._lookup.forgetAll()
            raise
        datastoreTransaction.runCommitActions()

    def _checkRun(self, run: str) -> None:
        """Refuse a run name the registry or the datastore cannot store, before it is registered."""
        checkRunName(run)
        self.datastore.checkRun(run)

    def _runFor(self, run: str | None, what: Callable[[], str]) -> str:
        run = run or self.run
        if run is None:
            raise NoDefaultRunError(
                f"Cannot {what()}: no run given and this Butler has none; "
                f"open it as Butler(root, run='...') or pass run='...'."
            )
        if run != self.run:
            self._checkRun(run)
            self.registry.registerRun(run)
        return run

    def put(
        self,
        obj: Any,
        datasetTypeOrName: DatasetRef | DatasetType | str,
        dataId: Mapping[str, Any] | None = None,
        *,
        run: str | None = None,
        **dataIdKwargs: Any,
    ) -> DatasetRef:
        """Store ``obj`` as the dataset of this type and data ID in ``run`` (default: the Butler's).

        Given a resolved `DatasetRef` instead of a type and data ID, the dataset keeps the
        ref's id and run (a ref without a run goes to ``run``, or the Butler's).

        Returns
        -------
        ref : DatasetRef
            The new dataset, with its id and run.

        Raises
        ------
        MissingDatasetTypeError, DataIdError
            The dataset type is not registered, or the data ID is wrong (as for `findDataset`).
        ConflictingDatasetError
            A dataset of this type and data ID already exists in the run; nothing was written.
        DatasetTypeMismatchError
            ``obj`` is not of the storage class's Python type; nothing was written.
        UnstorableDatasetError
            The storage class or a formatter cannot store ``obj`` exactly; refused before the
            registry is touched, nothing was written.
        NoDefaultRunError
            No run was given and the Butler has none.
        RunNameError
            A resolved ref is given with a different ``run``.
        ReadOnlyRepositoryError
            The Butler was opened with ``writeable=False``; nothing was written.
        """
        if isinstance(datasetTypeOrName, DatasetRef):
            return self._putRef(obj, datasetTypeOrName, dataId or dataIdKwargs, run)
        datasetType = self._lookup.resolveType(datasetTypeOrName)
        if datasetType.isComponent():
            raise DatasetTypeError(
                f"Cannot put component {datasetType.name!r} on its own; put the composite "
                f"{datasetType.nameAndComponent()[0]!r} and get components from it."
            )
        normalized = mergeDataId(datasetType, dataId, dataIdKwargs)
        self._requireWriteable(f"put {datasetType.name!r} {dict(normalized)}")
        # Refused objects are refused here, and the files encoded, before the registry's write
        # lock is taken: a slow or failing check or encoding must not keep other writers waiting.
        self.datastore.checkPut(obj, datasetType)
        runName = self._runFor(run, lambda: f"put {datasetType.name!r} {dict(normalized)}")
        datasetId = self.predictDatasetId(datasetType, normalized, runName)
        if datasetId is None:  # a repository without a recorded id: a random one, as the registry gives
            from .registry.data_ids import newDatasetId

            datasetId = newDatasetId()
        planned = DatasetRef._trusted(datasetType, normalized, datasetId, runName)
        # The formatters need not check it again (prevalidated).
        with prevalidated(obj), self.datastore.prepared([(obj, planned)]), self.transaction():
            ref = self.registry.addDataset(datasetType, normalized, runName, id=datasetId)
            self._storeRegistered(obj, ref)
        return ref

    def _putRef(
        self, obj: Any, ref: DatasetRef, dataId: Mapping[str, Any] | None, run: str | None
    ) -> DatasetRef:
        if dataId:
            raise ArgumentTypeError(
                f"put of the resolved ref {ref} takes no data ID (got {dict(dataId)!r}): the ref has one."
            )
        self._requireWriteable(f"put {ref}")
        ref = resolvedForPut(self, ref, run, "put")
        self.datastore.checkPut(obj, ref.datasetType)
        assert ref.run is not None
        if ref.run != self.run:
            self._checkRun(ref.run)
        with prevalidated(obj), self.datastore.prepared([(obj, ref)]), self.transaction():
            if ref.run != self.run:
                self.registry.registerRun(ref.run)
            (ref,) = self.registry.addDatasetRefs([ref])
            self._storeRegistered(obj, ref)
        return ref

    def _storeRegistered(self, obj: Any, ref: DatasetRef) -> None:
        """Put ``ref``, which the registry has just accepted, into the datastore.

        The registry did not hold the id, so a copy the memory tier still has under it is of a
        dataset removed elsewhere (ids are deterministic): the cached copies are dropped and
        the put tried once more. Another refusal (the file tier's) is raised.
        """
        try:
            self.datastore.put(obj, ref)
        except DatasetExistsError:
            self.datastore.dropCachedCopies()
            self.datastore.put(obj, ref)

    putMany = putMany
    ingest = ingest
    retrieveArtifacts = retrieveArtifacts

    def predictDatasetId(
        self, datasetTypeOrName: DatasetType | str, dataId: Mapping[str, Any], run: str | None = None
    ) -> uuid.UUID | None:
        """Return the id a `put` of this dataset type and data ID into ``run`` gives it.

        `None` for a repository without a recorded repository id (made by an older version):
        its puts get random ids.

        Raises
        ------
        MissingDatasetTypeError
            The dataset type (given by name) is not registered.
        DataIdError
            The data ID does not match the dataset type's dimensions.
        NoDefaultRunError
            No run was given and the Butler has none.
        """
        if self.datasetIdNamespace is None:
            return None
        datasetType = self._lookup.resolveType(datasetTypeOrName)
        runName = run or self.run
        if runName is None:
            raise NoDefaultRunError(
                f"Cannot predict the id of {datasetType.name!r} {dict(dataId)}: no run given and this "
                "Butler has none; pass run='...'."
            )
        normalized = self.registry.dimensions.coerceDataId(
            mergeDataId(datasetType, dataId, {}), f"Data ID of {datasetType.name!r}:"
        )
        return predictDatasetId(self.datasetIdNamespace, runName, datasetType.name, normalized)

    def map(
        self,
        fn: Callable[[dict[str, Any], dict[str, Any]], Mapping[str, Any]],
        dataIds: Iterable[Mapping[str, Any]],
        *,
        inputs: Sequence[str] = (),
        outputs: Sequence[str],
        run: str | None = None,
        collections: Sequence[str] | None = None,
        executor: Any = None,
        progress: bool | None = None,
        unitsPerTask: int | None = None,
    ) -> MapResult:
        """Run ``fn`` once per data ID on workers that never touch the registry; merge what they wrote.

        Parameters
        ----------
        fn : callable
            ``fn(dataId, inputs) -> outputs``: ``inputs`` maps each of ``inputs``' dataset type
            names to the object read for this data ID; it returns a dict with one object per
            name of ``outputs``. It must be picklable to run on Dask (a module-level function).
        dataIds : iterable of mapping
            One unit of work per data ID, covering the dimensions of every input and output.
        inputs, outputs : sequence of str
            Registered dataset type names read and written by each unit.
        run : str, optional
            The run the outputs go to (default: the Butler's); registered if new.
        collections : sequence of str, optional
            Where inputs are found, in order (default: the Butler's collections).
        executor : distributed.Client, optional
            Where units run; in this process, one after another, when not given.
        progress : bool, optional
            Show a progress bar on stderr (default: when stderr is a terminal).
        unitsPerTask : int, optional
            Units run one after another in each Dask task (default: enough for about 8 tasks
            per worker thread, see `databutler.workers.defaultUnitsPerTask`). A worker that
            dies takes its task's units with it: they are reported failed, none is merged.

        Returns
        -------
        result : MapResult
            Datasets merged and skipped, units run and skipped, registry transactions used.

        Raises
        ------
        MapUnitError
            Some units raised (or their worker died): each is named with its data ID and
            traceback, nothing of theirs was merged, all other units were. Running the same map
            again runs only the units whose outputs are not all registered, and writes only
            their missing outputs.
        ConflictingDatasetError
            An output id is registered with other content, another dataset holds its data ID,
            or (found before anything runs) another dataset's file is at its path.
        DatasetNotFoundError
            An input of a data ID is not in the collections; nothing was run.
        ReadOnlyRepositoryError
            The Butler was opened with ``writeable=False``.
        ArgumentTypeError
            ``unitsPerTask`` is not a whole number of at least 1.
        """
        self._requireWriteable("map into a run")
        if unitsPerTask is not None and (
            not isinstance(unitsPerTask, int) or isinstance(unitsPerTask, bool) or unitsPerTask < 1
        ):
            raise ArgumentTypeError(
                f"Butler.map: unitsPerTask must be a whole number of at least 1, not {unitsPerTask!r}; "
                "leave it out for the default."
            )
        runName = self._runFor(run, lambda: "map")
        searched = self._lookup.collectionsFor(collections) or [runName]
        from .workers import mapUnits  # the worker machinery, on the first map

        return mapUnits(
            self,
            fn,
            dataIds,
            list(inputs),
            list(outputs),
            runName,
            list(searched),
            executor,
            progress,
            unitsPerTask,
        )

    def removeDatasets(self, refs: Iterable[DatasetRef]) -> None:
        """Remove datasets from the registry and the datastore, all or none.

        Refs the registry knows but the datastore no longer holds are removed from the registry.

        Raises
        ------
        ArgumentTypeError
            ``refs`` is a str, or holds something other than DatasetRefs; nothing was removed.
        DatasetNotFoundError
            A ref is not in the registry; nothing was removed.
        DatasetTypeError
            A ref is a component ref: a component cannot be removed on its own, remove the
            composite; nothing was removed.
        ReadOnlyRepositoryError
            The Butler was opened with ``writeable=False``; nothing was removed.
        """
        if isinstance(refs, str | DatasetRef):
            raise ArgumentTypeError(
                f"removeDatasets takes an iterable of DatasetRefs, not {type(refs).__name__} {refs!r}; "
                "nothing was removed."
            )
        refs = list(refs)
        self._requireWriteable(f"remove {len(refs)} dataset(s)")
        notRefs = [ref for ref in refs if not isinstance(ref, DatasetRef)]
        if notRefs:
            raise ArgumentTypeError(
                f"removeDatasets takes DatasetRefs (from put, findDataset or queryDatasets), not "
                f"{type(notRefs[0]).__name__} {notRefs[0]!r}; nothing was removed."
            )
        components = [ref for ref in refs if ref.isComponent()]
        if components:
            ref = components[0]
            more = f" (and {len(components) - 1} more)" if len(components) > 1 else ""
            raise DatasetTypeError(
                f"Cannot remove component {ref.datasetType.name!r} of {ref}{more} on its own; remove "
                f"the composite {ref.datasetType.nameAndComponent()[0]!r} instead; nothing was removed."
            )
        parents = list(dict.fromkeys(refs))
        unknown = [ref for ref in parents if self.registry.getDataset(ref.id) is None]
        if unknown:
            shown = ", ".join(str(r) for r in unknown[:5])
            raise DatasetNotFoundError(
                f"Cannot remove {len(unknown)} dataset(s) not in repository {str(self.root)!r}: {shown}; "
                f"nothing was removed."
            )
        try:
            self._removeNow(parents)
        except DatabaseFullError:
            # The registry's log cannot grow: give back the space kept for this (see
            # registry/reserve.py) and try once more; the removal then frees the files.
            if self._spaceReserve is None or not self._spaceReserve.release():
                raise
            log.warning("Disk full: released %s to remove %d dataset(s).", self._spaceReserve, len(parents))
            self._removeNow(parents)
            self._spaceReserve.ensure()

    def _removeNow(self, parents: list[DatasetRef]) -> None:
        with self.transaction():
            self.registry.removeDatasets(parents)
            held = [ref for ref, known in self.datastore.knowsMany(parents).items() if known]
            self.datastore.removeMany(held)

    def transferFrom(
        self, source: Butler, refs: Iterable[DatasetRef], *, progress: bool | None = None
    ) -> list[DatasetRef]:
        """Copy datasets, keeping their ids and runs, from ``source`` into this repository.

        Dataset types and runs are registered as needed. Datasets already here with the same id
        are skipped. All or none: a failure leaves this repository unchanged.

        Parameters
        ----------
        source : Butler
            The repository to copy from.
        refs : iterable of DatasetRef
            The datasets, e.g. from ``source.queryDatasets(...)``.
        progress : bool, optional
            Show a rich progress bar on stderr; by default only when stderr is a terminal.

        Returns
        -------
        transferred : list of DatasetRef
            The datasets copied (not those skipped).

        Raises
        ------
        DatasetTypeConflictError
            A dataset type is registered here with a different definition.
        ConflictingDatasetError
            A different dataset of the same type, data ID and run exists here.
        DatasetNotFoundError
            A dataset is not in ``source``'s datastore.
        RunNameError
            A ref's run is not a name this registry can store; nothing was registered.
        """
        return transferFrom(self, source, refs, progress=progress)

    def import_(
        self, path: str | os.PathLike[str], *, transfer: str = "copy", skipExisting: bool = True
    ) -> ImportResult:
        """Read an export (`export`) into this repository, keeping every dataset's id, all or nothing.

        Dataset types, runs, chains and dimension records are added as needed; datasets already
        here with the same id, type, data ID and run are skipped (a second import adds nothing).
        Every file is checked against the size and checksum its manifest records before it is
        recorded, and lands at the path this repository's templates give it. If anything fails,
        nothing is added and the files placed are removed.

        Parameters
        ----------
        path : str or path-like
            The export's folder or zip file.
        transfer : str
            How files leave a folder export: ``copy`` (default), ``move``, ``hardlink``,
            ``link``, ``symlink`` or ``relsymlink`` (see `ingest`). Files in a zip are always
            extracted.
        skipExisting : bool
            `False` refuses the import if any of its datasets is already here.

        Returns
        -------
        result : ImportResult
            ``imported``: the datasets added; ``skipped``: those already here.

        Raises
        ------
        ManifestError
            The manifest is malformed, of another version, or names absurd sizes or checksums.
        UnsafePathError
            A file path leaves the export, or goes through a symbolic link.
        DatasetIntegrityError
            A file is missing or differs in size or checksum from its manifest.
        DatasetTypeConflictError
            A dataset type is registered here with other dimensions or storage class.
        ConflictingDatasetError
            An id is used here by another dataset, another dataset has the same type, data ID
            and run, or (``skipExisting=False``) a dataset is already here.
        ConflictingRecordError
            A dimension record differs from the one here.
        UnknownStorageClassError
            A dataset type's storage class is not known here.
        FormatterError
            A file's formatter is not one this datastore may read with (pickle, unless configured).
        ExportError
            ``path`` is not an export, or a dimension is missing or defined differently here.
        ReadOnlyRepositoryError
            The Butler was opened with ``writeable=False``.
        """
        from .export.importing import importDatasets

        return importDatasets(self, path, transfer=transfer, skipExisting=skipExisting)

    def export(
        self,
        path: str | os.PathLike[str],
        refs: Iterable[DatasetRef] | None = None,
        *,
        datasetTypes: str | Sequence[str] | None = None,
        where: Mapping[str, Any] | str | None = None,
        bind: Mapping[str, Any] | None = None,
        collections: str | Sequence[str] | None = None,
        format: str = "directory",
        manifestFormat: str = "json",
        transfer: str = "copy",
    ) -> Manifest:
        """Write datasets and all another repository needs to import them (`import_`) to ``path``.

        The export holds a manifest (``export.json``, or ``export.yaml``) naming the dimension
        definitions and records the datasets' data IDs use, their dataset types, their runs and
        the chains among ``collections``, and each dataset with its id, data ID and files (paths,
        formatters, sizes and checksums), plus the files themselves, byte for byte, under the
        paths they have in this repository. Nothing is decoded.

        Parameters
        ----------
        path : str or path-like
            A new (or empty) folder, or for ``format="zip"`` a new zip file.
        refs : iterable of DatasetRef, optional
            The datasets (from `queryDatasets`); without them, the query ``datasetTypes`` /
            ``where`` / ``collections`` chooses.
        datasetTypes : str or sequence of str, optional
            Dataset type names or glob patterns (default: every type).
        where : str or mapping, optional
            A query expression on data IDs (or required values), as for `queryDatasets`.
        bind : mapping, optional
            Values for the ``:name`` parameters of ``where``.
        collections : str or sequence of str, optional
            Collections to search (default: the Butler's); the chains among them are exported.
        format : str
            ``"directory"`` or ``"zip"`` (one file; entries are stored uncompressed).
        manifestFormat : str
            ``"json"`` (the default: an import reads it about ten times faster) or ``"yaml"``.
        transfer : str
            How the files go into a folder: ``"copy"`` (the default), ``"hardlink"`` (hard links
            to the stored files: no bytes are copied, but the export must be on the repository's
            file system, and its files *are* the stored ones, so they must never be edited in
            place) or ``"link"`` (hard links where possible, else copies). A zip holds copies.

        Returns
        -------
        manifest : Manifest
            What was written.

        Raises
        ------
        ExportError
            ``path`` exists (a folder that is not empty), the format or transfer is unknown, a
            hard link cannot be made (``"hardlink"``), or the repository keeps no files;
            nothing was written.
        DatasetNotFoundError
            A dataset is not in the file datastore; nothing was written.
        """
        from .export import exportDatasets  # the export machinery, on the first export

        return exportDatasets(
            self,
            path,
            refs,
            datasetTypes=datasetTypes,
            where=where,
            bind=bind,
            collections=collections,
            format=format,
            manifestFormat=manifestFormat,
            transfer=transfer,
        )

    def removeRuns(self, names: Iterable[str], unstore: bool = True) -> dict[str, int]:
        """Remove runs and every dataset in them; return run name → how many datasets went.

        Datasets go in chunks of `REMOVAL_CHUNK <databutler.registry.sql_registry.REMOVAL_CHUNK>`,
        each chunk one transaction of registry and datastore (memory stays bounded however big
        the run); the run itself goes last, so a run emptied this way does not linger. An
        interrupted removal leaves a smaller run that a second call finishes.

        Parameters
        ----------
        names : iterable of str
            The runs.
        unstore : bool
            Delete the files too (the default). `False` forgets the datasets but leaves their
            files, which `databutler.script.findOrphans` then lists.

        Raises
        ------
        MissingRunError
            A name is not a run; nothing was removed.
        CollectionError
            A chain lists one of the runs; nothing was removed (take it out of the chain first).
        ReadOnlyRepositoryError
            The Butler was opened with ``writeable=False``.
        """
        if isinstance(names, str):
            names = [names]
        runs = list(dict.fromkeys(names))
        self._requireWriteable(f"remove run(s) {runs}")
        from .registry.sql_registry import REMOVAL_CHUNK

        chains = {c: self.registry.getCollectionChain(c) for c in self.registry.queryCollections("CHAINED")}
        for name in runs:  # every run checked before anything is removed
            kind = str(self.registry.getCollectionType(name))
            if kind != "RUN":
                raise CollectionError(
                    f"{name!r} is a {kind} collection, not a RUN; remove it with removeCollection "
                    "(`databutler remove-collections`). Nothing was removed."
                )
            parents = sorted(c for c, children in chains.items() if name in children)
            if parents:
                raise CollectionError(
                    f"Cannot remove run {name!r}: chain(s) {parents} list it; take it out with "
                    "removeFromCollectionChain (or `databutler collection-chain --mode remove`) first. "
                    "Nothing was removed."
                )
        removed: dict[str, int] = {}
        for name in runs:
            count = 0
            while True:
                chunk = self.registry.someDatasetsInRun(name, REMOVAL_CHUNK)
                if not chunk:
                    break
                if unstore:
                    self._removeNow(chunk)
                else:
                    self._forgetNow(chunk)
                count += len(chunk)
            self.registry.removeRun(name)
            removed[name] = count
        return removed

    def _forgetNow(self, refs: list[DatasetRef]) -> None:
        """Remove ``refs`` from the registry and the datastore's records, leaving their files."""
        with self.transaction():
            self.registry.removeDatasets(refs)
            for ref, known in self.datastore.knowsMany(refs).items():
                if known:
                    self.datastore.removeStoredItemInfo(ref)

    def removeCollection(self, name: str) -> None:
        """Remove a TAGGED, CALIBRATION or CHAINED collection; its datasets stay in their runs.

        Raises
        ------
        CollectionError, MissingRunError
            As for `Registry.removeCollection` (a RUN goes with `removeRuns`).
        ReadOnlyRepositoryError
            The Butler was opened with ``writeable=False``.
        """
        self._requireWriteable(f"remove collection {name!r}")
        self.registry.removeCollection(name)

    def removeDatasetType(self, name: str) -> bool:
        """Remove dataset type ``name``; return `False` if it was not registered.

        Raises
        ------
        DatasetTypeError
            Datasets of it exist (the message says how many and in which runs).
        ReadOnlyRepositoryError
            The Butler was opened with ``writeable=False``.
        """
        self._requireWriteable(f"remove dataset type {name!r}")
        removed = self.registry.removeDatasetType(name)
        self._lookup.forget(name)
        return removed

    # -- reading --

    def findDataset(
        self,
        datasetTypeOrName: DatasetType | str,
        dataId: Mapping[str, Any] | None = None,
        *,
        collections: Sequence[str] | None = None,
        timespan: Any = None,
        **dataIdKwargs: Any,
    ) -> DatasetRef | None:
        """Return the ref of the dataset of this type and data ID, or `None` if there is none.

        With an ephemeral datastore, `None` also when this process does not hold it.

        ``collections`` (default: the Butler's) are searched in order; with none at all, every
        run is searched. A CALIBRATION collection is searched at ``timespan`` (a datetime or a
        `Timespan`), or at the timespan of the record of a visit or exposure given in the
        data ID beside the dataset type's own dimensions (``visit=903334`` for a ``bias``).

        Raises
        ------
        MissingDatasetTypeError
            The dataset type is not registered.
        DataIdError
            The data ID has missing or extra keys, or bad values.
        AmbiguousDatasetError
            No collections were given and several runs hold such a dataset.
        """
        found = self._lookup.find(datasetTypeOrName, dataId, collections, dataIdKwargs, timespan=timespan)
        if found is not None and not self._heldIfEphemeral([found]):
            return None
        return found

    def _heldIfEphemeral(self, refs: list[DatasetRef]) -> list[DatasetRef]:
        """Return ``refs``, less those an ephemeral datastore does not hold (all of them otherwise).

        A datastore that keeps datasets only in this process's memory loses them when the
        process ends, while the registry keeps their rows: what this process does not hold is
        gone and is not reported.
        """
        if not self.datastore.isEphemeral or not refs:
            return refs
        parents = [ref.makeCompositeRef() if ref.isComponent() else ref for ref in refs]
        held = self.datastore.knowsMany(parents)
        return [ref for ref, parent in zip(refs, parents, strict=True) if held.get(parent, False)]

    def get(
        self,
        datasetTypeOrRef: DatasetRef | DatasetType | str,
        dataId: Mapping[str, Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
        *,
        collections: Sequence[str] | None = None,
        timespan: Any = None,
        **dataIdKwargs: Any,
    ) -> Any:
        """Return a dataset, a component of it (``"calexp.wcs"``) or a part of it (``parameters``).

        Parameters
        ----------
        datasetTypeOrRef : DatasetRef, DatasetType or str
            A ref (from `put` or `queryDatasets`), or a dataset type or its name.
        dataId : mapping, optional
            The data ID; keyword arguments add to it (``visit=1, detector=2``).
        parameters : mapping, optional
            Storage-class read parameters, e.g. ``{"slice": (0, 10)}`` or ``{"columns": ["ra"]}``.
        collections : sequence of str, optional
            Collections to search, in order (default: the Butler's).
        timespan : datetime or Timespan, optional
            When a CALIBRATION collection is searched: the time the dataset must be valid at
            (see `findDataset`; a visit or exposure in the data ID gives it too).

        Raises
        ------
        DatasetNotFoundError
            No such dataset in the collections, a ref the registry no longer lists (removed,
            perhaps by another process), or the datastore no longer holds it.
        MissingDatasetTypeError, DataIdError
            The dataset type is not registered, or the data ID is wrong (as for `findDataset`).
        UnknownComponentError
            The dataset type has no such component.
        InvalidParameterError
            A parameter is not accepted by the storage class.
        AmbiguousDatasetError
            No collections were given and several runs hold such a dataset.
        """
        ref = self._lookup.require(datasetTypeOrRef, dataId, collections, dataIdKwargs, timespan=timespan)
        if isinstance(datasetTypeOrRef, DatasetRef):
            self._requireListed(ref, "get")
        return self.datastore.get(ref, parameters)

    def _requireListed(self, ref: DatasetRef, verb: str) -> None:
        """Raise unless the registry lists ``ref`` now (a lookup by data ID has asked it already).

        The memory tier is this process's own: without asking, it would answer for a dataset
        another process has removed, while `exists` says it is not there.
        """
        if self.registry.getDataset(ref.id) is None:
            raise DatasetNotFoundError(
                f"Cannot {verb} {ref}: it is not in repository {str(self.root)!r} (it was removed, "
                f"perhaps by another process, or never stored here)."
            )

    def exists(
        self,
        datasetTypeOrRef: DatasetRef | DatasetType | str,
        dataId: Mapping[str, Any] | None = None,
        *,
        collections: Sequence[str] | None = None,
        **dataIdKwargs: Any,
    ) -> bool:
        """Return `True` if the registry knows the dataset and the datastore holds it.

        Raises
        ------
        MissingDatasetTypeError, DataIdError
            The dataset type is not registered, or the data ID is wrong (as for `findDataset`).
        """
        if isinstance(datasetTypeOrRef, DatasetRef):
            ref = self._lookup.require(datasetTypeOrRef, dataId, collections, dataIdKwargs)
            if self.registry.getDataset(ref.id) is None:
                return False
        else:
            found = self.findDataset(datasetTypeOrRef, dataId, collections=collections, **dataIdKwargs)
            if found is None:
                return False
            ref = found
        return self.datastore.exists(ref)

    def getUri(
        self,
        datasetTypeOrRef: DatasetRef | DatasetType | str,
        dataId: Mapping[str, Any] | None = None,
        *,
        collections: Sequence[str] | None = None,
        predict: bool = False,
        **dataIdKwargs: Any,
    ) -> str:
        """Return the URI of a dataset in the datastore.

        Raises
        ------
        DatasetNotFoundError
            No such dataset, or the datastore does not hold it and ``predict`` is false.
        """
        ref = self._lookup.require(datasetTypeOrRef, dataId, collections, dataIdKwargs)
        if isinstance(datasetTypeOrRef, DatasetRef) and not predict:
            self._requireListed(ref, "get a URI for")
        return self.datastore.getUri(ref, predict=predict)

    def queryDatasets(
        self,
        datasetType: DatasetType | str | None = None,
        collections: Sequence[str] | str | None = None,
        where: Mapping[str, Any] | str | None = None,
        bind: Mapping[str, Any] | None = None,
        *,
        findFirst: bool = False,
        orderBy: str | Sequence[str] | None = None,
        limit: int | None = None,
        **whereKwargs: Any,
    ) -> QueryResults[DatasetRef]:
        """Return the datasets of a type (or of every type) whose data IDs match ``where``.

        Parameters
        ----------
        datasetType : DatasetType or str, optional
            The type (``"type.component"`` gives component refs); every type when omitted.
        collections : str or sequence of str, optional
            Runs to search, in order (default: the Butler's collections, or every run if it has none).
        where : mapping or str, optional
            Required data-ID values, e.g. ``{"visit": 12}``, or an expression such as
            ``"visit > 100 AND detector IN (1..8)"``; keyword arguments add to it.
        bind : mapping, optional
            Values for the ``:name`` parameters of a ``where`` expression.
        findFirst : bool
            Keep, for each data ID, only the dataset in the first of ``collections`` holding one.
        orderBy : str or sequence of str, optional
            Dimensions to sort by (``"-visit"`` descending); by default by run, then data ID.
        limit : int, optional
            Return at most this many.

        Returns
        -------
        refs : QueryResults of DatasetRef
            A list, with ``count()``, ``any()`` and ``explainNoResults()``.

        Raises
        ------
        MissingDatasetTypeError
            The dataset type is not registered.
        InvalidQueryError
            A ``where`` expression does not parse or names an unknown dimension, ``orderBy``
            names a dimension the results lack, or ``findFirst`` is given without collections.
        """
        searched = self._lookup.collectionsFor(collections) or None
        if findFirst and searched is None:
            raise InvalidQueryError("findFirst needs collections to search in order; pass collections=.")
        limit = _checkQueryArguments(where, bind, orderBy, limit)
        condition: Mapping[str, Any] | str | None
        if isinstance(where, str):
            condition, bind = _withKeywords(where, bind, whereKwargs)
            from .registry.queries import parseExpression  # the parser, on the first string query
            from .registry.queries.expressions import elementsOf

            needed = elementsOf(parseExpression(condition))
        else:
            condition = {**(where or {}), **whereKwargs} or None
            needed = set(condition or ())
        if datasetType is None:
            types = [t for t in self.registry.queryDatasetTypes() if not t.isComponent()]
        else:
            types = [self._lookup.resolveType(datasetType)]
        # One type, every ref reported: the registry sorts and limits in SQL.
        inSql = len(types) == 1 and not self.datastore.isEphemeral
        out: list[DatasetRef] = []
        queried: list[str] = []
        for datasetTypeHere in types:
            if datasetType is None and not needed <= set(datasetTypeHere.dimensions):
                continue  # a type without these dimensions has no matches
            parentName, component = datasetTypeHere.nameAndComponent()
            queried.append(parentName)
            refs = self.registry.queryDatasets(
                parentName,
                collections=searched,
                where=condition,
                bind=bind,
                findFirst=findFirst,
                orderBy=([orderBy] if isinstance(orderBy, str) else orderBy) if inSql else None,
                limit=limit if inSql else None,
            )
            out.extend([r.makeComponentRef(component) for r in refs] if component else refs)
        if not inSql:
            out = self._heldIfEphemeral(out)
            if orderBy:
                out = _ordered(out, [orderBy] if isinstance(orderBy, str) else list(orderBy))
            if limit is not None:
                out = out[: max(limit, 0)]

        def explain() -> list[str]:
            if not queried:
                return [f"No registered dataset type has the dimensions {sorted(needed)} that where names."]
            reasons: list[str] = []
            for name in queried:
                reasons += self.registry.explainDatasetQuery(name, searched, condition, bind)
            if not reasons and limit is not None and limit <= 0:
                reasons.append(f"limit={limit} keeps nothing.")
            return reasons

        from .registry.queries.results import QueryResults

        return QueryResults(out, explain)

    def queryDataIds(
        self,
        dimensions: str | Sequence[str],
        where: str | Mapping[str, Any] | None = None,
        bind: Mapping[str, Any] | None = None,
        *,
        datasets: str | DatasetType | Sequence[str | DatasetType] | None = None,
        collections: Sequence[str] | str | None = None,
    ) -> QueryResults[dict[str, Any]]:
        """Return the data IDs over ``dimensions`` that datasets have (of ``datasets`` only, if given).

        See `SqlRegistry.queryDataIds`; collections default to the Butler's (or every run).
        """
        _checkQueryArguments(where, bind, None, None)
        if isinstance(where, Mapping):  # as queryDatasets takes it: {"visit": [1, 2], "detector": 3}
            where, bind = _mappingWhere(where, bind)
        searched = self._lookup.collectionsFor(collections) or None
        return self.registry.queryDataIds(
            dimensions, where, bind=bind, datasets=datasets, collections=searched
        )

    def queryDatasetTypes(self, pattern: str | Sequence[str] = "*") -> list[DatasetType]:
        """Return the registered dataset types whose names match a glob ``pattern`` (or any of several)."""
        patterns = _patterns(pattern, "queryDatasetTypes")
        return [
            t
            for t in self.registry.queryDatasetTypes()
            if any(fnmatch.fnmatchcase(t.name, p) for p in patterns)
        ]

    def queryCollections(
        self, pattern: str | Sequence[str] = "*", types: str | Sequence[str] | None = None
    ) -> list[str]:
        """Return the names of the collections matching a glob ``pattern``, of the given ``types`` only.

        Raises
        ------
        InvalidQueryError
            A type is not a collection type.
        """
        patterns = _patterns(pattern, "queryCollections")
        return [
            name
            for name in self.registry.queryCollections(types)
            if any(fnmatch.fnmatchcase(name, p) for p in patterns)
        ]


def isPlainName(pattern: str) -> bool:
    """Return whether ``pattern`` names one thing rather than being a glob pattern (no ``*?[``)."""
    return not any(c in pattern for c in "*?[")


def _patterns(pattern: Any, verb: str) -> list[str]:
    """Return a glob pattern, or several, as a list; refuse anything else with `ArgumentTypeError`."""
    patterns = [pattern] if isinstance(pattern, str) else pattern
    if not isinstance(patterns, Sequence) or not all(isinstance(p, str) for p in patterns):
        raise ArgumentTypeError(
            f"{verb} takes a glob pattern (a str) or a list of them, not {pattern!r:.80}."
        )
    return list(patterns)


def _checkQueryArguments(where: Any, bind: Any, orderBy: Any, limit: Any) -> int | None:
    """Refuse query arguments of the wrong type with `ArgumentTypeError`; return ``limit`` as the SQL takes it.

    A ``limit`` beyond what a 64-bit LIMIT holds keeps everything, as it would if it fitted.
    """
    if where is not None and not isinstance(where, str | Mapping):
        raise ArgumentTypeError(
            f'where is an expression (a str such as "visit > 100") or a mapping of data ID values, not '
            f"{type(where).__name__} {where!r:.80}."
        )
    if bind is not None and not isinstance(bind, Mapping):
        raise ArgumentTypeError(
            f"bind is a mapping of parameter names to values, not {type(bind).__name__} {bind!r:.80}."
        )
    keys = [orderBy] if isinstance(orderBy, str) else orderBy
    if keys is not None and (not isinstance(keys, Sequence) or not all(isinstance(k, str) for k in keys)):
        raise ArgumentTypeError(
            f'orderBy is a dimension name ("-visit": descending) or a list of them, not {orderBy!r:.80}.'
        )
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ArgumentTypeError(
            f"limit is a whole number of results, not {type(limit).__name__} {limit!r:.80}."
        )
    return min(limit, 2**63 - 1)


def _reopenButler(root: str, run: str | None, collections: list[str], writeable: bool) -> Butler:
    """Open the Butler a pickle describes (see `Butler.__reduce__`)."""
    return Butler(root, run=run, collections=collections or None, writeable=writeable)


def _withKeywords(
    where: str, bind: Mapping[str, Any] | None, keywords: Mapping[str, Any]
) -> tuple[str, Mapping[str, Any] | None]:
    """Return ``where`` AND ``key = value`` for each keyword, the values passed as bind parameters."""
    if not keywords:
        return where, bind
    terms, merged = _boundTerms(((key, f"_keyword_{key}", value) for key, value in keywords.items()), bind)
    return " AND ".join([f"({where})", *terms]), merged


def _mappingWhere(
    where: Mapping[Any, Any], bind: Mapping[str, Any] | None
) -> tuple[str | None, Mapping[str, Any] | None]:
    """Return a ``where`` mapping as an expression, its values as bind parameters (never in the text)."""
    for key in where:
        if not isinstance(key, str) or _NAME.fullmatch(key) is None:
            raise ArgumentTypeError(
                f"A where mapping's keys are dimension names (or record fields such as 'visit.band'), not {key!r:.80}."
            )
    if not where:
        return None, bind
    terms, merged = _boundTerms(
        (
            (key, f"_where_{index}", list(value) if isinstance(value, tuple | set | frozenset) else value)
            for index, (key, value) in enumerate(where.items())
        ),
        bind,
    )
    return " AND ".join(terms), merged


def _boundTerms(
    items: Iterable[tuple[str, str, Any]], bind: Mapping[str, Any] | None
) -> tuple[list[str], dict[str, Any]]:
    """Return ``key = :name`` (``key IN (:name)`` for several values) for each (key, name, value).

    Also returns ``bind`` with each value bound to its name: values never go into the text.
    """
    merged = dict(bind or {})
    terms = []
    for key, name, value in items:
        merged[name] = value
        terms.append(
            f"{key} IN (:{name})" if isinstance(value, list | tuple | set | frozenset) else f"{key} = :{name}"
        )
    return terms, merged


_NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9]*(\.[A-Za-z_][A-Za-z_0-9]*)?")


def _ordered(refs: list[DatasetRef], orderBy: list[str]) -> list[DatasetRef]:
    """Return ``refs`` sorted by the dimensions of ``orderBy`` (``-name`` descending), stably."""
    for key in reversed(orderBy):
        descending = key.startswith("-")
        name = key.lstrip("-+")
        missing = [ref for ref in refs if name not in ref.dataId]
        if missing:
            raise InvalidQueryError(
                f"orderBy names {name!r}, which is not a dimension of {missing[0].datasetType.name!r} "
                f"(its dimensions are {list(missing[0].dataId)})."
            )
        refs = sorted(
            refs, key=lambda ref: (isinstance(ref.dataId[name], str), ref.dataId[name]), reverse=descending
        )
    return refs
