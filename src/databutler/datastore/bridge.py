"""How a datastore talks to what is outside it: locations and records storage.

Locations: a datastore given a ``registry`` calls `DatasetLocationRegistry.addDatasetLocations`
after it stores datasets and `DatasetLocationRegistry.removeDatasetLocations` after it stops
holding them (removed, evicted, expired or rolled back). Any object with these two methods will
do; the SQL registry implements them, and `InMemoryLocationRegistry` is a small in-process one.

Records storage (what LSST daf_butler calls opaque table storage): a datastore that keeps
records of its own (a `FileDatastore`: which file holds which dataset) defines their table as a
`RecordTableSpec` and asks a `RecordStorage` for it with `RecordStorage.registerRecordTable`.
The `RecordTable` it gets back inserts, fetches and deletes rows by equality on named fields and
groups its calls in a transaction. Three implementations: a SQL registry's (the table lives in
the registry's database and its writes join the registry's transactions, so a put commits once),
a standalone SQL one for a datastore with no registry (`databutler.registry.records`, built from
the same engine recipe as the registry), and `InMemoryRecordStorage` here, for tests and for a
worker that writes with no registry and hands its records over afterwards (`RecordTable.fetch`
with no condition returns every row).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..dataset_ref import DatasetRef
from ..exceptions import ConfigError, RecordConflictError

__all__ = [
    "DatasetLocationRegistry",
    "InMemoryLocationRegistry",
    "InMemoryRecordStorage",
    "RecordField",
    "RecordStorage",
    "RecordStorageProvider",
    "RecordTable",
    "RecordTableSpec",
]


@runtime_checkable
class DatasetLocationRegistry(Protocol):
    """The part of a registry that datastores talk to."""

    def addDatasetLocations(self, datastoreName: str, refs: Iterable[DatasetRef]) -> None:
        """Record that datastore ``datastoreName`` now holds ``refs``."""

    def removeDatasetLocations(self, datastoreName: str, refs: Iterable[DatasetRef]) -> None:
        """Record that datastore ``datastoreName`` no longer holds ``refs``."""


class InMemoryLocationRegistry:
    """A thread-safe, in-process `DatasetLocationRegistry`: dataset id → datastore names."""

    def __init__(self) -> None:
        self._locations: dict[uuid.UUID, set[str]] = {}
        self._lock = threading.Lock()

    def addDatasetLocations(self, datastoreName: str, refs: Iterable[DatasetRef]) -> None:
        """Record that datastore ``datastoreName`` now holds ``refs``."""
        with self._lock:
            for ref in refs:
                self._locations.setdefault(ref.id, set()).add(datastoreName)

    def removeDatasetLocations(self, datastoreName: str, refs: Iterable[DatasetRef]) -> None:
        """Record that datastore ``datastoreName`` no longer holds ``refs``."""
        with self._lock:
            for ref in refs:
                names = self._locations.get(ref.id)
                if names is not None:
                    names.discard(datastoreName)
                    if not names:
                        del self._locations[ref.id]

    def getDatasetLocations(self, ref: DatasetRef) -> frozenset[str]:
        """Return the names of the datastores that hold ``ref``."""
        with self._lock:
            return frozenset(self._locations.get(ref.id, ()))

    def __len__(self) -> int:
        """Return the number of datasets stored in at least one datastore."""
        with self._lock:
            return len(self._locations)


# -- records storage --


@dataclass(frozen=True, slots=True)
class RecordField:
    """One field (column) of a records table.

    Parameters
    ----------
    name : str
        The field's name (camelCase, as every name is).
    type : type
        `str`, `int` or `float`.
    length : int, optional
        The longest value of a `str` field.
    nullable : bool
        Whether the value may be `None`.
    primaryKey : bool
        Part of the primary key (every table has one).
    """

    name: str
    type: type
    length: int | None = None
    nullable: bool = False
    primaryKey: bool = False


@dataclass(frozen=True, slots=True)
class RecordTableSpec:
    """What a datastore's records table is: its name, fields and unique field sets.

    Parameters
    ----------
    name : str
        The table's name; one name, one table, in whatever storage holds it.
    fields : tuple of RecordField
        The fields, in order.
    unique : tuple of (str, tuple of str)
        Named sets of fields whose values no two rows share (besides the primary key); a fetch
        by such a set (a path, say) is an indexed lookup.
    """

    name: str
    fields: tuple[RecordField, ...]
    unique: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def primaryKey(self) -> tuple[str, ...]:
        """The names of the primary-key fields, in order."""
        return tuple(f.name for f in self.fields if f.primaryKey)

    @property
    def fieldNames(self) -> tuple[str, ...]:
        """The names of every field, in order."""
        return tuple(f.name for f in self.fields)


class RecordTable(Protocol):
    """One records table, from `RecordStorage.registerRecordTable`.

    Each call outside `transaction` is a transaction of its own. Inside it, calls on the same
    thread see each other's rows and take effect only if the block succeeds; blocks nest.
    A condition ``field=value`` is equality; ``field=[v1, v2]`` (a list, tuple or set) is
    membership.
    """

    spec: RecordTableSpec

    def insert(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``rows`` (one value per field), all or none.

        Raises
        ------
        RecordConflictError
            A row has the primary key or a unique field set of a row already there.
        """

    def insertNew(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Insert the rows of ``rows`` that conflict with no row there; return those inserted."""

    def fetch(self, **where: Any) -> list[dict[str, Any]]:
        """Return the rows whose fields match ``where`` (every row if empty), field → value."""

    def delete(self, **where: Any) -> int:
        """Delete the rows whose fields equal ``where``; return how many."""

    def count(self, **where: Any) -> int:
        """Return how many rows have fields equal to ``where``."""

    def transaction(self) -> AbstractContextManager[None]:
        """Group calls: if the block raises, none of them takes effect."""

    @property
    def inTransaction(self) -> bool:
        """Whether this thread is inside a transaction of this table's storage."""

    @property
    def exclusiveWrites(self) -> bool:
        """Whether a write transaction keeps every other writer out until it ends (SQLite, memory).

        Then nothing another writer could insert needs holding while a transaction runs.
        """


@runtime_checkable
class RecordStorage(Protocol):
    """Where datastores keep records tables."""

    def registerRecordTable(self, spec: RecordTableSpec) -> RecordTable:
        """Return the table ``spec`` describes, creating it if missing.

        A table that exists already is opened without a write (a reader never waits behind a
        writer to open it).

        Raises
        ------
        ConfigError
            A table of that name is registered with another spec.
        """

    def close(self) -> None:
        """Release what the storage opened itself (a registry's storage leaves the registry's)."""

    @property
    def isReadOnly(self) -> bool:
        """Whether the storage refuses writes (a registry opened read-only)."""


@runtime_checkable
class RecordStorageProvider(Protocol):
    """A registry (or a chain's relay to one) that offers datastores a `RecordStorage`."""

    @property
    def recordStorage(self) -> RecordStorage | None:
        """Where datastores may keep records tables, or `None` if it offers none."""


class _MemoryTable:
    """A `RecordTable` in process memory (see `InMemoryRecordStorage`)."""

    def __init__(self, spec: RecordTableSpec, storage: InMemoryRecordStorage) -> None:
        self.spec = spec
        self._storage = storage
        self._rows: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._keys = [spec.primaryKey, *(fields for _, fields in spec.unique)]
        self._indexes: list[dict[tuple[Any, ...], tuple[Any, ...]]] = [{} for _ in spec.unique]

    def _row(self, given: Mapping[str, Any]) -> dict[str, Any]:
        row = {name: given.get(name) for name in self.spec.fieldNames}
        for field in self.spec.fields:
            value = row[field.name]
            if value is None and not field.nullable:
                raise RecordConflictError(
                    f"Records table {self.spec.name!r}: field {field.name!r} needs a value, not None."
                )
        return row

    def insert(self, rows: Sequence[Mapping[str, Any]]) -> None:
        with self.transaction():
            for given in rows:
                row = self._row(given)
                if not self._tryInsert(row):
                    raise RecordConflictError(
                        f"Records table {self.spec.name!r} already has a row with the key or a unique "
                        f"value of {row!r}."
                    )

    def insertNew(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        with self.transaction():
            inserted = [self._row(given) for given in rows]
            return [dict(row) for row in inserted if self._tryInsert(row)]

    def _tryInsert(self, row: dict[str, Any]) -> bool:
        key = tuple(row[n] for n in self.spec.primaryKey)
        conflict = key in self._rows or any(
            tuple(row[n] for n in fields) in index
            for (_, fields), index in zip(self.spec.unique, self._indexes, strict=True)
        )
        if conflict:
            return False
        self._put(key, row)
        self._storage._undo(self._take, key)
        return True

    def _put(self, key: tuple[Any, ...], row: dict[str, Any]) -> None:
        self._rows[key] = row
        for (_, fields), index in zip(self.spec.unique, self._indexes, strict=True):
            index[tuple(row[n] for n in fields)] = key

    def _take(self, key: tuple[Any, ...]) -> None:
        row = self._rows.pop(key)
        for (_, fields), index in zip(self.spec.unique, self._indexes, strict=True):
            del index[tuple(row[n] for n in fields)]

    def _matching(self, where: Mapping[str, Any]) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        unknown = set(where) - set(self.spec.fieldNames)
        if unknown:
            raise ConfigError(f"Records table {self.spec.name!r} has no field(s) {sorted(unknown)}.")
        lists = {n: set(v) for n, v in where.items() if isinstance(v, list | tuple | set | frozenset)}
        if lists:
            items = self._rows.items()
            return [
                (k, r)
                for k, r in items
                if all(r[n] in lists[n] if n in lists else r[n] == v for n, v in where.items())
            ]
        for (_, fields), index in zip(self.spec.unique, self._indexes, strict=True):
            if set(fields) == set(where):  # an indexed lookup
                key = index.get(tuple(where[n] for n in fields))
                return [] if key is None else [(key, self._rows[key])]
        items = self._rows.items()
        return [(k, r) for k, r in items if all(r[n] == v for n, v in where.items())]

    def fetch(self, **where: Any) -> list[dict[str, Any]]:
        with self._storage._lock:
            return [dict(row) for _, row in self._matching(where)]

    def delete(self, **where: Any) -> int:
        with self.transaction():
            found = self._matching(where)
            for key, row in found:
                self._take(key)
                self._storage._undo(self._put, key, row)
            return len(found)

    def count(self, **where: Any) -> int:
        with self._storage._lock:
            return len(self._matching(where))

    def transaction(self) -> AbstractContextManager[None]:
        return self._storage.transaction()

    @property
    def inTransaction(self) -> bool:
        return self._storage.inTransaction

    @property
    def exclusiveWrites(self) -> bool:
        return True  # a transaction holds the storage's lock


class InMemoryRecordStorage:
    """A `RecordStorage` in process memory: thread-safe, with transactions that roll back.

    A transaction holds the storage's lock until it ends (as a SQLite writer holds the
    database's), so other threads' calls wait for it and never see its rows half-written.
    """

    def __init__(self) -> None:
        self._tables: dict[str, _MemoryTable] = {}
        self._lock = threading.RLock()
        self._local = threading.local()

    def registerRecordTable(self, spec: RecordTableSpec) -> RecordTable:
        """Return the table ``spec`` describes, making it if new.

        Raises
        ------
        ConfigError
            A table of that name is registered with another spec.
        """
        with self._lock:
            table = self._tables.get(spec.name)
            if table is None:
                table = self._tables[spec.name] = _MemoryTable(spec, self)
            elif table.spec != spec:
                raise ConfigError(f"Records table {spec.name!r} is already registered with another spec.")
            return table

    def close(self) -> None:
        """Nothing to release: the rows go with the object."""

    @property
    def isReadOnly(self) -> bool:
        """`False`: memory is always writable."""
        return False

    @property
    def inTransaction(self) -> bool:
        """Whether this thread is inside `transaction`."""
        return bool(getattr(self._local, "undo", None))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group calls on every table of this storage: if the block raises, none takes effect."""
        with self._lock:
            undo: list[list[tuple[Any, ...]]] = getattr(self._local, "undo", None) or []
            self._local.undo = undo
            undo.append([])
            try:
                yield
            except BaseException:
                for func, *args in reversed(undo.pop()):
                    func(*args)
                raise
            finished = undo.pop()
            if undo:
                undo[-1].extend(finished)

    def _undo(self, func: Any, *args: Any) -> None:
        self._local.undo[-1].append((func, *args))
