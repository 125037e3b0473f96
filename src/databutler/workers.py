"""Many workers, one registry: registry-free units of work and one idempotent merge.

A driver (`Butler.map`) plans one `WorkUnit` per data ID: the refs of its inputs with the
datastore's file records for them, the refs of its outputs with ids computed in advance
(`Butler.predictDatasetId`), and the file datastore's config. Each unit runs in a
`WorkerButler`, on a Dask worker or in-process: it reads the inputs straight from the files (or
S3 objects), calls the user's function, writes the outputs through a `FileDatastore` whose
records are an in-memory SQLite table, and returns a `UnitManifest` (refs, file records,
checksums, sizes). No worker ever connects to the registry. On Dask, units travel in batches
(`runUnits`, `defaultUnitsPerTask`), so the per-task cost of the scheduler is paid once per
batch. The driver then merges the manifests into the registry in chunks of `MERGE_CHUNK`
datasets, one transaction each.

A worker killed mid-write leaves at most files that no record names: the merge only ever adds
what a returned manifest lists, and a rerun of the same map writes those files again at the
same paths (the ids, hence the paths, are the same) before recording them.
"""

from __future__ import annotations

import functools
import json
import logging
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .dataset_ref import DatasetRef
from .datastore.base import Datastore
from .datastores.file import FileDatastore
from .datastores.file._records import StoredFileInfo
from .exceptions import ConfigError, ConflictingDatasetError, DatasetTypeError, MapUnitError
from .progress import progressBar
from .registry.data_ids import newDatasetId
from .storage_class import StorageClassFactory

if TYPE_CHECKING:
    from .butler import Butler

__all__ = [
    "MERGE_CHUNK",
    "MapResult",
    "UnitFailure",
    "UnitManifest",
    "WorkUnit",
    "WorkerButler",
    "defaultUnitsPerTask",
    "mergeManifests",
    "runUnit",
    "runUnits",
]

log = logging.getLogger(__name__)

MERGE_CHUNK = 10_000
"""Datasets merged per registry transaction."""

UnitFunction = Callable[[dict[str, Any], dict[str, Any]], Mapping[str, Any]]
"""``fn(dataId, inputs) -> outputs``: inputs and outputs keyed by dataset type name."""


def _recordToDict(info: StoredFileInfo) -> dict[str, Any]:
    return {
        "path": info.path,
        "formatter": info.formatter,
        "component": info.component,
        "fileSize": info.fileSize,
        "checksum": info.checksum,
        "timestamp": info.timestamp,
        "storageClass": info.storageClass.name,
        "parentID": str(info.parentID) if info.parentID is not None else None,
    }


def _recordFromDict(record: Mapping[str, Any], factory: StorageClassFactory) -> StoredFileInfo:
    parent = record.get("parentID")
    return StoredFileInfo(
        float(record["timestamp"]),
        factory.getStorageClass(record["storageClass"]),
        uuid.UUID(parent) if parent else None,
        path=record["path"],
        formatter=record["formatter"],
        component=record["component"],
        fileSize=int(record["fileSize"]),
        checksum=record["checksum"],
    )


@dataclass(frozen=True)
class WorkUnit:
    """What one unit of work may read and write; small, picklable, and sent to a worker.

    Attributes
    ----------
    dataId : dict
        The unit's data ID, handed to the function.
    inputs : dict
        Dataset type name → (ref, its file records as plain dicts).
    outputs : dict
        Dataset type name → the ref to write (id predicted by the driver).
    datastoreConfig : dict
        The config of the repository's file datastore (root, templates, formatters, options).
    storageClasses : dict
        The repository's own storage class definitions, if any.
    alreadyStored : tuple of str
        Outputs the function returns that are registered already (an earlier map wrote them):
        they are not written again, so a file the registry knows is never replaced.
    """

    dataId: dict[str, Any]
    inputs: dict[str, tuple[DatasetRef, list[dict[str, Any]]]]
    outputs: dict[str, DatasetRef]
    datastoreConfig: dict[str, Any]
    storageClasses: dict[str, Any] = field(default_factory=dict)
    alreadyStored: tuple[str, ...] = ()


