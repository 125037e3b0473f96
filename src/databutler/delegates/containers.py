"""Delegates for builtin containers: lists (with a ``slice`` parameter) and tuples."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..exceptions import InvalidParameterError
from ..storage_class import StorageClassDelegate

__all__ = ["ImmutableDelegate", "ListDelegate", "TupleDelegate", "isDeeplyImmutable", "toSlice"]


def toSlice(value: Any) -> slice | int | tuple[Any, ...]:
    """Turn a ``slice`` parameter value into something usable as an index.

    Accepts a `slice`, an int, a ``(start, stop[, step])`` list or tuple of ints/None, a tuple
    of slices (for multi-dimensional arrays) or a ``"start:stop[:step]"`` string.

    Raises
    ------
    InvalidParameterError
        The value is none of those.
    """
    if isinstance(value, slice | int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        parts = value.split(":")
        if 2 <= len(parts) <= 3:
            try:
                return slice(*(int(p) if p.strip() else None for p in parts))
            except ValueError:
                pass
    if isinstance(value, tuple) and value and all(isinstance(v, slice) for v in value):
        return value
    if (
        isinstance(value, list | tuple)
        and 2 <= len(value) <= 3
        and all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in value)
    ):
        return slice(*value)
    raise InvalidParameterError(
        f"Parameter 'slice' must be a slice, an int, (start, stop[, step]) or 'start:stop', not {value!r}."
    )


class ListDelegate(StorageClassDelegate):
    """Delegate for lists; ``slice`` selects part of the list."""

    def applyParameters(self, inMemoryDataset: Any, parameters: Mapping[str, Any]) -> Any:
        """Return the list sliced by the ``slice`` parameter (an int index gives a one-item list).

        Raises
        ------
        InvalidParameterError
            The ``slice`` is multi-dimensional or not a slice at all.
        """
        if "slice" in parameters:
            index = toSlice(parameters["slice"])
            if not isinstance(index, slice | int):
                raise InvalidParameterError(f"A list takes a one-dimensional slice, not {index!r}.")
            result = inMemoryDataset[index]
            return result if isinstance(index, slice) else [result]
        return inMemoryDataset


_IMMUTABLE_SCALARS = (str, bytes, int, float, complex, bool, type(None), range)


def isDeeplyImmutable(obj: Any, depth: int = 0) -> bool:
    """Whether ``obj`` is built only from immutable builtins (str, numbers, None, tuples, frozensets)."""
    if isinstance(obj, _IMMUTABLE_SCALARS):
        return True
    if depth < 32 and type(obj) in (tuple, frozenset):
        return all(isDeeplyImmutable(item, depth + 1) for item in obj)
    return False


class TupleDelegate(StorageClassDelegate):
    """Delegate for tuples: a tuple of immutable builtins is shared, anything else is deep-copied.

    (Hashability is not enough: instances of ordinary classes are hashable and mutable.)
    """

    canFreeze = True

    def canFreezeInstance(self, inMemoryDataset: Any) -> bool:
        """Return `True` if the tuple holds only immutable builtins, so it can be shared."""
        return isDeeplyImmutable(inMemoryDataset)

    def freeze(self, inMemoryDataset: Any) -> Any:
        """Return the tuple itself: it holds only immutable builtins."""
        return inMemoryDataset


class ImmutableDelegate(StorageClassDelegate):
    """Delegate for immutable values (str, bytes, numbers): freezing is sharing."""

    canFreeze = True

    def copy(self, inMemoryDataset: Any) -> Any:
        """Return the value itself: it is immutable."""
        return inMemoryDataset

    def deepcopy(self, inMemoryDataset: Any) -> Any:
        """Return the value itself: it is immutable."""
        return inMemoryDataset

    def freeze(self, inMemoryDataset: Any) -> Any:
        """Return the value itself: it is immutable, so sharing it is freezing it."""
        return inMemoryDataset
