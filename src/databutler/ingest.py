"""Bringing existing files into a repository as datasets (`Butler.ingest`)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .dataset_ref import DatasetRef
from .exceptions import ArgumentTypeError, IngestError
from .progress import progressBar
from .putting import resolvedForPut

if TYPE_CHECKING:
    from .butler import Butler

__all__ = ["FileDataset", "ingest"]


@dataclass(frozen=True, slots=True)
class FileDataset:
    """One existing file and the dataset it holds, for `Butler.ingest`.

    Parameters
    ----------
    path : str or path-like
        The file.
    refs : DatasetRef or sequence of DatasetRef
        The dataset in it (one for now). A ref without a run goes to the ingest's run.
    formatter : Formatter, its class or dotted name, optional
        What reads the file; by default the one configured for the storage class if it
        writes files of this extension, else the one ``fileFormats.yaml`` names for it.
    """

    path: str | os.PathLike[str]
    refs: DatasetRef | Sequence[DatasetRef]
    formatter: Any = None

    def refList(self) -> list[DatasetRef]:
        """Return the refs as a list."""
        return [self.refs] if isinstance(self.refs, DatasetRef) else list(self.refs)


def ingest(
    butler: Butler,
    *datasets: FileDataset,
    transfer: str = "auto",
    run: str | None = None,
    progress: bool | None = None,
) -> list[DatasetRef]:
    """Add existing files to the repository as datasets, all or none, in one commit.

    The files are not decoded: their sizes and checksums are recorded, and a file the
    formatter cannot read is found by `verify` (or the first `get`). Each lands at its
    dataset's templated path (see `FileDatastore.ingest` for the ``transfer`` modes).

    Parameters
    ----------
    *datasets : FileDataset
        The files and the datasets they hold.
    transfer : str
        ``auto`` (a copy), ``copy``, ``move``, ``link``, ``hardlink``, ``symlink``,
        ``relsymlink`` or ``direct`` (the file stays outside the root, see `FileDatastore.ingest`).
    run : str, optional
        The run of refs that have none (default: the Butler's).
    progress : bool, optional
        Show a progress bar on stderr (default: when it is a terminal).

    Returns
    -------
    refs : list of DatasetRef
        The datasets added, in order, with their ids and runs.

    Raises
    ------
    ArgumentTypeError
        Something other than a FileDataset was given.
    IngestError
        A file is missing or cannot be transferred, a FileDataset names no ref or more than
        one, or the mode is unknown; nothing was ingested.
    ConflictingDatasetError
        A dataset already exists; nothing was ingested.
    ReadOnlyRepositoryError
        The Butler was opened with ``writeable=False``.
    """
    butler._requireWriteable(f"ingest {len(datasets)} file(s)")
    items: list[tuple[str, DatasetRef, Any]] = []
    for dataset in datasets:
        if not isinstance(dataset, FileDataset):
            raise ArgumentTypeError(
                f"ingest takes FileDataset(path, ref) arguments, not {type(dataset).__name__} {dataset!r:.80}."
            )
        refs = dataset.refList()
        if len(refs) != 1:
            raise IngestError(
                f"FileDataset {os.fspath(dataset.path)!r} names {len(refs)} datasets; ingest takes one "
                "dataset per file for now; nothing was ingested."
            )
        ref = resolvedForPut(butler, refs[0], run, "ingest")
        items.append((os.fspath(dataset.path), ref, dataset.formatter))
    if not items:
        return []
    with butler.transaction():
        for runName in {ref.run for _, ref, _ in items} - {butler.run}:
            assert runName is not None
            butler.registry.registerRun(runName)
        stored = butler.registry.addDatasetRefs([ref for _, ref, _ in items])
        with progressBar(f"Ingesting {len(items)} file(s)", len(items), progress) as advance:

            def advancing() -> Iterator[tuple[str, DatasetRef, Any]]:
                for (path, _, formatter), ref in zip(items, stored, strict=True):
                    yield path, ref, formatter
                    advance()

            butler.datastore.ingest(advancing(), transfer)
    return stored
