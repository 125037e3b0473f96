"""What a FileDatastore records about its files, and the records table that holds it.

One row per file: a dataset written whole has one row (``component`` empty); a composite
that is disassembled has a row for its folder (no formatter) and one per component file. The
datastore defines the table (`RECORDS_TABLE`) and keeps it in a `RecordStorage`: the
registry's database when the datastore is given a SQL registry and configured with
``records.db: registry`` (then a Butler put writes the dataset row, its location and its file
records in one transaction, with one commit), else a database of its own. Rows are keyed by
datastore name, dataset id and component, and paths are unique per datastore, so no two
datasets can ever share a file.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ...dataset_ref import DatasetRef
from ...datastore.bridge import RecordField, RecordStorage, RecordTableSpec
from ...datastore.records import StoredItemInfo
from ...exceptions import ConfigError, UnknownStorageClassError
from ...storage_class import StorageClass, StorageClassFactory

__all__ = ["RECORDS_TABLE", "TRASH_SUFFIX", "FileRecordTable", "StoredFileInfo"]

_NAME_LENGTH = 128
"""Length of the ``datastoreName`` field."""

_HOLD_CHUNK = 500
"""Paths (or ids) per statement of `FileRecordTable.holdPaths` and its kin."""

TRASH_SUFFIX = "#trash"
"""Rows of removed files still to delete are kept under ``<datastore name>#trash``: an intent
written in the same transaction as the removal (see `FileRecordTable.trash`)."""

RECORDS_TABLE = RecordTableSpec(
    # Its names are camelCase, as in the records files of the first releases.
    "fileDatastoreRecords",
    (
        RecordField("datastoreName", str, _NAME_LENGTH, primaryKey=True),
        RecordField("datasetId", str, 36, primaryKey=True),
        RecordField("component", str, 64, primaryKey=True),
        RecordField("datasetType", str, 128),
        RecordField("path", str, 1024),
        RecordField("formatter", str, 256, nullable=True),
        RecordField("storageClass", str, 128),
        RecordField("fileSize", int),
        RecordField("checksum", str, 160, nullable=True),
        RecordField("timestamp", float),
    ),
    unique=(("fileDatastoreRecordsPath", ("datastoreName", "path")),),
)
"""The FileDatastore's records table."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredFileInfo(StoredItemInfo):
    """What a FileDatastore records about one stored file.

    Parameters
    ----------
    timestamp : float
        When the file was written, in seconds since the epoch.
    storageClass : StorageClass
        The storage class the file was written as (for a component file, the component's).
    parentID : uuid.UUID, optional
        For a component file, the id of the composite.
    path : str
        The file's path relative to the datastore root (for a disassembled composite, its folder).
    formatter : str or None
        Fully-qualified name of the formatter that wrote it; `None` for a composite's folder.
    component : str, optional
        The component held in this file, or `None` for a whole dataset.
    fileSize : int
        Size in bytes (for a composite's folder, the total of its files).
    checksum : str, optional
        ``"<algorithm>:<hex>"`` of the file's bytes (``xxh3_128`` by default, see
        ``datastore.checksum``), or `None` when checksums are off.
    """

    path: str
    formatter: str | None
    component: str | None = None
    fileSize: int = 0
    checksum: str | None = None


