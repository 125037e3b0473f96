"""The bookkeeping behind InMemoryDatastore: entries, limits, LRU eviction, expiry, counters.

An `Entry` (a NamedTuple: object, ref, timestamp, copy mode, size, hand-out) is keyed by
``ref.id.int``.
Methods whose names end in ``Locked`` must be called with `EntryTable.lock` held; they never
call out to registries or loggers, which the datastore does after releasing the lock.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from ...dataset_ref import DatasetRef
from ...datastore.records import StoredItemInfo
from ...exceptions import ConfigError, DatasetTooLargeError
from ...storage_class import CopyMode

__all__ = ["Entry", "EntryTable", "InMemoryDatastoreStats"]


class Entry(NamedTuple):
    """One stored dataset (a tuple: as small as one, fields by name).

    Build one with ``Entry._make((...))``, which skips the keyword handling of ``Entry(...)``:
    this is on the path of every put.
    """

    obj: Any
    ref: DatasetRef
    timestamp: float
    mode: CopyMode
    size: int | None
    handOut: Callable[[Any], Any] | None
    """Gives a reader its copy or view of ``obj``; `None`: ``obj`` itself (see ``_ownership``)."""


_TOMBSTONE_LIMIT = 10_000
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?i?)[bB]?\s*$")
_SIZE_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
               "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}  # fmt: skip


@dataclass(frozen=True, slots=True)
class InMemoryDatastoreStats:
    """What an InMemoryDatastore holds and how it has been used.

    ``bytesHeld`` is the delegates' estimate of the stored objects' sizes. ``hits`` and
    ``misses`` count `get` calls (one per ref in `getMany`) that found or did not find a dataset.
    ``refused`` counts read-through copies (`InMemoryDatastore.adopt`) the admission policy
    turned away.
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
    refused: int = 0


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


ADMISSIONS = ("frequency", "all")
"""How a bounded store admits read-through copies: by access frequency, or every one (plain LRU)."""


