"""Copying datasets between repositories, keeping their ids and runs (`Butler.transferFrom`)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .dataset_ref import DatasetRef, checkRunName
from .exceptions import ConflictingDatasetError

if TYPE_CHECKING:
    from .butler import Butler

__all__ = ["progressBar", "transferFrom"]


@contextmanager
def progressBar(description: str, total: int, enabled: bool | None = None) -> Iterator[_Advance]:
    """Show a rich progress bar on stderr while the body runs; advance it by calling the result.

    Parameters
    ----------
    description : str
        What is in progress.
    total : int
        How many steps make 100 %.
    enabled : bool, optional
        Force the bar on or off; by default it is shown only when stderr is a terminal.
    """
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield _Advance(None)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield _Advance(lambda n: progress.advance(task, n))


class _Advance:
    """Callable that advances a progress bar by ``n`` steps (or does nothing)."""

    __slots__ = ("_func",)

    def __init__(self, func: object) -> None:
        self._func = func

    def __call__(self, n: int = 1) -> None:
        if callable(self._func):
            self._func(n)


def transferFrom(
    target: Butler, source: Butler, refs: Iterable[DatasetRef], *, progress: bool | None = None
) -> list[DatasetRef]:
    """Copy datasets, keeping their ids and runs, from ``source`` into this repository.

    `Butler.transferFrom` (``target`` is the Butler it is called on). Dataset types and runs
    are registered as needed. Datasets already here with the same id are skipped. All or none:
    a failure leaves this repository unchanged.

    Parameters
    ----------
    source : Butler
        The repository to copy from.
    refs : iterable of DatasetRef
        The datasets, e.g. from ``source.queryDatasets(...)``.
    progress : bool, optional
        Show a rich progress bar on stderr; by default only when stderr is a terminal.

    Returns
    -------
    transferred : list of DatasetRef
        The datasets copied (not those skipped).

    Raises
    ------
    DatasetTypeConflictError
        A dataset type is registered here with a different definition.
    ConflictingDatasetError
        A different dataset of the same type, data ID and run exists here.
    DatasetNotFoundError
        A dataset is not in ``source``'s datastore.
    RunNameError
        A ref's run is not a name this registry can store; nothing was registered.
    """
    parents: dict[DatasetRef, None] = {}
    for ref in refs:
        parents[ref.makeCompositeRef() if ref.isComponent() else ref] = None
    wanted = list(parents)
    registry = target.registry
    runs = sorted({str(ref.run) for ref in wanted if ref.run})
    for run in runs:  # refused before anything is registered
        checkRunName(run)
        target.datastore.checkRun(run)
    with target.transaction():
        for datasetType in {ref.datasetType for ref in wanted}:
            target.registerDatasetType(datasetType)
        for run in runs:
            registry.registerRun(run)
        new: list[DatasetRef] = []
        for ref in wanted:
            existing = registry.getDataset(ref.id)
            if existing is None:
                new.append(ref)
            elif existing.datasetType.name != ref.datasetType.name or existing.dataId != ref.dataId:
                raise ConflictingDatasetError(
                    f"Cannot transfer {ref}: id {ref.id} is already used here by {existing}."
                )
        if not new:
            return []
        try:
            registry.addDatasetRefs(new)
        except ConflictingDatasetError as exc:
            raise ConflictingDatasetError(
                f"Cannot transfer {len(new)} dataset(s) into {str(target.root)!r}: {exc}; nothing was copied."
            ) from exc
        with progressBar(f"Transferring {len(new)} datasets", len(new), progress) as advance:
            for ref in new:
                target.datastore.transfer(source.datastore, ref)
                advance()
    return new