class FileRecordTable:
    """The records of one FileDatastore, in the table `RECORDS_TABLE` of a `RecordStorage`.

    Parameters
    ----------
    storage : RecordStorage
        Where the table is (a registry's database, a database of the datastore's own...).
    datastoreName : str
        Rows are scoped to this name, so datastores may share a table.
    storageClassFactory : StorageClassFactory
        Turns recorded storage class names back into storage classes.
    """

    def __init__(
        self, storage: RecordStorage, datastoreName: str, storageClassFactory: StorageClassFactory
    ) -> None:
        self.datastoreName = datastoreName
        self.trashName = datastoreName + TRASH_SUFFIX
        if len(self.trashName) > _NAME_LENGTH:
            raise ConfigError(f"FileDatastore name {datastoreName!r} is too long (at most 120 characters).")
        self._factory = storageClassFactory
        self.table = storage.registerRecordTable(RECORDS_TABLE)

    def begin(self) -> Any:
        """Open a records transaction: committed if the body succeeds, rolled back if it raises.

        In the registry's database, inside this thread's registry transaction, it is a
        SAVEPOINT of that transaction, committed only with it.
        """
        return self.table.transaction()

    @contextmanager
    def recording(
        self, datasetId: uuid.UUID, datasetType: str, infos: list[StoredFileInfo]
    ) -> Iterator[None]:
        """Insert the rows of ``infos``; they stay only if the body (moving the files into place) succeeds.

        Inside an open transaction of the storage (a registry transaction) the rows are written
        in it without a SAVEPOINT of their own, and deleted again if the body raises; they are
        committed with the registry's rows.

        Raises
        ------
        RecordConflictError
            A row for this dataset (or its path) is already there; raised before the body runs.
        """
        if not self.table.inTransaction:
            with self.table.transaction():
                self.insert(datasetId, datasetType, infos)
                yield
            return
        self.insert(datasetId, datasetType, infos)
        try:
            yield
        except BaseException:
            self.delete(datasetId)
            raise

    @contextmanager
    def recordingMany(self, planned: list[tuple[DatasetRef, list[StoredFileInfo]]]) -> Iterator[None]:
        """Insert the rows of many datasets in one INSERT, as `recording` does those of one.

        Raises
        ------
        RecordConflictError
            A row of one of them (or its path) is already there; raised before the body runs.
        """
        rows = [
            row for ref, infos in planned for row in self._rows(ref.id, ref.datasetType.name, infos, False)
        ]
        if not self.table.inTransaction:
            with self.table.transaction():
                self.table.insert(rows)
                yield
            return
        self.table.insert(rows)
        try:
            yield
        except BaseException:
            ids = [str(ref.id) for ref, _ in planned]
            for start in range(0, len(ids), _HOLD_CHUNK):
                self.table.delete(
                    datastoreName=self.datastoreName, datasetId=ids[start : start + _HOLD_CHUNK]
                )
            raise

    @property
    def commitsOnExit(self) -> bool:
        """Whether a `begin` block commits when it ends.

        `False` inside a registry transaction, which commits it later (or rolls it back).
        """
        return not self.table.inTransaction

    # -- rows --

    def insert(
        self, datasetId: uuid.UUID, datasetType: str, infos: Iterable[StoredFileInfo], trash: bool = False
    ) -> None:
        """Insert one row per info (in the trash if ``trash``).

        Raises
        ------
        RecordConflictError
            A row of this dataset, or of its path, is already there.
        """
        self.table.insert(self._rows(datasetId, datasetType, infos, trash))

    def _rows(
        self, datasetId: uuid.UUID, datasetType: str, infos: Iterable[StoredFileInfo], trash: bool
    ) -> list[dict[str, Any]]:
        name = self.trashName if trash else self.datastoreName
        return [
            {
                "datastoreName": name,
                "datasetId": str(datasetId),
                "component": info.component or "",
                "datasetType": datasetType,
                "path": info.path,
                "formatter": info.formatter,
                "storageClass": info.storageClass.name,
                "fileSize": info.fileSize,
                "checksum": info.checksum,
                "timestamp": info.timestamp,
            }
            for info in infos
        ]

    def fetch(self, datasetId: uuid.UUID) -> dict[str, tuple[str, StoredFileInfo]]:
        """Return ``{component or "": (datasetTypeName, info)}`` for every row of ``datasetId``."""
        rows = self.table.fetch(datastoreName=self.datastoreName, datasetId=str(datasetId))
        return {row["component"]: (row["datasetType"], self._toInfo(row, datasetId)) for row in rows}

    def fetchMany(
        self, datasetIds: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, dict[str, tuple[str, StoredFileInfo]]]:
        """Return `fetch` of each of ``datasetIds`` that has rows, in statements of a few hundred ids."""
        ids = list(dict.fromkeys(datasetIds))
        out: dict[uuid.UUID, dict[str, tuple[str, StoredFileInfo]]] = {}
        byText = {str(i): i for i in ids}
        keys = list(byText)
        for start in range(0, len(keys), _HOLD_CHUNK):
            rows = self.table.fetch(
                datastoreName=self.datastoreName, datasetId=keys[start : start + _HOLD_CHUNK]
            )
            for row in rows:
                datasetId = byText[row["datasetId"]]
                out.setdefault(datasetId, {})[row["component"]] = (
                    row["datasetType"],
                    self._toInfo(row, datasetId),
                )
        return out

    def has(self, datasetId: uuid.UUID) -> str | None:
        """Return the dataset type name recorded for ``datasetId``'s whole-dataset row, or `None`."""
        rows = self.table.fetch(datastoreName=self.datastoreName, datasetId=str(datasetId), component="")
        return str(rows[0]["datasetType"]) if rows else None

    def pathOwner(self, path: str) -> str | None:
        """Return the dataset id (as str) whose row holds ``path``, or `None`."""
        rows = self.table.fetch(datastoreName=self.datastoreName, path=path)
        return str(rows[0]["datasetId"]) if rows else None

    def pathOwners(self, paths: Iterable[str]) -> dict[str, str | None]:
        """Return ``{path: dataset id (as str) whose row holds it, or None}``, read as committed."""
        return {path: self.pathOwner(path) for path in paths}

    def delete(self, datasetId: uuid.UUID, component: str | None = None, trash: bool = False) -> int:
        """Delete the rows of ``datasetId``; return how many.

        Only ``component``'s if given; those in the trash if ``trash``.
        """
        name = self.trashName if trash else self.datastoreName
        if component is None:
            return self.table.delete(datastoreName=name, datasetId=str(datasetId))
        return self.table.delete(datastoreName=name, datasetId=str(datasetId), component=component)

    # -- removals still to finish, and paths --

    def trash(self, datasetId: uuid.UUID, datasetType: str, infos: list[StoredFileInfo]) -> None:
        """Note the files of ``infos`` as to be deleted once this transaction commits.

        Called in the transaction that deletes ``datasetId``'s rows. Rows a crash left for the
        same dataset are kept (not doubled).
        """
        old = {
            row["component"]
            for row in self.table.fetch(datastoreName=self.trashName, datasetId=str(datasetId))
        }
        new = [info for info in infos if (info.component or "") not in old]
        self.insert(datasetId, datasetType, new, trash=True)

    def trashed(self) -> dict[uuid.UUID, list[StoredFileInfo]]:
        """Return the files of committed removals still to delete, by dataset id."""
        out: dict[uuid.UUID, list[StoredFileInfo]] = {}
        for row in self.table.fetch(datastoreName=self.trashName):
            datasetId = uuid.UUID(row["datasetId"])
            out.setdefault(datasetId, []).append(self._toInfo(row, datasetId))
        return out

    def datasetIds(self) -> set[str]:
        """Return the id (as str) of every dataset this datastore has records of."""
        return {row["datasetId"] for row in self.table.fetch(datastoreName=self.datastoreName)}

    def paths(self) -> set[str]:
        """Return every path this datastore's records name."""
        return {row["path"] for row in self.table.fetch(datastoreName=self.datastoreName)}

    def trashedPaths(self, paths: Iterable[str]) -> set[str]:
        """Return which of ``paths`` are in the trash, as this thread's transaction (if any) sees it."""
        wanted = list(dict.fromkeys(paths))
        return {row["path"] for row in self.table.fetch(datastoreName=self.trashName, path=wanted)}

    def holdPaths(self, paths: Iterable[str]) -> dict[str, str]:
        """Hold each free path of ``paths`` for the rest of the enclosing `begin` transaction.

        No other writer can record a held path before the transaction ends, and a path
        another transaction is recording makes this one wait for it. Where a write transaction
        locks out every other writer already (SQLite, memory) it is one query for the paths
        recorded; elsewhere (PostgreSQL) a placeholder row is inserted at each free path (one
        statement), whose unique path index makes any other writer's insert there wait.
        Returns ``{path: placeholder id or ""}`` of the paths held; a path recorded for a
        dataset is not held. Release them with `releasePaths` before committing.
        """
        wanted = list(dict.fromkeys(paths))
        held: dict[str, str] = {}
        for start in range(0, len(wanted), _HOLD_CHUNK):
            chunk = wanted[start : start + _HOLD_CHUNK]
            if self.table.exclusiveWrites:
                taken = {
                    row["path"] for row in self.table.fetch(datastoreName=self.datastoreName, path=chunk)
                }
                held.update((path, "") for path in chunk if path not in taken)
                continue
            rows = [
                {
                    "datastoreName": self.datastoreName,
                    "datasetId": str(uuid.uuid4()),
                    "component": "",
                    "datasetType": "",
                    "path": path,
                    "formatter": None,
                    "storageClass": "",
                    "fileSize": 0,
                    "checksum": None,
                    "timestamp": 0.0,
                }
                for path in chunk
            ]
            held.update((row["path"], row["datasetId"]) for row in self.table.insertNew(rows))
        return held

    def releasePaths(self, held: dict[str, str]) -> None:
        """Delete the placeholder rows of `holdPaths`."""
        ids = [placeholder for placeholder in held.values() if placeholder]
        for start in range(0, len(ids), _HOLD_CHUNK):
            self.table.delete(datastoreName=self.datastoreName, datasetId=ids[start : start + _HOLD_CHUNK])

    def deleteTrash(self, datasetIds: Iterable[uuid.UUID]) -> None:
        """Delete the trash rows of ``datasetIds`` (their files are dealt with)."""
        ids = [str(datasetId) for datasetId in datasetIds]
        for start in range(0, len(ids), _HOLD_CHUNK):
            self.table.delete(datastoreName=self.trashName, datasetId=ids[start : start + _HOLD_CHUNK])

    def count(self) -> int:
        """Return how many datasets this datastore has (component files are not counted)."""
        return self.table.count(datastoreName=self.datastoreName, component="")

    def _toInfo(self, row: dict[str, Any], datasetId: uuid.UUID) -> StoredFileInfo:
        component = row["component"]
        storageClassName = row["storageClass"]
        try:
            storageClass = self._factory.getStorageClass(storageClassName)
        except UnknownStorageClassError:
            storageClass = StorageClass(storageClassName)
        return StoredFileInfo(
            row["timestamp"],
            storageClass,
            datasetId if component else None,
            path=row["path"],
            formatter=row["formatter"],
            component=component or None,
            fileSize=row["fileSize"],
            checksum=row["checksum"],
        )