@dataclass(frozen=True)
class UnitManifest:
    """What a unit wrote: each output ref with its file records (paths, checksums, sizes)."""

    dataId: dict[str, Any]
    written: list[tuple[DatasetRef, list[dict[str, Any]]]]

    @property
    def size(self) -> int:
        """Total bytes written."""
        return sum(int(r["fileSize"]) for _, records in self.written for r in records if r["formatter"])


@dataclass(frozen=True)
class UnitFailure:
    """A unit that raised (or whose worker died): its data ID, the error and the traceback."""

    dataId: dict[str, Any]
    error: str
    traceback: str

    def __str__(self) -> str:
        """Name the unit by its data ID, with the error."""
        return f"unit {self.dataId}: {self.error}"


@dataclass
class MapResult:
    """What a `Butler.map` did.

    Attributes
    ----------
    merged : int
        Datasets added to the registry.
    skipped : int
        Datasets already in the registry with the same content (an earlier run of the map).
    unitsRun, unitsSkipped : int
        Units executed, and units not run because all their outputs were already registered.
    failures : list of UnitFailure
        Units that raised; nothing of theirs was merged.
    transactions : int
        Registry transactions the merge used.
    bytesWritten : int
        Total size of the merged files.
    mergeSeconds : float
        Time spent in the merge's registry transactions.
    """

    merged: int = 0
    skipped: int = 0
    unitsRun: int = 0
    unitsSkipped: int = 0
    failures: list[UnitFailure] = field(default_factory=list)
    transactions: int = 0
    bytesWritten: int = 0
    mergeSeconds: float = 0.0


def fileDatastoreOf(datastore: Datastore) -> FileDatastore:
    """Return the `FileDatastore` that persists ``datastore``'s datasets (itself, or a chain's child).

    Raises
    ------
    ConfigError
        No file datastore is there.
    """
    pending = [datastore]
    while pending:
        current = pending.pop(0)
        if isinstance(current, FileDatastore):
            return current
        pending.extend(current.children)
    raise ConfigError(
        f"Butler.map needs a FileDatastore (local or S3) for workers to write to; {datastore} has none."
    )


class WorkerButler:
    """Reads inputs and writes outputs of work units with no registry connection.

    Parameters
    ----------
    datastoreConfig : mapping
        The repository's file datastore config (`WorkUnit.datastoreConfig`); its records are
        kept in an in-memory SQLite table instead, only for the unit being run.
    storageClasses : mapping, optional
        The repository's own storage class definitions.
    """

    def __init__(self, datastoreConfig: Mapping[str, Any], storageClasses: Mapping[str, Any] | None = None):
        config = json.loads(json.dumps(dict(datastoreConfig)))
        config["records"] = {"db": "sqlite://"}  # InMemoryRecordStorage: the registry is the driver's
        self.datastore = FileDatastore(config)
        if storageClasses:
            self.datastore.storageClassFactory.addFromConfig({"storageClasses": dict(storageClasses)})

    @classmethod
    def forUnit(cls, unit: WorkUnit) -> WorkerButler:
        """Return this process's worker butler for the unit's datastore (made once per process)."""
        key = json.dumps([unit.datastoreConfig, unit.storageClasses], sort_keys=True, default=str)
        return _workerButler(key)

    def run(self, fn: UnitFunction, unit: WorkUnit) -> UnitManifest | UnitFailure:
        """Run ``fn`` on ``unit``; return its manifest, or its failure with nothing left written."""
        records = self.datastore._records
        factory = self.datastore.storageClassFactory
        written: list[DatasetRef] = []
        known: list[DatasetRef] = []
        try:
            with records.begin():
                for ref, infos in unit.inputs.values():
                    records.insert(ref.id, ref.datasetType.name, [_recordFromDict(r, factory) for r in infos])
                    known.append(ref)
            inputs = {name: self.datastore.get(ref) for name, (ref, _) in unit.inputs.items()}
            produced = fn(dict(unit.dataId), inputs)
            expected = {*unit.outputs, *unit.alreadyStored}
            if not isinstance(produced, Mapping) or set(produced) != expected:
                got = sorted(produced) if isinstance(produced, Mapping) else type(produced).__name__
                raise DatasetTypeError(
                    f"The map function returned {got} for {unit.dataId}; it must return a dict with "
                    f"exactly the outputs {sorted(expected)}."
                )
            manifest: list[tuple[DatasetRef, list[dict[str, Any]]]] = []
            for name, ref in unit.outputs.items():
                self.datastore.put(produced[name], ref)
                written.append(ref)
                stored = [info for _, info in records.fetch(ref.id).values()]
                manifest.append((ref, [_recordToDict(info) for info in stored]))
            return UnitManifest(dict(unit.dataId), manifest)
        except Exception as exc:
            for ref in written:  # partial outputs: their files go, nothing is reported
                try:
                    self.datastore.remove(ref)
                except Exception:  # pragma: no cover - reported in the log, the unit has failed anyway
                    log.exception("Could not delete partial output %s", ref)
            written.clear()
            return UnitFailure(dict(unit.dataId), f"{type(exc).__name__}: {exc}", traceback.format_exc())
        finally:
            # Forget the records (the files stay): the next unit starts from an empty table.
            with records.begin():
                for ref in [*known, *written]:
                    records.delete(ref.id)


