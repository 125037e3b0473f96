"""Plain functions behind the dataset commands: put, get, query-datasets, remove, transfer.

Each opens the repository, does one thing and returns plain values; the click commands in
`databutler.cli` only parse arguments and print what these return.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..butler import Butler
from ..dataset_ref import DatasetRef
from ..exceptions import DatasetNotFoundError, FormatterError
from ..registry.queries.results import QueryResults
from .files import SUPPORTED_EXTENSIONS, readDataFile, summarize, writeDataFile

__all__ = [
    "GetResult",
    "TransferResult",
    "getDataset",
    "putDataset",
    "queryDatasets",
    "removeDatasets",
    "transferDatasets",
]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class GetResult:
    """What `getDataset` read: the ref, the object, a short summary, and the file written."""

    ref: DatasetRef
    obj: Any
    summary: dict[str, str]
    output: Path | None


@dataclass(frozen=True)
class TransferResult:
    """What `transferDatasets` did: the datasets copied and how many were already there."""

    transferred: list[DatasetRef]
    skipped: int


def putDataset(
    root: PathLike, datasetType: str, path: PathLike, dataId: Mapping[str, Any], run: str
) -> DatasetRef:
    """Read ``path`` (.json, .yaml, .npy, .parquet, .fits) and put it as ``datasetType``.

    Raises
    ------
    MissingDatasetTypeError
        The dataset type is not registered (see ``databutler register-dataset-type``).
    DataIdError
        The data ID has missing or extra keys.
    ConflictingDatasetError
        The run already has that dataset.
    FormatterError
        The file cannot be read as the dataset type's storage class.
    """
    with Butler(root, run=run) as butler:
        datasetTypeObj = butler.getDatasetType(datasetType)
        obj = readDataFile(path, datasetTypeObj.storageClass)
        return butler.put(obj, datasetTypeObj, dataId)


def getDataset(
    root: PathLike,
    datasetType: str,
    dataId: Mapping[str, Any],
    *,
    collections: Sequence[str] | None = None,
    parameters: Mapping[str, Any] | None = None,
    output: PathLike | None = None,
    overwrite: bool = False,
    writeable: bool = False,
    fileFormat: str | None = None,
    stream: BinaryIO | None = None,
) -> GetResult:
    """Get a dataset (``"type.component"`` for a component), write it to ``output`` if given.

    Parameters
    ----------
    output : path-like, optional
        The file to write, in the format its extension names; ``"-"`` writes to ``stream``
        (standard output by default) in the format ``fileFormat`` names, by default that of
        the dataset's stored file.
    fileFormat : str, optional
        The format for ``output="-"``, as an extension (``npy`` or ``.npy``).
    stream : binary file, optional
        Where ``output="-"`` writes (default: standard output).
    overwrite : bool, optional
        Replace ``output`` if it already exists; by default an existing file is refused
        before the repository is read.
    writeable : bool, optional
        Open the repository writeable; by default it is opened read-only (nothing is written,
        and a repository on a read-only mount can be read).

    Raises
    ------
    FileExistsError
        ``output`` already exists and ``overwrite`` is false; nothing was written.
    DatasetNotFoundError
        No such dataset in the collections.
    DataIdError
        The data ID has missing or extra keys.
    InvalidParameterError
        A parameter is not accepted by the storage class.
    FormatterError
        The dataset cannot be written in the format ``output``'s extension names (or, for
        ``"-"``, the format is not one that files can be written in).
    """
    toStream = output is not None and os.fspath(output) == "-"
    if output is not None and not toStream and not overwrite and os.path.lexists(output):
        raise FileExistsError(
            f"Output file {str(output)!r} already exists; not overwriting it "
            f"(pass --overwrite, or overwrite=True, to replace it)."
        )
    with Butler(root, collections=collections, writeable=writeable) as butler:
        ref = butler.findDataset(datasetType, dataId)
        if ref is None:
            searched = list(collections) if collections else "any run"
            raise DatasetNotFoundError(
                f"No dataset {datasetType!r} with data ID {dict(dataId)} in {searched} of {str(root)!r}."
            )
        obj = butler.get(ref, parameters=parameters)
        if toStream:
            extension = _streamExtension(fileFormat, butler.getUri(ref), datasetType)
    if toStream:
        _writeToStream(obj, extension, stream if stream is not None else sys.stdout.buffer)
        return GetResult(ref, obj, summarize(obj), None)
    written = writeDataFile(obj, output) if output is not None else None
    return GetResult(ref, obj, summarize(obj), written)


def _streamExtension(fileFormat: str | None, uri: str, datasetType: str) -> str:
    """Return the extension (``.npy``) to write to a stream: ``fileFormat``, or the stored file's."""
    if fileFormat is not None:
        extension = fileFormat if fileFormat.startswith(".") else f".{fileFormat}"
    else:
        extension = posixpath.splitext(uri.split("#", 1)[0])[1]
    if extension.lower() not in SUPPORTED_EXTENSIONS:
        given = f"format {fileFormat!r}" if fileFormat is not None else f"its stored file {uri}"
        raise FormatterError(
            f"Cannot write {datasetType!r} to standard output: {given} is not one of "
            f"{', '.join(SUPPORTED_EXTENSIONS)}; pass --format (fileFormat=) with one of these."
        )
    return extension.lower()