class FrequencySketch:
    """Recent access counts per key, halved every ``10 x held`` accesses so old popularity fades.

    The admission filter of TinyLFU (Einziger, Friedman and Manes, 2017), kept exact with a
    dict instead of a count-min sketch: it holds at most one sample period's keys.
    """

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self._seen = 0

    def record(self, key: int, held: int) -> None:
        """Count one access to ``key``; ``held`` is how many entries the store holds now."""
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1
        self._seen += 1
        if self._seen >= max(1000, 10 * held):
            self.counts = {k: c // 2 for k, c in counts.items() if c > 1}
            self._seen = 0

    def estimate(self, key: int) -> int:
        """Return the recent access count of ``key``."""
        return self.counts.get(key, 0)


class EntryTable:
    """Entries of one datastore with optional ``maxBytes``/``maxItems``/``expireSeconds`` limits.

    A bounded table evicts the least recently used entry to make room. A put is always
    admitted; a read-through copy (``admission=True`` in `insertLocked`) is refused when it is
    larger than ``admitFraction`` of ``maxBytes``, or, under ``"frequency"`` admission, when
    making room would evict an entry read at least as often lately as the newcomer (TinyLFU).
    A scan over more data than the table holds therefore keeps what it holds instead of
    replacing everything with what the scan will not read again before it is evicted.

    Parameters
    ----------
    label : str
        The datastore's name, for messages.
    maxBytes, maxItems, expireSeconds : optional
        The limits; `None` for none.
    admission : str
        One of `ADMISSIONS`.
    admitFraction : float
        A read-through copy larger than this fraction of ``maxBytes`` is not admitted.
    """

    def __init__(
        self,
        label: str,
        maxBytes: int | None,
        maxItems: int | None,
        expireSeconds: float | None,
        admission: str = "frequency",
        admitFraction: float = 0.125,
    ):
        self.label = label
        self.admission = admission
        self.admitFraction = admitFraction
        self.frequencies = FrequencySketch()
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
        self.countHit: Callable[[], int] = self._hitCounter.__next__
        """Count one hit; safe without the lock (a bound C method: no Python frame on a get)."""
        self._hitReads = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.expirations = 0
        self.refused = 0

    # -- lookups --

    def countLocked(self, hit: bool, key: int) -> None:
        """Count a hit or a miss of ``key``; a bounded table also records the access's frequency."""
        if hit:
            self.hits += 1
        else:
            self.misses += 1
        if self.bounded:
            self.frequencies.record(key, len(self.entries))

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

    def insertLocked(
        self, prepared: list[Entry], existsError: Any, admission: bool = False
    ) -> list[DatasetRef] | None:
        """Insert every prepared entry, or none; return the refs evicted to make room.

        With ``admission`` (a read-through copy) the admission policy may refuse the entries:
        then nothing changes and `None` is returned.

        Raises
        ------
        DatasetExistsError
            A ref is already stored (``existsError(ref)`` is raised).
        DatasetTooLargeError
            A dataset, or the batch, cannot fit within the limits on its own.
        """
        entries = self.entries
        if self.simple:  # no limits, no expiry: check, then insert
            for entry in prepared:
                if entry.ref.id.int in entries:
                    raise existsError(entry.ref)
            for entry in prepared:
                entries[entry.ref.id.int] = entry
            return []
        now = time.time()
        evicted: list[DatasetRef] = []
        self._sweepIfDueLocked(now)  # reported even if this insert fails
        for p in prepared:
            ref, size = p.ref, p.size
            existing = entries.get(ref.id.int)
            if existing is not None and not self.expireIfDueLocked(ref.id.int, existing, now):
                raise existsError(ref)
            if size is not None and self.maxBytes is not None and size > self.maxBytes:
                raise DatasetTooLargeError(
                    f"Dataset {ref} is {size} bytes, more than maxBytes={self.maxBytes} of datastore "
                    f"{self.label!r} on its own; nothing was evicted or stored."
                )
        if self.bounded:
            nbytes = sum(p.size or 0 for p in prepared)
            if admission and not self._admitLocked([p.ref.id.int for p in prepared], nbytes):
                self.refused += 1
                return None
            if not admission:
                for p in prepared:
                    self.frequencies.record(p.ref.id.int, len(entries))
            evicted.extend(self._makeRoomLocked(len(prepared), nbytes))
        for entry in prepared:
            key = entry.ref.id.int
            entries[key] = entry
            if entry.size is not None:
                self.bytes += entry.size
            if self.expireSeconds is not None:
                self._expiryQueue.append((entry.timestamp, key))
            if self._tombstones:
                self._tombstones.pop(key, None)
        return evicted

    def screenLocked(self, key: int, size: int | None) -> bool:
        """Whether a read-through copy of ``key`` (``size`` bytes) is worth making; a refusal is counted.

        The admission policy's verdict on the dataset as it is, asked before the store owns (for
        ``freeze``, copies) it: a refused copy is then never made. `insertLocked` asks again on
        the owned entry, so a verdict changed in between is still obeyed (and counted once).
        A dataset larger than ``maxBytes`` on its own is not worth it either, but not counted
        as refused (its insert would raise `DatasetTooLargeError`); one already held is let
        through (its insert raises `DatasetExistsError`).
        """
        self._sweepIfDueLocked(time.time())
        nbytes = size or 0
        if self.maxBytes is not None and nbytes > self.maxBytes:
            return False
        if key in self.entries or self._admitLocked([key], nbytes):
            return True
        self.refused += 1
        return False

    def _sweepIfDueLocked(self, now: float) -> None:
        """Drop the expired entries at the front of the expiry queue, to be reported later."""
        if self._expiryQueue and self._expiryQueue[0][0] + (self.expireSeconds or 0) <= now:
            self._pendingExpired.extend(self.sweepLocked(now))

    def _admitLocked(self, keys: list[int], nbytes: int) -> bool:
        """Whether read-through copies of ``keys`` may enter (see the class docstring)."""
        if self.maxBytes is not None and nbytes > self.maxBytes * self.admitFraction:
            return False
        if self.admission == "all" or not self._needsRoomLocked(len(keys), nbytes):
            return True
        victim = next(iter(self.entries), None)
        if victim is None:
            return True
        candidate = max(self.frequencies.estimate(key) for key in keys)
        return candidate > self.frequencies.estimate(victim)

    def _needsRoomLocked(self, items: int, nbytes: int) -> bool:
        return (self.maxItems is not None and len(self.entries) + items > self.maxItems) or (
            self.maxBytes is not None and self.bytes + nbytes > self.maxBytes
        )

    def restoreLocked(self, removed: list[Entry]) -> tuple[list[DatasetRef], list[DatasetRef]]:
        """Put removed entries back where their ids are free; return ``(restored, evicted)``."""
        restored = [e for e in removed if e.ref.id.int not in self.entries]
        evicted: list[DatasetRef] = []
        if self.bounded and restored:
            evicted = self._makeRoomLocked(len(restored), sum(e.size or 0 for e in restored), strict=False)
        for entry in restored:
            key = entry.ref.id.int
            self.entries[key] = entry
            if entry.size is not None:
                self.bytes += entry.size
            if self.expireSeconds is not None:
                # out of order: swept late, expired on access
                self._expiryQueue.append((entry.timestamp, key))
        return [e.ref for e in restored], evicted

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
        while entries and self._needsRoomLocked(items, nbytes):
            key, entry = entries.popitem(last=False)  # type: ignore[call-arg]
            self._forgetLocked(key, entry, "evicted")
            self.evictions += 1
            evicted.append(entry.ref)
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
        if entry.size is not None:
            self.bytes -= entry.size
        if self.infoOverrides:
            self.infoOverrides.pop(key, None)
        if reason is not None:
            self._tombstones[key] = (reason, time.time())
            if len(self._tombstones) > _TOMBSTONE_LIMIT:
                self._tombstones.popitem(last=False)

    # -- expiry --

    def expireIfDueLocked(self, key: int, entry: Entry, now: float) -> bool:
        """If ``entry`` has expired, drop it (the registry is told later) and return True."""
        if self.expireSeconds is None or entry.timestamp + self.expireSeconds > now:
            return False
        del self.entries[key]
        self._forgetLocked(key, entry, "expired")
        self.expirations += 1
        self._pendingExpired.append(entry.ref)
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
            if entry is not None and entry.timestamp == ts:
                del self.entries[key]
                self._forgetLocked(key, entry, "expired")
                self.expirations += 1
                expired.append(entry.ref)
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
        """Return ``[count, bytes, hits, misses, evictions, expirations, refused]``."""
        hits = self.hits + next(self._hitCounter) - self._hitReads
        self._hitReads += 1
        return [
            len(self.entries), self.bytes, hits, self.misses, self.evictions, self.expirations, self.refused
        ]  # fmt: skip
