"""`ChainSearches`: a lookup by data ID through chains of runs in one statement, checked as it runs.

A search path that names a chain is resolved (`DatasetTypeManager.resolveSearch`) under the
chain version token, a ``butler_attribute`` row that every change to a chain, and every
removal of a run, replaces in the same transaction (`ChainedCollectionManager.noteChange`).
Reading that token is a statement of its own, about a third of a lookup's cost. Here a search
path whose collections all resolve to runs is kept as a `RunSearch`: the token it was resolved
under, its runs in search order with their ids read from the ``run`` table, and a lookup
statement that reads the token *in the same statement* as the datasets::

    SELECT a.value, d.id, d.run_id FROM butler_attribute AS a
    LEFT OUTER JOIN dataset AS d ON d.dataset_type_id = ? AND d.data_id = ? AND d.run_id IN (?, ?, ?)
    WHERE a.name = 'collectionChainVersion'

One row per dataset found, or one row of NULLs beside the token when none is. A statement
reads one snapshot of the database (SQLite, and PostgreSQL in either isolation level), so when
the token read is the one the search was resolved under, no chain changed and no run was
removed between the resolution and the lookup, and the runs searched are exactly those the
chains hold now, in their order. Any other token (another process changed a chain, a
transaction of this thread changed one, or one rolled back) drops the search: the lookup
then goes the general way, and the search is resolved anew. Datasets are read by the
statement itself, so one added or removed by anyone is seen at once.

Search paths with TAGGED or CALIBRATION collections, or with no chain at all (a list of runs
costs no statement to resolve), are not kept here.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa

from . import schema
from .associations import SearchEntry
from .collections import CHAIN_VERSION_NAME, CollectionType
from .connections import ConnectionManager
from .removals import RemovalWatch, withRemovalVersion
from .types_runs import DatasetTypeManager

__all__ = ["ChainSearches", "RunSearch", "throughChain"]

_dataset = schema.datasetTable
_attribute = schema.attributeTable
MAX_RUNS = 32
"""Search paths of more runs than this are not kept (their statement would be one of many shapes)."""
_MAX_KEPT = 256
"""Search paths kept at most; past that, all are forgotten and resolved again as they come."""
_STATEMENTS: dict[int, sa.Select[Any]] = {}


def _findWithVersion(count: int) -> sa.Select[Any]:
    """Return the versioned lookup of one data ID in ``count`` runs (``run0``, ``run1``...)."""
    if count not in _STATEMENTS:
        matches = sa.and_(
            _dataset.c.datasetTypeId == sa.bindparam("typeId"),
            _dataset.c.dataId == sa.bindparam("dataId"),
            _dataset.c.runId.in_([sa.bindparam(f"run{i}") for i in range(count)]),
        )
        _STATEMENTS[count] = withRemovalVersion(
            # The ids as the driver gives them (text on SQLite): only the first found is made a UUID.
            sa.select(_attribute.c.value, sa.type_coerce(_dataset.c.id, sa.Text), _dataset.c.runId)
            .select_from(_attribute.outerjoin(_dataset, matches))
            .where(_attribute.c.name == sa.bindparam("versionName"))
        )
    return _STATEMENTS[count]


class RunSearch(NamedTuple):
    """A search path resolved to runs under one chain version token."""

    version: str
    runs: tuple[tuple[str, int], ...]
    """(run name, run id) in search order."""
    params: Mapping[str, Any]
    """The statement's parameters other than the dataset type and data ID."""
    statement: sa.Select[Any]


def _key(collections: object) -> Hashable | None:
    """Return the key a search path is kept under, or `None` if it cannot be one."""
    if isinstance(collections, str):
        return collections
    if isinstance(collections, list | tuple) and all(isinstance(n, str) for n in collections):
        return tuple(collections)
    return None


def throughChain(collections: str | Sequence[str], entries: Sequence[SearchEntry]) -> bool:
    """Return whether resolving ``collections`` to ``entries`` went through a chain."""
    if isinstance(collections, str):
        return len(entries) != 1 or entries[0].name != collections
    count = len(entries)
    if count != len(collections):
        return True
    if count == 1:  # a Butler's usual search (on every lookup: a comprehension costs 0.3 µs more)
        return bool(entries[0].name != collections[0])
    return [e.name for e in entries] != list(collections)


class ChainSearches:
    """The search paths through chains of runs of one registry, each looked up in one statement.

    Parameters
    ----------
    db : ConnectionManager
        The registry's connections.
    types : DatasetTypeManager
        Resolves search paths (`DatasetTypeManager.resolveSearch`) and reads run ids.
    removals : RemovalWatch
        Given the removal token each lookup reads beside the chain token (see `removals`).
    """

    def __init__(self, db: ConnectionManager, types: DatasetTypeManager, removals: RemovalWatch) -> None:
        self._db = db
        self._types = types
        self._removals = removals
        self._kept: dict[Hashable, RunSearch] = {}

    def find(self, collections: Any, typeId: int, dataId: str) -> list[tuple[str, Any]] | None:
        """Return (run, dataset id) of each dataset of ``typeId`` and ``dataId`` in the kept search.

        In search order (the first is the one found); each id as the driver gives it (a
        `uuid.UUID`, or on SQLite its 32 hex digits). `None` when ``collections`` is not a
        kept search path or the chains changed since it was resolved (it is then forgotten):
        the caller looks the dataset up the general way, and may `learn` the path again.
        """
        if isinstance(collections, str):
            key: Hashable = collections
        elif isinstance(collections, tuple | list):
            key = tuple(collections)
        else:
            return None
        try:
            search = self._kept.get(key)
        except TypeError:  # a name that is not hashable: resolveSearch says what is wrong
            return None
        if search is None:
            return None
        params = {"typeId": typeId, "dataId": dataId, **search.params}
        with self._db.read() as connection:
            rows = self._db.selectRows(connection, search.statement, params)
        if not rows or rows[0][0] != search.version:
            self._kept.pop(key, None)
            return None
        if rows[0][3] != self._removals.seen:
            self._removals.check(rows[0][3])
        found = {runId: ident for _, ident, runId, _ in rows if ident is not None}
        return [(name, found[runId]) for name, runId in search.runs if runId in found]

    def learn(self, collections: str | Sequence[str]) -> None:
        """Keep the search path ``collections`` if it goes through a chain and holds only runs.

        Call it after resolving ``collections`` the general way found only runs: the token is
        read first, then the path is resolved again and the run ids read from the ``run``
        table (so a run removed and made again under its name since it was cached is seen),
        all before the first lookup checks the token. Nothing is kept if there is no token
        (no chain was ever made).

        Raises
        ------
        MissingRunError
            A collection is no longer registered (as `DatasetTypeManager.resolveSearch`).
        """
        key = _key(collections)
        if key is None:
            return
        version = self._types.chains.version()
        if not version:
            return
        entries = self._types.resolveSearch(collections)
        runs = {e.name: e.id for e in entries if e.type == CollectionType.RUN}
        if len(runs) != len(entries) or not runs or len(runs) > MAX_RUNS:
            return
        if self._types.refreshRunIds(runs):
            entries = self._types.resolveSearch(collections)
            runs = {e.name: e.id for e in entries if e.type == CollectionType.RUN}
            if len(runs) != len(entries) or not runs:
                return
        if len(self._kept) >= _MAX_KEPT:
            self._kept.clear()
        params = {"versionName": CHAIN_VERSION_NAME} | {f"run{i}": r for i, r in enumerate(runs.values())}
        self._kept[key] = RunSearch(version, tuple(runs.items()), params, _findWithVersion(len(runs)))