def _writeToStream(obj: Any, extension: str, stream: BinaryIO) -> None:
    """Encode ``obj`` as a file of ``extension`` (through a temporary file), then copy it to ``stream``."""
    with tempfile.TemporaryDirectory(prefix="databutler-get-") as folder:
        path = writeDataFile(obj, Path(folder) / f"dataset{extension}")
        with open(path, "rb") as encoded:
            shutil.copyfileobj(encoded, stream)
    stream.flush()


def queryDatasets(
    root: PathLike,
    datasetType: str | None = None,
    *,
    collections: Sequence[str] | None = None,
    where: Mapping[str, Any] | str | None = None,
    bind: Mapping[str, Any] | None = None,
    findFirst: bool = False,
    orderBy: Sequence[str] | None = None,
    limit: int | None = None,
    writeable: bool = False,
) -> QueryResults[DatasetRef]:
    """Return the datasets of ``datasetType`` (or of every type) matching ``where``.

    Sorted by dataset type, run and data ID unless ``orderBy`` is given. The repository is
    opened read-only unless ``writeable``. See `Butler.queryDatasets` for the arguments.

    Raises
    ------
    MissingDatasetTypeError
        The dataset type is not registered.
    InvalidQueryError
        ``where`` does not parse or names an unknown dimension.
    """
    with Butler(root, writeable=writeable) as butler:
        refs = butler.queryDatasets(
            datasetType,
            collections=collections or None,
            where=where,
            bind=bind,
            findFirst=findFirst,
            orderBy=orderBy or None,
            limit=None if orderBy is None else limit,
        )
        explained = refs.explainNoResults() if not refs else []
    if not orderBy:
        refs = QueryResults(
            sorted(refs, key=lambda r: (r.datasetType.name, str(r.run), sorted(r.dataId.items())))
        )
        if limit is not None:
            refs = QueryResults(refs[: max(limit, 0)])
    return QueryResults(refs, lambda: explained)


def removeDatasets(
    root: PathLike,
    datasetType: str,
    *,
    collections: Sequence[str] | None = None,
    where: Mapping[str, Any] | None = None,
) -> list[DatasetRef]:
    """Remove every dataset of ``datasetType`` matching ``where``; return what was removed.

    Raises
    ------
    MissingDatasetTypeError
        The dataset type is not registered.
    DatasetNotFoundError
        Nothing matches.
    """
    with Butler(root) as butler:
        refs = butler.queryDatasets(datasetType, collections=collections or None, where=where)
        if not refs:
            where = dict(where or {})
            raise DatasetNotFoundError(
                f"No {datasetType!r} datasets match {where or 'anything'} in "
                f"{list(collections) if collections else 'any run'} of {str(root)!r}; nothing was removed."
            )
        butler.removeDatasets(refs)
    return refs


def transferDatasets(
    source: PathLike,
    target: PathLike,
    datasetTypes: Sequence[str] = (),
    *,
    collections: Sequence[str] | None = None,
    where: Mapping[str, Any] | None = None,
    progress: bool | None = None,
) -> TransferResult:
    """Copy datasets (every type unless ``datasetTypes``) from ``source`` into ``target``.

    ``source`` is opened read-only: it may be on a read-only mount.

    Raises
    ------
    MissingDatasetTypeError
        A named dataset type is not registered in ``source``.
    DatasetTypeConflictError
        A dataset type is defined differently in ``target``.
    ConflictingDatasetError
        ``target`` has a different dataset with the same type, data ID and run.
    """
    with Butler(source, writeable=False) as sourceButler, Butler(target) as targetButler:
        refs: list[DatasetRef] = []
        names: list[str | None] = list(datasetTypes) or [None]
        for name in names:
            refs.extend(sourceButler.queryDatasets(name, collections=collections or None, where=where))
        done = targetButler.transferFrom(sourceButler, refs, progress=progress)
    return TransferResult(done, len(refs) - len(done))
