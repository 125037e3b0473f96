"""Plain function behind ``databutler ingest-files``: a table of files and data IDs, ingested at once.

The table is CSV (``.csv``), ECSV (``.ecsv``, read by astropy) or Parquet (``.parquet``, read by
pyarrow). One column names the file (``file`` by default); every other column is a dimension of
the dataset type, so each row is one file and its data ID. Every row is checked before anything
is ingested: a bad row is reported with its line (row, for Parquet) and nothing is ingested.
Relative file paths are taken relative to the table's folder.
"""

from __future__ import annotations

import csv
import importlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..butler import Butler
from ..dataset_ref import DatasetRef
from ..exceptions import DatabutlerError, IngestError
from ..ingest import FileDataset
from ..registry.data_ids import encodeDataId

__all__ = ["IngestResult", "ingestFiles", "readFileTable"]

PathLike = str | os.PathLike[str]

TABLE_FORMATS = {".csv": "CSV", ".ecsv": "ECSV", ".parquet": "Parquet"}


@dataclass(frozen=True)
class TableRow:
    """One row of a file table: where it is (``"line 3"``, ``"row 2"``) and its values."""

    where: str
    values: dict[str, Any]


@dataclass(frozen=True)
class IngestResult:
    """What `ingestFiles` did: the datasets ingested, in the table's order."""

    refs: list[DatasetRef]


def readFileTable(table: PathLike) -> tuple[list[str], list[TableRow]]:
    """Return the column names and rows of a CSV, ECSV or Parquet table.

    Raises
    ------
    IngestError
        The extension is not one of these, the table cannot be parsed, a CSV row has more or
        fewer fields than the header, or the library that reads the format is not installed.
    """
    path = Path(table)
    kind = TABLE_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise IngestError(
            f"Table {str(path)!r} is not .csv, .ecsv or .parquet; write the file list in one of these."
        )
    if not path.is_file():
        raise IngestError(f"Table {str(path)!r} does not exist (or is not a file).")
    try:
        if kind == "CSV":
            return _readCsv(path)
        if kind == "ECSV":
            return _readEcsv(path)
        return _readParquet(path)
    except (DatabutlerError, ImportError):
        raise
    except Exception as exc:
        raise IngestError(f"Cannot read {kind} table {str(path)!r}: {exc}; nothing was ingested.") from exc


def _readCsv(path: Path) -> tuple[list[str], list[TableRow]]:
    with open(path, newline="", encoding="utf-8-sig") as stream:  # a spreadsheet's BOM is not the header's
        reader = csv.reader(stream)
        header = next(reader, None)
        if not header:
            raise IngestError(f"Table {str(path)!r} is empty; its first line must name the columns.")
        names = [name.strip() for name in header]
        rows = []
        for fields in reader:
            if not any(field.strip() for field in fields):
                continue  # a blank line
            if len(fields) != len(names):
                raise IngestError(
                    f"{path}, line {reader.line_num}: {len(fields)} field(s), but the header names "
                    f"{len(names)} ({', '.join(names)}); nothing was ingested."
                )
            values = {name: field.strip() for name, field in zip(names, fields, strict=True)}
            rows.append(TableRow(f"line {reader.line_num}", values))
    return names, rows


def _dataLines(path: Path) -> Iterator[int]:
    """Yield the line numbers of an ECSV file's data rows (after its ``#`` header and column names)."""
    seenNames = False
    with open(path, encoding="utf-8") as stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip() or line.startswith("#"):
                continue
            if seenNames:
                yield number
            seenNames = True


def _importForTable(moduleName: str, path: Path, tableFormat: str, extra: str) -> Any:
    """Import ``moduleName`` to read the ``tableFormat`` table ``path``, or say which extra installs it.

    Raises
    ------
    IngestError
        The module is not installed.
    """
    try:
        return importlib.import_module(moduleName)
    except ImportError as exc:
        raise IngestError(
            f"Reading the {tableFormat} table {str(path)!r} needs {moduleName.split('.')[0]}: "
            f"pip install 'databutler[{extra}]' (or give a CSV table)."
        ) from exc


