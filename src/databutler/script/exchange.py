"""Export and import of datasets between repositories (``databutler export`` / ``databutler import``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from ..butler import Butler
from ..export import ImportResult, Manifest

__all__ = ["exportRepo", "importRepo"]

PathLike = str | os.PathLike[str]


def exportRepo(
    repo: PathLike,
    destination: PathLike,
    datasetTypes: Sequence[str] = (),
    *,
    where: str | None = None,
    bind: Mapping[str, Any] | None = None,
    collections: Sequence[str] | None = None,
    zip: bool = False,
    manifestFormat: str = "json",
    transfer: str = "copy",
) -> Manifest:
    """Export the datasets of ``repo`` (every type unless ``datasetTypes``) to ``destination``.

    The repository is opened read-only: it may be on a read-only mount.

    Raises
    ------
    ExportError
        ``destination`` exists and is not an empty folder (or, with ``zip``, exists at all),
        or a hard link cannot be made (``transfer="hardlink"``).
    InvalidQueryError
        ``where`` does not parse.
    """
    with Butler(repo, writeable=False) as butler:
        return butler.export(
            destination,
            datasetTypes=list(datasetTypes) or None,
            where=where,
            bind=bind or None,
            collections=collections or None,
            format="zip" if zip else "directory",
            manifestFormat=manifestFormat,
            transfer=transfer,
        )


def importRepo(
    repo: PathLike, source: PathLike, *, transfer: str = "copy", skipExisting: bool = True
) -> ImportResult:
    """Import the export (folder or zip file) ``source`` into ``repo``; see `Butler.import_`."""
    with Butler(repo) as butler:
        return butler.import_(source, transfer=transfer, skipExisting=skipExisting)
