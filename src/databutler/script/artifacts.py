"""Plain function behind ``databutler retrieve-artifacts``: the stored files, copied out as they are."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..butler import Butler
from ..dataset_ref import DatasetRef
from ..exceptions import DatasetNotFoundError

__all__ = ["retrieveArtifacts"]

PathLike = str | os.PathLike[str]


def retrieveArtifacts(
    root: PathLike,
    destination: PathLike,
    datasetTypes: Sequence[str] = (),
    *,
    collections: Sequence[str] | None = None,
    where: Mapping[str, Any] | None = None,
    transfer: str = "copy",
    preserve: bool = True,
    overwrite: bool = False,
) -> list[Path]:
    """Copy the files of the matching datasets (every type unless ``datasetTypes``) into ``destination``.

    The repository is opened read-only. See `Butler.retrieveArtifacts` for the rest.

    Raises
    ------
    DatasetNotFoundError
        Nothing matches.
    ArtifactExistsError
        A file is already at the destination (and not ``overwrite``); nothing was written.
    """
    with Butler(root, writeable=False) as butler:
        refs: list[DatasetRef] = []
        names: list[str | None] = [*datasetTypes] or [None]
        for name in names:
            refs.extend(butler.queryDatasets(name, collections=collections or None, where=where))
        if not refs:
            raise DatasetNotFoundError(
                f"No datasets{' of ' + ', '.join(datasetTypes) if datasetTypes else ''} match "
                f"{dict(where or {}) or 'anything'} in {list(collections) if collections else 'any run'} "
                f"of {str(root)!r}; nothing was retrieved."
            )
        return butler.retrieveArtifacts(
            refs, destination, preserve=preserve, transfer=transfer, overwrite=overwrite
        )
