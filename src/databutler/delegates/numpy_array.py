"""Delegate for `numpy.ndarray`: ``slice`` parameter, ``nbytes`` sizes, read-only freezing."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..exceptions import DatasetTypeMismatchError, UnstorableDatasetError
from ..storage_class import StorageClassDelegate
from .containers import toSlice

__all__ = ["NumpyArrayDelegate", "checkPlainArray"]


def checkPlainArray(obj: Any, formatName: str) -> None:
    """Refuse anything but a plain `numpy.ndarray`: a subclass would come back as a plain array.

    Raises
    ------
    UnstorableDatasetError
        ``obj`` is a masked array, a matrix or another subclass.
    DatasetTypeMismatchError
        ``obj`` is not an array at all.
    """
    kind = type(obj)
    if kind is np.ndarray:
        return
    if isinstance(obj, np.ndarray):
        lost = (
            "its mask"
            if isinstance(obj, np.ma.MaskedArray)
            else f"its type ({kind.__module__}.{kind.__qualname__})"
        )
        raise UnstorableDatasetError(
            f"{formatName} would lose {lost}: it holds plain numpy.ndarray only. Store the data and the "
            f"mask as two arrays (or a MaskedImage), or give this dataset type a storage class of its own "
            f"with PickleFormatter."
        )
    raise DatasetTypeMismatchError(
        f"{formatName} holds numpy.ndarray, not {kind.__module__}.{kind.__qualname__}."
    )


class NumpyArrayDelegate(StorageClassDelegate):
    """Arrays are copied once on put when frozen and handed out as read-only views."""

    canFreeze = True

    def checkStorable(self, inMemoryDataset: Any) -> None:
        """Refuse a masked array, a matrix or any other subclass of `numpy.ndarray`.

        Raises
        ------
        UnstorableDatasetError
            ``inMemoryDataset`` is a subclass, whose mask or type no tier would give back.
        """
        # Every tier must give back what was put: a frozen copy, a .npy or a FITS image would
        # all drop a mask or a subclass.
        checkPlainArray(inMemoryDataset, f"Storage class {self.storageClass.name!r}")

    def applyParameters(self, inMemoryDataset: Any, parameters: Mapping[str, Any]) -> Any:
        """Return the array indexed by the ``slice`` parameter (a slice, an int or one per axis).

        Raises
        ------
        InvalidParameterError
            The ``slice`` value cannot be used as an index.
        """
        if "slice" in parameters:
            return inMemoryDataset[toSlice(parameters["slice"])]
        return inMemoryDataset

    def getSize(self, inMemoryDataset: Any) -> int:
        """Return the bytes of the array's data plus its header; object arrays also count their elements."""
        if inMemoryDataset.dtype == object:
            return super().getSize(inMemoryDataset.tolist()) + sys.getsizeof(inMemoryDataset)
        return int(inMemoryDataset.nbytes) + sys.getsizeof(np.empty(0))

    def copy(self, inMemoryDataset: Any) -> Any:
        """Return a copy of the array's data."""
        return inMemoryDataset.copy()

    def deepcopy(self, inMemoryDataset: Any) -> Any:
        """Return a copy of the array; an object array also copies its elements."""
        if inMemoryDataset.dtype == object:
            return super().deepcopy(inMemoryDataset)
        return inMemoryDataset.copy()

    def canFreezeInstance(self, inMemoryDataset: Any) -> bool:
        """Return `True` unless the array holds Python objects, which a read-only view would share."""
        # The elements of an object array are Python objects that a view would share.
        return not inMemoryDataset.dtype.hasobject

    def freeze(self, inMemoryDataset: Any) -> Any:
        """Return a read-only array backed by an immutable bytes copy of the data."""
        # Backed by an immutable bytes object: neither the stored array nor any view of it
        # (nor ``view.base``) can be made writeable again.
        return np.frombuffer(inMemoryDataset.tobytes(), dtype=inMemoryDataset.dtype).reshape(
            inMemoryDataset.shape
        )

    def frozenView(self, stored: Any) -> Any:
        """Return a new read-only view of the frozen array, so callers cannot change each other's shape."""
        return stored.view()
