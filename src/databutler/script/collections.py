"""Plain functions behind the collection commands: associate, certify-calibrations, remove-*.

The remove commands are remove-runs, remove-collections and remove-dataset-type.

Each opens the repository for writing, does one thing and returns plain values; the click
commands in `databutler.cli` only parse arguments and print what these return.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ..butler import Butler
from ..dimensions import Timespan
from ..exceptions import ArgumentTypeError
from ..registry.collections import CollectionType

__all__ = [
    "associateDatasets",
    "certifyCalibrations",
    "parseTime",
    "removeCollections",
    "removeDatasetType",
    "removeRuns",
]

PathLike = str | os.PathLike[str]


def parseTime(text: str | None, what: str) -> datetime.datetime | None:
    """Return ``text`` (ISO 8601, UTC unless it says otherwise) as a datetime; `None` for none.

    Raises
    ------
    ArgumentTypeError
        ``text`` is not an ISO 8601 date or time.
    """
    if text is None or text == "":
        return None
    try:
        value = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ArgumentTypeError(
            f"{what} {text!r} is not an ISO 8601 date or time, such as 2024-01-31 or 2024-01-31T12:00:00."
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=datetime.UTC)


def associateDatasets(
    root: PathLike,
    collection: str,
    datasetType: str,
    collections: Sequence[str],
    where: str | Mapping[str, Any] | None = None,
) -> int:
    """Tag the datasets of ``datasetType`` found first in ``collections`` in TAGGED ``collection``.

    The TAGGED collection is registered if new. Returns how many datasets were tagged.

    Raises
    ------
    ConflictingDatasetError
        ``collection`` already holds another dataset of a data ID found; nothing was tagged.
    CollectionError
        ``collection`` is a collection of another type.
    """
    with Butler(root, writeable=True) as butler:
        refs = butler.registry.queryDatasets(datasetType, list(collections), where, findFirst=True)
        butler.registry.registerCollection(collection, CollectionType.TAGGED)
        butler.registry.associate(collection, refs)
        return len(refs)


def certifyCalibrations(
    root: PathLike,
    inputCollection: str,
    outputCollection: str,
    datasetType: str,
    begin: datetime.datetime | None,
    end: datetime.datetime | None,
) -> int:
    """Certify the datasets of ``datasetType`` found first in ``inputCollection`` for ``[begin, end)``.

    CALIBRATION ``outputCollection`` is registered if new. Returns how many were certified.

    Raises
    ------
    ConflictingDatasetError
        A dataset of one of the data IDs is already valid there within the timespan; nothing
        was certified.
    CollectionError
        ``outputCollection`` is a collection of another type, or the timespan is empty.
    """
    with Butler(root, writeable=True) as butler:
        refs = butler.registry.queryDatasets(datasetType, inputCollection, findFirst=True)
        butler.registry.registerCollection(outputCollection, CollectionType.CALIBRATION)
        butler.registry.certify(outputCollection, refs, Timespan(begin, end))
        return len(refs)


def removeRuns(root: PathLike, names: Sequence[str], unstore: bool = True) -> dict[str, int]:
    """Remove runs with their datasets (and, with ``unstore``, their files); return name → count.

    Raises
    ------
    MissingRunError
        A name is not a run; nothing was removed.
    CollectionError
        A chain lists one of the runs; nothing was removed.
    """
    with Butler(root, writeable=True) as butler:
        return butler.removeRuns(names, unstore=unstore)


def removeCollections(root: PathLike, names: Sequence[str]) -> list[str]:
    """Remove TAGGED, CALIBRATION and CHAINED collections (not the datasets); return their types.

    Raises
    ------
    CollectionError
        A name is a RUN (see `removeRuns`), or a chain lists it; nothing was removed.
    MissingRunError
        A name is not a collection; nothing was removed.
    """
    with Butler(root, writeable=True) as butler:
        registry = butler.registry
        kinds = [registry.getCollectionType(name) for name in names]  # all checked before any goes
        for name, kind in zip(names, kinds, strict=True):
            if kind == CollectionType.RUN:
                registry.removeCollection(name)  # raises, saying to use remove-runs
        with registry.transaction():
            for name in names:
                registry.removeCollection(name)
        return [kind.value for kind in kinds]


def removeDatasetType(root: PathLike, name: str) -> bool:
    """Remove dataset type ``name``; return `False` if it was not registered.

    Raises
    ------
    DatasetTypeError
        Datasets of it exist (the message says how many); remove them first.
    """
    with Butler(root, writeable=True) as butler:
        return butler.removeDatasetType(name)
