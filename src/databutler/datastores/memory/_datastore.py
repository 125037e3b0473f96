"""InMemoryDatastore: a process-local store, also the fast tier of a chain.

Datasets live in an `EntryTable` keyed by the integer value of their UUID. A component ref
shares its parent's id, so a component is read out of the parent's entry by the storage class
delegate. `CopyPolicy` decides who owns each stored object.

With no limits and no expiry, reads take no lock (entries are immutable tuples and dict reads
are atomic) and puts of a dataset type seen before skip re-validation; everything else goes
through the table under its lock.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from typing_extensions import override

from ...dataset_ref import DatasetRef
from ...dataset_type import DatasetType
from ...datastore.base import Datastore, DatastoreConfigLike
from ...datastore.bridge import DatasetLocationRegistry
from ...datastore.records import StoredItemInfo
from ...exceptions import (
    ConfigError,
    DatasetExistsError,
    DatasetNotFoundError,
    DatasetTooLargeError,
    DatasetTypeError,
    DatasetTypeMismatchError,
    StoredItemInfoExistsError,
    StoredItemInfoNotFoundError,
)
from ...storage_class import CopyMode, StorageClass, StorageClassDelegate
from ._entries import (
    ADMISSIONS,
    Entry,
    EntryTable,
    InMemoryDatastoreStats,
    parseBytes,
    parsePositive,
)
from ._ownership import REFERENCE, CopyPolicy, handOut

# Globals for the fast paths of put (a global lookup is cheaper than an attribute chain).
_newEntry = tuple.__new__
_now = time.time
_ownObject = CopyPolicy.own

__all__ = ["InMemoryDatastore", "InMemoryDatastoreStats"]

log = logging.getLogger(__name__)

# What a put of a dataset type checked once reuses: (datasetType, pytype, copy mode, delegate).
_PutInfo = tuple[DatasetType, type, CopyMode, StorageClassDelegate]


class InMemoryDatastore(Datastore[StoredItemInfo]):
    """Basic Datastore for writing to an in-memory cache.

    This datastore is ephemeral: its contents disappear when the Python process ends, and
    other processes cannot see them.

    Parameters
    ----------
    config : DatastoreConfig or str
        Configuration (a path is read as YAML). Keys under ``datastore``: ``name``,
        ``maxBytes``, ``maxItems``, ``expireSeconds``, ``copyMode``, ``storageClasses``.
    registry : DatasetLocationRegistry, optional
        Told which datasets this datastore holds and no longer holds.

    Attributes
    ----------
    config : DatastoreConfig
        Configuration used to create Datastore.
    storageClassFactory : StorageClassFactory
        Factory for creating storage class instances from name.
    name : str
        Label associated with this Datastore, unique per instance.
    """

    defaultConfigFile = "datastores/inMemoryDatastore.yaml"
    """Path to configuration defaults, relative to the config search path."""

    isEphemeral = True
    """A new datastore is created every time and datasets disappear when the process shuts down."""

    configKeys = frozenset(
        {
            "cls", "name", "maxBytes", "maxItems", "expireSeconds", "admission", "admitFraction",
            "copyMode", "constraints", "storageClasses",
        }
    )  # fmt: skip
    """The keys of its ``datastore`` section (``constraints`` is read by an enclosing chain)."""

    def __init__(self, config: DatastoreConfigLike, registry: DatasetLocationRegistry | None = None) -> None:
        super().__init__(config, registry)
        self.name = f"{self.config.get('name') or type(self).__name__}@{uuid.uuid4().hex[:8]}"
        cfg = self.config
        self.maxBytes: int | None = parseBytes(cfg.get("maxBytes"), "maxBytes")
        self.maxItems: int | None = parsePositive(cfg.get("maxItems"), "maxItems", int)
        self.expireSeconds: float | None = parsePositive(cfg.get("expireSeconds"), "expireSeconds", float)
        self.copyPolicy = CopyPolicy(cfg.get("copyMode"))
        admission = cfg.get("admission", "frequency")
        if admission not in ADMISSIONS:
            raise ConfigError(f"datastore.admission is {admission!r}; choose one of {', '.join(ADMISSIONS)}.")
        admitFraction = cfg.get("admitFraction", 0.125)
        if (
            isinstance(admitFraction, bool)
            or not isinstance(admitFraction, int | float)
            or not (0 < admitFraction <= 1)
        ):
            raise ConfigError(f"datastore.admitFraction must be a number in (0, 1], not {admitFraction!r}.")
        self._table = EntryTable(
            self.name, self.maxBytes, self.maxItems, self.expireSeconds, admission, float(admitFraction)
        )
        # Aliases for the hot paths.
        self._entries = self._table.entries
        self._lock = self._table.lock
        self._simple = self._table.simple
        self._countHit = self._table.countHit
        # Registry calls are made outside every lock of this datastore (see _syncRegistry).
        self._putCache: dict[str, _PutInfo] = {}  # by dataset type name, for puts that passed once

    def copyModeFor(self, datasetType: DatasetType) -> CopyMode:
        """Return the copy mode used for datasets of ``datasetType``.

        Raises
        ------
        StorageClassError
            ``freeze`` is configured by name for a storage class that cannot be frozen.
        """
        return self.copyPolicy.modeFor(datasetType)

    # -- put --

    def _checkPut(self, inMemoryDataset: Any, ref: DatasetRef) -> _PutInfo:
        """Validate a put of a dataset type not seen before (or of an object of another type)."""
        self._checkPutArguments(inMemoryDataset, ref)
        datasetType = ref.datasetType
        storageClass = datasetType.storageClass
        info = (
            datasetType,
            type(inMemoryDataset),  # later puts of exactly this type skip the checks
            self.copyPolicy.modeFor(datasetType),
            storageClass.delegate(),
        )
        self._putCache[datasetType.name] = info
        return info

    def _putInfo(self, inMemoryDataset: Any, ref: DatasetRef) -> _PutInfo:
        """Return the checked put info of ``ref``'s dataset type, validating ``inMemoryDataset`` if new."""
        info = self._putCache.get(ref.datasetType.name)
        if info is None or info[0] is not ref.datasetType or type(inMemoryDataset) is not info[1]:
            info = self._checkPut(inMemoryDataset, ref)
        return info

    def _own(
        self, inMemoryDataset: Any, ref: DatasetRef, adopt: bool = False, size: int | None = None
    ) -> Entry:
        """Validate, own per the copy mode and size: the one ownership helper of every put.

        A dataset type is validated once; later puts of it (the same `DatasetType` object and an
        object of its type) reuse the check. Returns the entry to insert; does not insert it.
        ``size``, if given, is the size of ``inMemoryDataset`` already measured (an adopted
        object is stored as it is or as a frozen copy of the same data: the same size).
        """
        info = self._putInfo(inMemoryDataset, ref)
        delegate = info[3]
        stored, mode, copier = CopyPolicy.own(inMemoryDataset, delegate, info[2], adopt)
        if size is None and self._table.trackSizes:
            size = delegate.getSize(stored)
        return Entry._make((stored, ref, time.time(), mode, size, copier))

    @override
    def put(self, inMemoryDataset: Any, ref: DatasetRef) -> None:
        """Store ``inMemoryDataset`` as ``ref``, owned as its copy mode says (`copyModeFor`).

        Raises
        ------
        DatasetTooLargeError
            The dataset alone is larger than ``maxBytes``; nothing is evicted.
        """
        info = self._putCache.get(ref.datasetType.name)
        if (
            not self._simple
            or info is None
            or info[0] is not ref.datasetType
            or type(inMemoryDataset) is not info[1]
        ):
            self._insert([self._own(inMemoryDataset, ref)])
            return
        # The fast path (no limits, no expiry, a dataset type and object type checked before):
        # the same ownership as `_own`, with no size and no batch.
        mode = info[2]
        if mode is REFERENCE:
            entry = _newEntry(Entry, (inMemoryDataset, ref, _now(), mode, None, None))
        else:
            stored, mode, copier = _ownObject(inMemoryDataset, info[3], mode, False)
            entry = _newEntry(Entry, (stored, ref, _now(), mode, None, copier))
        key = ref.id.int
        entries = self._entries
        with self._lock:
            if key in entries:
                raise self._existsError(ref)
            entries[key] = entry
        if self.registry is not None or self._openTransactions:
            self._afterInsert([ref], [])

    @override
    def putMany(self, pairs: Iterable[tuple[Any, DatasetRef]]) -> None:
        """Put every ``(inMemoryDataset, ref)`` pair, all or none.

        Every pair is checked before anything is stored: a bad object, a duplicate ref (in the
        batch or in the store) or an oversized batch stores none of them.
        """
        prepared: list[Entry] = []
        seen: set[int] = set()
        for obj, ref in pairs:
            key = ref.id.int
            if key in seen:
                raise DatasetExistsError(f"Dataset {ref} appears twice in one putMany; nothing was stored.")
            seen.add(key)
            prepared.append(self._own(obj, ref))
        self._insert(prepared)

    def adopt(self, inMemoryDataset: Any, ref: DatasetRef, *, tellRegistry: bool = True) -> Any:
        """Take in a dataset just read from another datastore, if admitted; return the reader's object.

        This is a chain's read-through copy. ``inMemoryDataset`` must be an object nobody else
        holds (just decoded from a file): it is stored without a copy in every copy mode but
        ``freeze``, and the reader gets what a `get` would give (its own copy or a read-only
        view) or, if the store keeps a frozen copy or nothing, ``inMemoryDataset`` itself.
        A bounded store may refuse it (see the ``admission`` config); nothing else is refused
        but a dataset it already holds. With ``tellRegistry`` false the registry is not told of
        the new copy (a chain that already holds the dataset); it is still told of evictions.
        A bounded store decides before it owns the object, so a refused read-through makes no
        copy (a frozen array's copy is as large as the array).
        """
        size = None
        table = self._table
        if table.bounded:
            if table.trackSizes:  # validated first, as `_own` would
                size = self._putInfo(inMemoryDataset, ref)[3].getSize(inMemoryDataset)
            with self._lock:
                worthIt = table.screenLocked(ref.id.int, size)
            if not worthIt:
                self._flushExpired()  # what the screen swept is reported, as an insert's sweep is
                return inMemoryDataset
        prepared = self._own(inMemoryDataset, ref, adopt=True, size=size)
        try:
            admitted = self._insert([prepared], admission=True, tellRegistry=tellRegistry)
        except (DatasetExistsError, DatasetTooLargeError):
            return inMemoryDataset
        if not admitted or prepared.obj is not inMemoryDataset or prepared.handOut is None:
            return inMemoryDataset
        return prepared.handOut(prepared.obj)

    def _insert(self, prepared: list[Entry], admission: bool = False, tellRegistry: bool = True) -> bool:
        """Insert all of ``prepared`` or none; return False if the admission policy refused them."""
        try:
            with self._lock:
                evicted = self._table.insertLocked(prepared, self._existsError, admission)
        finally:
            if not self._simple:
                self._flushExpired()  # what the insert swept is reported even if it then failed
        if evicted is None:
            return False
        if evicted or (tellRegistry and self.registry is not None) or self._openTransactions:
            self._afterInsert([p.ref for p in prepared], evicted, tellRegistry)
        return True

    def _afterInsert(
        self, refs: list[DatasetRef], evicted: list[DatasetRef], tellRegistry: bool = True
    ) -> None:
        """Tell the registry and the open transaction; undo the insert if the registry fails."""
        if evicted:
            self._logGone(evicted, "evicted")
            self._syncRegistry(evicted)
        if tellRegistry and self.registry is not None:
            try:
                self._syncRegistry(refs)
            except BaseException:
                self._dropMany(refs)
                raise
        if self._openTransactions:
            self._registerUndo(f"put of {len(refs)} dataset(s)", self._dropMany, refs)

    def _existsError(self, ref: DatasetRef) -> DatasetExistsError:
        return DatasetExistsError(
            f"Dataset {ref} is already in datastore {self.name!r}; nothing was stored. "
            f"Remove it first to replace it."
        )

    def _dropMany(self, refs: list[DatasetRef]) -> None:
        """Undo puts: drop these refs' entries if present (no error if already gone)."""
        dropped = []
        with self._lock:
            for ref in refs:
                entry = self._entries.get(ref.id.int)
                if entry is not None and entry.ref == ref:
                    self._table.popLocked(ref.id.int)
                    dropped.append(ref)
        self._syncRegistry(dropped)

    def dropWhere(self, predicate: Callable[[DatasetRef], bool]) -> int:
        """Drop every dataset whose ref satisfies ``predicate``, as an eviction would; return how many.

        The registry is told as for an eviction; no transaction undoes it. A chain calls it
        (`ChainedDatastore.dropCachedCopies`) when copies it caches may be out of date.
        """
        with self._lock:
            refs = [entry.ref for entry in self._entries.values() if predicate(entry.ref)]
        self._dropMany(refs)
        return len(refs)

    def _syncRegistry(self, refs: list[DatasetRef]) -> None:
        """Tell the registry whether this datastore holds each of ``refs`` *now*.

        Called after every change, holding no lock of this datastore: a registry call may wait
        for a database lock that another thread holds while it waits for this datastore, so
        waiting under a lock here could deadlock. Instead, when two threads change the same
        dataset their registry calls may land in either order, so after its calls each thread
        reads the state again and sends once more whatever changed meanwhile; the call that
        lands last therefore always carries the final state.
        """
        if self.registry is None or not refs:
            return
        pending = refs
        while pending:
            held, gone = self._holding(pending)
            if gone:
                self.registry.removeDatasetLocations(self.name, gone)
            if held:
                self.registry.addDatasetLocations(self.name, held)
            heldNow, _ = self._holding(pending)
            sent = {ref.id for ref in held}
            now = {ref.id for ref in heldNow}
            pending = [ref for ref in pending if (ref.id in sent) != (ref.id in now)]

    def _holding(self, refs: list[DatasetRef]) -> tuple[list[DatasetRef], list[DatasetRef]]:
        """Split ``refs`` into those this datastore holds and those it does not."""
        entries = self._entries
        held: list[DatasetRef] = []
        gone: list[DatasetRef] = []
        for ref in refs:
            entry = entries.get(ref.id.int)
            (held if entry is not None and entry.ref.id == ref.id else gone).append(ref)
        return held, gone

    def _logGone(self, refs: list[DatasetRef], how: str) -> None:
        if log.isEnabledFor(logging.DEBUG):
            for ref in refs:
                log.debug(
                    "Datastore %s %s %s (maxBytes=%s, maxItems=%s, expireSeconds=%s).",
                    self.name, how, ref, self.maxBytes, self.maxItems, self.expireSeconds,
                )  # fmt: skip

    def _flushExpired(self) -> None:
        """Tell the registry about datasets that expired while being looked up."""
        expired = self._table.takePendingExpired()
        if expired:
            self._logGone(expired, "expired")
            self._syncRegistry(expired)

    def sweepExpired(self) -> int:
        """Drop every expired dataset now; return how many were dropped."""
        with self._lock:
            expired = self._table.sweepLocked(time.time())
        self._logGone(expired, "expired")
        self._syncRegistry(expired)
        return len(expired)

    # -- get and exists --

    def _notFound(self, ref: DatasetRef, verb: str) -> DatasetNotFoundError:
        why = self._table.tombstone(ref.id.int)
        entry = self._entries.get(ref.id.int)
        if entry is not None and not self._sameDataset(ref, entry.ref):
            why = f"id {ref.id} holds {entry.ref.datasetType.name!r}, not {ref.datasetType.name!r}"
        return DatasetNotFoundError(
            f"Cannot {verb} {ref}: not in datastore {self.name!r}" + (f"; {why}." if why else ".")
        )

    def _find(self, ref: DatasetRef, lookup: Callable[[int], Entry | None]) -> Entry | None:
        """Return the entry holding ``ref`` (or its parent), else `None`: every verb's one lookup.

        ``lookup`` is the table's `EntryTable.lookupLocked` (called with the lock held; it
        expires and marks recency) or, where neither applies, the entries' own ``get``.
        """
        entry = lookup(ref.id.int)
        if entry is None or entry.ref is ref or self._sameDataset(ref, entry.ref):
            return entry
        return None  # the id holds another dataset type

    @override
    def get(self, ref: DatasetRef, parameters: Mapping[str, Any] | None = None) -> Any:
        """Return the stored object, or the reader's copy or read-only view, as its copy mode says.

        A dataset that was evicted or has expired raises a `DatasetNotFoundError` that says
        when and why.
        """
        if self._simple and not parameters:  # the fast path of tryGet: no lock, no parameters
            entry = self._entries.get(ref.id.int)
            if entry is not None and (entry[1] is ref or entry[1].datasetType is ref.datasetType):
                self._countHit()
                copier = entry[5]  # Entry.handOut
                return entry[0] if copier is None else copier(entry[0])
        found, obj = self.tryGet(ref, parameters)
        if not found:
            raise self._notFound(ref, "get")
        return obj

    def tryGet(self, ref: DatasetRef, parameters: Mapping[str, Any] | None = None) -> tuple[bool, Any]:
        """Return ``(True, dataset)`` as `get` would, or ``(False, None)`` if it is not held.

        Counted in `stats` as `get` is; a chain asks its memory tier this way, so that a miss
        costs no exception.

        Raises
        ------
        TypeError, ValueError
            As `get`: the stored object is not of the ref's type, or a parameter is bad.
        """
        table = self._table
        if self._simple:  # entries are immutable tuples and a dict read is atomic: no lock
            entry = self._find(ref, self._entries.get)
            if entry is not None:
                table.countHit()
                return True, self._handOut(entry, ref, parameters)
        with self._lock:
            entry = self._find(ref, table.lookupLocked)
            table.countLocked(entry is not None, ref.id.int)
        if entry is None:
            self._flushExpired()
            return False, None
        return True, self._handOut(entry, ref, parameters)

    def _handOut(self, entry: Entry, ref: DatasetRef, parameters: Mapping[str, Any] | None) -> Any:
        """Give a reader ``ref`` from ``entry``: its copy or view per the entry's copy mode."""
        storedRef = entry.ref
        if not parameters and (
            storedRef is ref
            or (
                ref.datasetType.name == storedRef.datasetType.name
                and ref.datasetType.storageClass is storedRef.datasetType.storageClass
            )
        ):
            copier = entry.handOut
            return entry.obj if copier is None else copier(entry.obj)
        return self._materialize(entry, ref, parameters)

    def _materialize(self, entry: Entry, ref: DatasetRef, parameters: Mapping[str, Any] | None) -> Any:
        """Extract a component, apply parameters, check the type and hand out per the copy mode."""
        storedRef = entry.ref
        obj = entry.obj
        target = ref.datasetType.storageClass
        stored = storedRef.datasetType.storageClass
        if ref is not storedRef and ref.datasetType.name != storedRef.datasetType.name:
            parentName, component = ref.datasetType.nameAndComponent()
            if component is None or parentName != storedRef.datasetType.name:
                raise DatasetNotFoundError(
                    f"No dataset {ref} in datastore {self.name!r}: id {ref.id} holds "
                    f"{storedRef.datasetType.name!r}, not {ref.datasetType.name!r}."
                )
            obj = stored.delegate().getComponent(obj, component)
            if obj is None:
                return None  # the composite was stored without this component
            stored = stored.components[component]
        delegate = target.delegate()
        if parameters:
            obj = delegate.handleParameters(obj, parameters)
        if target is not stored and not target.validateInstance(obj):
            raise DatasetTypeMismatchError(
                f"Dataset {ref} is stored as {type(obj).__qualname__} (storage class {stored.name!r}), "
                f"which is not the {target.pytypeName} that storage class {target.name!r} expects."
            )
        if obj is entry.obj:
            return handOut(obj, entry.handOut)
        return CopyPolicy.handOutPart(obj, delegate, entry.mode)

    @override
    def getMany(
        self,
        refs: Iterable[DatasetRef],
        parameters: Mapping[str, Any] | None = None,
        *,
        missing: list[DatasetRef] | None = None,
    ) -> dict[DatasetRef, Any]:
        """Return ``{ref: dataset}`` for every ref, looking them all up under one lock."""
        table = self._table
        find = self._find
        lookup = self._entries.get if self._simple else table.lookupLocked
        with self._lock:
            found = [(ref, find(ref, lookup)) for ref in refs]
            for ref, entry in found:  # per ref, as get counts: a repeated ref counts again
                table.countLocked(entry is not None, ref.id.int)
        self._flushExpired()
        self._reportMissing([ref for ref, entry in found if entry is None], missing)
        handOutOne = self._handOut
        return {ref: handOutOne(entry, ref, parameters) for ref, entry in found if entry is not None}

    @staticmethod
    def _sameDataset(ref: DatasetRef, storedRef: DatasetRef) -> bool:
        """Whether ``ref`` (same id as ``storedRef``) names that dataset or one of its components."""
        if ref.datasetType.name == storedRef.datasetType.name:
            return True
        parentName, component = ref.datasetType.nameAndComponent()
        return (
            parentName == storedRef.datasetType.name
            and component in storedRef.datasetType.storageClass.components
        )

    @override
    def exists(self, ref: DatasetRef) -> bool:
        if self.expireSeconds is None:  # no expiry: a peek needs no lock and changes nothing
            return self._find(ref, self._entries.get) is not None
        with self._lock:
            entry = self._find(ref, self._table.lookupLocked)
        self._flushExpired()
        return entry is not None

    @override
    def existsMany(self, refs: Iterable[DatasetRef]) -> dict[DatasetRef, bool]:
        """Return ``{ref: exists}`` for every ref."""
        if self.expireSeconds is not None:
            return {ref: self.exists(ref) for ref in refs}
        find, peek = self._find, self._entries.get
        return {ref: find(ref, peek) is not None for ref in refs}

    @override
    def knows(self, ref: DatasetRef) -> bool:
        """Return `True` if ``ref`` is held here or stored-item info is recorded for it.

        In memory the entry is both the record and the artifact, so this is `exists`, plus
        info that `addStoredItemInfo` recorded for a dataset not held.
        """
        if self.exists(ref):
            return True
        with self._lock:
            return self._infoFor(ref) is not None

    def knowsMany(self, refs: Iterable[DatasetRef]) -> dict[DatasetRef, bool]:
        """Return ``{ref: knows(ref)}``, under one lock (what a chain asks of many new datasets)."""
        refList = list(refs)
        held = self.existsMany(refList)
        with self._lock:
            return {ref: held[ref] or self._infoFor(ref) is not None for ref in refList}

    def __len__(self) -> int:
        return len(self._entries)

    @override
    def __contains__(self, ref: object) -> bool:
        return isinstance(ref, DatasetRef) and self.exists(ref)

    # -- remove --

    @override
    def remove(self, ref: DatasetRef) -> None:
        """Remove the dataset ``ref``, and with it the records of its components."""
        self._removeMany([ref], strict=True)

    @override
    def removeMany(self, refs: Iterable[DatasetRef]) -> None:
        """Remove every ref under one lock; missing refs are named together afterwards.

        Raises
        ------
        DatasetNotFoundError
            Some refs were not stored; all the others were removed.
        """
        self._removeMany(list(refs), strict=False)

    def _removeMany(self, refs: list[DatasetRef], strict: bool) -> None:
        for ref in refs:
            if "." in ref.datasetType.name:
                raise DatasetTypeError(f"Cannot remove component {ref} on its own; remove the composite.")
        removed: list[Entry] = []
        notFound: list[DatasetRef] = []
        error = None
        table = self._table
        lookup = self._entries.get if self._simple else table.lookupLocked
        with self._lock:
            for ref in refs:
                entry = self._find(ref, lookup)  # not a component ref, so: this very dataset
                if entry is None:
                    if strict:
                        error = self._notFound(ref, "remove")
                        break
                    notFound.append(ref)
                    continue
                table.popLocked(ref.id.int)
                removed.append(entry)
        if not self._simple:
            self._flushExpired()
        if removed and (self.registry is not None or self._openTransactions):
            self._afterRemove(removed)
        if error is not None:
            raise error
        if notFound:
            self._reportMissing(notFound, None, verb="remove")

    def _afterRemove(self, removed: list[Any]) -> None:
        """Tell the registry and the open transaction; undo the removal if the registry fails."""
        if self.registry is not None:
            try:
                self._syncRegistry([e.ref for e in removed])
            except BaseException:
                self._restore(removed, sync=False)
                raise
        if self._openTransactions:
            self._registerUndo(f"remove of {len(removed)} dataset(s)", self._restore, removed)

    def _restore(self, removed: list[Any], sync: bool = True) -> None:
        """Undo removals: put the removed entries back where their ids are free."""
        with self._lock:
            restored, evicted = self._table.restoreLocked(removed)
        if evicted:
            self._logGone(evicted, "evicted")
            self._syncRegistry(evicted)
        if sync:
            self._syncRegistry(restored)

    # -- URIs --

    @override
    def getUri(self, ref: DatasetRef, predict: bool = False) -> str:
        """Return ``mem://<datasetType>/<id>``: always the ``mem://`` prefix, unique per dataset."""
        uri = f"mem://{ref.datasetType.name}/{ref.id}"
        if self.exists(ref):
            return uri
        if predict:
            return uri + "#predicted"
        raise self._notFound(ref, "get a URI for")

    # -- stored item info --

    def _infoFor(self, ref: DatasetRef) -> StoredItemInfo | None:
        key = ref.id.int
        entry = self._entries.get(key)
        component = ref.datasetType.component()
        overrides = self._table.infoOverrides.get(key)
        if entry is None:  # only what addStoredItemInfo recorded for a dataset not held
            return overrides.get(component) if overrides is not None else None
        if not self._sameDataset(ref, entry.ref):
            return None
        if overrides is not None and component in overrides:
            return overrides[component]
        storageClass = entry.ref.datasetType.storageClass
        if component is None:
            return StoredItemInfo(entry.timestamp, storageClass)
        return StoredItemInfo(entry.timestamp, storageClass.components[component], ref.id)

    @override
    def addStoredItemInfo(self, ref: DatasetRef, info: StoredItemInfo) -> None:
        """Record ``info`` for ``ref``, also for a dataset this datastore does not hold.

        Info for a dataset not held (as the spec allows) is kept until `removeStoredItemInfo`,
        or until the dataset is put and then removed. `put` records info for every dataset it
        stores, so adding info for a stored dataset raises `StoredItemInfoExistsError`.
        """
        if not isinstance(info, StoredItemInfo):
            raise TypeError(f"addStoredItemInfo takes a StoredItemInfo, not {type(info).__name__}.")
        if not isinstance(info.storageClass, StorageClass):
            raise TypeError(f"StoredItemInfo.storageClass must be a StorageClass, not {info.storageClass!r}.")
        with self._lock:
            if self._infoFor(ref) is not None:
                raise StoredItemInfoExistsError(
                    f"Datastore {self.name!r} already has stored-item info for {ref}; "
                    f"remove it with removeStoredItemInfo first."
                )
            self._table.infoOverrides.setdefault(ref.id.int, {})[ref.datasetType.component()] = info

    @override
    def getStoredItemInfo(self, ref: DatasetRef) -> StoredItemInfo:
        """Return when ``ref`` was stored, its storage class and, for a component, the parent's id."""
        with self._lock:
            info = self._infoFor(ref)
        if info is None:
            raise StoredItemInfoNotFoundError(f"Datastore {self.name!r} has no stored-item info for {ref}.")
        return info

    @override
    def removeStoredItemInfo(self, ref: DatasetRef) -> None:
        """Forget the info of ``ref`` (low-level bookkeeping; use `remove` to remove the dataset)."""
        with self._lock:
            if self._infoFor(ref) is None:
                raise StoredItemInfoNotFoundError(
                    f"Datastore {self.name!r} has no stored-item info for {ref}."
                )
            key, component = ref.id.int, ref.datasetType.component()
            if key in self._entries:  # the dataset stays: mask the info it would report
                self._table.infoOverrides.setdefault(key, {})[component] = None
            else:  # info recorded for a dataset not held: forget it, so a later put starts clean
                overrides = self._table.infoOverrides[key]
                del overrides[component]
                if not overrides:
                    del self._table.infoOverrides[key]

    def stats(self) -> InMemoryDatastoreStats:
        """Return counts, bytes held, hits, misses, evictions and expirations."""
        with self._lock:
            count, held, hits, misses, evictions, expirations, refused = self._table.statsLocked()
            snapshot = None if self._table.trackSizes else list(self._entries.values())
        if snapshot is not None:
            held = sum(e.ref.datasetType.storageClass.delegate().getSize(e.obj) for e in snapshot)
        return InMemoryDatastoreStats(
            count=count, bytesHeld=held, hits=hits, misses=misses, evictions=evictions,
            expirations=expirations, maxBytes=self.maxBytes, maxItems=self.maxItems,
            expireSeconds=self.expireSeconds, refused=refused,
        )  # fmt: skip
