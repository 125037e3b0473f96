"""The query commands' functions: data IDs, dimension records, collections, dataset types."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..butler import Butler, isPlainName
from ..dataset_type import DatasetType
from ..dimensions import DimensionRecord
from ..registry.queries.results import QueryResults
from .datasets import PathLike

__all__ = [
    "collectionChain",
    "datasetUris",
    "queryCollections",
    "queryDataIds",
    "queryDatasetTypes",
    "queryDimensionRecords",
]


def queryDataIds(
    root: PathLike,
    dimensions: Sequence[str],
    *,
    where: str | None = None,
    bind: Mapping[str, Any] | None = None,
    datasets: Sequence[str] | None = None,
    collections: Sequence[str] | None = None,
) -> QueryResults[dict[str, Any]]:
    """Return the data IDs over ``dimensions`` that datasets have; see `Butler.queryDataIds`.

    Raises
    ------
    DataIdError
        A dimension is not in the repository's universe.
    MissingDatasetTypeError
        A dataset type of ``datasets`` is not registered.
    InvalidQueryError
        ``where`` does not parse or names something these dimensions do not have.
    """
    with Butler(root, writeable=False) as butler:
        found = butler.queryDataIds(
            list(dimensions),
            where,
            bind,
            datasets=list(datasets) if datasets else None,
            collections=collections or None,
        )
        explained = found.explainNoResults() if not found else []
    return QueryResults(found, lambda: explained)


def queryDimensionRecords(
    root: PathLike, element: str, *, where: str | None = None, bind: Mapping[str, Any] | None = None
) -> list[DimensionRecord]:
    """Return the records of dimension ``element`` matching ``where``.

    Raises
    ------
    DataIdError
        ``element`` is not a dimension of the repository.
    InvalidQueryError
        ``where`` does not parse or names a field the records do not have.
    """
    with Butler(root, writeable=False) as butler:
        return butler.registry.queryDimensionRecords(element, where, bind=bind)


def queryCollections(
    root: PathLike, pattern: str = "*", *, types: Sequence[str] | None = None
) -> list[tuple[str, str]]:
    """Return (name, type) of the collections whose names match the glob ``pattern``.

    Raises
    ------
    InvalidQueryError
        A type is not a collection type.
    MissingRunError
        ``pattern`` is a plain name (no ``*?[``) of no collection.
    """
    with Butler(root, writeable=False) as butler:
        names = butler.queryCollections(pattern, types=list(types) if types else None)
        if not names and isPlainName(pattern):
            butler.registry.getCollectionType(pattern)  # a collection that does not exist is an error
        return [(name, str(butler.registry.getCollectionType(name))) for name in names]


def queryDatasetTypes(root: PathLike, pattern: str = "*") -> list[DatasetType]:
    """Return the dataset types whose names match the glob ``pattern``, sorted by name.

    Raises
    ------
    MissingDatasetTypeError
        ``pattern`` is a plain name (no ``*?[``) of no dataset type.
    """
    with Butler(root, writeable=False) as butler:
        found = butler.queryDatasetTypes(pattern)
        if not found and isPlainName(pattern):
            butler.getDatasetType(pattern)  # a dataset type that does not exist is an error
        return found


def datasetUris(root: PathLike, refs: Sequence[Any]) -> dict[str, str]:
    """Return dataset id → URI of each of ``refs`` (as `Butler.getUri` gives it)."""
    with Butler(root, writeable=False) as butler:
        return {str(ref.id): str(butler.getUri(ref)) for ref in refs}


def collectionChain(root: PathLike, parent: str, children: Sequence[str], mode: str = "set") -> list[str]:
    """Change chain ``parent`` (``mode``: set, prepend, extend or remove ``children``); return it.

    Raises
    ------
    CollectionError
        The change would make a cycle, a child is given twice, or ``parent`` is a run.
    MissingRunError
        A child is not a registered collection.
    """
    with Butler(root, writeable=True) as butler:
        registry = butler.registry
        if mode == "set":
            registry.setCollectionChain(parent, list(children))
        elif mode == "prepend":
            registry.prependCollectionChain(parent, list(children))
        elif mode == "extend":
            registry.extendCollectionChain(parent, list(children))
        elif mode == "remove":
            registry.removeFromCollectionChain(parent, list(children))
        else:
            raise ValueError(f"mode {mode!r} is not one of set, prepend, extend, remove.")
        return registry.getCollectionChain(parent)
