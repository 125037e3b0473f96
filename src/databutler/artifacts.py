"""Getting the stored files themselves out of a repository (`Butler.retrieveArtifacts`)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from .dataset_ref import DatasetRef
from .exceptions import ArgumentTypeError

if TYPE_CHECKING:
    from .butler import Butler

__all__ = ["retrieveArtifacts"]


def retrieveArtifacts(
    butler: Butler,
    refs: Iterable[DatasetRef],
    destination: str | os.PathLike[str],
    preserve: bool = True,
    transfer: str = "copy",
    overwrite: bool = False,
) -> list[Path]:
    """Copy (or link) the files that hold ``refs`` under ``destination``, as they are stored.

    Nothing is decoded or re-encoded: a copy is the stored bytes, checked against the recorded
    size and checksum. With ``preserve`` each file keeps its path below the root (the dataset
    type's file template), so files of many runs and types do not clash; without it every file
    goes straight into ``destination``. A file already at the destination is refused unless
    ``overwrite``, and no recorded path or planted link can put a file outside ``destination``.

    Parameters
    ----------
    refs : iterable of DatasetRef
        The datasets, e.g. the results of `queryDatasets`.
    destination : str or path-like
        A local folder, created if needed.
    preserve : bool
        Keep the template paths (default) or write every file directly in ``destination``.
    transfer : str
        ``copy`` (default), ``link``, ``hardlink``, ``symlink`` or ``relsymlink``.
    overwrite : bool
        Replace existing files at the destination.

    Returns
    -------
    paths : list of Path
        The files written.

    Raises
    ------
    ArgumentTypeError
        Something other than a DatasetRef was given.
    DatasetNotFoundError
        A dataset is not in the (persistent) datastore.
    ArtifactExistsError
        A target file exists (and not ``overwrite``), or two files would share a name; nothing
        was written.
    ArtifactError
        The datastore keeps no files, or the mode is unknown.
    UnsafePathError
        A file would land outside ``destination``.
    DatasetIntegrityError
        A stored file changed on disk since it was written.
    """
    refList = list(refs)
    for ref in refList:
        if not isinstance(ref, DatasetRef):
            raise ArgumentTypeError(
                f"retrieveArtifacts takes DatasetRefs (e.g. from queryDatasets), not {type(ref).__name__} {ref!r:.80}."
            )
    written = butler.datastore.retrieveArtifacts(
        refList, os.fspath(destination), transfer, preserve, overwrite
    )
    return [Path(path) for path in written]