def _readEcsv(path: Path) -> tuple[list[str], list[TableRow]]:
    table = _importForTable("astropy.table", path, "ECSV", "astropy").Table.read(path, format="ascii.ecsv")
    names = list(table.colnames)
    columns = [table[name].tolist() for name in names]
    lines = list(_dataLines(path))
    rows = [
        TableRow(
            f"line {lines[i]}" if i < len(lines) else f"row {i + 1}", dict(zip(names, values, strict=True))
        )
        for i, values in enumerate(zip(*columns, strict=True))
    ]
    return names, rows


def _readParquet(path: Path) -> tuple[list[str], list[TableRow]]:
    table = _importForTable("pyarrow.parquet", path, "Parquet", "arrow").read_table(path)
    return list(table.column_names), [
        TableRow(f"row {i + 1}", values) for i, values in enumerate(table.to_pylist())
    ]


def ingestFiles(
    root: PathLike,
    datasetType: str,
    table: PathLike,
    run: str,
    *,
    transfer: str = "auto",
    fileColumn: str = "file",
    progress: bool | None = None,
) -> IngestResult:
    """Ingest the files a table lists, with the data IDs in its other columns, in one commit.

    Parameters
    ----------
    root : path-like
        The repository.
    datasetType : str
        The registered dataset type of every file.
    table : path-like
        A ``.csv``, ``.ecsv`` or ``.parquet`` table: a ``fileColumn`` column and one column
        per dimension of the dataset type. Relative paths are relative to the table's folder.
    run : str
        The run to ingest into (created if new).
    transfer : str
        How the files come in (see `Butler.ingest`).
    fileColumn : str
        The column that names the files.
    progress : bool, optional
        Show a progress bar on stderr (default: when it is a terminal).

    Raises
    ------
    IngestError
        The table cannot be read, its columns are not the file column and the dataset type's
        dimensions, or a row is bad (no file, a missing file, a value that is not of its
        dimension's type, a data ID given twice); the message names the line. Nothing was ingested.
    MissingDatasetTypeError
        The dataset type is not registered.
    """
    names, rows = readFileTable(table)
    folder = Path(table).parent
    with Butler(root, run=run) as butler:
        datasetTypeObj = butler.getDatasetType(datasetType)
        dimensions = list(datasetTypeObj.dimensions)
        _checkColumns(table, names, fileColumn, dimensions, datasetType)
        universe = butler.registry.dimensions
        seen: dict[str, str] = {}
        datasets = []
        for row in rows:
            place = f"{table}, {row.where}"
            source = row.values[fileColumn]
            if source is None or not str(source).strip():
                raise IngestError(f"{place}: no file in column {fileColumn!r}; nothing was ingested.")
            path = Path(str(source).strip())
            path = path if path.is_absolute() else folder / path
            if not path.is_file():
                what = "does not exist" if not path.exists() else "is not a regular file"
                raise IngestError(f"{place}: file {str(path)!r} {what}; nothing was ingested.")
            try:
                dataId = universe.coerceDataId(
                    {name: row.values[name] for name in dimensions}, f"Data ID of {datasetType!r}:"
                )
                _, key = encodeDataId(datasetTypeObj, dataId)
            except DatabutlerError as exc:
                raise IngestError(f"{place}: {str(exc).rstrip('.')}; nothing was ingested.") from exc
            if key in seen:
                raise IngestError(
                    f"{place}: data ID {dataId} is also on {seen[key]}; one file per dataset; nothing was ingested."
                )
            seen[key] = row.where
            datasets.append(FileDataset(path, DatasetRef(datasetTypeObj, dataId)))
        if not datasets:
            raise IngestError(f"Table {str(table)!r} lists no files; nothing was ingested.")
        refs = butler.ingest(*datasets, transfer=transfer, progress=progress)
    return IngestResult(refs)


def _checkColumns(
    table: PathLike, names: list[str], fileColumn: str, dimensions: list[str], datasetType: str
) -> None:
    expected = [fileColumn, *dimensions]
    missing = [name for name in expected if name not in names]
    extra = [name for name in names if name not in expected]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if missing or extra or duplicated:
        problems = []
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        if extra:
            problems.append(f"unexpected {', '.join(extra)}")
        if duplicated:
            problems.append(f"given twice {', '.join(duplicated)}")
        raise IngestError(
            f"{table}, header: the columns must be {', '.join(expected)} (the file, then the dimensions "
            f"of {datasetType!r}): {'; '.join(problems)}; nothing was ingested."
        )
