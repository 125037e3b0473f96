"""Delegates for column tables: pandas DataFrame, pyarrow Table, astropy Table.

Each accepts a ``columns`` parameter: a column name or a list of names, in the order wanted.
The libraries are imported lazily, so this module loads without any of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from typing_extensions import override

from ..exceptions import InvalidParameterError
from ..storage_class import StorageClassDelegate
from .containers import ImmutableDelegate

__all__ = [
    "ArrowTableDelegate",
    "AstropyTableDelegate",
    "ColumnTableDelegate",
    "DataFrameDelegate",
    "checkColumns",
]


def checkColumns(requested: Any, available: Sequence[str], storageClassName: str) -> list[str]:
    """Return ``requested`` as a list of column names, all of which are in ``available``.

    Raises
    ------
    InvalidParameterError
        ``requested`` is not a name or list of names, or names a column that does not exist.
    """
    if isinstance(requested, str):
        requested = [requested]
    if not isinstance(requested, Sequence) or not all(isinstance(c, str) for c in requested):
        raise InvalidParameterError(
            f"Parameter 'columns' for {storageClassName!r} must be a column name or a list of names, "
            f"not {requested!r}."
        )
    unknown = [c for c in requested if c not in available]
    if unknown:
        raise InvalidParameterError(
            f"Parameter 'columns' names {unknown} not in this {storageClassName!r} dataset; "
            f"its columns are {list(available)}."
        )
    return list(requested)


class ColumnTableDelegate(StorageClassDelegate):
    """A column table: the ``columns`` parameter selects columns, in the order given.

    Subclasses say how to list a table's column names (`columnNames`) and how to select some
    (`selectColumns`, by default ``table[columns]``).
    """

    def columnNames(self, table: Any) -> Sequence[str]:
        """Return the names of the columns of ``table``."""
        raise NotImplementedError(f"{type(self).__name__} does not say how to list a table's columns.")

    def selectColumns(self, table: Any, columns: list[str]) -> Any:
        """Return ``table`` restricted to ``columns`` (checked names), in that order."""
        return table[columns]

    def applyParameters(self, inMemoryDataset: Any, parameters: Mapping[str, Any]) -> Any:
        """Return the table restricted to the ``columns`` parameter, in the order given.

        Raises
        ------
        InvalidParameterError
            ``columns`` is not a name or list of names, or names a column the table lacks.
        """
        if "columns" in parameters:
            cols = checkColumns(
                parameters["columns"], self.columnNames(inMemoryDataset), self.storageClass.name
            )
            return self.selectColumns(inMemoryDataset, cols)
        return inMemoryDataset


class DataFrameDelegate(ColumnTableDelegate):
    """pandas.DataFrame: shallow copies are safe under copy-on-write (always on in pandas 3)."""

    @override
    def columnNames(self, table: Any) -> Sequence[str]:
        return list(map(str, table.columns))

    def getSize(self, inMemoryDataset: Any) -> int:
        """Return the memory used by the DataFrame, its index and object contents included."""
        return int(inMemoryDataset.memory_usage(deep=True, index=True).sum())

    def copy(self, inMemoryDataset: Any) -> Any:
        """Return a shallow copy under copy-on-write, else a deep copy."""
        import pandas as pd

        copyOnWrite = int(pd.__version__.split(".")[0]) >= 3 or bool(pd.options.mode.copy_on_write)
        return inMemoryDataset.copy(deep=not copyOnWrite)

    def deepcopy(self, inMemoryDataset: Any) -> Any:
        """Return a deep copy of the DataFrame."""
        return inMemoryDataset.copy(deep=True)


class ArrowTableDelegate(ColumnTableDelegate, ImmutableDelegate):
    """pyarrow.Table: immutable, so copying and freezing are sharing."""

    @override
    def columnNames(self, table: Any) -> Sequence[str]:
        return table.column_names  # type: ignore[no-any-return]

    @override
    def selectColumns(self, table: Any, columns: list[str]) -> Any:
        return table.select(columns)

    def getSize(self, inMemoryDataset: Any) -> int:
        """Return the bytes held by the table's buffers."""
        return int(inMemoryDataset.nbytes)


class AstropyTableDelegate(ColumnTableDelegate):
    """astropy.table.Table: copies copy the column data."""

    @override
    def columnNames(self, table: Any) -> Sequence[str]:
        return table.colnames  # type: ignore[no-any-return]

    def getSize(self, inMemoryDataset: Any) -> int:
        """Return the bytes of the column data plus a fixed allowance for the table object."""
        return int(sum(col.nbytes for col in inMemoryDataset.itercols())) + 1024

    def copy(self, inMemoryDataset: Any) -> Any:
        """Return a copy of the table with its column data copied."""
        return inMemoryDataset.copy(copy_data=True)

    def deepcopy(self, inMemoryDataset: Any) -> Any:
        """Return a copy of the table with its column data copied."""
        return inMemoryDataset.copy(copy_data=True)
