"""The `Datastore` contract that every datastore implements."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, Generic, NamedTuple, TypeAlias

from typing_extensions import TypeVar

from ..config import Config, ConfigSubset
from ..dataset_ref import DatasetRef
from ..dataset_type import DatasetType
from ..exceptions import (
    ArtifactError,
    ConfigError,
    DatasetNotFoundError,
    DatasetTypeError,
    DatastoreClassError,
    IngestError,
)
from ..storage_class import StorageClassFactory, importDottedName
from .bridge import DatasetLocationRegistry
from .transaction import DatastoreTransaction

__all__ = ["ArtifactRequest", "Datastore", "DatastoreConfig", "DatastoreConfigLike", "InfoT"]

InfoT = TypeVar("InfoT", default=Any)
"""What a datastore records about one stored dataset (its stored-item info type).

`InMemoryDatastore` is a ``Datastore[StoredItemInfo]``, `FileDatastore` a
``Datastore[StoredFileInfo]``; a plain ``Datastore`` means any of them."""


class DatastoreConfig(ConfigSubset):
    """Configuration of a datastore: the ``datastore`` section, which must give ``cls``."""

    component = "datastore"
    requiredKeys = ("cls",)
    defaultConfigFile = None


DatastoreConfigLike: TypeAlias = DatastoreConfig | Config | Mapping[str, Any] | str
"""What a datastore can be built from: a config, a mapping, or the path of a YAML file."""


class ArtifactRequest(NamedTuple):
    """Where and how `Datastore.retrieveArtifacts` places files: its arguments after ``refs``."""

    destination: str
    transfer: str
    preserve: bool
    overwrite: bool


class Datastore(ABC, Generic[InfoT]):
    """Stores datasets, keyed by `DatasetRef`; generic over its stored-item info type (`InfoT`).

    A datastore is chosen by the fully-qualified class name in ``datastore.cls`` and built with
    `fromConfig`. A minimal subclass::

        class DictDatastore(Datastore):
            defaultConfigFile = "datastores/dictDatastore.yaml"
            isEphemeral = True

            def __init__(self, config, registry=None):
                super().__init__(config, registry)
                self._objects = {}

            def put(self, inMemoryDataset, ref):
                self._objects[ref.id] = inMemoryDataset
            ...  # and the other abstract methods

    selected by this YAML::

        datastore:
          cls: mypackage.DictDatastore
          name: scratch

    Parameters
    ----------
    config : DatastoreConfig, Config, mapping or str
        Configuration (a path is read as YAML). The class's ``defaultConfigFile`` is merged
        beneath it.
    registry : DatasetLocationRegistry, optional
        Told which datasets this datastore holds and no longer holds.

    Attributes
    ----------
    config : DatastoreConfig
        Configuration used to create the datastore, with defaults merged.
    name : str
        Label associated with this datastore.
    storageClassFactory : StorageClassFactory
        Factory for storage classes named in config.
    """

    defaultConfigFile: ClassVar[str | None] = None
    """Path to configuration defaults, relative to the config search path or absolute."""

    isEphemeral: ClassVar[bool] = False
    """Whether datasets disappear when the process shuts down."""

    configKeys: ClassVar[frozenset[str] | None] = None
    """The keys this class accepts in its ``datastore`` section (`None`: not declared, any key).

    A datastore that declares them refuses a section with any other key (a misspelt
    ``templatse:`` is a `ConfigError` naming the key and the accepted ones, not ignored)."""

    def __init__(self, config: DatastoreConfigLike, registry: DatasetLocationRegistry | None = None) -> None:
        self.config = self.makeConfig(config)
        self.validateConfig(self.config)
        self.registry = registry
        self.name: str = str(self.config.get("name") or type(self).__name__)
        self.storageClassFactory = StorageClassFactory.fromDefaults()
        if "storageClasses" in self.config:
            self.storageClassFactory.addFromConfig({"storageClasses": self.config["storageClasses"]})
        self._txLocal = threading.local()
        self._openTransactions = 0  # in any thread; lets hot paths skip the thread-local lookup
        self._openTransactionsLock = threading.Lock()

    @classmethod
    def makeConfig(cls, config: DatastoreConfigLike) -> DatastoreConfig:
        """Return ``config`` as a DatastoreConfig with this class's defaults merged beneath it."""
        cfg = DatastoreConfig(config, mergeDefaults=False)
        if cls.defaultConfigFile is not None:
            cfg.mergeDefaultsFile(cls.defaultConfigFile)
        return cfg

    @classmethod
    def validateConfig(cls, config: Config | Mapping[str, Any]) -> None:
        """Check that ``config`` has only keys this class accepts (`configKeys`).

        ``config`` is a ``datastore`` section, or a config holding one; a chain checks its
        children too.

        Raises
        ------
        ConfigError
            A key is not accepted.
        """
        section = config.get("datastore", config) if "cls" not in config else config
        if isinstance(section, Config):
            section = section.toDict()
        if cls.configKeys is None or not isinstance(section, Mapping):
            return
        unknown = sorted(set(section) - cls.configKeys)
        if unknown:
            name = section.get("name") or cls.__name__
            raise ConfigError(
                f"{cls.__name__} {name!r} does not accept config key(s) {unknown}; it accepts "
                f"{sorted(cls.configKeys)}."
            )

    @staticmethod
    def fromConfig(config: DatastoreConfigLike, registry: DatasetLocationRegistry | None = None) -> Datastore:
        """Build the datastore named by ``datastore.cls`` in ``config``.

        Raises
        ------
        ConfigError
            The config has no ``cls``.
        DatastoreClassError
            ``cls`` cannot be imported or is not a Datastore subclass.
        """
        cfg = DatastoreConfig(config)
        where = f" in {str(cfg.configFile)!r}" if cfg.configFile else ""
        return Datastore.classFromConfig(cfg["cls"], f"datastore.cls{where}")(cfg, registry=registry)

    @staticmethod
    def classFromConfig(clsName: Any, where: str = "datastore.cls") -> type[Datastore]:
        """Return the `Datastore` subclass that the dotted name ``clsName`` (a ``cls:`` value) names.

        Every place that resolves a datastore class from config goes through this.

        Parameters
        ----------
        clsName : str
            A fully-qualified class name, e.g. ``databutler.FileDatastore``.
        where : str, optional
            Where the name was found, for messages (``datastore.datastores[1].cls``).

        Raises
        ------
        DatastoreClassError
            ``clsName`` is not a string, cannot be imported or is not a Datastore subclass.
        """
        if not isinstance(clsName, str):
            raise DatastoreClassError(f"{where} must be a dotted class name, not {clsName!r}.")
        try:
            cls = importDottedName(clsName, where)
        except Exception as exc:
            raise DatastoreClassError(f"{where}: cannot import {clsName!r}: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, Datastore)):
            raise DatastoreClassError(f"{where}: {clsName!r} is not a Datastore subclass.")
        return cls

    def __repr__(self) -> str:
        """Show the datastore class and its name."""
        return f"{type(self).__name__}(name={self.name!r})"

    # -- the spec's verbs --

    @abstractmethod
    def put(self, inMemoryDataset: Any, ref: DatasetRef) -> None:
        """Write ``inMemoryDataset`` as the dataset ``ref``.

        Parameters
        ----------
        inMemoryDataset : object
            The Dataset to store.
        ref : DatasetRef
            Reference to the associated Dataset.

        Raises
        ------
        TypeError
            Supplied object and storage class are inconsistent (`DatasetTypeMismatchError`).
        DatasetExistsError
            ``ref`` is already stored; the stored dataset is left in place.
        DatasetTypeError
            ``ref`` is a component ref: put the composite.
        """

    def checkRun(self, run: str) -> None:
        """Refuse, before the run is registered, a run name this datastore could not store under.

        The default accepts every name; a file datastore whose templates use ``{run}`` refuses
        names that cannot be part of a path.

        Raises
        ------
        UnsafePathError
            ``run`` cannot be used in this datastore's paths.
        """
        return None

    @contextmanager
    def prepared(self, pairs: Sequence[tuple[Any, DatasetRef]]) -> Iterator[None]:
        """Do now the formatting work that `put` of each ``(inMemoryDataset, ref)`` would do.

        A `Butler` enters this before it opens the registry transaction in which it puts the
        same pairs, so that encoding (a formatter writing a file) never runs while the
        registry's write lock is held. A `put` inside the block of a prepared ``(object, ref)``
        uses what was prepared; whatever is not used by the end of the block is discarded. The
        default prepares nothing; a failure raises what `put` would raise.
        """
        yield

    def checkPut(self, inMemoryDataset: Any, datasetType: DatasetType) -> None:
        """Refuse, before anything is written, a dataset that `put` would refuse as a bad object.

        A `Butler` calls this before it opens the registry transaction, so slow or failing
        checks (a formatter walking the data) never run while the registry's write lock is
        held. `put` checks again. The default checks the storage class
        (`StorageClass.checkInstance`); a datastore with formatters also asks them
        (`Formatter.validate`).

        Raises
        ------
        DatasetTypeMismatchError
            ``inMemoryDataset`` is not of the storage class's type.
        UnstorableDatasetError
            It cannot be stored exactly (by the storage class or a formatter).
        """
        datasetType.storageClass.checkInstance(inMemoryDataset, f"dataset type {datasetType.name!r}")

    def _checkPutArguments(self, inMemoryDataset: Any, ref: DatasetRef) -> None:
        """Refuse what no datastore stores: an object not of ``ref``'s storage class, a component ref.

        Every `put` starts with this (an `InMemoryDatastore` once per dataset type and object type).

        Raises
        ------
        DatasetTypeMismatchError
            ``inMemoryDataset`` is not of the storage class's type.
        DatasetTypeError
            ``ref`` is a component ref.
        """
        datasetType = ref.datasetType
        datasetType.storageClass.checkInstance(inMemoryDataset, str(ref))
        if datasetType.isComponent():
            raise DatasetTypeError(
                f"Cannot put component {ref} on its own; put the composite "
                f"{datasetType.nameAndComponent()[0]!r} and read components from it."
            )

    @abstractmethod
    def get(self, ref: DatasetRef, parameters: Mapping[str, Any] | None = None) -> Any:
        """Load the dataset ``ref``, with storage-class ``parameters`` applied.

        Parameters
        ----------
        ref : DatasetRef
            Reference to the required Dataset (a component ref reads that component).
        parameters : dict, optional
            StorageClass-specific parameters that specify, for example, a slice of the Dataset
            to be loaded.

        Returns
        -------
        inMemoryDataset : object
            Requested Dataset or slice thereof as an InMemoryDataset.

        Raises
        ------
        FileNotFoundError
            Requested dataset can not be retrieved (`DatasetNotFoundError`).
        TypeError
            Return value has unexpected type (`DatasetTypeMismatchError`).
        ValueError
            The dataset could not be processed: a formatter failed (`FormatterError`) or a
            parameter is unknown or unusable (`InvalidParameterError`).
        """

    @abstractmethod
    def exists(self, ref: DatasetRef) -> bool:
        """Return `True` if the dataset ``ref`` is really in this datastore (its artifact is there).

        A datastore that keeps records apart from its artifacts checks the artifact too (a
        file deleted behind the datastore's back does not exist); `knows` is the record check.
        ``exists(ref)`` implies ``knows(ref)``.

        Parameters
        ----------
        ref : DatasetRef
            Reference to the required dataset.

        Returns
        -------
        exists : bool
            True if the entity exists in the Datastore.
        """

    def knows(self, ref: DatasetRef) -> bool:
        """Return `True` if this datastore has a record of ``ref``, whether or not its artifact is there.

        This is cheap (no artifact is probed) and is what bookkeeping asks: which datasets a
        datastore should forget on removal, which ones it tells the registry about. The
        default is `exists`, right for a datastore whose records are its artifacts.
        """
        return self.exists(ref)

    @abstractmethod
    def remove(self, ref: DatasetRef) -> None:
        """Remove the dataset ``ref``.

        Parameters
        ----------
        ref : DatasetRef
            Reference to the required Dataset.

        Raises
        ------
        FileNotFoundError
            Attempt to remove a dataset that does not exist (`DatasetNotFoundError`).
        DatasetTypeError
            ``ref`` is a component ref: remove the composite instead.
        """

    @abstractmethod
    def getUri(self, ref: DatasetRef, predict: bool = False) -> str:
        """Return a URI for the dataset ``ref``.

        Parameters
        ----------
        ref : DatasetRef
            Reference to the required Dataset.
        predict : bool
            If True, allow URIs to be returned of datasets that have not been written.

        Returns
        -------
        uri : str
            URI string pointing to the Dataset within the datastore; with ``#predicted``
            appended when the dataset is not stored and ``predict`` is true.

        Raises
        ------
        FileNotFoundError
            A URI has been requested for a dataset that does not exist and guessing is not
            allowed (`DatasetNotFoundError`).
        """

    @abstractmethod
    def addStoredItemInfo(self, ref: DatasetRef, info: InfoT) -> None:
        """Record internal storage information for ``ref``.

        Parameters
        ----------
        ref : DatasetRef
            The Dataset that has been stored.
        info : StoredItemInfo
            Metadata associated with the stored Dataset (this datastore's info type).

        Raises
        ------
        KeyError
            An entry with this DatasetRef already exists (`StoredItemInfoExistsError`).
        TypeError
            ``info`` is not of this datastore's info type.
        """

    @abstractmethod
    def getStoredItemInfo(self, ref: DatasetRef) -> InfoT:
        """Return the internal storage information recorded for ``ref``.

        Parameters
        ----------
        ref : DatasetRef
            The Dataset that is to be queried.

        Returns
        -------
        info : StoredItemInfo
            Stored information about the dataset (this datastore's info type).

        Raises
        ------
        KeyError
            Dataset with that id can not be found (`StoredItemInfoNotFoundError`).
        """

    @abstractmethod
    def removeStoredItemInfo(self, ref: DatasetRef) -> None:
        """Remove the internal storage information recorded for ``ref``; the dataset itself stays.

        Parameters
        ----------
        ref : DatasetRef
            The Dataset whose information is removed.

        Raises
        ------
        KeyError
            No information is recorded for ``ref`` (`StoredItemInfoNotFoundError`).
        """

    @classmethod
    def setConfigRoot(cls, root: str, config: Config, full: Config) -> None:
        """Set filesystem-dependent options in ``config`` for a new repository at ``root``.

        The base implementation does nothing.

        Parameters
        ----------
        root : str
            Filesystem path or URI of the root of the data repository.
        config : Config
            The Config to update; only this component's subset is changed.
        full : Config
            A complete config with defaults expanded; read-only.
        """
        return None

    # -- optional verbs, with defaults --

    @property
    def children(self) -> Sequence[Datastore]:
        """The datastores this one is made of, in order (a chain's); empty by default."""
        return ()

    def verify(self, ref: DatasetRef) -> bool:
        """Check that ``ref`` can be given back intact; by default by reading it whole.

        A datastore that can check without decoding (sizes and checksums) overrides it.

        Returns
        -------
        intact : bool
            `True`; a dataset that cannot be read raises instead.

        Raises
        ------
        DatasetNotFoundError
            ``ref`` is not stored.
        """
        self.get(ref)
        return True

    def dropCachedCopies(self) -> None:
        """Drop the copies kept in memory of datasets a persistent store holds; a no-op by default.

        The registry asks for this (`Registry.addRemovalListener`) when another process has
        removed datasets, which may since have been put again under the same ids with other
        content: the next read of each goes to the persistent store. Datasets held only in
        memory stay.
        """
        return None

    def close(self) -> None:
        """Release what the datastore holds open (database connections); a no-op by default.

        The datastore must not be used afterwards.
        """
        return None

    def transfer(self, inputDatastore: Datastore, ref: DatasetRef) -> None:
        """Read ``ref`` from ``inputDatastore`` and store it here.

        Raises
        ------
        FileNotFoundError
            ``ref`` is not in ``inputDatastore``.
        DatasetExistsError
            ``ref`` is already stored here.
        """
        self.put(inputDatastore.get(ref), ref)

    def ingest(self, datasets: Iterable[tuple[str, DatasetRef, Any]], transfer: str = "auto") -> None:
        """Bring existing files in as the datasets they hold (``(path, ref, formatter)`` each).

        Only datastores that keep files can; see `FileDatastore.ingest`.

        Raises
        ------
        IngestError
            This datastore does not keep files.
        """
        raise IngestError(
            f"Datastore {self.name!r} ({type(self).__name__}) does not keep files, so it cannot ingest "
            "them; ingest into a FileDatastore (or a chain holding one)."
        )

    def retrieveArtifacts(
        self,
        refs: Iterable[DatasetRef],
        destination: str,
        transfer: str = "copy",
        preserve: bool = True,
        overwrite: bool = False,
    ) -> list[str]:
        """Copy or link the stored files of ``refs`` under the local folder ``destination``.

        The files are the stored bytes, never decoded or re-encoded; a copy is checked against
        the recorded size and checksum as it is made. Nothing is written until every target is
        checked; a failure part-way removes the files this call placed. Only datastores that
        keep files can (they implement `_retrieveArtifacts`); see `FileDatastore`.

        Parameters
        ----------
        refs : iterable of DatasetRef
            The datasets (a disassembled composite gives one file per component).
        destination : str
            A local folder (created if needed).
        transfer : str
            ``copy``, ``link`` (a hard link, else a symbolic one), ``hardlink``, ``symlink`` or
            ``relsymlink`` (links only from a local root).
        preserve : bool
            Keep each file's path relative to the root (its file template); `False` puts every
            file directly in ``destination`` (two with one name are refused).
        overwrite : bool
            Replace files already at the destination (refused by default).

        Returns
        -------
        paths : list of str
            The files written, in the order of ``refs``.

        Raises
        ------
        DatasetNotFoundError
            A ref is not stored here.
        ArtifactExistsError
            A file is already at a target path (and not ``overwrite``), or two files would share one.
        ArtifactError
            This datastore keeps no files, the mode is unknown, or links were asked of a remote root.
        UnsafePathError
            A recorded path, or a symbolic link inside ``destination``, would put a file outside it.
        DatasetIntegrityError
            A stored file no longer has its recorded size or checksum.
        """
        return self._retrieveArtifacts(refs, ArtifactRequest(destination, transfer, preserve, overwrite))

    def _retrieveArtifacts(self, refs: Iterable[DatasetRef], request: ArtifactRequest) -> list[str]:
        """Place the files of ``refs`` as ``request`` says: `retrieveArtifacts` of a datastore with files.

        The default refuses: this datastore keeps no files.
        """
        raise ArtifactError(
            f"Datastore {self.name!r} ({type(self).__name__}) does not keep files, so it has no artifacts "
            "to retrieve; get the datasets instead."
        )

    # -- bulk verbs, built from the single ones --

    def putMany(self, pairs: Iterable[tuple[Any, DatasetRef]]) -> None:
        """Put each ``(inMemoryDataset, ref)`` pair; all or none when inside a transaction."""
        with self.transaction():
            for obj, ref in pairs:
                self.put(obj, ref)

    def getMany(
        self,
        refs: Iterable[DatasetRef],
        parameters: Mapping[str, Any] | None = None,
        *,
        missing: list[DatasetRef] | None = None,
    ) -> dict[DatasetRef, Any]:
        """Return ``{ref: dataset}`` for every ref.

        Parameters
        ----------
        refs : iterable of DatasetRef
            The datasets to read.
        parameters : mapping, optional
            Parameters applied to every dataset.
        missing : list, optional
            If given, refs that are not stored are appended to it instead of raising.

        Raises
        ------
        DatasetNotFoundError
            Some refs are not stored (all of them are named) and ``missing`` was not given.
        """
        out: dict[DatasetRef, Any] = {}
        notFound: list[DatasetRef] = []
        for ref in refs:
            try:
                out[ref] = self.get(ref, parameters)
            except DatasetNotFoundError:
                notFound.append(ref)
        self._reportMissing(notFound, missing)
        return out

    def existsMany(self, refs: Iterable[DatasetRef]) -> dict[DatasetRef, bool]:
        """Return ``{ref: exists(ref)}``."""
        return {ref: self.exists(ref) for ref in refs}

    def knowsMany(self, refs: Iterable[DatasetRef]) -> dict[DatasetRef, bool]:
        """Return ``{ref: knows(ref)}``."""
        return {ref: self.knows(ref) for ref in refs}

    def removeMany(self, refs: Iterable[DatasetRef]) -> None:
        """Remove every ref; if some are missing, the rest are still removed, then an error names them.

        Raises
        ------
        DatasetNotFoundError
            Some refs were not stored.
        """
        notFound = []
        for ref in refs:
            try:
                self.remove(ref)
            except DatasetNotFoundError:
                notFound.append(ref)
        self._reportMissing(notFound, None, verb="remove")

    def _reportMissing(
        self, notFound: list[DatasetRef], missing: list[DatasetRef] | None, verb: str = "get"
    ) -> None:
        if not notFound:
            return
        if missing is not None:
            missing.extend(notFound)
            return
        shown = ", ".join(str(r) for r in notFound[:10])
        more = f" and {len(notFound) - 10} more" if len(notFound) > 10 else ""
        raise DatasetNotFoundError(
            f"Cannot {verb} {len(notFound)} dataset(s) not in datastore {self.name!r}: {shown}{more}."
        )

    # -- transactions --

    @contextmanager
    def transaction(self, deferCommitActions: bool = False) -> Iterator[DatastoreTransaction]:
        """Undo this thread's puts in the body if it raises; transactions nest.

        A nested transaction that fails is rolled back on its own; one that succeeds is undone
        too if the enclosing transaction later fails.

        Parameters
        ----------
        deferCommitActions : bool, optional
            If true, the outermost transaction does not run its on-commit actions (such as
            deleting removed datasets' files) when it commits; the caller runs them with
            ``tx.runCommitActions()`` after the ``with`` block, once nothing else can fail.
        """
        local = self._txLocal
        parent = getattr(local, "transaction", None)
        tx = DatastoreTransaction(parent, deferCommitActions=deferCommitActions)
        local.transaction = tx
        with self._openTransactionsLock:
            self._openTransactions += 1
        try:
            yield tx
        except BaseException:
            tx.rollback()
            raise
        else:
            tx.commit()
        finally:
            local.transaction = parent
            with self._openTransactionsLock:
                self._openTransactions -= 1

    def _registerUndo(self, name: str, undoFunc: Callable[..., Any], *args: Any) -> None:
        if not self._openTransactions:
            return
        tx = getattr(self._txLocal, "transaction", None)
        if tx is not None:
            tx.registerUndo(name, undoFunc, *args)

    # -- helpers shared by implementations --

    def _notifyAdded(self, refs: list[DatasetRef]) -> None:
        if self.registry is not None and refs:
            self.registry.addDatasetLocations(self.name, refs)

    def _notifyRemoved(self, refs: list[DatasetRef]) -> None:
        if self.registry is not None and refs:
            self.registry.removeDatasetLocations(self.name, refs)

    def __contains__(self, ref: object) -> bool:
        """Return `True` if ``ref`` is a `DatasetRef` that this datastore holds (see `exists`)."""
        return isinstance(ref, DatasetRef) and self.exists(ref)
