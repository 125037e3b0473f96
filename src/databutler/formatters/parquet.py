"""`ParquetFormatter`: pyarrow Tables and pandas DataFrames as Parquet, reading only the columns asked for."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..delegates.tables import checkColumns
from ..exceptions import DatasetTypeMismatchError
from ..storage_class import StorageClass
from .base import Formatter

__all__ = ["ParquetFormatter"]


def _isDataFrameType(pytype: type) -> bool:
    return pytype.__module__.split(".")[0] == "pandas"


class ParquetFormatter(Formatter):
    """Writes a `pyarrow.Table` or a `pandas.DataFrame` (index kept) as one Parquet file.

    The ``columns`` parameter is pushed down: only those columns are decoded and, when the file
    is read as a stream (checksums off), only their column chunks are fetched. A DataFrame's
    index comes back with any subset of its columns.
    """

    extension = ".parquet"
    pushdownParameters = frozenset({"columns"})
    prefersStream = True

    def write(self, inMemoryDataset: Any, stream: IO[bytes], storageClass: StorageClass) -> None:
        """Write a pyarrow Table, or a DataFrame with its index, as one Parquet file.

        Raises
        ------
        DatasetTypeMismatchError
            The object is neither a pyarrow Table nor a pandas DataFrame.
        """
        if isinstance(inMemoryDataset, pa.Table):
            table = inMemoryDataset
        elif _isDataFrameType(type(inMemoryDataset)):
            table = pa.Table.from_pandas(inMemoryDataset)
        else:
            raise DatasetTypeMismatchError(
                f"ParquetFormatter writes pyarrow.Table or pandas.DataFrame, not {type(inMemoryDataset).__qualname__}."
            )
        pq.write_table(table, stream)

    def newBuffer(self, size: int) -> memoryview:
        """Return a pyarrow-allocated buffer, which pyarrow reads without copying."""
        return memoryview(pa.allocate_buffer(size))

    def readBuffer(
        self, buffer: memoryview, storageClass: StorageClass, parameters: Mapping[str, Any]
    ) -> Any:
        """Read the Parquet file held in ``buffer``, decoding only the requested ``columns``.

        Raises
        ------
        InvalidParameterError
            ``columns`` names a column that the file does not hold.
        """
        return self._read(pa.BufferReader(pa.py_buffer(buffer)), storageClass, parameters)

    def readStream(self, stream: IO[bytes], storageClass: StorageClass, parameters: Mapping[str, Any]) -> Any:
        """Read the Parquet file from ``stream``, fetching only the requested ``columns``.

        Raises
        ------
        InvalidParameterError
            ``columns`` names a column that the file does not hold.
        """
        return self._read(stream, storageClass, parameters)

    def _read(self, source: Any, storageClass: StorageClass, parameters: Mapping[str, Any]) -> Any:
        parquetFile = pq.ParquetFile(source)
        schema = parquetFile.schema_arrow
        asFrame = _isDataFrameType(storageClass.pytype)
        columns = None
        if "columns" in parameters:
            pandasMeta = schema.pandas_metadata or {}
            indexColumns = {c for c in pandasMeta.get("index_columns", []) if isinstance(c, str)}
            available = [name for name in schema.names if name not in indexColumns]
            columns = checkColumns(parameters["columns"], available, storageClass.name)
        # No Arrow thread pool: a dataset is one small file, and pool threads still running when
        # the interpreter exits can abort the process (apache/arrow#34314).
        table = parquetFile.read(columns=columns, use_pandas_metadata=asFrame, use_threads=False)
        if asFrame:
            return table.to_pandas(use_threads=False)
        if columns is not None:
            table = table.select(columns)
        if table.schema.metadata and b"pandas" in table.schema.metadata:
            table = table.replace_schema_metadata(
                {k: v for k, v in table.schema.metadata.items() if k != b"pandas"} or None
            )
        return table