@functools.lru_cache(maxsize=8)
def _workerButler(key: str) -> WorkerButler:
    datastoreConfig, storageClasses = json.loads(key)
    return WorkerButler(datastoreConfig, storageClasses)


def runUnit(fn: UnitFunction, unit: WorkUnit) -> UnitManifest | UnitFailure:
    """Run one unit in this process; never raises for the unit's own errors."""
    return WorkerButler.forUnit(unit).run(fn, unit)


def runUnits(fn: UnitFunction, units: Sequence[WorkUnit]) -> list[UnitManifest | UnitFailure]:
    """Run a batch of units in this process, one after another (what one Dask task calls).

    The units of a batch share one datastore config: the worker butler is looked up once.
    """
    if not units:
        return []
    worker = WorkerButler.forUnit(units[0])
    return [worker.run(fn, unit) for unit in units]


TASKS_PER_THREAD = 8
"""`Butler.map` on Dask sends about this many tasks per worker thread (see `defaultUnitsPerTask`)."""


def defaultUnitsPerTask(nUnits: int, nThreads: int) -> int:
    """Units per Dask task: enough tasks for `TASKS_PER_THREAD` per thread, no more.

    A task costs the scheduler and the network about a millisecond however small it is, and
    each carries the datastore config and the function; batching units makes that once per
    batch instead of once per unit. Several tasks per thread keep the threads busy to the
    end (the last batch to finish is at most about 1/8 of each thread's share).
    """
    return max(1, -(-nUnits // max(1, TASKS_PER_THREAD * nThreads)))


# -- the driver's side --


def planUnits(
    butler: Butler,
    dataIds: Iterable[Mapping[str, Any]],
    inputs: Sequence[str],
    outputs: Sequence[str],
    run: str,
    collections: Sequence[str],
) -> tuple[list[WorkUnit], int]:
    """Return the units still to run (outputs not all registered) and how many were skipped.

    A unit with some outputs registered writes only the others (`WorkUnit.alreadyStored`).

    Raises
    ------
    DatasetNotFoundError
        An input of some data ID is not in ``collections``.
    ConflictingDatasetError
        An output's file path is held by another recorded dataset; nothing was run.
    """
    from .dataset_lookup import mergeDataId
    from .exceptions import DatasetNotFoundError

    fileStore = fileDatastoreOf(butler.datastore)
    config = fileStore.config.toDict()
    storageClasses = dict(butler.config["storageClasses"]) if "storageClasses" in butler.config else {}
    outputTypes = [butler.getDatasetType(name) for name in outputs]
    inputTypes = [butler.getDatasetType(name) for name in inputs]
    # By data ID, not id: a repository without a recorded id gives random ids, and a rerun of
    # its map must still skip what is there.
    existing = {
        (t.name, tuple(sorted(ref.dataId.items())))
        for t in outputTypes
        for ref in butler.registry.queryDatasets(t.name, collections=[run])
    }
    found: dict[str, dict[tuple[tuple[str, Any], ...], DatasetRef]] = {}
    for t in inputTypes:
        refs = butler.registry.queryDatasets(t.name, collections=list(collections), findFirst=True)
        found[t.name] = {tuple(sorted(ref.dataId.items())): ref for ref in refs}
    units: list[WorkUnit] = []
    skipped = 0
    for dataId in dataIds:
        outRefs: dict[str, DatasetRef] = {}
        for t in outputTypes:
            sub = {k: dataId[k] for k in t.dimensions if k in dataId}
            normalized = butler.registry.dimensions.coerceDataId(
                mergeDataId(t, sub, {}), f"Data ID of {t.name!r}:"
            )
            ident = butler.predictDatasetId(t, normalized, run) or newDatasetId()
            outRefs[t.name] = DatasetRef(t, normalized, ident, run)
        stored = tuple(
            name for name, ref in outRefs.items() if (name, tuple(sorted(ref.dataId.items()))) in existing
        )
        if len(stored) == len(outRefs):
            skipped += 1
            continue
        for name in stored:
            del outRefs[name]
        _checkPathsFree(fileStore, outRefs.values())
        inRefs: dict[str, tuple[DatasetRef, list[dict[str, Any]]]] = {}
        for t in inputTypes:
            sub = {k: dataId[k] for k in t.dimensions if k in dataId}
            key = tuple(
                sorted(
                    butler.registry.dimensions.coerceDataId(
                        mergeDataId(t, sub, {}), f"Data ID of {t.name!r}:"
                    ).items()
                )
            )
            ref = found[t.name].get(key)
            if ref is None:
                raise DatasetNotFoundError(
                    f"Butler.map: input {t.name!r} {dict(key)} of unit {dict(dataId)} is not in "
                    f"collections {list(collections)}; put it first or drop that data ID."
                )
            infos = [info for _, info in fileStore._records.fetch(ref.id).values()]
            inRefs[t.name] = (ref, [_recordToDict(info) for info in infos])
        units.append(WorkUnit(dict(dataId), inRefs, outRefs, config, storageClasses, stored))
    return units, skipped


def _checkPathsFree(fileStore: FileDatastore, refs: Iterable[DatasetRef]) -> None:
    """Refuse outputs whose file path a recorded dataset holds: a worker would replace its file.

    A worker's records are its own, so nothing there stops it renaming over a path another
    dataset owns (a template without ``{id}`` or ``{run}`` shared by two runs). A path that
    holds the output's own id cannot be another dataset's and is not looked up.
    """
    for ref in refs:
        path = fileStore.layout.predictPath(ref)
        if str(ref.id) in path:
            continue
        owner = fileStore._records.pathOwner(path)
        if owner is not None and owner != str(ref.id):
            raise ConflictingDatasetError(
                f"Butler.map: output {ref} would be written to {path!r}, which dataset {owner} holds; "
                "give its dataset type a file template with {run} or {id}, or map into another run."
            )


def _sameContent(
    existing: DatasetRef, ref: DatasetRef, stored: list[dict[str, Any]], new: list[dict[str, Any]]
) -> bool:
    if (existing.datasetType.name, existing.run, dict(existing.dataId)) != (
        ref.datasetType.name,
        ref.run,
        dict(ref.dataId),
    ):
        return False

    def key(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted((r["component"] or "", r["path"], r["checksum"], int(r["fileSize"])) for r in records)

    return key(stored) == key(new)


def mergeManifests(butler: Butler, manifests: Sequence[UnitManifest], result: MapResult) -> None:
    """Add the manifests' datasets and file records to the registry, in one transaction per chunk.

    Idempotent: a dataset already registered under its id with the same type, run, data ID,
    paths and checksums is skipped.

    Raises
    ------
    ConflictingDatasetError
        A dataset id is registered with different content, or another dataset holds a data ID;
        the chunk it is in is not merged (earlier chunks stay merged).
    """
    started = time.perf_counter()
    fileStore = fileDatastoreOf(butler.datastore)
    entries = [entry for manifest in manifests for entry in manifest.written]
    for start in range(0, len(entries), MERGE_CHUNK):
        chunk = entries[start : start + MERGE_CHUNK]
        with butler.registry.transaction():
            result.transactions += 1
            try:
                with butler.registry.transaction():  # a savepoint: the usual case is all new
                    _insert(butler, fileStore, chunk)
                fresh = chunk
            except ConflictingDatasetError:
                fresh = []
                for ref, records in chunk:
                    existing = butler.registry.getDataset(ref.id)
                    if existing is None:
                        fresh.append((ref, records))
                        continue
                    stored = [_recordToDict(info) for _, info in fileStore._records.fetch(ref.id).values()]
                    if not _sameContent(existing, ref, stored, records):
                        raise ConflictingDatasetError(
                            f"Cannot merge dataset {ref.id} ({ref}): the registry already has {existing} under "
                            f"that id with other content; remove it, or write to another run."
                        ) from None
                    result.skipped += 1
                _insert(butler, fileStore, fresh)
        result.merged += len(fresh)
        result.bytesWritten += sum(int(r["fileSize"]) for _, rs in fresh for r in rs if r["formatter"])
    result.mergeSeconds += time.perf_counter() - started


def _insert(
    butler: Butler, fileStore: FileDatastore, entries: list[tuple[DatasetRef, list[dict[str, Any]]]]
) -> None:
    if not entries:
        return
    refs = butler.registry.addDatasetRefs([ref for ref, _ in entries])
    butler.registry.addDatasetLocations(fileStore.name, refs)
    factory = fileStore.storageClassFactory
    with fileStore._records.begin():
        for ref, records in entries:
            fileStore._records.insert(
                ref.id, ref.datasetType.name, [_recordFromDict(r, factory) for r in records]
            )


def mapUnits(
    butler: Butler,
    fn: UnitFunction,
    dataIds: Iterable[Mapping[str, Any]],
    inputs: Sequence[str],
    outputs: Sequence[str],
    run: str,
    collections: Sequence[str],
    executor: Any = None,
    progress: bool | None = None,
    unitsPerTask: int | None = None,
) -> MapResult:
    """Plan, run and merge; see `Butler.map`."""
    result = MapResult()
    units, result.unitsSkipped = planUnits(butler, dataIds, inputs, outputs, run, collections)
    result.unitsRun = len(units)
    pending: list[UnitManifest] = []
    pendingSize = 0

    def accept(outcome: UnitManifest | UnitFailure) -> None:
        nonlocal pendingSize
        if isinstance(outcome, UnitFailure):
            log.error("Butler.map: %s\n%s", outcome, outcome.traceback)
            result.failures.append(outcome)
            return
        pending.append(outcome)
        pendingSize += len(outcome.written)
        if pendingSize >= MERGE_CHUNK:
            mergeManifests(butler, pending, result)
            pending.clear()
            pendingSize = 0

    started = time.monotonic()
    with progressBar(f"map into {run}", len(units), progress, unit="units") as advance:
        if executor is None:
            for unit in units:
                accept(runUnit(fn, unit))
                advance(1)
        elif units:
            from distributed import as_completed

            nThreads = sum(executor.nthreads().values()) or 1
            size = unitsPerTask or defaultUnitsPerTask(len(units), nThreads)
            batches = [units[i : i + size] for i in range(0, len(units), size)]
            token = uuid.uuid4().hex[:8]
            task = functools.partial(runUnits, fn)
            # pure=False: a pure map tokenizes every argument (all the units, recursively) in
            # this process before submitting anything, measured at ~6 ms per unit; the keys are
            # ours and unique anyway.
            futures = executor.map(
                task,
                batches,
                key=[f"databutler-map-{token}-{i}" for i in range(len(batches))],
                pure=False,
            )
            byKey = {future.key: batch for future, batch in zip(futures, batches, strict=True)}
            for future in as_completed(futures):  # type: ignore[no-untyped-call]
                batch = byKey.pop(future.key)
                if future.status == "finished":
                    for outcome in future.result():
                        accept(outcome)
                else:  # its workers died too often (KilledWorker), or it was lost with one
                    exc = future.exception() if future.status == "error" else None
                    error = (
                        f"{type(exc).__name__}: {exc}"
                        if exc is not None
                        else f"the task was {future.status} (its worker died)"
                    )
                    trace = "".join(traceback.format_exception(exc)) if exc is not None else ""
                    for unit in batch:  # what the batch wrote was never reported: nothing is merged
                        accept(UnitFailure(dict(unit.dataId), error, trace))
                future.release()
                advance(len(batch))
    log.info("Butler.map ran %d units in %.1f s", len(units), time.monotonic() - started)
    mergeManifests(butler, pending, result)
    if result.failures:
        first = result.failures[0]
        more = f" (and {len(result.failures) - 1} more)" if len(result.failures) > 1 else ""
        raise MapUnitError(
            f"Butler.map into run {run!r}: unit {first.dataId} failed{more}: {first.error}; the "
            f"{result.merged} datasets of the other units were merged, run the same map again to "
            f"finish. Traceback of the first failure:\n{first.traceback}",
            result.failures,
            result,
        )
    return result
