"""The bookkeeping behind InMemoryDatastore: entries, limits, LRU eviction, expiry, counters.

An entry is a tuple ``(object, ref, timestamp, copyMode, size)`` keyed by ``ref.id.int``.
Methods whose names end in ``Locked`` must be called with `EntryTable.lock` held; they never
call out to registries or loggers, which the datastore does after releasing the lock.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ...dataset_ref import DatasetRef
from ...datastore.records import StoredItemInfo
from ...exceptions import ConfigError, DatasetTooLargeError

__all__ = ["OBJ", "REF", "SIZE", "TS", "EntryTable", "InMemoryDatastoreStats", "Prepared"]

OBJ, REF, TS, MODE, SIZE = range(5)
Entry = tuple[Any, ...]  # (object, ref, timestamp, copyMode, size)
Prepared = tuple[Any, DatasetRef, str, int | None]  # (stored object, ref, copy mode, size)

_TOMBSTONE_LIMIT = 10_000
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?i?)[bB]?\s*$")
_SIZE_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
               "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}  # fmt: skip


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


def parseBytes(value: Any, key: str) -> int | None:
    """Parse a byte count: an int, or a string such as ``"512MiB"`` or ``"2 GB"``; `None` is no limit.

    Raises
    ------
    ConfigError
        The value is not a positive byte count.
    """
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        number: float = value
    elif isinstance(value, str) and (match := _SIZE_RE.match(value)):
        number = float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
    else:
        raise ConfigError(f"datastore.{key} must be a byte count such as 1000000 or '512MiB', not {value!r}.")
    if number <= 0:
        raise ConfigError(f"datastore.{key} must be positive, not {value!r}; use null for no limit.")
    return int(number)


def parsePositive(value: Any, key: str, kind: type) -> Any:
    """Parse a positive int or float config value; `None` is no limit.

    Raises
    ------
    ConfigError
        The value is not a positive number of the right kind.
    """
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


class EntryTable:
    """Entries of one datastore with optional ``maxBytes``/``maxItems``/``expireSeconds`` limits.

    Parameters
    ----------
    label : str
        The datastore's name, for messages.
    maxBytes, maxItems, expireSeconds : optional
        The limits; `None` for none.
    """

    def __init__(self, label: str, maxBytes: int | None, maxItems: int | None, expireSeconds: float | None):
        self.label = label
        self.maxBytes = maxBytes
        self.maxItems = maxItems
        self.expireSeconds = expireSeconds
        self.bounded = maxBytes is not None or maxItems is not None
        self.trackSizes = maxBytes is not None
        # No bounds and no expiry: readers may use `entries` directly without the lock.
        self.simple = not self.bounded and expireSeconds is None
        # Bounded entries are kept in least-recently-used order.
        self.entries: dict[int, Entry] = OrderedDict() if self.bounded else {}
        # Stored-item info set or removed by hand, per id and component (None for the dataset
        # itself); a value of None means the record was removed.
        self.infoOverrides: dict[int, dict[str | None, StoredItemInfo | None]] = {}
        self.lock = threading.RLock()
        self.bytes = 0
        self._tombstones: OrderedDict[int, tuple[str, float]] = OrderedDict()
        self._expiryQueue: deque[tuple[float, int]] = deque()
        self._pendingExpired: list[DatasetRef] = []
        # Lock-free hit counting: next() on itertools.count is atomic under the GIL.
        self._hitCounter = itertools.count()
        self._hitReads = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.expirations = 0

    # -- lookups --

    def countHit(self) -> None:
        """Count one hit; safe without the lock."""
        next(self._hitCounter)

    def lookupLocked(self, key: int) -> Entry | None:
        """Return the live entry for ``key`` (expiring it if due), marking it recently used."""
        entry = self.entries.get(key)
        if entry is None:
            return None
        if self.expireSeconds is not None and self.expireIfDueLocked(key, entry, time.time()):
            return None
        if self.bounded:
            self.entries.move_to_end(key)  # type: ignore[attr-defined]
        return entry

    def tombstone(self, key: int) -> str | None:
        """Say why ``key`` is gone if it was evicted or expired recently, else `None`."""
        tomb = self._tombstones.get(key) if self._tombstones else None
        if tomb is None:
            return None
        reason, when = tomb
        stamp = datetime.fromtimestamp(when, UTC).isoformat(timespec="seconds")
        if reason == "evicted":
            return (
                f"it was evicted at {stamp} to stay within maxBytes={self.maxBytes}, maxItems={self.maxItems}"
            )
        return f"it expired at {stamp}, {self.expireSeconds}s after it was put"

    # -- changes --

    def insertLocked(self, prepared: list[Prepared], existsError: Any) -> list[DatasetRef]:
        """Insert every prepared entry, or none; return the refs evicted to make room.

        Raises
        ------
        DatasetExistsError
            A ref is already stored (``existsError(ref)`` is raised).
        DatasetTooLargeError
            A dataset, or the batch, cannot fit within the limits on its own.
        """
        entries = self.entries
        now = time.time()
        if self.simple:  # no limits, no expiry: check, then insert
            for item in prepared:
                if item[1].id.int in entries:
                    raise existsError(item[1])
            for stored, ref, mode, size in prepared:
                entries[ref.id.int] = (stored, ref, now, mode, size)
            return []
        evicted: list[DatasetRef] = []
        if self._expiryQueue and self._expiryQueue[0][0] + (self.expireSeconds or 0) <= now:
            self._pendingExpired.extend(self.sweepLocked(now))  # reported even if this insert fails
        for _, ref, _, size in prepared:
            existing = entries.get(ref.id.int)
            if existing is not None and not self.expireIfDueLocked(ref.id.int, existing, now):
                raise existsError(ref)
            if size is not None and self.maxBytes is not None and size > self.maxBytes:
                raise DatasetTooLargeError(
                    f"Dataset {ref} is {size} bytes, more than maxBytes={self.maxBytes} of datastore "
                    f"{self.label!r} on its own; nothing was evicted or stored."
                )
        if self.bounded:
            evicted.extend(self._makeRoomLocked(len(prepared), sum(p[3] or 0 for p in prepared)))
        for stored, ref, mode, size in prepared:
            key = ref.id.int
            entries[key] = (stored, ref, now, mode, size)
            if size is not None:
                self.bytes += size
            if self.expireSeconds is not None:
                self._expiryQueue.append((now, key))
            if self._tombstones:
                self._tombstones.pop(key, None)
        return evicted

    def restoreLocked(self, removed: list[Entry]) -> tuple[list[DatasetRef], list[DatasetRef]]:
        """Put removed entries back where their ids are free; return ``(restored, evicted)``."""
        restored = [e for e in removed if e[REF].id.int not in self.entries]
        evicted: list[DatasetRef] = []
        if self.bounded and restored:
            evicted = self._makeRoomLocked(len(restored), sum(e[SIZE] or 0 for e in restored), strict=False)
        for entry in restored:
            key = entry[REF].id.int
            self.entries[key] = entry
            if entry[SIZE] is not None:
                self.bytes += entry[SIZE]
            if self.expireSeconds is not None:
                self._expiryQueue.append((entry[TS], key))  # out of order: swept late, expired on access
        return [e[REF] for e in restored], evicted

    def _makeRoomLocked(self, items: int, nbytes: int, strict: bool = True) -> list[DatasetRef]:
        if strict and self.maxItems is not None and items > self.maxItems:
            raise DatasetTooLargeError(
                f"Cannot put {items} datasets at once into datastore {self.label!r} with "
                f"maxItems={self.maxItems}; nothing was stored."
            )
        if strict and self.maxBytes is not None and nbytes > self.maxBytes:
            raise DatasetTooLargeError(
                f"Cannot put {nbytes} bytes at once into datastore {self.label!r} with "
                f"maxBytes={self.maxBytes}; nothing was stored."
            )
        entries = self.entries
        evicted = []
        while entries and (
            (self.maxItems is not None and len(entries) + items > self.maxItems)
            or (self.maxBytes is not None and self.bytes + nbytes > self.maxBytes)
        ):
            key, entry = entries.popitem(last=False)  # type: ignore[call-arg]
            self._forgetLocked(key, entry, "evicted")
            self.evictions += 1
            evicted.append(entry[REF])
        return evicted

    def popLocked(self, key: int) -> Entry | None:
        """Remove ``key``'s entry on a user's request; return it, or `None` if absent."""
        entry = self.entries.pop(key, None)
        if entry is not None:
            self._forgetLocked(key, entry, None)
            if self._tombstones:
                self._tombstones.pop(key, None)
        return entry

    def _forgetLocked(self, key: int, entry: Entry, reason: str | None) -> None:
        """Account for an entry already taken out of `entries`; remember evictions and expiries."""
        if entry[SIZE] is not None:
            self.bytes -= entry[SIZE]
        if self.infoOverrides:
            self.infoOverrides.pop(key, None)
        if reason is not None:
            self._tombstones[key] = (reason, time.time())
            if len(self._tombstones) > _TOMBSTONE_LIMIT:
                self._tombstones.popitem(last=False)

    # -- expiry --

    def expireIfDueLocked(self, key: int, entry: Entry, now: float) -> bool:
        """If ``entry`` has expired, drop it (the registry is told later) and return True."""
        if self.expireSeconds is None or entry[TS] + self.expireSeconds > now:
            return False
        del self.entries[key]
        self._forgetLocked(key, entry, "expired")
        self.expirations += 1
        self._pendingExpired.append(entry[REF])
        return True

    def sweepLocked(self, now: float) -> list[DatasetRef]:
        """Drop every expired entry at the front of the expiry queue; return their refs."""
        if self.expireSeconds is None:
            return []
        queue = self._expiryQueue
        expired = []
        while queue and queue[0][0] + self.expireSeconds <= now:
            ts, key = queue.popleft()
            entry = self.entries.get(key)
            if entry is not None and entry[TS] == ts:
                del self.entries[key]
                self._forgetLocked(key, entry, "expired")
                self.expirations += 1
                expired.append(entry[REF])
        return expired

    def takePendingExpired(self) -> list[DatasetRef]:
        """Return and forget the refs expired on access since the last call."""
        if not self._pendingExpired:
            return []
        with self.lock:
            pending, self._pendingExpired = self._pendingExpired, []
        return pending

    # -- statistics --

    def statsLocked(self) -> list[int]:
        """Return ``[count, bytes, hits, misses, evictions, expirations]``."""
        hits = self.hits + next(self._hitCounter) - self._hitReads
        self._hitReads += 1
        return [len(self.entries), self.bytes, hits, self.misses, self.evictions, self.expirations]
