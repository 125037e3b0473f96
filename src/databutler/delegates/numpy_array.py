"""Delegate for `numpy.ndarray`: ``slice`` parameter, ``nbytes`` sizes, read-only freezing."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..storage_class import StorageClassDelegate
from .containers import toSlice

__all__ = ["NumpyArrayDelegate"]


class NumpyArrayDelegate(StorageClassDelegate):
    """Arrays are copied once on put when frozen and handed out as read-only views."""

    canFreeze = True

    def applyParameters(self, inMemoryDataset: Any, parameters: Mapping[str, Any]) -> Any:
        if "slice" in parameters:
            return inMemoryDataset[toSlice(parameters["slice"])]
        return inMemoryDataset

    def getSize(self, inMemoryDataset: Any) -> int:
        if inMemoryDataset.dtype == object:
            return super().getSize(inMemoryDataset.tolist()) + sys.getsizeof(inMemoryDataset)
        return int(inMemoryDataset.nbytes) + sys.getsizeof(np.empty(0))

    def copy(self, inMemoryDataset: Any) -> Any:
        return inMemoryDataset.copy()

    def deepcopy(self, inMemoryDataset: Any) -> Any:
        if inMemoryDataset.dtype == object:
            return super().deepcopy(inMemoryDataset)
        return inMemoryDataset.copy()

    def canFreezeInstance(self, inMemoryDataset: Any) -> bool:
        # The elements of an object array are Python objects that a view would share.
        return not inMemoryDataset.dtype.hasobject

    def freeze(self, inMemoryDataset: Any) -> Any:
        # Backed by an immutable bytes object: neither the stored array nor any view of it
        # (nor ``view.base``) can be made writeable again.
        return np.frombuffer(inMemoryDataset.tobytes(), dtype=inMemoryDataset.dtype).reshape(
            inMemoryDataset.shape
        )

    def frozenView(self, stored: Any) -> Any:
        return stored.view()
