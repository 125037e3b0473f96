"""InMemoryDatastore: a process-local store, also the fast tier of a chain.

Every stored dataset is one entry, a tuple ``(object, ref, timestamp, copyMode, size)`` keyed
by the integer value of the dataset's UUID. A component ref shares its parent's id, so a
component is read out of the parent's entry by the storage class delegate.

One lock guards the entries and the counters. When ``maxBytes`` or ``maxItems`` is set the
entries live in an `OrderedDict` kept in least-recently-used order and sizes are tracked on
put; otherwise a plain dict holds them and sizes are only measured when `stats` asks.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..config import Config
from ..dataset_ref import DatasetRef
from ..dataset_type import DatasetType
from ..datastore.base import Datastore, DatastoreConfig
from ..datastore.bridge import DatasetLocationRegistry
from ..datastore.records import StoredItemInfo
from ..exceptions import (
    ConfigError,
    DatasetExistsError,
    DatasetNotFoundError,
    DatasetTooLargeError,
    DatasetTypeError,
    DatasetTypeMismatchError,
    StorageClassError,
    StoredItemInfoExistsError,
    StoredItemInfoNotFoundError,
)
from ..storage_class import COPY_MODES, StorageClass, StorageClassDelegate

__all__ = ["InMemoryDatastore", "InMemoryDatastoreStats"]

log = logging.getLogger(__name__)

# Entry tuple layout.
_OBJ, _REF, _TS, _MODE, _SIZE = range(5)
_REFERENCE, _COPY, _DEEPCOPY, _FREEZE = COPY_MODES
_TOMBSTONE_LIMIT = 10_000
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?i?[bB]?)\s*$")
_SIZE_UNITS = {
    "": 1,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "t": 10**12,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
    "ti": 2**40,
}


@dataclass(frozen=True, slots=True)
class InMemoryDatastoreStats:
    """What an InMemoryDatastore holds and how it has been used.

    ``bytesHeld`` is the delegates' estimate of the stored objects' sizes. ``hits`` and
    ``misses`` count `get` calls (one per ref in `getMany`) that found or did not find a dataset.
    """

    count: int
    bytesHeld: int
    hits: int
    misses: int
    evictions: int
    expirations: int
    maxBytes: int | None
    maxItems: int | None
    expireSeconds: float | None


def _parseBytes(value: Any, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        number: float = value
    elif isinstance(value, str) and (match := _SIZE_RE.match(value)):
        unit = match.group(2).lower().rstrip("b")
        number = float(match.group(1)) * _SIZE_UNITS[unit]
    else:
        raise ConfigError(f"datastore.{key} must be a byte count such as 1000000 or '512MiB', not {value!r}.")
    if number <= 0:
        raise ConfigError(f"datastore.{key} must be positive, not {value!r}; use null for no limit.")
    return int(number)


def _parsePositive(value: Any, key: str, kind: type) -> Any:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (kind is int and not isinstance(value, int))
    ):
        raise ConfigError(f"datastore.{key} must be a positive {kind.__name__}, not {value!r}.")
    if value <= 0:
        raise ConfigError(f"datastore.{key} must be positive, not {value!r}; use null for no limit.")
    return kind(value)


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


class InMemoryDatastore(Datastore):
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

    def __init__(
        self,
        config: DatastoreConfig | Config | Mapping[str, Any] | str,
        registry: DatasetLocationRegistry | None = None,
    ) -> None:
        super().__init__(config, registry)
        self.name = f"{self.config.get('name') or type(self).__name__}@{uuid.uuid4().hex[:8]}"
        cfg = self.config
        self.maxBytes: int | None = _parseBytes(cfg.get("maxBytes"), "maxBytes")
        self.maxItems: int | None = _parsePositive(cfg.get("maxItems"), "maxItems", int)
        self.expireSeconds: float | None = _parsePositive(cfg.get("expireSeconds"), "expireSeconds", float)
        self._copyModeConfig = self._parseCopyModes(cfg.get("copyMode"))
        self._modes: dict[DatasetType, str] = {}
        self._bounded = self.maxBytes is not None or self.maxItems is not None
        self._trackSizes = self.maxBytes is not None
        self._entries: dict[int, tuple[Any, ...]] = OrderedDict() if self._bounded else {}
        self._infoOverrides: dict[int, StoredItemInfo | None] = {}
        self._tombstones: OrderedDict[int, tuple[str, float]] = OrderedDict()
        self._expiryQueue: deque[tuple[float, int]] = deque()
        self._pendingExpired: list[DatasetRef] = []  # expired under the lock, registry not yet told
        self._lock = threading.RLock()
        # No bounds and no expiry: reads need no lock and no bookkeeping beyond the hit count.
        self._simple = not self._bounded and self.expireSeconds is None
        # dataset type name -> (datasetType, pytype, copyMode, delegate), for puts that passed once
        self._putCache: dict[str, tuple[DatasetType, type, str, StorageClassDelegate]] = {}
        self._bytes = 0
        # Hits are counted without the lock: next() on itertools.count is atomic under the GIL.
        self._hitCounter = itertools.count()
        self._hitReads = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._expirations = 0

    @staticmethod
    def _parseCopyModes(value: Any) -> str | dict[str, str]:
        if value is None:
            return {}
        if isinstance(value, Config):
            value = value.toDict()
        modes = {"*": value} if isinstance(value, str) else value
        if not isinstance(modes, dict):
            raise ConfigError(
                f"datastore.copyMode must be a mode or a mapping of name to mode, not {value!r}."
            )
        for name, mode in modes.items():
            if mode not in COPY_MODES:
                raise ConfigError(
                    f"datastore.copyMode for {name!r} is {mode!r}; choose one of {', '.join(COPY_MODES)}."
                )
        return value if isinstance(value, str) else dict(value)

    # -- copy modes --

    def copyModeFor(self, datasetType: DatasetType) -> str:
        """Return the copy mode used for datasets of ``datasetType``.

        The datastore's ``copyMode`` config wins (dataset type name, then storage class name,
        then a single mode for everything), else the storage class's own ``copyMode``.

        Raises
        ------
        StorageClassError
            ``freeze`` is configured by name for a storage class that cannot be frozen.
        """
        mode = self._modes.get(datasetType)
        if mode is not None:
            return mode
        storageClass = datasetType.storageClass
        configured = self._copyModeConfig
        canFreeze = storageClass.delegate().canFreeze
        if isinstance(configured, str):
            mode = configured if (configured != _FREEZE or canFreeze) else _DEEPCOPY
        else:
            mode = configured.get(datasetType.name) or configured.get(storageClass.name)
            if mode is None:
                mode = storageClass.copyMode
            if mode == _FREEZE and not canFreeze:
                raise StorageClassError(
                    f"copyMode 'freeze' is set for dataset type {datasetType.name!r}, but its storage class "
                    f"{storageClass.name!r} cannot be frozen; use 'copy' or 'deepcopy'."
                )
        mode = COPY_MODES[COPY_MODES.index(mode)]  # the interned constant, so `is` comparisons hold
        self._modes[datasetType] = mode
        return mode

    @staticmethod
    def _own(obj: Any, delegate: StorageClassDelegate, mode: str) -> Any:
        if mode is _REFERENCE:
            return obj
        if mode is _COPY:
            return delegate.copy(obj)
        if mode is _DEEPCOPY:
            return delegate.deepcopy(obj)
        return delegate.freeze(obj)

    @staticmethod
    def _handOut(obj: Any, delegate: StorageClassDelegate, mode: str) -> Any:
        if mode is _REFERENCE:
            return obj
        if mode is _COPY:
            return delegate.copy(obj)
        if mode is _DEEPCOPY:
            return delegate.deepcopy(obj)
        return delegate.frozenView(obj) if delegate.canFreeze else delegate.deepcopy(obj)

    # -- put --

    def _prepare(self, inMemoryDataset: Any, ref: DatasetRef) -> tuple[Any, str, int | None]:
        """Validate a put and return ``(storedObject, mode, size)``; does not touch the entries."""
        datasetType = ref.datasetType
        storageClass = datasetType.storageClass
        if not storageClass.validateInstance(inMemoryDataset):
            raise DatasetTypeMismatchError(
                f"Cannot put {type(inMemoryDataset).__module__}.{type(inMemoryDataset).__qualname__} as "
                f"{ref}: storage class {storageClass.name!r} expects {storageClass.pytypeName}."
            )
        if "." in datasetType.name:
            raise DatasetTypeError(
                f"Cannot put component {ref} on its own; put the composite "
                f"{datasetType.nameAndComponent()[0]!r} and read components from it."
            )
        mode = self._modes.get(datasetType) or self.copyModeFor(datasetType)
        delegate = storageClass.delegate()
        self._putCache[datasetType.name] = (datasetType, storageClass.pytype, mode, delegate)
        stored = inMemoryDataset if mode is _REFERENCE else self._own(inMemoryDataset, delegate, mode)
        size = delegate.getSize(stored) if self._trackSizes else None
        return stored, mode, size

    def put(self, inMemoryDataset: Any, ref: DatasetRef) -> None:
        """Write a InMemoryDataset with a given DatasetRef to the store.

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
            ``ref`` is a component ref.
        DatasetTooLargeError
            The dataset alone is larger than ``maxBytes``; nothing is evicted.
        """
        cached = self._putCache.get(ref.datasetType.name)
        if (
            not self._simple
            or cached is None
            or cached[0] is not ref.datasetType
            or not isinstance(inMemoryDataset, cached[1])
        ):
            stored, mode, size = self._prepare(inMemoryDataset, ref)
            self._insertMany([(stored, ref, mode, size)])
            return
        # The fast path: a dataset type seen before, no bounds, no expiry.
        mode = cached[2]
        stored = inMemoryDataset if mode is _REFERENCE else self._own(inMemoryDataset, cached[3], mode)
        key = ref.id.int
        with self._lock:
            if key in self._entries:
                raise self._existsError(ref)
            self._entries[key] = (stored, ref, time.time(), mode, None)
        if self.registry is not None:
            try:
                self.registry.addDatasetLocations(self.name, [ref])
            except BaseException:
                self._dropMany([ref])
                raise
        if self._openTransactions:
            self._registerUndo("put of 1 dataset", self._dropMany, [ref])

    def _existsError(self, ref: DatasetRef) -> DatasetExistsError:
        return DatasetExistsError(
            f"Dataset {ref} is already in datastore {self.name!r}; nothing was stored. "
            f"Remove it first to replace it."
        )

    def putMany(self, pairs: Iterable[tuple[Any, DatasetRef]]) -> None:
        """Put every ``(inMemoryDataset, ref)`` pair, all or none.

        Every pair is checked before anything is stored: a bad object, a duplicate ref (in the
        batch or in the store) or an oversized dataset stores none of them.
        """
        prepared = []
        seen: set[int] = set()
        for obj, ref in pairs:
            key = ref.id.int
            if key in seen:
                raise DatasetExistsError(f"Dataset {ref} appears twice in one putMany; nothing was stored.")
            seen.add(key)
            stored, mode, size = self._prepare(obj, ref)
            prepared.append((stored, ref, mode, size))
        self._insertMany(prepared)

    def _insertMany(self, prepared: list[tuple[Any, DatasetRef, str, int | None]]) -> None:
        entries = self._entries
        evicted: list[DatasetRef] = []
        now = time.time()
        with self._lock:
            if self._expiryQueue and self._expiryQueue[0][0] + (self.expireSeconds or 0) <= now:
                evicted.extend(self._sweepLocked(now))
            for _, ref, _, size in prepared:
                existing = entries.get(ref.id.int)
                if existing is not None and not self._expiredLocked(ref.id.int, existing, now):
                    raise self._existsError(ref)
                if size is not None and self.maxBytes is not None and size > self.maxBytes:
                    raise DatasetTooLargeError(
                        f"Dataset {ref} is {size} bytes, more than maxBytes={self.maxBytes} of datastore "
                        f"{self.name!r} on its own; nothing was evicted or stored."
                    )
            if self._bounded:
                evicted.extend(self._makeRoomLocked(prepared))
            for stored, ref, mode, size in prepared:
                key = ref.id.int
                entries[key] = (stored, ref, now, mode, size)
                if size is not None:
                    self._bytes += size
                if self.expireSeconds is not None:
                    self._expiryQueue.append((now, key))
                if self._tombstones:
                    self._tombstones.pop(key, None)
        refs = [p[1] for p in prepared]
        self._logEvictions(evicted)
        self._notifyRemoved(evicted)
        try:
            self._notifyAdded(refs)
        except BaseException:
            self._dropMany(refs)
            raise
        self._registerUndo(f"put of {len(refs)} dataset(s)", self._dropMany, refs)

    def _makeRoomLocked(self, prepared: list[tuple[Any, DatasetRef, str, int | None]]) -> list[DatasetRef]:
        entries = self._entries
        incomingItems = len(prepared)
        incomingBytes = sum(p[3] or 0 for p in prepared)
        if self.maxItems is not None and incomingItems > self.maxItems:
            raise DatasetTooLargeError(
                f"Cannot put {incomingItems} datasets at once into datastore {self.name!r} with "
                f"maxItems={self.maxItems}; nothing was stored."
            )
        if self.maxBytes is not None and incomingBytes > self.maxBytes:
            raise DatasetTooLargeError(
                f"Cannot put {incomingBytes} bytes at once into datastore {self.name!r} with "
                f"maxBytes={self.maxBytes}; nothing was stored."
            )
        evicted = []
        while entries and (
            (self.maxItems is not None and len(entries) + incomingItems > self.maxItems)
            or (self.maxBytes is not None and self._bytes + incomingBytes > self.maxBytes)
        ):
            key, entry = entries.popitem(last=False)  # type: ignore[call-arg]
            self._forgetLocked(key, entry, "evicted")
            self._evictions += 1
            evicted.append(entry[_REF])
        return evicted

    def _forgetLocked(self, key: int, entry: tuple[Any, ...], reason: str | None) -> None:
        """Account for an entry already popped from the entries; record why, if not removed by a user."""
        if entry[_SIZE] is not None:
            self._bytes -= entry[_SIZE]
        if self._infoOverrides:
            self._infoOverrides.pop(key, None)
        if reason is not None:
            self._tombstones[key] = (reason, time.time())
            if len(self._tombstones) > _TOMBSTONE_LIMIT:
                self._tombstones.popitem(last=False)

    def _logEvictions(self, evicted: list[DatasetRef]) -> None:
        if evicted and log.isEnabledFor(logging.DEBUG):
            for ref in evicted:
                log.debug(
                    "Datastore %s evicted %s to stay within maxBytes=%s, maxItems=%s.",
                    self.name,
                    ref,
                    self.maxBytes,
                    self.maxItems,
                )

    def _dropMany(self, refs: list[DatasetRef]) -> None:
        """Undo puts: drop these refs' entries if present (no error if already gone)."""
        dropped = []
        with self._lock:
            for ref in refs:
                key = ref.id.int
                entry = self._entries.get(key)
                if entry is not None and entry[_REF] == ref:
                    del self._entries[key]
                    self._forgetLocked(key, entry, None)
                    dropped.append(ref)
        self._notifyRemoved(dropped)

    # -- expiry --

    def _expiredLocked(self, key: int, entry: tuple[Any, ...], now: float) -> bool:
        """If ``entry`` has expired, drop it and return True."""
        if self.expireSeconds is None or entry[_TS] + self.expireSeconds > now:
            return False
        del self._entries[key]
        self._forgetLocked(key, entry, "expired")
        self._expirations += 1
        self._pendingExpired.append(entry[_REF])
        return True

    def _flushExpired(self) -> None:
        pending = self._pendingExpired
        if pending:
            with self._lock:
                refs = list(pending)
                pending.clear()
            for ref in refs:
                log.debug("Datastore %s expired %s after %ss.", self.name, ref, self.expireSeconds)
            self._notifyRemoved(refs)

    def _sweepLocked(self, now: float) -> list[DatasetRef]:
        assert self.expireSeconds is not None
        queue = self._expiryQueue
        expired = []
        while queue and queue[0][0] + self.expireSeconds <= now:
            ts, key = queue.popleft()
            entry = self._entries.get(key)
            if entry is not None and entry[_TS] == ts:
                del self._entries[key]
                self._forgetLocked(key, entry, "expired")
                self._expirations += 1
                expired.append(entry[_REF])
        return expired

    def sweepExpired(self) -> int:
        """Drop every expired dataset now; return how many were dropped."""
        if self.expireSeconds is None:
            return 0
        with self._lock:
            expired = self._sweepLocked(time.time())
        self._notifyRemoved(expired)
        return len(expired)

    # -- lookups --

    def _notFound(self, ref: DatasetRef, verb: str) -> DatasetNotFoundError:
        tomb = self._tombstones.get(ref.id.int) if self._tombstones else None
        if tomb is not None:
            reason, when = tomb
            why = (
                (
                    f"it was evicted at {_when(when)} to stay within maxBytes={self.maxBytes}, "
                    f"maxItems={self.maxItems}"
                )
                if reason == "evicted"
                else (f"it expired at {_when(when)}, {self.expireSeconds}s after it was put")
            )
            return DatasetNotFoundError(f"Cannot {verb} {ref}: not in datastore {self.name!r}; {why}.")
        return DatasetNotFoundError(f"Cannot {verb} {ref}: not in datastore {self.name!r}.")

    def _lookupLocked(self, ref: DatasetRef) -> tuple[Any, ...] | None:
        key = ref.id.int
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self.expireSeconds is not None and self._expiredLocked(key, entry, time.time()):
            return None
        if self._bounded:
            self._entries.move_to_end(key)  # type: ignore[attr-defined]
        return entry

    def get(self, ref: DatasetRef, parameters: Mapping[str, Any] | None = None) -> Any:
        """Load an InMemoryDataset from the store.

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
            Requested dataset can not be retrieved (`DatasetNotFoundError`; says when and why
            if it was evicted or expired).
        TypeError
            The stored object is not of the type the ref's storage class expects.
        ValueError
            A parameter is unknown or unusable (`InvalidParameterError`).
        """
        if self._simple:
            entry = self._entries.get(ref.id.int)  # atomic; entries are immutable tuples
            if entry is not None:
                next(self._hitCounter)
                if parameters is None and entry[_REF] is ref and entry[_MODE] is _REFERENCE:
                    return entry[_OBJ]
                return self._materialize(entry, ref, parameters)
        with self._lock:
            entry = self._lookupLocked(ref)
            if entry is None:
                self._misses += 1
                error = self._notFound(ref, "get")
            else:
                self._hits += 1
        if entry is None:
            self._flushExpired()
            raise error
        if parameters is None and entry[_REF] is ref and entry[_MODE] is _REFERENCE:
            return entry[_OBJ]
        return self._materialize(entry, ref, parameters)

    def _materialize(
        self, entry: tuple[Any, ...], ref: DatasetRef, parameters: Mapping[str, Any] | None
    ) -> Any:
        storedRef: DatasetRef = entry[_REF]
        obj = entry[_OBJ]
        target = ref.datasetType.storageClass
        if ref is not storedRef and ref.datasetType.name != storedRef.datasetType.name:
            component = self._componentOf(ref, storedRef)
            obj = storedRef.datasetType.storageClass.delegate().getComponent(obj, component)
            produced = storedRef.datasetType.storageClass.components[component]
            if obj is None:
                return None  # the composite was stored without this component
        else:
            produced = storedRef.datasetType.storageClass
        delegate = target.delegate()
        if parameters:
            obj = delegate.handleParameters(obj, parameters)
        if target is not produced and not target.validateInstance(obj):
            raise DatasetTypeMismatchError(
                f"Dataset {ref} is stored as {type(obj).__qualname__} (storage class {produced.name!r}), "
                f"which is not the {target.pytypeName} that storage class {target.name!r} expects."
            )
        return self._handOut(obj, delegate, entry[_MODE])

    def _componentOf(self, ref: DatasetRef, storedRef: DatasetRef) -> str:
        parentName, component = ref.datasetType.nameAndComponent()
        if component is None or parentName != storedRef.datasetType.name:
            raise DatasetNotFoundError(
                f"No dataset {ref} in datastore {self.name!r}: id {ref.id} holds "
                f"{storedRef.datasetType.name!r}, not {ref.datasetType.name!r}."
            )
        return component

    def getMany(
        self,
        refs: Iterable[DatasetRef],
        parameters: Mapping[str, Any] | None = None,
        *,
        missing: list[DatasetRef] | None = None,
    ) -> dict[DatasetRef, Any]:
        """Return ``{ref: dataset}`` for every ref, looking them all up under one lock.

        Raises
        ------
        DatasetNotFoundError
            Some refs are not stored (all are named) and ``missing`` was not given; otherwise
            they are appended to ``missing``.
        """
        out: dict[DatasetRef, Any] = {}
        slow: list[tuple[DatasetRef, tuple[Any, ...]]] = []
        notFound: list[DatasetRef] = []
        lookup = self._entries.get if self._simple else None
        with self._lock:
            for ref in refs:
                entry = lookup(ref.id.int) if lookup is not None else self._lookupLocked(ref)
                if entry is None:
                    notFound.append(ref)
                elif parameters is None and entry[_REF] is ref and entry[_MODE] is _REFERENCE:
                    out[ref] = entry[_OBJ]
                else:
                    slow.append((ref, entry))
            self._hits += len(out) + len(slow)
            self._misses += len(notFound)
        self._flushExpired()
        self._reportMissing(notFound, missing)
        for ref, entry in slow:
            out[ref] = self._materialize(entry, ref, parameters)
        return out

    def exists(self, ref: DatasetRef) -> bool:
        """Check if the dataset exists in the datastore.

        Parameters
        ----------
        ref : DatasetRef
            Reference to the required dataset.

        Returns
        -------
        exists : bool
            True if the entity exists in the Datastore.
        """
        entry = self._entries.get(ref.id.int)
        if entry is None:
            return False
        if entry[_REF] is ref:
            if self.expireSeconds is None:
                return True
        elif not self._sameDataset(ref, entry[_REF]):
            return False
        if self.expireSeconds is not None:
            with self._lock:
                entry = self._lookupLocked(ref)
            self._flushExpired()
        return entry is not None

    @staticmethod
    def _sameDataset(ref: DatasetRef, storedRef: DatasetRef) -> bool:
        name = ref.datasetType.name
        if name == storedRef.datasetType.name:
            return True
        parentName, component = ref.datasetType.nameAndComponent()
        return (
            parentName == storedRef.datasetType.name
            and component in storedRef.datasetType.storageClass.components
        )

    def existsMany(self, refs: Iterable[DatasetRef]) -> dict[DatasetRef, bool]:
        """Return ``{ref: exists}`` for every ref."""
        if self.expireSeconds is not None:
            return {ref: self.exists(ref) for ref in refs}
        get = self._entries.get
        same = self._sameDataset
        return {
            ref: (entry := get(ref.id.int)) is not None and (entry[_REF] is ref or same(ref, entry[_REF]))
            for ref in refs
        }

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, ref: object) -> bool:
        return isinstance(ref, DatasetRef) and self.exists(ref)

    # -- remove --

    def remove(self, ref: DatasetRef) -> None:
        """Remove the dataset ``ref`` (and with it the records of its components).

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
        if self._simple:
            key = ref.id.int
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None and (
                    entry[_REF] is ref or entry[_REF].datasetType.name == ref.datasetType.name
                ):
                    del self._entries[key]
                    if self._infoOverrides:
                        self._infoOverrides.pop(key, None)
                else:
                    entry = None
            if entry is not None:
                if self.registry is not None:
                    self.registry.removeDatasetLocations(self.name, [ref])
                if self._openTransactions:
                    self._registerUndo("remove of 1 dataset", self._restore, [entry])
                return
        self._removeMany([ref], strict=True)

    def removeMany(self, refs: Iterable[DatasetRef]) -> None:
        """Remove every ref under one lock; missing refs are named together afterwards.

        Raises
        ------
        DatasetNotFoundError
            Some refs were not stored; all the others were removed.
        """
        self._removeMany(list(refs), strict=False)

    def _removeMany(self, refs: list[DatasetRef], strict: bool) -> None:
        removed: list[tuple[Any, ...]] = []
        notFound: list[DatasetRef] = []
        for ref in refs:
            if "." in ref.datasetType.name:
                raise DatasetTypeError(f"Cannot remove component {ref} on its own; remove the composite.")
        with self._lock:
            for ref in refs:
                key = ref.id.int
                entry = self._lookupLocked(ref) if self.expireSeconds is not None else self._entries.get(key)
                if entry is None or (
                    entry[_REF] is not ref and entry[_REF].datasetType.name != ref.datasetType.name
                ):
                    if strict:
                        error = self._notFound(ref, "remove")
                        break
                    notFound.append(ref)
                    continue
                del self._entries[key]
                self._forgetLocked(key, entry, None)
                if self._tombstones:
                    self._tombstones.pop(key, None)
                removed.append(entry)
            else:
                error = None
        self._flushExpired()
        if removed:
            self._notifyRemoved([e[_REF] for e in removed])
            self._registerUndo(f"remove of {len(removed)} dataset(s)", self._restore, removed)
        if error is not None:
            raise error
        self._reportMissing(notFound, None, verb="remove")

    def _restore(self, removed: list[tuple[Any, ...]]) -> None:
        """Undo removals: put the removed entries back where their ids are free."""
        restored = []
        with self._lock:
            for entry in removed:
                key = entry[_REF].id.int
                if key not in self._entries:
                    self._entries[key] = entry
                    if entry[_SIZE] is not None:
                        self._bytes += entry[_SIZE]
                    restored.append(entry[_REF])
        self._notifyAdded(restored)

    # -- URIs --

    def getUri(self, ref: DatasetRef, predict: bool = False) -> str:
        """URI to the Dataset; always uses the ``mem://`` prefix.

        Parameters
        ----------
        ref : DatasetRef
            Reference to the required Dataset.
        predict : bool
            If True, allow URIs to be returned of datasets that have not been written.

        Returns
        -------
        uri : str
            ``mem://<datasetType>/<id>``, unique per dataset; with ``#predicted`` appended when
            the dataset is not stored and ``predict`` is true.

        Raises
        ------
        FileNotFoundError
            A URI has been requested for a dataset that does not exist and guessing is not allowed.
        """
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
        if entry is None or not self._sameDataset(ref, entry[_REF]):
            return None
        if key in self._infoOverrides:
            info = self._infoOverrides[key]
            if info is None or "." not in ref.datasetType.name:
                return info
        component = ref.datasetType.component()
        if component is None:
            return StoredItemInfo(entry[_TS], entry[_REF].datasetType.storageClass)
        return StoredItemInfo(entry[_TS], entry[_REF].datasetType.storageClass.components[component], ref.id)

    def addStoredItemInfo(self, ref: DatasetRef, info: StoredItemInfo) -> None:
        """Record internal storage information associated with this DatasetRef.

        Parameters
        ----------
        ref : DatasetRef
            The Dataset that has been stored.
        info : StoredItemInfo
            Metadata associated with the stored Dataset.

        Raises
        ------
        KeyError
            An entry with this DatasetRef already exists (`StoredItemInfoExistsError`); `put`
            records one for every dataset it stores.
        DatasetNotFoundError
            The dataset itself is not stored.
        TypeError
            ``info`` is not a StoredItemInfo.
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
            if ref.id.int not in self._entries:
                raise self._notFound(ref, "record stored-item info for")
            self._infoOverrides[ref.id.int] = info

    def getStoredItemInfo(self, ref: DatasetRef) -> StoredItemInfo:
        """Retrieve information associated with object stored in this Datastore.

        Parameters
        ----------
        ref : DatasetRef
            The Dataset that is to be queried.

        Returns
        -------
        info : StoredItemInfo
            When it was stored, its storage class and, for a component, the parent's id.

        Raises
        ------
        KeyError
            Dataset with that id can not be found (`StoredItemInfoNotFoundError`).
        """
        with self._lock:
            info = self._infoFor(ref)
        if info is None:
            raise StoredItemInfoNotFoundError(f"Datastore {self.name!r} has no stored-item info for {ref}.")
        return info

    def removeStoredItemInfo(self, ref: DatasetRef) -> None:
        """Remove information about the object associated with this dataset.

        This is low-level bookkeeping: the dataset itself stays; use `remove` to remove it.

        Parameters
        ----------
        ref : DatasetRef
            The Dataset that has been removed.

        Raises
        ------
        KeyError
            No information is recorded for ``ref`` (`StoredItemInfoNotFoundError`).
        """
        with self._lock:
            if self._infoFor(ref) is None:
                raise StoredItemInfoNotFoundError(
                    f"Datastore {self.name!r} has no stored-item info for {ref}."
                )
            self._infoOverrides[ref.id.int] = None

    @classmethod
    def setConfigRoot(cls, root: str, config: Config, full: Config) -> None:
        """Set any filesystem-dependent config options for a new repository at ``root``.

        Does nothing in this implementation: an in-memory datastore has no files.
        """
        return None

    # -- statistics --

    def stats(self) -> InMemoryDatastoreStats:
        """Return counts, bytes held, hits, misses, evictions and expirations."""
        with self._lock:
            count = len(self._entries)
            held = self._bytes
            snapshot = None if self._trackSizes else list(self._entries.values())
            hits = self._hits + next(self._hitCounter) - self._hitReads
            self._hitReads += 1
            misses = self._misses
            evictions, expirations = self._evictions, self._expirations
        if snapshot is not None:
            held = sum(e[_REF].datasetType.storageClass.delegate().getSize(e[_OBJ]) for e in snapshot)
        return InMemoryDatastoreStats(
            count=count,
            bytesHeld=held,
            hits=hits,
            misses=misses,
            evictions=evictions,
            expirations=expirations,
            maxBytes=self.maxBytes,
            maxItems=self.maxItems,
            expireSeconds=self.expireSeconds,
        )
