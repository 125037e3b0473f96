"""Many puts in one commit (`Butler.putMany`), and puts of resolved refs that keep their id and run."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .dataset_lookup import mergeDataId
from .dataset_ref import DatasetRef
from .dataset_type import DatasetType
from .exceptions import ArgumentTypeError, DatasetExistsError, DatasetTypeError, RunNameError
from .formatters.base import prevalidated

if TYPE_CHECKING:
    from .butler import Butler

__all__ = ["PutItem", "putMany", "resolvedForPut"]

PutItem = tuple[Any, DatasetRef] | tuple[Any, DatasetType | str, Mapping[str, Any] | None]
"""One dataset for `putMany`: ``(obj, ref)`` or ``(obj, datasetTypeOrName, dataId)``."""


def resolvedForPut(butler: Butler, ref: DatasetRef, run: str | None, what: str) -> DatasetRef:
    """Return ``ref`` to be put as it is: its id, and its run (or ``run``, or the Butler's if it has none).

    Raises
    ------
    DatasetTypeError
        ``ref`` is a component ref.
    RunNameError
        ``run`` is given and differs from the ref's own run.
    NoDefaultRunError
        Neither the ref, ``run`` nor the Butler names a run.
    """
    if ref.isComponent():
        raise DatasetTypeError(
            f"Cannot {what} component {ref} on its own; put the composite "
            f"{ref.datasetType.nameAndComponent()[0]!r} and get components from it."
        )
    if ref.run is not None:
        if run is not None and run != ref.run:
            raise RunNameError(
                f"Cannot {what} {ref} into run {run!r}: the ref is resolved in run {ref.run!r}; "
                "drop run= to keep the ref's run, or make a new ref."
            )
        return ref
    runName = butler._runFor(run, lambda: f"{what} {ref}")
    return DatasetRef._trusted(ref.datasetType, ref.dataId, ref.id, runName)


def putMany(butler: Butler, items: Iterable[PutItem], *, run: str | None = None) -> list[DatasetRef]:
    """Store many datasets, all or none, with one registry commit.

    Parameters
    ----------
    items : iterable of tuple
        ``(obj, ref)`` for a resolved `DatasetRef` (its id and run are kept; a ref without a
        run goes to ``run``), or ``(obj, datasetTypeOrName, dataId)`` for a new dataset in
        ``run``.
    run : str, optional
        The run of the new datasets (default: the Butler's).

    Returns
    -------
    refs : list of DatasetRef
        One per item, in order.

    Raises
    ------
    ArgumentTypeError
        An item is not one of the two forms; nothing was written.
    MissingDatasetTypeError, DataIdError, DatasetTypeError, DatasetTypeMismatchError, UnstorableDatasetError
        As for `Butler.put`, for any item; refused before the registry is touched.
    ConflictingDatasetError
        A dataset is given twice, or already exists; nothing was written.
    NoDefaultRunError
        A new dataset has no run: none given and the Butler has none.
    ReadOnlyRepositoryError
        The Butler was opened with ``writeable=False``.

    Notes
    -----
    Each dataset type is looked up once and each object is checked once (`Datastore.checkPut`)
    and encoded (`Datastore.prepared`), both before the registry's write lock is taken; the
    formatters then skip their own checks of these objects. The registry rows go in one statement per dataset type and run.
    """
    butler._requireWriteable("put datasets")
    types: dict[DatasetType | str, DatasetType] = {}
    runs: set[str] = set()
    pairs: list[tuple[Any, DatasetRef]] = []
    checked: set[tuple[int, str]] = set()
    newRun: str | None = None
    for index, item in enumerate(_items(items)):
        obj = item[0]
        if len(item) == 2:
            ref = item[1]
            if not isinstance(ref, DatasetRef):
                raise ArgumentTypeError(
                    f"putMany item {index} is (obj, {type(ref).__name__}); give (obj, DatasetRef) or "
                    "(obj, datasetTypeOrName, dataId); nothing was written."
                )
            ref = resolvedForPut(butler, ref, run, "put")
        else:
            key = item[1]
            datasetType = types.get(key)
            if datasetType is None:
                datasetType = types[key] = butler._lookup.resolveType(key)
                if datasetType.isComponent():
                    raise DatasetTypeError(
                        f"Cannot put component {datasetType.name!r} on its own (putMany item {index}); "
                        f"put the composite {datasetType.nameAndComponent()[0]!r}."
                    )
            dataId = mergeDataId(datasetType, item[2], {})
            if newRun is None:
                newRun = butler._runFor(run, lambda: f"put {len(pairs) + 1} or more datasets")
            ref = DatasetRef._trusted(datasetType, dataId, uuid.uuid4(), newRun)
        if (id(obj), ref.datasetType.name) not in checked:
            butler.datastore.checkPut(obj, ref.datasetType)
            checked.add((id(obj), ref.datasetType.name))
        assert ref.run is not None
        runs.add(ref.run)
        pairs.append((obj, ref))
    if not pairs:
        return []
    for runName in runs - {butler.run}:
        butler._checkRun(runName)
    with (
        prevalidated(*{id(obj): obj for obj, _ in pairs}.values()),
        butler.datastore.prepared(pairs),  # files encoded before the registry's write lock is taken
        butler.transaction(),
    ):
        for runName in runs:
            butler.registry.registerRun(runName)
        stored = butler.registry.addDatasetRefs([ref for _, ref in pairs])
        pairs = [(obj, ref) for (obj, _), ref in zip(pairs, stored, strict=True)]
        try:
            butler.datastore.putMany(pairs)  # all or none
        except DatasetExistsError:  # a cached copy of a dataset removed elsewhere (Butler._storeRegistered)
            butler.datastore.dropCachedCopies()
            butler.datastore.putMany(pairs)
    return [ref for _, ref in pairs]


def _items(items: Iterable[PutItem]) -> Iterable[tuple[Any, ...]]:
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
        raise ArgumentTypeError(
            f"putMany takes an iterable of (obj, ref) or (obj, datasetTypeOrName, dataId) tuples, not "
            f"{type(items).__name__}; nothing was written."
        )
    for index, item in enumerate(items):
        if not isinstance(item, tuple) or len(item) not in (2, 3):
            raise ArgumentTypeError(
                f"putMany item {index} is {type(item).__name__} {item!r:.80}; give (obj, DatasetRef) or "
                "(obj, datasetTypeOrName, dataId); nothing was written."
            )
        yield item
