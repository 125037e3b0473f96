"""How a datastore tells a registry which datasets it holds.

A datastore given a ``registry`` calls `DatasetLocationRegistry.addDatasetLocations` after it
stores datasets and `DatasetLocationRegistry.removeDatasetLocations` after it stops holding
them (removed, evicted, expired or rolled back). Any object with these two methods will do; the
SQL registry implements them, and `InMemoryLocationRegistry` is a small in-process one.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from ..dataset_ref import DatasetRef

__all__ = ["DatasetLocationRegistry", "InMemoryLocationRegistry"]


@runtime_checkable
class DatasetLocationRegistry(Protocol):
    """The part of a registry that datastores talk to."""

    def addDatasetLocations(self, datastoreName: str, refs: Iterable[DatasetRef]) -> None:
        """Record that datastore ``datastoreName`` now holds ``refs``."""

    def removeDatasetLocations(self, datastoreName: str, refs: Iterable[DatasetRef]) -> None:
        """Record that datastore ``datastoreName`` no longer holds ``refs``."""


class InMemoryLocationRegistry:
    """A thread-safe, in-process `DatasetLocationRegistry`: dataset id → datastore names."""

    def __init__(self) -> None:
        self._locations: dict[uuid.UUID, set[str]] = {}
        self._lock = threading.Lock()

    def addDatasetLocations(self, datastoreName: str, refs: Iterable[DatasetRef]) -> None:
        """Record that datastore ``datastoreName`` now holds ``refs``."""
        with self._lock:
            for ref in refs:
                self._locations.setdefault(ref.id, set()).add(datastoreName)

    def removeDatasetLocations(self, datastoreName: str, refs: Iterable[DatasetRef]) -> None:
        """Record that datastore ``datastoreName`` no longer holds ``refs``."""
        with self._lock:
            for ref in refs:
                names = self._locations.get(ref.id)
                if names is not None:
                    names.discard(datastoreName)
                    if not names:
                        del self._locations[ref.id]

    def getDatasetLocations(self, ref: DatasetRef) -> frozenset[str]:
        """Return the names of the datastores that hold ``ref``."""
        with self._lock:
            return frozenset(self._locations.get(ref.id, ()))

    def __len__(self) -> int:
        """Return the number of datasets stored in at least one datastore."""
        with self._lock:
            return len(self._locations)
