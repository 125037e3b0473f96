"""`DatasetManager`: the datasets of a `SqlRegistry`: add, find, query, get and remove them.

Consistency does not rest on this process checking first: one dataset per (type, data ID, run)
is a UNIQUE constraint, so two processes racing to add the same dataset get one row and one
`ConflictingDatasetError`, whichever database is used. Only after the database refuses a
write does the registry look to see why, to say which dataset was in the way.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import json
import operator
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import repeat
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ClauseElement, Executable

from ..dataset_ref import DatasetRef, _uuidFromHex, _uuidsFromHex
from ..dataset_type import DatasetType
from ..dimensions import DimensionUniverse, Timespan
from ..exceptions import (
    AmbiguousDatasetError,
    ArgumentTypeError,
    CollectionError,
    ConflictingDatasetError,
    InvalidQueryError,
    MissingDatasetError,
    MissingRunError,
    RegistryError,
)
from . import schema
from .associations import SearchEntry, showValidity, toValidity
from .chain_search import ChainSearches, throughChain
from .collections import CollectionType
from .connections import ConnectionManager, PreparedQuery
from .data_ids import (
    DIMENSION_ROW_KEYS,
    RefDataIdEncoder,
    chunks,
    decodeDataId,
    dimensionRows,
    encodeDataId,
    newDatasetId,
    parseWhere,
    toUuid,
    whereConditions,
)
from .dimension_records import DimensionRecordStorage
from .queries import compileDatasetWhere
from .queries.statement_cache import StatementCache, freeze
from .removals import RemovalWatch, withRemovalVersion
from .types_runs import DatasetTypeManager

__all__ = ["DatasetManager"]

# Statements on the hot paths are built once: SQLAlchemy then only binds the values.
_dataset = schema.datasetTable
_INSERT_DATASETS = sa.insert(_dataset)
_INSERT_DIMENSIONS = sa.insert(schema.datasetDimensionTable)
_DATASET_KEYS = ("id", "datasetTypeId", "runId", "dataId")
_ONE_ROW = sa.select(sa.literal_column("1").label("one")).subquery("one")


def _lookupInRuns(runs: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """Return the lookup of one data ID in ``runs``, with the removal token (removals.py) beside.

    A row per dataset found, or one of NULLs beside the token when none is: a miss reads the
    token too, so that a run removed elsewhere (and made again, with a new id) is noticed.
    """
    matches = sa.and_(
        _dataset.c.datasetTypeId == sa.bindparam("typeId"), _dataset.c.dataId == sa.bindparam("dataId"), runs
    )
    return withRemovalVersion(
        sa.select(_dataset.c.id, _dataset.c.runId).select_from(_ONE_ROW.outerjoin(_dataset, matches))
    )


_FIND_IN_RUN = _lookupInRuns(_dataset.c.runId == sa.bindparam("runId"))
_FIND_IN_RUNS: dict[int, sa.Select[Any]] = {}
"""The lookup in ``n`` runs, by ``n``: a statement of fixed shape runs on the driver path."""


def _findInRuns(count: int) -> sa.Select[Any]:
    """Return the SELECT of one data ID in ``count`` runs (parameters ``run0``, ``run1``...)."""
    if count not in _FIND_IN_RUNS:
        _FIND_IN_RUNS[count] = _lookupInRuns(
            _dataset.c.runId.in_([sa.bindparam(f"run{i}") for i in range(count)])
        )
    return _FIND_IN_RUNS[count]


_GET = withRemovalVersion(
    sa.select(_dataset.c.datasetTypeId, _dataset.c.runId, _dataset.c.dataId).where(
        _dataset.c.id == sa.bindparam("id")
    )
)


class _Explain(Executable, ClauseElement):
    """``EXPLAIN`` (PostgreSQL) or ``EXPLAIN QUERY PLAN`` (SQLite) of a statement, its values bound."""

    inherit_cache = False

    def __init__(self, statement: sa.Select[Any]) -> None:
        self.statement = statement


@compiles(_Explain)
def _compileExplain(element: _Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN " + str(compiler.process(element.statement, **kw))


@compiles(_Explain, "sqlite")
def _compileExplainSqlite(element: _Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN QUERY PLAN " + str(compiler.process(element.statement, **kw))


@contextlib.contextmanager
def _oneCollection() -> Iterator[None]:
    """Hold the cyclic garbage collector back while building, then run it once on what is new.

    Building 10,000 refs allocates some 30,000 objects the collector tracks: about 40
    collections of the youngest generation, each of which moves survivors towards the oldest
    one and soon sets off a collection of the whole heap. Held back, the same objects are
    examined once, here, in one collection of the youngest generation (which then counts
    towards the older ones as usual). At 10,000 rows this halved the cost of a query (see
    benchmarks/bench_query.py). If the collector is already off, nothing changes.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        if gc.get_count()[0] > gc.get_threshold()[0]:
            gc.collect(0)


_FIRST, _SECOND, _THIRD = map(operator.itemgetter, range(3))


def _allSame(values: list[Any]) -> bool:
    """Return whether the non-empty ``values`` are all equal (one pass in C, no set built)."""
    return values.count(values[0]) == len(values)


