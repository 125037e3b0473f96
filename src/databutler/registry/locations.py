"""`LocationManager`: which datastores hold which datasets, in a `SqlRegistry`.

The `DatasetLocationRegistry` half of the `Registry`: a row in ``dataset_location`` per
(dataset, datastore), written when a datastore stores a dataset and deleted when it stops
holding it; a dataset's removal deletes its rows too (by cascade, and by `DatasetManager`).
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Iterable

import sqlalchemy as sa

from ..dataset_ref import DatasetRef
from ..exceptions import MissingDatasetError, RegistryError
from . import schema
from .connections import ConnectionManager, dialectInsert
from .data_ids import CHUNK, chunks

__all__ = ["LocationManager"]

_location = schema.datasetLocationTable
_REMOVE_LOCATIONS = sa.delete(_location).where(
    _location.c.datastoreName == sa.bindparam("datastoreName"),
    _location.c.datasetId.in_(sa.bindparam("ids", expanding=True)),
)
_HELD_LOCATIONS = sa.select(_location.c.datasetId).where(
    _location.c.datastoreName == sa.bindparam("datastoreName"),
    _location.c.datasetId.in_(sa.bindparam("ids", expanding=True)),
)
_LOCATION_KEYS = ("datasetId", "datastoreName")
_UUID_INT = operator.attrgetter("int")
_GET_LOCATIONS = sa.select(_location.c.datastoreName).where(_location.c.datasetId == sa.bindparam("id"))


class LocationManager:
    """Records which datastores hold which datasets.

    Parameters
    ----------
    db : ConnectionManager
        The registry's connections.
    """

    def __init__(self, db: ConnectionManager) -> None:
        self._db = db
        self._insertLocations = dialectInsert(db, _location).on_conflict_do_nothing(
            index_elements=[_location.c.datasetId, _location.c.datastoreName]
        )

    def addDatasetLocations(self, datastoreName: str, refs: Iterable[DatasetRef]) -> None:
        """Record that a datastore holds ``refs`` (`Registry.addDatasetLocations`)."""
        ids = list(dict.fromkeys(ref.id for ref in refs))
        if not ids:
            return
        if self._db.isSqlite:  # in the order of its primary key's B-tree, as datasets are added
            ids.sort(key=_UUID_INT)
        rows = [(i, datastoreName) for i in ids]
        try:
            with self._db.write(atomic=len(rows) == 1) as connection:
                self._db.insertValues(connection, self._insertLocations, _LOCATION_KEYS, rows)
        except sa.exc.IntegrityError as exc:
            raise self._explainMissing(ids, datastoreName, exc) from exc

    def _explainMissing(self, ids: list[uuid.UUID], datastoreName: str, exc: Exception) -> RegistryError:
        table = schema.datasetTable
        with self._db.read() as connection:
            for chunk in chunks(ids):
                known = set(connection.execute(sa.select(table.c.id).where(table.c.id.in_(chunk))).scalars())
                missing = [i for i in chunk if i not in known]
                if missing:
                    return MissingDatasetError(
                        f"Datastore {datastoreName!r} cannot record dataset {missing[0]}: no dataset with "
                        "that id is registered; add it to the registry first."
                    )
        return RegistryError(f"Could not record locations in {datastoreName!r}: {exc}")

    def removeDatasetLocations(self, datastoreName: str, refs: Iterable[DatasetRef]) -> None:
        """Record that a datastore no longer holds ``refs`` (`Registry.removeDatasetLocations`)."""
        ids = list(dict.fromkeys(ref.id for ref in refs))
        if not ids:
            return
        if not self._db.inTransaction:
            # Look before taking the write lock: undoing a put whose registry transaction has
            # already rolled back (and most evictions) has nothing to remove. A caller that
            # holds a lock of its own while telling the registry (a datastore keeping its
            # notifications in order) then never waits here for another thread's transaction.
            with self._db.read() as connection:
                held = {
                    ident
                    for chunk in chunks(ids)
                    for ident in connection.execute(
                        _HELD_LOCATIONS, {"datastoreName": datastoreName, "ids": list(chunk)}
                    ).scalars()
                }
            ids = [ident for ident in ids if ident in held]
            if not ids:
                return
        with self._db.write(atomic=len(ids) <= CHUNK) as connection:
            for chunk in chunks(ids):
                connection.execute(_REMOVE_LOCATIONS, {"datastoreName": datastoreName, "ids": list(chunk)})

    def getDatasetLocations(self, ref: DatasetRef) -> set[str]:
        """Return the names of the datastores that hold ``ref`` (`Registry.getDatasetLocations`)."""
        with self._db.read() as connection:
            return set(connection.execute(_GET_LOCATIONS, {"id": ref.id}).scalars())
