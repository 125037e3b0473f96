"""Copying datasets between repositories, keeping their ids and runs (`Butler.transferFrom`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .dataset_ref import DatasetRef, checkRunName
from .exceptions import ConflictingDatasetError
from .progress import progressBar  # re-exported: it lived here before progress.py

if TYPE_CHECKING:
    from .butler import Butler

__all__ = ["progressBar", "transferFrom"]


def transferFrom(
    target: Butler, source: Butler, refs: Iterable[DatasetRef], *, progress: bool | None = None
) -> list[DatasetRef]:
    """Copy ``refs`` from ``source`` into ``target``; see `Butler.transferFrom`, which documents it."""
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
