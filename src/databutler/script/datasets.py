"""Plain functions behind the dataset commands: put, get, query-datasets, remove, transfer.

Each opens the repository, does one thing and returns plain values; the click commands in
`databutler.cli` only parse arguments and print what these return.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..butler import Butler
from ..dataset_ref import DatasetRef
from ..exceptions import DatasetNotFoundError
from ..registry.queries.results import QueryResults
from .files import readDataFile, summarize, writeDataFile

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
) -> GetResult:
    """Get a dataset (``"type.component"`` for a component), write it to ``output`` if given.

    Parameters
    ----------
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
        The dataset cannot be written in the format ``output``'s extension names.
    """
    if output is not None and not overwrite and os.path.lexists(output):
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
    written = writeDataFile(obj, output) if output is not None else None
    return GetResult(ref, obj, summarize(obj), written)


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