def _asUuid(value: Any) -> uuid.UUID:
    """Return ``value`` (a UUID from PostgreSQL's driver, or its text) as a `uuid.UUID`."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _refIdOrder(pair: tuple[DatasetRef, str]) -> int:
    """Return the sort key of `DatasetManager._insertDatasets`: the ref's id, in the order SQLite keeps it.

    SQLite keeps ``dataset`` and ``dataset_dimension`` in their primary key's B-tree (see
    `schema`), and random ids inserted as they come land on pages all over it; in key order
    each page is filled in turn (at 10,000 rows the dataset insert took 2.5 µs a row instead of
    4.5, dimension rows 7.5 instead of 8.9 a dataset). The 32 hex digits stored sort as the id's
    integer does. PostgreSQL appends rows to a heap whatever their order: left as given.
    """
    return pair[0].id.int


def _sortKey(dataId: Mapping[str, Any]) -> tuple[tuple[bool, Any], ...]:
    return tuple((isinstance(v, str), v) for v in dataId.values())


class DatasetManager:
    """Adds, finds, queries and removes the datasets of one registry database.

    The `Registry` verbs on datasets are this manager's. Dataset types and runs are resolved
    through ``types``.

    Parameters
    ----------
    db : ConnectionManager
        The registry's connections.
    types : DatasetTypeManager
        The registry's dataset types and runs.
    namespace : str, optional
        The PostgreSQL schema of the tables (for ``ANALYZE``).
    dimensionRecords : DimensionRecordStorage
        The registry's dimension records, which a ``where`` expression may join.
    """

    def __init__(
        self,
        db: ConnectionManager,
        types: DatasetTypeManager,
        namespace: str | None,
        dimensionRecords: DimensionRecordStorage,
    ) -> None:
        self._db = db
        self.types = types
        self.namespace = namespace
        self.dimensionRecords = dimensionRecords
        self.universe: DimensionUniverse = types.universe
        self._insertedSinceAnalyze = 0
        self._analyzeEvery = 10_000
        self._statements = StatementCache()
        self.removals = RemovalWatch(db)
        """The removal token lookups read; its listeners hear of other registries' removals."""
        self.removals.addListener(types.forgetRunIds)  # a removed run may be made again: a new id
        self._chainSearches = ChainSearches(db, types, self.removals)
        self._refEncoders: dict[DatasetType, RefDataIdEncoder] = {}

    def _coerceDataId(self, datasetType: DatasetType, dataId: Any) -> Any:
        """Return ``dataId`` with its values coerced to their dimensions' types (``"101"`` → 101).

        Raises
        ------
        DataIdError
            A value cannot be read as its dimension's type; the message names both.
        """
        if not isinstance(dataId, Mapping):
            return dataId  # encodeDataId says what is wrong
        return self.universe.coerceDataId(dataId, f"Data ID of {datasetType.name!r}:")

    def _coerceWhere(self, datasetType: DatasetType, where: Any) -> Any:
        """Return a ``where`` mapping with its values coerced as in `_coerceDataId`."""
        if not isinstance(where, Mapping):
            return where
        out: dict[str, Any] = {}
        for key, given in where.items():
            if key not in self.universe:
                out[key] = given
            elif isinstance(given, list | tuple | set | frozenset):
                out[key] = [
                    self.universe.coerceValue(key, v, f"where of {datasetType.name!r}:") for v in given
                ]
            else:
                out[key] = self.universe.coerceValue(key, given, f"where of {datasetType.name!r}:")
        return out

    def addDatasets(
        self,
        datasetTypeOrName: DatasetType | str,
        dataIds: Iterable[Mapping[str, Any] | None],
        run: str,
        ids: Iterable[uuid.UUID | str] | None = None,
    ) -> list[DatasetRef]:
        """Add datasets of one type to a run (`Registry.addDatasets`)."""
        typeId, datasetType = self.types.resolveParentType(datasetTypeOrName, "add")
        dataIdList = list(dataIds)
        idList = [newDatasetId() for _ in dataIdList] if ids is None else [toUuid(i) for i in ids]
        if len(idList) != len(dataIdList):
            raise ValueError(f"addDatasets got {len(dataIdList)} data IDs but {len(idList)} ids.")
        runId = self.types.runId(run)
        refs = []
        encoded = []
        for dataId, ident in zip(dataIdList, idList, strict=True):
            normalized, text = encodeDataId(datasetType, self._coerceDataId(datasetType, dataId))
            refs.append(DatasetRef._trusted(datasetType, normalized, ident, run))
            encoded.append(text)
        self._insertDatasets(typeId, runId, refs, encoded)
        return refs

    def addDatasetRefs(self, refs: Iterable[DatasetRef]) -> list[DatasetRef]:
        """Add refs with their own ids and runs (`Registry.addDatasetRefs`)."""
        refList = list(refs)
        groups: dict[tuple[str, str], list[DatasetRef]] = {}
        for ref in refList:
            if ref.run is None:
                raise MissingRunError(f"Dataset {ref} has no run; the registry keeps every dataset in a run.")
            groups.setdefault((ref.datasetType.name, ref.run), []).append(ref)
        replaced = False
        with self._db.write():
            for (_, run), group in groups.items():
                typeId, datasetType = self.types.resolveParentType(group[0].datasetType, "add")
                encoder = self._refEncoder(datasetType)
                encoded = []
                for index, ref in enumerate(group):
                    normalized, text = encoder.encode(ref.dataId)
                    if normalized is not ref.dataId and normalized != ref.dataId:
                        group[index] = DatasetRef._trusted(datasetType, normalized, ref.id, ref.run)
                        replaced = True
                    encoded.append(text)
                self._insertDatasets(typeId, self.types.runId(run), group, encoded)
        if not replaced:  # every ref stored as it was given
            return refList
        stored = {ref.id: ref for group in groups.values() for ref in group}
        return [stored[ref.id] for ref in refList]

    def _refEncoder(self, datasetType: DatasetType) -> RefDataIdEncoder:
        """Return the `RefDataIdEncoder` of ``datasetType`` (one per dataset type, kept)."""
        encoder = self._refEncoders.get(datasetType)
        if encoder is None:
            encoder = self._refEncoders[datasetType] = RefDataIdEncoder(datasetType, self.universe)
        return encoder

    def _insertDatasets(self, typeId: int, runId: int, refs: list[DatasetRef], encoded: list[str]) -> None:
        if not refs:
            return
        seen: dict[str, DatasetRef] = {}
        for ref, text in zip(refs, encoded, strict=True):
            if text in seen:
                raise ConflictingDatasetError(
                    f"Dataset {ref.datasetType.name!r} with data ID {dict(ref.dataId)!r} is given twice "
                    f"for run {ref.run!r}; one dataset per type, data ID and run."
                )
            seen[text] = ref
        pairs = list(zip(refs, encoded, strict=True))
        if self._db.isSqlite and len(pairs) > 1:
            pairs.sort(key=_refIdOrder)
        rows = [(ref.id, typeId, runId, text) for ref, text in pairs]
        dimensions = [row for ref, _ in pairs for row in dimensionRows(ref.id, ref.dataId)]
        try:
            # One row: if the dataset insert fails nothing was written (the dimension rows of a
            # dataset just inserted cannot conflict), so SQLite needs no SAVEPOINT.
            with self._db.write(atomic=len(rows) == 1) as connection:
                self._db.insertValues(connection, _INSERT_DATASETS, _DATASET_KEYS, rows)
                self._db.insertValues(connection, _INSERT_DIMENSIONS, DIMENSION_ROW_KEYS, dimensions)
        except sa.exc.IntegrityError as exc:
            run = refs[0].run
            if run is not None and self.types.refreshRunIds({run: runId}):
                # The run was removed elsewhere (perhaps made again): a MissingRunError, or its new id.
                self._insertDatasets(typeId, self.types.runId(run), refs, encoded)
                return
            raise self._explainConflict(typeId, runId, seen, exc) from exc
        self._noteInserted(len(rows))

    def _noteInserted(self, count: int) -> None:
        """Refresh PostgreSQL's statistics after the first 10,000 new datasets, 20,000 more...

        A table PostgreSQL has never analyzed looks empty to its planner, which then picks
        nested loops that take seconds on a freshly loaded registry, until autovacuum gets
        round to it. Doubling the interval keeps the cost negligible.
        """
        if self._db.isSqlite:
            return
        self._insertedSinceAnalyze += count
        if self._insertedSinceAnalyze < self._analyzeEvery or self._db.inTransaction:
            return
        self._insertedSinceAnalyze = 0
        self._analyzeEvery *= 2
        preparer = self._db.engine.dialect.identifier_preparer
        prefix = f"{preparer.quote_schema(self.namespace)}." if self.namespace else ""
        # Identifiers cannot be bound parameters; these are our own table names, quoted.
        names = ", ".join(
            prefix + preparer.quote(t.name) for t in (schema.datasetTable, schema.datasetDimensionTable)
        )
        with self._db.write() as connection:
            connection.execute(sa.text(f"ANALYZE {names}"))

    def _explainConflict(
        self, typeId: int, runId: int, byDataId: dict[str, DatasetRef], exc: sa.exc.IntegrityError
    ) -> RegistryError:
        table = schema.datasetTable
        texts = list(byDataId)
        with self._db.read() as connection:
            for chunk in chunks(texts):
                row = connection.execute(
                    sa.select(table.c.id, table.c.dataId).where(
                        table.c.datasetTypeId == typeId, table.c.runId == runId, table.c.dataId.in_(chunk)
                    )
                ).first()
                if row is not None:
                    ref = byDataId[row.dataId]
                    return ConflictingDatasetError(
                        f"Dataset {ref.datasetType.name!r} with data ID {dict(ref.dataId)!r} already exists "
                        f"in run {ref.run!r} (id {row.id}); remove it first, or use another run."
                    )
            ids = [ref.id for ref in byDataId.values()]
            for chunk in chunks(ids):
                taken = connection.execute(sa.select(table.c.id).where(table.c.id.in_(chunk))).scalar()
                if taken is not None:
                    existing = self.getDataset(taken)
                    return ConflictingDatasetError(
                        f"A dataset with id {taken} already exists ({existing}); ids must be unique."
                    )
        return RegistryError(f"Could not add datasets: {exc.orig or exc}")

    def findDataset(
        self,
        datasetTypeOrName: DatasetType | str,
        dataId: Mapping[str, Any] | None,
        collections: str | Sequence[str],
        *,
        timespan: Any = None,
    ) -> DatasetRef | None:
        """Find one dataset in the collections, searched in order (`Registry.findDataset`).

        A search path through chains of runs is one statement once it has been resolved
        (`ChainSearches`); any other is resolved first (`DatasetTypeManager.resolveSearch`).
        """
        typeId, datasetType, component = self.types.resolveDatasetType(datasetTypeOrName)
        normalized, text = encodeDataId(datasetType, self._coerceDataId(datasetType, dataId))
        matches = self._chainSearches.find(collections, typeId, text)
        if matches is not None:
            return self._refFromMatches(datasetType, normalized, component, matches)
        entries = self.types.resolveSearch(collections)
        if any(e.type != CollectionType.RUN for e in entries):
            validity = (
                None if timespan is None else toValidity(timespan, f"findDataset of {datasetType.name!r}")
            )
            seen = self.removals.seen
            ref = self._findInEntries(typeId, datasetType, normalized, text, entries, validity)
            if self.removals.seen != seen and self.types.refreshRunIds(
                {e.name: e.id for e in entries if e.type == CollectionType.RUN}
            ):  # a run removed and made again elsewhere: its stale id let a later collection answer
                return self.findDataset(datasetTypeOrName, dataId, collections, timespan=timespan)
            return ref.makeComponentRef(component) if ref is not None and component else ref
        runs = {e.name: e.id for e in entries}
        if not runs:
            return None
        if throughChain(collections, entries):
            self._chainSearches.learn(collections)  # from now on one statement
            matches = self._chainSearches.find(collections, typeId, text)
            if matches is not None:
                return self._refFromMatches(datasetType, normalized, component, matches)
        runIds = list(runs.values())
        with self._db.read() as connection:
            if len(runIds) == 1:
                params = {"typeId": typeId, "dataId": text, "runId": runIds[0]}
                rows = self._db.selectRows(connection, _FIND_IN_RUN, params)
            elif len(runIds) <= 32:
                params = {"typeId": typeId, "dataId": text} | {f"run{i}": r for i, r in enumerate(runIds)}
                rows = self._db.selectRows(connection, _findInRuns(len(runIds)), params)
            else:
                statement = _lookupInRuns(_dataset.c.runId.in_(runIds))
                rows = [
                    tuple(row) for row in connection.execute(statement, {"typeId": typeId, "dataId": text})
                ]
        if rows[0][2] != self.removals.seen:  # another registry removed datasets: caches are told first
            self.removals.check(rows[0][2])
            if self.types.refreshRunIds(runs):  # a run removed and made again: a miss, or a later run's hit
                return self.findDataset(datasetTypeOrName, dataId, collections, timespan=timespan)
        found = {runId: ident for ident, runId, _ in rows}
        for name, runId in runs.items():
            if runId in found:
                ref = DatasetRef._trusted(datasetType, normalized, found[runId], name)
                return ref.makeComponentRef(component) if component else ref
        return None

    @staticmethod
    def _refFromMatches(
        datasetType: DatasetType,
        normalized: Mapping[str, Any],
        component: str | None,
        matches: list[tuple[str, Any]],
    ) -> DatasetRef | None:
        """Return the ref of the first of `ChainSearches.find`'s matches (`None` if there are none)."""
        if not matches:
            return None
        run, ident = matches[0]
        ident = ident if isinstance(ident, uuid.UUID) else _uuidFromHex(ident)
        ref = DatasetRef._trusted(datasetType, normalized, ident, run)
        return ref.makeComponentRef(component) if component else ref

    def _findInEntries(
        self,
        typeId: int,
        datasetType: DatasetType,
        normalized: Mapping[str, Any],
        text: str,
        entries: list[SearchEntry],
        validity: tuple[int, int] | None,
    ) -> DatasetRef | None:
        """Search ``entries`` in order: runs as one probe each, then TAGGED and CALIBRATION ones."""
        with self._db.read() as connection:
            for entry in entries:
                if entry.type == CollectionType.RUN:
                    params = {"typeId": typeId, "dataId": text, "runId": entry.id}
                    found = self._db.selectRows(connection, _FIND_IN_RUN, params)
                    if found[0][2] != self.removals.seen:
                        self.removals.check(found[0][2])
                    if found[0][0] is not None:
                        return DatasetRef._trusted(datasetType, normalized, found[0][0], entry.name)
                    continue
                if entry.type == CollectionType.CALIBRATION and validity is None:
                    raise CollectionError(
                        f"Cannot look {datasetType.name!r} {dict(normalized)} up in CALIBRATION collection "
                        f"{entry.name!r} without a time: give timespan= (a datetime or a (begin, end) "
                        "pair), or through a Butler a data ID with a visit or exposure that has a timespan record."
                    )
                rows = self.types.associations.findIn(connection, entry, typeId, text, validity)
                if len(rows) > 1:
                    raise AmbiguousDatasetError(
                        f"{len(rows)} {datasetType.name!r} datasets with data ID {dict(normalized)} are certified "
                        f"in {entry.name!r} for times within {showValidity(*validity)}; give a single time."  # type: ignore[misc]
                    )
                if rows:
                    ident, runId, token = rows[0]
                    if token != self.removals.seen:
                        self.removals.check(token)
                    return DatasetRef._trusted(datasetType, normalized, ident, self.types.runName(runId))
        return None

    def queryDatasets(
        self,
        datasetTypeOrName: DatasetType | str,
        collections: str | Sequence[str] | None = None,
        where: Mapping[str, Any] | str | None = None,
        *,
        bind: Mapping[str, Any] | None = None,
        findFirst: bool = False,
        orderBy: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[DatasetRef]:
        """Return the datasets of one type that match ``where`` (`Registry.queryDatasets`).

        With ``findFirst`` the database keeps one dataset per data ID, the one in the earliest
        run searched (SQLite: ``GROUP BY`` data ID with ``min`` of the run's rank, whose other
        columns come from that row; PostgreSQL: ``DISTINCT ON``). With ``orderBy`` or ``limit``
        the database sorts (ties by run rank, then data ID) and stops at ``limit``. The refs
        are built in bulk: the data IDs decoded by one ``json.loads`` and, unless the database
        sorted them, sorted by run rank, then data ID.
        """
        if collections is not None:
            entries = self.types.resolveSearch(collections)
            if any(e.type != CollectionType.RUN for e in entries):
                return self._queryAssociated(
                    datasetTypeOrName, entries, where, bind, findFirst=findFirst, orderBy=orderBy, limit=limit
                )
            runs = {e.name: e.id for e in entries}
        else:
            runs = self.types.allRuns()
        typeId, datasetType, component = self.types.resolveDatasetType(datasetTypeOrName)

        def build() -> tuple[PreparedQuery | None, bool]:
            statement = self._datasetQuery(
                datasetTypeOrName, collections, where, bind, findFirst=findFirst, runs=runs
            )[2]
            keys = self._orderKeys(datasetType, orderBy)
            if statement is None or (limit is not None and limit <= 0):
                return None, False
            sortedBySql = bool(keys) or limit is not None
            if sortedBySql:
                statement = self._sortedStatement(statement, datasetType, list(runs.values()), keys, limit)
            return self._db.prepareQuery(statement), sortedBySql

        query, sortedBySql = self._statements.get(
            lambda: (
                typeId,
                datasetType.dimensions,
                component,
                freeze(where),
                freeze(bind),
                tuple(runs.items()),
                collections is None,
                findFirst,
                freeze(orderBy),
                limit,
            ),
            build,
        )
        if query is None:
            return []
        return self._fetchRefs(datasetType, component, query, runs, sortedBySql)

    def explainQuery(
        self,
        datasetTypeOrName: DatasetType | str,
        collections: str | Sequence[str] | None = None,
        where: Mapping[str, Any] | str | None = None,
        *,
        bind: Mapping[str, Any] | None = None,
        findFirst: bool = False,
        orderBy: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[str]:
        """Return the database's plan for the statement `queryDatasets` runs with these arguments.

        SQLite's ``EXPLAIN QUERY PLAN`` (one line per step, indented under its parent) or
        PostgreSQL's ``EXPLAIN``; the query itself is not run. Empty when no run is searched.
        `SqlRegistry.explainQuery` is this method.

        Raises
        ------
        MissingDatasetTypeError, MissingRunError, InvalidQueryError, DataIdError
            As for `Registry.queryDatasets`.
        """
        datasetType, _, statement, runs = self._datasetQuery(
            datasetTypeOrName, collections, where, bind, findFirst=findFirst
        )
        keys = self._orderKeys(datasetType, orderBy)
        if statement is None:
            return []
        if keys or limit is not None:
            statement = self._sortedStatement(
                statement,
                datasetType,
                list(runs.values()),
                keys,
                max(limit, 0) if limit is not None else None,
            )
        with self._db.read() as connection:
            rows = connection.execute(_Explain(statement)).all()
        if not self._db.isSqlite:
            return [str(row[0]) for row in rows]
        depth = {0: -1}
        lines = []
        for ident, parent, _, detail in rows:  # SQLite: (id, parent id, unused, detail)
            depth[ident] = depth.get(parent, -1) + 1
            lines.append("  " * depth[ident] + str(detail))
        return lines

    def _fetchRefs(
        self,
        datasetType: DatasetType,
        component: str | None,
        query: PreparedQuery,
        runs: dict[str, int],
        sortedBySql: bool,
    ) -> list[DatasetRef]:
        """Run ``query`` (id, run id, data ID) and return its refs (see `queryDatasets`)."""
        with self._db.read() as connection:
            rows = self._db.queryRows(connection, query)
        if not rows:
            return []
        with _oneCollection():
            return self._makeRefs(datasetType, component, rows, runs, sortedBySql)

    def _makeRefs(
        self,
        datasetType: DatasetType,
        component: str | None,
        rows: Any,
        runs: dict[str, int],
        sortedBySql: bool,
    ) -> list[DatasetRef]:
        ids, runIds = list(map(_FIRST, rows)), list(map(_SECOND, rows))
        dataIds: list[dict[str, Any]] = json.loads("[" + ",".join(map(_THIRD, rows)) + "]")
        names = {runId: name for name, runId in runs.items()}
        count = len(runIds)
        refs = DatasetRef._trustedMany(
            datasetType,
            list(map(MappingProxyType, dataIds)),
            _uuidsFromHex(ids) if self._db.isSqlite else list(map(_asUuid, ids)),
            repeat(names[runIds[0]], count) if _allSame(runIds) else map(names.__getitem__, runIds),
        )
        if not sortedBySql:
            positions = self._sortedPositions(dataIds, runIds, runs)
            refs = list(map(refs.__getitem__, positions))
        if component:
            refs = [ref.makeComponentRef(component) for ref in refs]
        return refs

    @staticmethod
    def _sortedPositions(dataIds: list[dict[str, Any]], runIds: list[int], runs: dict[str, int]) -> list[int]:
        """Return the row positions in the order of run rank, then data ID (values in key order).

        One stable sort per key that holds more than one value, from the last key to the first,
        then by run rank only if the rows come from more than one run (least significant first,
        as a radix sort goes): each pass compares plain ints or strs, which ``list.sort`` does
        by code specialized for the type, 1.3-1.5 times as fast as comparing tuples of the
        values (at 1,000 and 10,000 rows).
        """
        positions = list(range(len(dataIds)))
        try:
            for key in reversed(list(dataIds[0])):
                column = list(map(operator.itemgetter(key), dataIds))
                if not _allSame(column):  # such as the one instrument of most queries
                    positions.sort(key=column.__getitem__)
        except TypeError:  # one dimension holds both ints and strs (no declared type): ints first
            mixed = [_sortKey(d) for d in dataIds]
            positions = sorted(range(len(dataIds)), key=mixed.__getitem__)
        if not _allSame(runIds):
            order = {runId: index for index, runId in enumerate(runs.values())}
            ranks = [order[r] for r in runIds]
            positions.sort(key=ranks.__getitem__)
        return positions

    def _queryAssociated(
        self,
        datasetTypeOrName: DatasetType | str,
        entries: list[SearchEntry],
        where: Mapping[str, Any] | str | None,
        bind: Mapping[str, Any] | None,
        *,
        findFirst: bool,
        orderBy: Sequence[str] | None,
        limit: int | None,
    ) -> list[DatasetRef]:
        """`queryDatasets` through TAGGED or CALIBRATION collections.

        With ``orderBy`` or ``limit`` the database sorts (and, without ``findFirst``, stops at
        ``limit``); otherwise the rows are sorted here, by collection position, then data ID.
        """
        datasetType, component, statement = self._associatedQuery(datasetTypeOrName, entries, where, bind)
        keys = self._orderKeys(datasetType, orderBy)
        sortedBySql = bool(keys) or limit is not None
        if sortedBySql:
            # Sorted by keys, then position, then data ID: the rows of one data ID stay together,
            # the first in the earliest collection, as findFirst (which must see them all) needs.
            bySql = None if findFirst or limit is None else max(limit, 0)
            statement = self._sortedStatement(statement, datasetType, None, keys, bySql)
        with self._db.read() as connection:
            rows = connection.execute(statement).all()
        decoded = [(row.position, decodeDataId(row.dataId), row) for row in rows]
        if not sortedBySql:
            decoded.sort(key=lambda item: (item[0], _sortKey(item[1])))
        refs: list[DatasetRef] = []
        seen: dict[str, int] = {}
        for position, dataId, row in decoded:
            if findFirst:
                first = seen.setdefault(row.dataId, position)
                if first != position:
                    continue
                if (
                    refs
                    and refs[-1].dataId == dataId
                    and entries[position].type == CollectionType.CALIBRATION
                ):
                    raise AmbiguousDatasetError(
                        f"CALIBRATION collection {entries[position].name!r} holds several "
                        f"{datasetType.name!r} datasets with data ID {dict(dataId)} (valid at different "
                        "times), so a find-first query cannot choose; use findDataset with a timespan."
                    )
            ref = DatasetRef._trusted(datasetType, dataId, toUuid(row.id), self.types.runName(row.runId))
            refs.append(ref.makeComponentRef(component) if component else ref)
        return refs if limit is None else refs[: max(limit, 0)]

    def _associatedQuery(
        self,
        datasetTypeOrName: DatasetType | str,
        entries: list[SearchEntry],
        where: Mapping[str, Any] | str | None,
        bind: Mapping[str, Any] | None,
    ) -> tuple[DatasetType, str | None, sa.Select[Any]]:
        """Return (parent type, component, SELECT of id, run id, data ID and ``position``).

        ``position`` is the index in ``entries`` of the first collection holding the dataset
        (CASE takes the first condition that is true), so each dataset is one row.
        """
        typeId, datasetType, component = self.types.resolveDatasetType(datasetTypeOrName)
        fromClause, conditions, distinct = self._whereClause(datasetType, where, bind)
        table = schema.datasetTable
        cases = [
            (
                table.c.runId == entry.id
                if entry.type == CollectionType.RUN
                else table.c.id.in_(self.types.associations.membership(entry, None)),
                index,
            )
            for index, entry in enumerate(entries)
        ]
        statement = (
            sa.select(
                table.c.id, table.c.runId, table.c.dataId, sa.case(*cases, else_=None).label("position")
            )
            .select_from(fromClause)
            .where(table.c.datasetTypeId == typeId, *conditions, sa.or_(*[c for c, _ in cases]))
        )
        return datasetType, component, statement.distinct() if distinct else statement

    def _whereClause(
        self, datasetType: DatasetType, where: Mapping[str, Any] | str | None, bind: Mapping[str, Any] | None
    ) -> tuple[sa.FromClause, list[sa.ColumnElement[bool]], bool]:
        """Return (FROM clause, conditions, whether DISTINCT is needed) of a ``where``."""
        if isinstance(where, str):
            fromClause, condition, resolver = compileDatasetWhere(
                datasetType, where, bind, self.universe, self.dimensionRecords.tables
            )
            return fromClause, [condition], resolver.needsDistinct
        coerced: Mapping[str, Any] | None = self._coerceWhere(datasetType, where)
        conditions, _ = whereConditions(datasetType, parseWhere(datasetType, coerced))
        return schema.datasetTable, conditions, False

    def _orderKeys(self, datasetType: DatasetType, orderBy: Sequence[str] | None) -> list[tuple[str, bool]]:
        """Return ``orderBy`` as (dimension, descending) pairs.

        Raises
        ------
        InvalidQueryError
            A name is not a dimension of ``datasetType``.
        """
        keys = []
        for given in [orderBy] if isinstance(orderBy, str) else list(orderBy or ()):
            name = given.lstrip("-+")
            if name not in datasetType.dimensions:
                raise InvalidQueryError(
                    f"orderBy names {name!r}, which is not a dimension of {datasetType.name!r} "
                    f"(its dimensions are {sorted(datasetType.dimensions)})."
                )
            keys.append((name, given.startswith("-")))
        return keys

    def _sortedStatement(
        self,
        statement: sa.Select[Any],
        datasetType: DatasetType,
        runIds: list[int] | None,
        keys: list[tuple[str, bool]],
        limit: int | None,
    ) -> sa.Select[Any]:
        """Return ``statement`` sorted by ``keys``, then run rank, then data ID; at most ``limit`` rows.

        The rank is that of the run among ``runIds``, or, with `None`, the statement's own
        ``position`` column (a collection's place in a search of TAGGED or CALIBRATION ones).

        Each dimension's value is joined on the (dataset, dimension) key. The order is Python's:
        ints before strs in a dimension of no declared type, strings by code point (``COLLATE
        "C"`` on PostgreSQL, whose default collation follows a locale).
        """
        inner = statement.subquery("found")
        idColumn, runColumn = list(inner.c)[:2]
        joined: sa.FromClause = inner
        values: dict[str, list[sa.ColumnElement[Any]]] = {}
        for index, dimension in enumerate(sorted(datasetType.dimensions)):
            alias = schema.datasetDimensionTable.alias(f"order{index}")
            joined = joined.join(
                alias, sa.and_(alias.c.datasetId == idColumn, alias.c.dimension == dimension)
            )
            text: sa.ColumnElement[Any] = alias.c.strValue
            if not self._db.isSqlite:
                text = text.collate("C")
            valueType = self.universe[dimension].valueType if dimension in self.universe else None
            if valueType == "int":
                values[dimension] = [alias.c.intValue]
            elif valueType == "str":
                values[dimension] = [text]
            else:
                values[dimension] = [alias.c.strValue.is_not(None), alias.c.intValue, text]
        rank: sa.ColumnElement[Any] = (
            inner.c.position
            if runIds is None
            else sa.case({runId: index for index, runId in enumerate(runIds)}, value=runColumn)
        )
        order: list[sa.ColumnElement[Any]] = []
        for dimension, descending in keys:
            order += [column.desc() if descending else column for column in values[dimension]]
        order.append(rank)
        for dimension in sorted(datasetType.dimensions):
            order += values[dimension]
        out = sa.select(*inner.c).select_from(joined).order_by(*order)
        return out if limit is None else out.limit(limit)

    def _datasetQuery(
        self,
        datasetTypeOrName: DatasetType | str,
        collections: str | Sequence[str] | None,
        where: Mapping[str, Any] | str | None,
        bind: Mapping[str, Any] | None,
        *,
        findFirst: bool = False,
        runs: dict[str, int] | None = None,
    ) -> tuple[DatasetType, str | None, sa.Select[Any] | None, dict[str, int]]:
        """Return (parent type, component, the SELECT of id, run id and data ID, runs searched).

        ``runs`` are those ``collections`` stand for, if the caller resolved them already.
        The statement is `None` when no run is searched. On SQLite the id comes back as the
        stored hex text (made a UUID by the caller, faster than SQLAlchemy's per-row processor).
        With ``findFirst``, only the dataset in the earliest of the runs for each data ID.
        """
        typeId, datasetType, component = self.types.resolveDatasetType(datasetTypeOrName)
        fromClause: sa.FromClause = schema.datasetTable
        distinct = False
        if isinstance(where, str):
            fromClause, condition, resolver = compileDatasetWhere(
                datasetType, where, bind, self.universe, self.dimensionRecords.tables
            )
            conditions, byDimension, distinct = [condition], bool(resolver.aliases), resolver.needsDistinct
        else:
            coerced: Mapping[str, Any] | None = self._coerceWhere(datasetType, where)
            conditions, byDimension = whereConditions(datasetType, parseWhere(datasetType, coerced))
        if runs is None:
            runs = self.types.resolveRuns(collections) if collections is not None else self.types.allRuns()
        if not runs:
            return datasetType, component, None, runs
        table = schema.datasetTable
        typeColumn: sa.ColumnElement[int] = table.c.datasetTypeId
        runColumn: sa.ColumnElement[int] = table.c.runId
        if byDimension and self._db.isSqlite:
            # Planner hint: "+ 0" keeps the (run, type) index out of reach, so SQLite starts from
            # the indexed dimension lookup, usually far more selective than "every dataset of
            # this type", which SQLite, without statistics, cannot know. PostgreSQL has
            # statistics, and the hint would only spoil its estimates.
            typeColumn = typeColumn + 0
            runColumn = runColumn + 0
        idColumn: sa.ColumnElement[Any] = (
            sa.type_coerce(table.c.id, sa.String) if self._db.isSqlite else table.c.id
        )
        columns: list[sa.ColumnElement[Any]] = [idColumn, table.c.runId, table.c.dataId]
        runIds = list(runs.values())
        first = findFirst and len(runIds) > 1
        rank = sa.case({runId: index for index, runId in enumerate(runIds)}, value=table.c.runId)
        if first and self._db.isSqlite:
            columns.append(sa.func.min(rank))
        statement = sa.select(*columns).select_from(fromClause).where(typeColumn == typeId, *conditions)
        if first and self._db.isSqlite:
            # SQLite documents that with min() the bare columns come from the row holding the minimum.
            statement = statement.group_by(table.c.dataId)
        elif first:
            from sqlalchemy.dialects import postgresql  # here: a SQLite process never loads it

            statement = statement.ext(postgresql.distinct_on(table.c.dataId)).order_by(table.c.dataId, rank)
        elif distinct:
            statement = statement.distinct()
        if collections is not None or not byDimension:
            # With every run listed, the (type, run, data ID) index finds a full data ID by a
            # few probes instead of a scan of the whole type.
            statement = statement.where(runColumn.in_(runIds))
        return datasetType, component, statement, runs

    def countDatasets(
        self,
        datasetTypeOrName: DatasetType | str,
        collections: str | Sequence[str] | None = None,
        where: Mapping[str, Any] | str | None = None,
        *,
        bind: Mapping[str, Any] | None = None,
    ) -> int:
        """Return how many datasets `queryDatasets` would find (`Registry.countDatasets`)."""
        statement: sa.Select[Any] | None
        entries = self.types.resolveSearch(collections) if collections is not None else []
        if any(e.type != CollectionType.RUN for e in entries):
            _, _, statement = self._associatedQuery(datasetTypeOrName, entries, where, bind)
        else:
            _, _, statement, _ = self._datasetQuery(datasetTypeOrName, collections, where, bind)
        if statement is None:
            return 0
        with self._db.read() as connection:
            return int(
                connection.execute(sa.select(sa.func.count()).select_from(statement.subquery())).scalar_one()
            )

    def getDataset(self, id: uuid.UUID | str) -> DatasetRef | None:
        """Return the dataset with this id, or `None` (`Registry.getDataset`)."""
        ident = toUuid(id)
        with self._db.read() as connection:
            rows = self._db.selectRows(connection, _GET, {"id": ident})
        if not rows:
            return None
        typeId, runId, text, removalVersion = rows[0]
        if removalVersion != self.removals.seen:
            self.removals.check(removalVersion)
        return DatasetRef._trusted(
            self.types.datasetTypeById(typeId), decodeDataId(text), ident, self.types.runName(runId)
        )

    def getDatasets(self, ids: Iterable[uuid.UUID | str]) -> dict[uuid.UUID, DatasetRef]:
        """Return the datasets with these ids that exist, by id, a few hundred per query (`Registry.getDatasets`)."""
        idents = list(dict.fromkeys(toUuid(i) for i in ids))
        table = schema.datasetTable
        out: dict[uuid.UUID, DatasetRef] = {}
        with self._db.read() as connection:
            for chunk in chunks(idents):
                statement = sa.select(table.c.id, table.c.datasetTypeId, table.c.runId, table.c.dataId).where(
                    table.c.id.in_(chunk)
                )
                for row in connection.execute(statement):
                    ident = toUuid(row.id)
                    out[ident] = DatasetRef._trusted(
                        self.types.datasetTypeById(row.datasetTypeId),
                        decodeDataId(row.dataId),
                        ident,
                        self.types.runName(row.runId),
                    )
        return out

    def removeDatasets(self, refs: Iterable[DatasetRef]) -> None:
        """Remove datasets and their locations (`Registry.removeDatasets`)."""
        ids = list(dict.fromkeys(ref.id for ref in refs))
        with self._db.write() as connection:
            if ids:
                self.removals.noteRemoval(connection)
            for chunk in chunks(ids):
                for table in (schema.datasetLocationTable, schema.datasetDimensionTable):
                    connection.execute(sa.delete(table).where(table.c.datasetId.in_(chunk)))
                connection.execute(sa.delete(schema.datasetTable).where(schema.datasetTable.c.id.in_(chunk)))

    def noteRunRemoval(self) -> None:
        """Replace the removal token in the transaction that removes a run (see `removals`)."""
        with self._db.write() as connection:
            self.removals.noteRemoval(connection)

    def addRemovalListener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` when a lookup sees another registry's removals (`Registry.addRemovalListener`)."""
        self.removals.addListener(listener)

    def inCollections(self, entries: Sequence[SearchEntry]) -> sa.ColumnElement[bool]:
        """Return the condition that a ``dataset`` row is in one of the collections ``entries``."""
        table = schema.datasetTable
        runIds = [e.id for e in entries if e.type == CollectionType.RUN]
        conditions: list[sa.ColumnElement[bool]] = [table.c.runId.in_(runIds)] if runIds else []
        conditions += [
            table.c.id.in_(self.types.associations.membership(e, None))
            for e in entries
            if e.type != CollectionType.RUN
        ]
        return sa.or_(*conditions) if conditions else sa.false()

    # -- TAGGED and CALIBRATION collections --

    def _storedRows(self, refs: Iterable[DatasetRef], verb: str) -> list[tuple[DatasetRef, int, str]]:
        """Return (ref, dataset type id, canonical data ID) as stored, for refs the registry holds.

        Raises
        ------
        MissingDatasetError
            A ref is not in the registry.
        DatasetTypeError
            A ref is a component ref.
        """
        refList = list(dict.fromkeys(refs))
        for ref in refList:
            if not isinstance(ref, DatasetRef):
                raise ArgumentTypeError(f"Cannot {verb} {type(ref).__name__} {ref!r}: give DatasetRefs.")
            if ref.isComponent():
                self.types.resolveParentType(ref.datasetType, verb)  # raises, naming the parent
        stored: dict[Any, tuple[int, str]] = {}
        with self._db.read() as connection:
            for chunk in chunks([ref.id for ref in refList]):
                rows = connection.execute(
                    sa.select(_dataset.c.id, _dataset.c.datasetTypeId, _dataset.c.dataId).where(
                        _dataset.c.id.in_(chunk)
                    )
                )
                stored.update({row.id: (row.datasetTypeId, row.dataId) for row in rows})
        missing = [ref for ref in refList if ref.id not in stored]
        if missing:
            raise MissingDatasetError(
                f"Cannot {verb} {len(missing)} dataset(s) the registry does not hold, such as {missing[0]}; "
                "nothing was done."
            )
        return [(ref, *stored[ref.id]) for ref in refList]

    def _requireCollection(self, name: str, kind: CollectionType, verb: str) -> int:
        """Return the id of TAGGED or CALIBRATION collection ``name``, which must be of ``kind``.

        Raises
        ------
        CollectionError
            ``name`` is a collection of another type.
        MissingRunError
            No collection has that name.
        """
        if self.types.associations.lookup(name) is None and (
            self.types.leafType(name) is not None or self.types.chains.isChain(name)
        ):
            raise CollectionError(
                f"Cannot {verb}: {name!r} is a {self.types.getCollectionType(name).value} collection, "
                f"not {kind.value}."
            )
        return self.types.associations.require(name, kind, verb)

    def associate(self, collection: str, refs: Iterable[DatasetRef]) -> None:
        """Tag existing datasets in TAGGED ``collection`` (`Registry.associate`)."""
        collectionId = self._requireCollection(collection, CollectionType.TAGGED, "associate")
        rows = self._storedRows(refs, f"associate with {collection!r}")
        self.types.associations.associate(collection, collectionId, rows)

    def disassociate(self, collection: str, refs: Iterable[DatasetRef]) -> None:
        """Untag datasets from TAGGED ``collection`` (`Registry.disassociate`)."""
        collectionId = self._requireCollection(collection, CollectionType.TAGGED, "disassociate")
        self.types.associations.disassociate(collectionId, (ref.id for ref in refs))

    def certify(self, collection: str, refs: Iterable[DatasetRef], timespan: Any) -> None:
        """Certify existing datasets in CALIBRATION ``collection`` for ``timespan`` (`Registry.certify`)."""
        collectionId = self._requireCollection(collection, CollectionType.CALIBRATION, "certify")
        if isinstance(timespan, datetime.datetime):
            raise ArgumentTypeError(
                f"certify in {collection!r}: a validity timespan is Timespan(begin, end) (None for an "
                f"open end), not the single time {timespan!r}."
            )
        validity = toValidity(timespan, f"certify in {collection!r}")
        rows = self._storedRows(refs, f"certify in {collection!r}")
        self.types.associations.certify(collection, collectionId, rows, validity)

    def decertify(
        self,
        collection: str,
        datasetType: DatasetType | str,
        timespan: Any,
        *,
        dataIds: Iterable[Mapping[str, Any]] | None = None,
    ) -> int:
        """Take ``timespan`` out of the validity of datasets of one type (`Registry.decertify`)."""
        collectionId = self._requireCollection(collection, CollectionType.CALIBRATION, "decertify")
        typeId, parentType = self.types.resolveParentType(datasetType, "decertify")
        validity = toValidity(timespan, f"decertify in {collection!r}")
        texts = None
        if dataIds is not None:
            texts = [encodeDataId(parentType, self._coerceDataId(parentType, d))[1] for d in dataIds]
        return self.types.associations.decertify(collectionId, typeId, validity, texts)

    def queryCertifications(
        self, collection: str, datasetType: DatasetType | str
    ) -> list[tuple[DatasetRef, Timespan]]:
        """Return each dataset of one type certified in ``collection`` with its validity."""
        collectionId = self._requireCollection(collection, CollectionType.CALIBRATION, "query")
        typeId, _ = self.types.resolveParentType(datasetType, "query")
        out = []
        for ident, _, validity in self.types.associations.certifications(collectionId, typeId):
            ref = self.getDataset(ident)
            if ref is not None:
                out.append((ref, validity))
        return out

    # -- removing runs and dataset types --

    def someDatasetsInRun(self, run: str, limit: int) -> list[DatasetRef]:
        """Return at most ``limit`` datasets of ``run`` (for removal in bounded memory)."""
        runId = self.types.currentRunId(run)
        with self._db.read() as connection:
            rows = connection.execute(
                sa.select(_dataset.c.id, _dataset.c.datasetTypeId, _dataset.c.dataId)
                .where(_dataset.c.runId == runId)
                .limit(limit)
            ).all()
        return [
            DatasetRef._trusted(
                self.types.datasetTypeById(row.datasetTypeId), decodeDataId(row.dataId), row.id, run
            )
            for row in rows
        ]

    def countByType(self, typeId: int) -> tuple[int, list[str]]:
        """Return how many datasets of dataset type ``typeId`` exist and the runs (a few) holding them."""
        with self._db.read() as connection:
            count = connection.execute(
                sa.select(sa.func.count()).select_from(_dataset).where(_dataset.c.datasetTypeId == typeId)
            ).scalar_one()
            runIds = list(
                connection.execute(
                    sa.select(_dataset.c.runId).where(_dataset.c.datasetTypeId == typeId).distinct().limit(5)
                ).scalars()
            )
        return int(count), [self.types.runName(r) for r in runIds]
