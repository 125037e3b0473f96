"""`ParquetFormatter`: pyarrow Tables and pandas DataFrames as Parquet, reading only the columns asked for."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq
from typing_extensions import override

from ..delegates.tables import checkColumns
from ..exceptions import DatasetTypeMismatchError, UnstorableDatasetError
from ..storage_class import StorageClass
from .base import Formatter, isPrevalidated

__all__ = ["ParquetFormatter"]


def _isDataFrameType(pytype: type) -> bool:
    return pytype.__module__.split(".")[0] == "pandas"


def _isAstropyType(pytype: type) -> bool:
    return pytype.__module__.split(".")[0] == "astropy"


_KEEP_PANDAS = b"databutler:keepPandasMetadata"
"""Schema metadata key marking a pyarrow Table whose own ``pandas`` metadata is to be kept on read.

Without it, the ``pandas`` metadata is the one `pyarrow.Table.from_pandas` added when a
DataFrame was written, and a read as a table drops it."""


def _refuse(what: str) -> UnstorableDatasetError:
    why = ""
    if what.endswith(")") and " (" in what:
        what, why = what.split(" (", 1)
        why = f" ({why}"
    return UnstorableDatasetError(
        f"Parquet cannot hold {what} exactly{why}; nothing was written: convert it, or configure "
        f"PickleFormatter for this dataset type."
    )


def _checkType(name: str, kind: pa.DataType) -> None:
    """Refuse Arrow types that Parquet reads back as another type."""
    if pa.types.is_time32(kind) and kind.unit == "s":
        raise _refuse(f"column {name!r} of type {kind} (it would read back as time32[ms])")
    if pa.types.is_timestamp(kind) and kind.unit == "s":
        raise _refuse(f"column {name!r} of type {kind} (it would read back with unit ms)")
    if pa.types.is_date64(kind):
        raise _refuse(f"column {name!r} of type {kind} (it would read back as date32; store date32)")
    if pa.types.is_map(kind):
        raise _refuse(f"column {name!r} of type {kind} (its entry fields would be renamed)")
    if pa.types.is_dictionary(kind):
        _checkType(name, kind.value_type)
    elif pa.types.is_struct(kind):
        for i in range(kind.num_fields):
            _checkType(f"{name}.{kind.field(i).name}", kind.field(i).type)
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        _checkType(f"{name}[]", kind.value_type)


def _checkSchema(schema: pa.Schema) -> None:
    if schema.metadata and _KEEP_PANDAS in schema.metadata:
        raise _refuse(f"schema metadata key {_KEEP_PANDAS!r}, which this formatter uses itself")
    for field in schema:
        _checkType(field.name, field.type)


def _pandasReadsStr() -> bool:
    try:
        import pandas as pd
    except ImportError:
        return False
    return int(pd.__version__.split(".")[0]) >= 3


_PANDAS_STR_DEFAULT = _pandasReadsStr()
"""Whether pandas reads Parquet text back with its ``str`` dtype (pandas 3), not as objects."""


def _checkFrame(frame: Any) -> None:
    """Refuse a DataFrame whose Parquet form would read back different."""
    import pandas as pd

    if type(frame) is not pd.DataFrame:
        raise _refuse(f"a {type(frame).__qualname__} (it would read back as a pandas.DataFrame)")
    for label in frame.columns:
        column = frame[label]
        if not isinstance(column, pd.Series):
            continue
        if isinstance(column.dtype, pd.CategoricalDtype) and len(column.dtype.categories) == 0:
            raise _refuse(
                f"column {label!r}, a categorical with no categories (it would read back as object)"
            )
        if column.dtype != object:
            continue
        inferred = pd.api.types.infer_dtype(column, skipna=True)
        if inferred == "string" and _PANDAS_STR_DEFAULT:
            raise _refuse(
                f"column {label!r}, an object column of str (pandas {pd.__version__} reads text back "
                f"with the str dtype; convert it with .astype('str'))"
            )
        if inferred not in ("string", "bytes", "empty"):
            raise _refuse(
                f"column {label!r} of Python objects (they are {inferred}; Parquet holds an object column "
                f"only of str or bytes, with None for missing values: list cells, for example, "
                f"would read back as arrays)"
            )
        missing = column[column.isna()]
        if any(value is not None for value in missing):
            raise _refuse(
                f"column {label!r}: its missing values other than None (they would read back as None)"
            )
    try:
        schema = pa.Schema.from_pandas(frame)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        raise _refuse(f"this DataFrame ({exc})") from exc
    for field in schema:
        _checkType(field.name, field.type)


class ParquetFormatter(Formatter):
    """Writes a `pyarrow.Table` or a `pandas.DataFrame` (index kept) as one Parquet file.

    The ``columns`` parameter is pushed down: only those columns are decoded and, when the file
    is read as a stream (checksums off), only their column chunks are fetched. A DataFrame's
    index comes back with any subset of its columns.
    """

    extension = ".parquet"
    pushdownParameters = frozenset({"columns"})
    prefersStream = True

    @override
    def validate(self, inMemoryDataset: Any, storageClass: StorageClass) -> None:
        """Refuse a table or DataFrame whose Parquet form would read back different.

        Raises
        ------
        UnstorableDatasetError
            A column type or object column that Parquet would change, or a DataFrame subclass.
        DatasetTypeMismatchError
            The object is neither a pyarrow Table nor a pandas DataFrame.
        """
        if type(inMemoryDataset) is pa.Table:
            _checkSchema(inMemoryDataset.schema)
        elif _isDataFrameType(type(inMemoryDataset)):
            _checkFrame(inMemoryDataset)
        else:
            raise DatasetTypeMismatchError(
                f"ParquetFormatter writes pyarrow.Table or pandas.DataFrame, not {type(inMemoryDataset).__qualname__}."
            )

    @override
    def write(self, inMemoryDataset: Any, stream: IO[bytes], storageClass: StorageClass) -> None:
        """Write a pyarrow Table, or a DataFrame with its index, as one Parquet file, after `validate`."""
        if not isPrevalidated(inMemoryDataset):
            self.validate(inMemoryDataset, storageClass)
        if isinstance(inMemoryDataset, pa.Table):
            table = inMemoryDataset
            if table.schema.metadata and b"pandas" in table.schema.metadata:
                # The table's own pandas metadata: kept when it is read back as a table.
                table = table.replace_schema_metadata({**table.schema.metadata, _KEEP_PANDAS: b"1"})
        else:
            table = pa.Table.from_pandas(inMemoryDataset)
        # Non-compliant nested names keep a list's child field called "item", as Arrow names it.
        pq.write_table(table, stream, use_compliant_nested_type=False)

    @override
    def importFile(self, path: Path, storageClass: StorageClass) -> Any:
        """Read any Parquet file as a pyarrow Table, a DataFrame or (by astropy) an astropy Table."""
        if _isAstropyType(storageClass.pytype):
            from astropy.table import Table

            return Table.read(path, format="parquet")
        # No Arrow thread pool: its threads can abort the process at exit (apache/arrow#34314).
        table = pq.read_table(path, use_threads=False)
        return table.to_pandas(use_threads=False) if _isDataFrameType(storageClass.pytype) else table

    @override
    def exportFile(self, inMemoryDataset: Any, path: Path) -> None:
        """Write a pyarrow Table, a DataFrame (with pandas) or an astropy Table (with astropy)."""
        if isinstance(inMemoryDataset, pa.Table):
            pq.write_table(inMemoryDataset, path)
        elif _isDataFrameType(type(inMemoryDataset)):
            inMemoryDataset.to_parquet(path)
        elif _isAstropyType(type(inMemoryDataset)):
            inMemoryDataset.write(path, format="parquet", overwrite=True)
        else:
            raise TypeError(f"a {type(inMemoryDataset).__name__} has no .parquet form")

    @override
    def newBuffer(self, size: int) -> memoryview:
        """Return a pyarrow-allocated buffer, which pyarrow reads without copying."""
        return memoryview(pa.allocate_buffer(size))

    @override
    def readBuffer(
        self, buffer: memoryview, storageClass: StorageClass, parameters: Mapping[str, Any]
    ) -> Any:
        """Read the Parquet file held in ``buffer``, decoding only the requested ``columns``."""
        return self._read(pa.BufferReader(pa.py_buffer(buffer)), storageClass, parameters)

    @override
    def readStream(self, stream: IO[bytes], storageClass: StorageClass, parameters: Mapping[str, Any]) -> Any:
        """Read the Parquet file from ``stream``, fetching only the requested ``columns``."""
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
            if table.schema.metadata and _KEEP_PANDAS in table.schema.metadata:
                table = table.replace_schema_metadata(
                    {k: v for k, v in table.schema.metadata.items() if k != _KEEP_PANDAS}
                )
            return table.to_pandas(use_threads=False)
        if columns is not None:
            table = table.select(columns)
        metadata = table.schema.metadata
        if metadata and (b"pandas" in metadata or _KEEP_PANDAS in metadata):
            drop = {_KEEP_PANDAS} if _KEEP_PANDAS in metadata else {b"pandas"}
            table = table.replace_schema_metadata(
                {k: v for k, v in metadata.items() if k not in drop} or None
            )
        return table
