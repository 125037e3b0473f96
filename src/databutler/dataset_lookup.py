"""DatasetLookup: from what users say — a dataset type name, a data ID, collections — to refs.

The `Butler` does its reading and writing through the registry and the datastore; this module
holds the part in between: resolving (and caching) dataset types, combining a data ID given as a
mapping and as keywords, searching collections in order and turning "found nothing" or "found
too much" into errors that name what was asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .dataset_ref import DataIdValue, DatasetRef, normalizeDataId
from .dataset_type import DatasetType
from .exceptions import AmbiguousDatasetError, ArgumentTypeError, DataIdError, DatasetNotFoundError

if TYPE_CHECKING:
    from .registry import Registry

__all__ = ["DatasetLookup", "collectionNames", "mergeDataId"]


def collectionNames(collections: object, what: str) -> tuple[str, ...]:
    """Return ``collections`` (`None`, one name, or a sequence of names) as a tuple of names.

    Raises
    ------
    ArgumentTypeError
        ``collections`` is neither a str nor an iterable of str.
    """
    if collections is None:
        return ()
    if isinstance(collections, str):
        return (collections,)
    if isinstance(collections, Iterable) and not isinstance(collections, Mapping | bytes):
        names = tuple(collections)
        wrong = [name for name in names if not isinstance(name, str)]
        if not wrong:
            return names
        shown = f"{type(wrong[0]).__name__} {wrong[0]!r}"
    else:
        shown = f"{type(collections).__name__} {collections!r}"
    raise ArgumentTypeError(
        f"{what}: collections are a run name or a list of run names, such as ['night1'], not {shown}."
    )


def mergeDataId(
    datasetType: DatasetType, dataId: Mapping[str, Any] | None, extra: Mapping[str, Any]
) -> Mapping[str, DataIdValue]:
    """Combine ``dataId`` and keyword values ``extra``; check them against the dimensions.

    Raises
    ------
    DataIdError
        A key is given in both with different values, keys are missing or extra, or a value is
        not an int or str.
    """
    if not extra:
        return normalizeDataId(datasetType, dataId)
    if dataId:
        clash = sorted(k for k in extra if k in dataId and dataId[k] != extra[k])
        if clash:
            raise DataIdError(
                f"Data ID for {datasetType.name!r} gives {clash} twice with different values: "
                f"{dict(dataId)!r} and {dict(extra)!r}."
            )
        return normalizeDataId(datasetType, {**dataId, **extra})
    return normalizeDataId(datasetType, extra)


class DatasetLookup:
    """Resolves dataset types and finds datasets in a registry, for one Butler.

    Parameters
    ----------
    registry : Registry
        Where dataset types and datasets are looked up.
    collections : sequence of str
        The runs searched, in order, when a call gives none; empty means every run.
    where : str
        How the repository is named in error messages.
    """

    def __init__(self, registry: Registry, collections: Sequence[str], where: str) -> None:
        self.registry = registry
        self.collections: tuple[str, ...] = tuple(collections)
        self.where = where
        self._datasetTypes: dict[str, DatasetType] = {}

    def getDatasetType(self, name: str) -> DatasetType:
        """Return the registered dataset type ``name``, cached; see `Butler.getDatasetType`.

        Raises
        ------
        ArgumentTypeError
            ``name`` is not a str (else as `Butler.getDatasetType` raises).
        """
        if not isinstance(name, str):
            raise ArgumentTypeError(
                f"A dataset type is given as a DatasetType or its name (a str), not "
                f"{type(name).__name__} {name!r}."
            )
        datasetType = self._datasetTypes.get(name)
        if datasetType is None:
            datasetType = self.registry.getDatasetType(name)
            self._datasetTypes[name] = datasetType
        return datasetType

    def resolveType(self, datasetTypeOrName: DatasetType | str) -> DatasetType:
        """Return ``datasetTypeOrName`` as a DatasetType, looking a name up in the registry."""
        if isinstance(datasetTypeOrName, DatasetType):
            return datasetTypeOrName
        return self.getDatasetType(datasetTypeOrName)

    def forgetAll(self) -> None:
        """Drop every cached dataset type (after a transaction that may have registered some rolled back)."""
        self._datasetTypes.clear()

    def forget(self, name: str) -> None:
        """Drop the cached dataset type ``name`` and its components."""
        for key in [k for k in self._datasetTypes if k == name or k.startswith(name + ".")]:
            del self._datasetTypes[key]

    def collectionsFor(self, collections: Sequence[str] | str | None) -> tuple[str, ...]:
        """Return the runs to search: ``collections`` if given, else the defaults."""
        if collections is None:
            return self.collections
        return collectionNames(collections, "collections=")

    def find(
        self,
        datasetTypeOrName: DatasetType | str,
        dataId: Mapping[str, Any] | None,
        collections: Sequence[str] | str | None,
        dataIdKwargs: Mapping[str, Any],
        *,
        timespan: Any = None,
    ) -> DatasetRef | None:
        """Return the ref of the dataset of this type and data ID in the first run holding one.

        With no collections at all every run is searched, and more than one match is an error
        (`AmbiguousDatasetError`). This is `Butler.findDataset` (which documents the errors)
        without the check that an ephemeral datastore holds the dataset.
        """
        datasetType = self.resolveType(datasetTypeOrName)
        parentName, component = datasetType.nameAndComponent()
        parentType = self.getDatasetType(parentName) if component else datasetType
        if timespan is None:
            dataId, dataIdKwargs, timespan = self._timeFromRecords(datasetType, dataId, dataIdKwargs)
        normalized = mergeDataId(datasetType, dataId, dataIdKwargs)
        searched = self.collectionsFor(collections)
        if searched:
            ref = self.registry.findDataset(parentType, normalized, searched, timespan=timespan)
        else:
            found = self.registry.queryDatasets(parentType, where=dict(normalized))
            if len(found) > 1:
                runs = ", ".join(sorted(str(r.run) for r in found))
                raise AmbiguousDatasetError(
                    f"{datasetType.name!r} {dict(normalized)} is in {len(found)} runs ({runs}); "
                    f"say which with collections=[...] or Butler(root, collections=[...])."
                )
            ref = found[0] if found else None
            if ref is not None:  # read by id too: that lookup sees removals made elsewhere (removals.py)
                ref = self.registry.getDataset(ref.id)
        if ref is not None and component:
            return ref.makeComponentRef(component)
        return ref

    def _timeFromRecords(
        self, datasetType: DatasetType, dataId: Mapping[str, Any] | None, extra: Mapping[str, Any]
    ) -> tuple[Mapping[str, Any] | None, Mapping[str, Any], Any]:
        """Take out of a data ID the dimensions the dataset type lacks whose records have a timespan.

        Return the data ID and keywords without them and the timespan of the first such
        record (a ``bias`` looked up with ``visit=903334`` is searched at that visit's
        timespan), or everything unchanged and `None`.

        Raises
        ------
        DataIdError
            Such a dimension has no record, or its record no timespan.
        """
        given = {**(dataId or {}), **extra}
        universe = self.registry.dimensions
        timed = [
            key
            for key in given
            if key not in datasetType.dimensions
            and key in universe
            and universe[key].fields.get("timespan") == "timespan"
        ]
        if not timed:
            return dataId, extra, None
        key = timed[0]
        keys = {k: given[k] for k in universe.requiredKeys(key) if k in given}
        records = self.registry.queryDimensionRecords(key, dataId=keys)
        timespan = records[0].timespan if len(records) == 1 else None
        if timespan is None or (timespan.begin is None and timespan.end is None):
            raise DataIdError(
                f"Data ID {given} of {datasetType.name!r} gives {key}={given[key]!r}, which "
                f"{datasetType.name!r} lacks; it is used for its timespan, but no {key!r} record with "
                f"a timespan matches {keys}; insert one (insertDimensionData) or give timespan=."
            )
        drop = set(timed)
        return (
            {k: v for k, v in (dataId or {}).items() if k not in drop},
            {k: v for k, v in extra.items() if k not in drop},
            timespan,
        )

    def require(
        self,
        datasetTypeOrRef: DatasetRef | DatasetType | str,
        dataId: Mapping[str, Any] | None,
        collections: Sequence[str] | str | None,
        dataIdKwargs: Mapping[str, Any],
        *,
        timespan: Any = None,
    ) -> DatasetRef:
        """Return ``datasetTypeOrRef`` if it is a ref, else the ref `find` finds.

        Raises
        ------
        DatasetNotFoundError
            No such dataset in the collections searched.
        DataIdError
            A ref was given together with a data ID, or the data ID is wrong.
        MissingDatasetTypeError, AmbiguousDatasetError
            As for `Butler.findDataset`.
        """
        if isinstance(datasetTypeOrRef, DatasetRef):
            if dataId or dataIdKwargs:
                raise DataIdError(
                    f"Give a DatasetRef or a data ID, not both: {datasetTypeOrRef} and "
                    f"{dict(dataId or {}, **dataIdKwargs)}."
                )
            return datasetTypeOrRef
        ref = self.find(datasetTypeOrRef, dataId, collections, dataIdKwargs, timespan=timespan)
        if ref is None:
            name = datasetTypeOrRef if isinstance(datasetTypeOrRef, str) else datasetTypeOrRef.name
            searched = self.collectionsFor(collections)
            inWhat = f"collections {list(searched)}" if searched else "any run"
            raise DatasetNotFoundError(
                f"No dataset {name!r} with data ID {dict(dataId or {}, **dataIdKwargs)} in {inWhat} "
                f"of repository {self.where!r}."
            )
        return ref
