"""TAGGED and CALIBRATION collections: datasets associated with a collection, not written into it.

A dataset is written into exactly one RUN; it may also be *associated* with any number of
TAGGED collections (at most one dataset per dataset type and data ID in each, as in a run)
and *certified* in CALIBRATION collections for a validity timespan (at most one dataset per
dataset type and data ID at any instant). Associating or certifying never copies a dataset.

The tables (created on open in registries made before these collections existed)::

    collection              id PK, name UNIQUE, type                 -- TAGGED or CALIBRATION
    collection_tag          collection_id FK PK, dataset_id FK PK, dataset_type_id, data_id
                            UNIQUE (collection_id, dataset_type_id, data_id)
    collection_calibration  id PK, collection_id FK, dataset_id FK, dataset_type_id, data_id,
                            valid_begin, valid_end   INDEX (collection_id, dataset_type_id, data_id)

``data_id`` is the dataset's canonical data ID (see `databutler.registry.schema`), so that "one
per data ID" is a UNIQUE constraint for tags and one index probe for calibrations. A validity
timespan is half-open, ``[valid_begin, valid_end)`` in nanoseconds since 1970 UTC; an unbounded
end is stored as the smallest or largest 64-bit integer, so every overlap test is two
comparisons. Overlapping validity for one data ID is refused by a check inside the certifying
transaction, which first locks the collection's row (``SELECT ... FOR UPDATE`` on PostgreSQL;
SQLite's write transaction already excludes other writers), so two processes certifying at once
cannot both pass the check.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa

from ..dataset_ref import DatasetRef, checkRunName
from ..dimensions import Timespan
from ..exceptions import (
    ArgumentTypeError,
    CollectionError,
    ConflictingDatasetError,
    MissingRunError,
)
from . import schema
from .collections import CollectionType, createMissingTables
from .connections import ConnectionManager, dialectInsert
from .data_ids import chunks
from .queries import timeToNanoseconds
from .removals import withRemovalVersion

__all__ = [
    "AssociationManager",
    "SearchEntry",
    "associationMetadata",
    "calibrationTable",
    "collectionTable",
    "tagTable",
    "toValidity",
]

MIN_TIME = -(2**63)
MAX_TIME = 2**63 - 1

associationMetadata = sa.MetaData(naming_convention=schema.metadata.naming_convention)

collectionTable = sa.Table(
    "collection",
    associationMetadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("type", sa.String(16), nullable=False),
)


def _memberColumns(**options: Any) -> list[sa.Column[Any]]:
    """Return the columns of a dataset's membership of a TAGGED or CALIBRATION collection.

    The collection and the dataset (each row goes with either), and the dataset's type and data
    ID, copied so that a constraint can keep one dataset per type and data ID. ``options`` are
    the first two columns' other keywords (``primary_key=True`` or ``nullable=False``).
    """
    return [
        sa.Column(
            "collection_id",
            sa.Integer,
            sa.ForeignKey(collectionTable.c.id, ondelete="CASCADE"),
            key="collectionId",
            **options,
        ),
        schema.datasetIdColumn(**options),
        sa.Column("dataset_type_id", sa.Integer, nullable=False, key="datasetTypeId"),
        schema.dataIdColumn(),
    ]


tagTable = sa.Table(
    "collection_tag",
    associationMetadata,
    *_memberColumns(primary_key=True),
    sa.UniqueConstraint("collectionId", "datasetTypeId", "dataId"),
    sqlite_with_rowid=False,
)

calibrationTable = sa.Table(
    "collection_calibration",
    associationMetadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    *_memberColumns(nullable=False),
    sa.Column("valid_begin", sa.BigInteger, nullable=False, key="validBegin"),
    sa.Column("valid_end", sa.BigInteger, nullable=False, key="validEnd"),
    sa.Index(None, "collectionId", "datasetTypeId", "dataId"),
    sa.Index(None, "datasetId"),
)


class SearchEntry(NamedTuple):
    """One collection of a search path, chains flattened: its name, type and id."""

    name: str
    type: CollectionType
    id: int


def _nanos(value: datetime.datetime | None, unbounded: int) -> int:
    if value is None:
        return unbounded
    if not isinstance(value, datetime.datetime):
        raise ArgumentTypeError(f"A timespan's ends are datetimes (or None: unbounded), not {value!r}.")
    return timeToNanoseconds(value)


def toValidity(timespan: Any, what: str) -> tuple[int, int]:
    """Return ``timespan`` as ``(begin, end)`` nanoseconds, half-open; a datetime is one instant.

    Raises
    ------
    ArgumentTypeError
        ``timespan`` is neither a datetime nor a ``(begin, end)`` pair of datetimes or `None`.
    CollectionError
        The timespan ends before it begins, or is empty.
    """
    if isinstance(timespan, datetime.datetime):
        instant = timeToNanoseconds(timespan)
        return instant, instant + 1
    if not isinstance(timespan, tuple | list) or len(timespan) != 2:
        raise ArgumentTypeError(
            f"{what}: a timespan is Timespan(begin, end) or a (begin, end) pair of datetimes "
            f"(None for an open end), or one datetime; not {timespan!r}."
        )
    begin, end = _nanos(timespan[0], MIN_TIME), _nanos(timespan[1], MAX_TIME)
    if begin >= end:
        raise CollectionError(
            f"{what}: timespan {tuple(timespan)!r} is empty (its end is not after its begin)."
        )
    return begin, end


def showValidity(begin: int, end: int) -> str:
    """Return the validity ``[begin, end)`` (nanoseconds) as text, e.g. ``[2024-01-01T00:00:00Z, unbounded)``."""
    shown = [t.isoformat().replace("+00:00", "Z") if t else "unbounded" for t in fromValidity(begin, end)]
    return f"[{shown[0]}, {shown[1]})"


def fromValidity(begin: int, end: int) -> Timespan:
    """Return the `Timespan` stored as ``begin``, ``end`` nanoseconds."""
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)

    def toTime(value: int) -> datetime.datetime | None:
        if value in (MIN_TIME, MAX_TIME):
            return None
        return epoch + datetime.timedelta(microseconds=value // 1000)

    return Timespan(toTime(begin), toTime(end))


def _oneRefPerKey(
    rows: Sequence[tuple[DatasetRef, int, str]], conflict: Callable[[DatasetRef, DatasetRef], str]
) -> dict[tuple[int, str], DatasetRef]:
    """Return the refs of ``rows`` (ref, dataset type id, canonical data ID) by type id and data ID.

    Raises
    ------
    ConflictingDatasetError
        Two different datasets have the same type and data ID; ``conflict(one, other)`` is the message.
    """
    byKey: dict[tuple[int, str], DatasetRef] = {}
    for ref, typeId, text in rows:
        other = byKey.setdefault((typeId, text), ref)
        if other.id != ref.id:
            raise ConflictingDatasetError(conflict(other, ref))
    return byKey


class AssociationManager:
    """The TAGGED and CALIBRATION collections of one registry, and what is associated with them.

    Parameters
    ----------
    db : ConnectionManager
        The registry's connections.
    """

    def __init__(self, db: ConnectionManager) -> None:
        self._db = db
        self._present = True  # False: a read-only registry made before these tables, so none exist

    def createTables(self) -> None:
        """Create the tables that registries made before TAGGED and CALIBRATION collections lack."""
        self._present = createMissingTables(self._db, associationMetadata)

    # -- the collections --

    def lookup(self, name: str) -> tuple[int, CollectionType] | None:
        """Return the id and type of TAGGED or CALIBRATION collection ``name``, or `None`."""
        if not self._present or not isinstance(name, str):
            return None
        with self._db.read() as connection:
            row = connection.execute(
                sa.select(collectionTable.c.id, collectionTable.c.type).where(collectionTable.c.name == name)
            ).first()
        return None if row is None else (int(row.id), CollectionType(row.type))

    def names(self, types: set[CollectionType]) -> list[str]:
        """Return the names of the collections of ``types`` (TAGGED, CALIBRATION) that exist."""
        wanted = [t.value for t in types if t in (CollectionType.TAGGED, CollectionType.CALIBRATION)]
        if not self._present or not wanted:
            return []
        with self._db.read() as connection:
            return list(
                connection.execute(
                    sa.select(collectionTable.c.name).where(collectionTable.c.type.in_(wanted))
                ).scalars()
            )

    def register(self, name: str, collectionType: CollectionType) -> bool:
        """Register a TAGGED or CALIBRATION collection; return `True` if it is new.

        The caller has checked that no run or chain has the name.

        Raises
        ------
        CollectionError
            A collection of that name but another type exists.
        """
        checkRunName(name)
        found = self.lookup(name)
        if found is not None:
            if found[1] != collectionType:
                raise CollectionError(
                    f"{name!r} is a {found[1].value} collection, not {collectionType.value}; "
                    "use another name."
                )
            return False
        with self._db.write() as connection:
            statement = (
                dialectInsert(self._db, collectionTable)
                .values(name=name, type=collectionType.value)
                .on_conflict_do_nothing()
            )
            inserted = bool(connection.execute(statement).rowcount)
        if not inserted:
            return self.register(name, collectionType)  # another process registered it: check its type
        return True

    def require(self, name: str, collectionType: CollectionType, verb: str) -> int:
        """Return the id of collection ``name``, which must be of ``collectionType``.

        Raises
        ------
        MissingRunError
            No such TAGGED or CALIBRATION collection (the caller names other kinds).
        CollectionError
            It is of another type.
        """
        found = self.lookup(name)
        if found is None:
            raise MissingRunError(
                f"Cannot {verb}: {name!r} is not a registered {collectionType.value} collection; "
                f"register it with registerCollection({name!r}, {collectionType.value!r})."
            )
        if found[1] != collectionType:
            raise CollectionError(
                f"Cannot {verb}: {name!r} is a {found[1].value} collection, not {collectionType.value}."
            )
        return found[0]

    def remove(self, collectionId: int) -> None:
        """Delete a TAGGED or CALIBRATION collection and its associations (not the datasets)."""
        with self._db.write() as connection:
            for table in (tagTable, calibrationTable):
                connection.execute(sa.delete(table).where(table.c.collectionId == collectionId))
            connection.execute(sa.delete(collectionTable).where(collectionTable.c.id == collectionId))

    def _lock(self, connection: sa.Connection, collectionId: int) -> None:
        """Hold collection ``collectionId``'s row until the transaction ends (PostgreSQL)."""
        if not self._db.isSqlite:
            connection.execute(
                sa.select(collectionTable.c.id).where(collectionTable.c.id == collectionId).with_for_update()
            )

    # -- TAGGED --

    def associate(
        self, collection: str, collectionId: int, rows: Sequence[tuple[DatasetRef, int, str]]
    ) -> None:
        """Tag datasets ``rows`` (ref, dataset type id, canonical data ID) in ``collection``.

        A dataset already tagged there is left as it is.

        Raises
        ------
        ConflictingDatasetError
            Another dataset of the same type and data ID is tagged there (or given twice);
            nothing was tagged.
        """
        byKey = _oneRefPerKey(
            rows,
            lambda one, other: (
                f"Cannot associate both {one} and {other} with TAGGED collection "
                f"{collection!r}: a tagged collection holds one dataset per dataset type and data ID; "
                "nothing was tagged."
            ),
        )
        with self._db.write() as connection:
            self._lock(connection, collectionId)
            items = list(byKey.items())
            for chunk in chunks(items):
                existing = connection.execute(
                    sa.select(tagTable.c.datasetId, tagTable.c.datasetTypeId, tagTable.c.dataId).where(
                        tagTable.c.collectionId == collectionId,
                        tagTable.c.dataId.in_(sorted({text for (_, text), _ in chunk})),
                    )
                ).all()
                held = {(row.datasetTypeId, row.dataId): row.datasetId for row in existing}
                new = []
                for key, ref in chunk:
                    heldId = held.get(key)
                    if heldId is None:
                        new.append(
                            {
                                "collectionId": collectionId,
                                "datasetId": ref.id,
                                "datasetTypeId": key[0],
                                "dataId": key[1],
                            }
                        )
                    elif heldId != ref.id:
                        raise ConflictingDatasetError(
                            f"Cannot associate {ref} with TAGGED collection {collection!r}: it already holds "
                            f"dataset {heldId} of {ref.datasetType.name!r} with data ID {dict(ref.dataId)}; "
                            "disassociate that one first. Nothing was tagged."
                        )
                if new:
                    connection.execute(sa.insert(tagTable), new)

    def disassociate(self, collectionId: int, ids: Iterable[Any]) -> None:
        """Untag the datasets with ``ids`` from the collection (those not tagged are ignored)."""
        idList = list(dict.fromkeys(ids))
        with self._db.write() as connection:
            for chunk in chunks(idList):
                connection.execute(
                    sa.delete(tagTable).where(
                        tagTable.c.collectionId == collectionId, tagTable.c.datasetId.in_(chunk)
                    )
                )

    # -- CALIBRATION --

    def certify(
        self,
        collection: str,
        collectionId: int,
        rows: Sequence[tuple[DatasetRef, int, str]],
        validity: tuple[int, int],
    ) -> None:
        """Certify datasets ``rows`` (ref, dataset type id, canonical data ID) for ``validity``.

        Raises
        ------
        ConflictingDatasetError
            A dataset of the same type and data ID is already certified there for a timespan that
            overlaps ``validity`` (or two are given); nothing was certified.
        """
        begin, end = validity
        seen = _oneRefPerKey(
            rows,
            lambda one, other: (
                f"Cannot certify both {one} and {other} in CALIBRATION collection "
                f"{collection!r} for the same timespan {showValidity(begin, end)}; nothing was certified."
            ),
        )
        with self._db.write() as connection:
            self._lock(connection, collectionId)
            for (typeId, text), ref in seen.items():
                clash = connection.execute(
                    sa.select(
                        calibrationTable.c.datasetId,
                        calibrationTable.c.validBegin,
                        calibrationTable.c.validEnd,
                    )
                    .where(
                        calibrationTable.c.collectionId == collectionId,
                        calibrationTable.c.datasetTypeId == typeId,
                        calibrationTable.c.dataId == text,
                        calibrationTable.c.validBegin < end,
                        calibrationTable.c.validEnd > begin,
                    )
                    .limit(1)
                ).first()
                if clash is not None:
                    raise ConflictingDatasetError(
                        f"Cannot certify {ref} in CALIBRATION collection {collection!r} for "
                        f"{showValidity(begin, end)}: dataset {clash.datasetId} of the same type and data ID "
                        f"is certified there for {showValidity(clash.validBegin, clash.validEnd)}, which "
                        "overlaps; decertify that range first. Nothing was certified."
                    )
            if seen:
                connection.execute(
                    sa.insert(calibrationTable),
                    [
                        {
                            "collectionId": collectionId,
                            "datasetId": ref.id,
                            "datasetTypeId": typeId,
                            "dataId": text,
                            "validBegin": begin,
                            "validEnd": end,
                        }
                        for (typeId, text), ref in seen.items()
                    ],
                )

    def decertify(
        self, collectionId: int, typeId: int, validity: tuple[int, int], dataIds: Sequence[str] | None
    ) -> int:
        """Take ``validity`` out of the validity of the datasets of one type (of these data IDs).

        A validity range partly inside ``validity`` is cut (in two, if ``validity`` is inside
        it); one wholly inside is deleted. Return how many ranges were changed or deleted.
        """
        begin, end = validity
        table = calibrationTable
        conditions = [
            table.c.collectionId == collectionId,
            table.c.datasetTypeId == typeId,
            table.c.validBegin < end,
            table.c.validEnd > begin,
        ]
        with self._db.write() as connection:
            self._lock(connection, collectionId)
            rows: list[Any] = []
            for chunk in chunks(list(dataIds)) if dataIds is not None else [None]:
                condition = conditions if chunk is None else [*conditions, table.c.dataId.in_(chunk)]
                rows += connection.execute(sa.select(table).where(*condition)).all()
            if not rows:
                return 0
            for chunk in chunks([row.id for row in rows]):
                connection.execute(sa.delete(table).where(table.c.id.in_(chunk)))
            kept = []
            for row in rows:
                for keptBegin, keptEnd in ((row.validBegin, begin), (end, row.validEnd)):
                    if keptBegin < keptEnd:
                        kept.append(
                            {
                                "collectionId": collectionId,
                                "datasetId": row.datasetId,
                                "datasetTypeId": typeId,
                                "dataId": row.dataId,
                                "validBegin": keptBegin,
                                "validEnd": keptEnd,
                            }
                        )
            if kept:
                connection.execute(sa.insert(table), kept)
            return len(rows)

    def certifications(self, collectionId: int, typeId: int) -> list[tuple[Any, str, Timespan]]:
        """Return (dataset id, canonical data ID, validity) of every certification of one type."""
        table = calibrationTable
        with self._db.read() as connection:
            rows = connection.execute(
                sa.select(table.c.datasetId, table.c.dataId, table.c.validBegin, table.c.validEnd)
                .where(table.c.collectionId == collectionId, table.c.datasetTypeId == typeId)
                .order_by(table.c.dataId, table.c.validBegin)
            ).all()
        return [(row.datasetId, row.dataId, fromValidity(row.validBegin, row.validEnd)) for row in rows]

    # -- searching --

    def membership(self, entry: SearchEntry, validity: tuple[int, int] | None) -> sa.Select[Any]:
        """Return a SELECT of the ids of the datasets in TAGGED or CALIBRATION ``entry``."""
        if entry.type == CollectionType.TAGGED:
            return sa.select(tagTable.c.datasetId).where(tagTable.c.collectionId == entry.id)
        statement = sa.select(calibrationTable.c.datasetId).where(calibrationTable.c.collectionId == entry.id)
        if validity is not None:
            statement = statement.where(
                calibrationTable.c.validBegin < validity[1], calibrationTable.c.validEnd > validity[0]
            )
        return statement

    def findIn(
        self,
        connection: sa.Connection,
        entry: SearchEntry,
        typeId: int,
        text: str,
        validity: tuple[int, int] | None,
    ) -> list[tuple[Any, ...]]:
        """Return (dataset id, run id, removal token) of the datasets of one type and data ID in ``entry``.

        The removal token (see `withRemovalVersion`) is read by the same statement, as every
        lookup does, so that a caller can tell whether datasets were removed elsewhere since.
        """
        dataset = schema.datasetTable
        table = tagTable if entry.type == CollectionType.TAGGED else calibrationTable
        statement = withRemovalVersion(
            sa.select(dataset.c.id, dataset.c.runId)
            .select_from(table.join(dataset, dataset.c.id == table.c.datasetId))
            .where(table.c.collectionId == entry.id, table.c.datasetTypeId == typeId, table.c.dataId == text)
        )
        if entry.type == CollectionType.CALIBRATION and validity is not None:
            statement = statement.where(table.c.validBegin < validity[1], table.c.validEnd > validity[0])
        return [tuple(row) for row in connection.execute(statement.distinct())]
