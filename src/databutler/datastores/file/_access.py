"""`FileAccess`: the files of one FileDatastore and their records, changed together.

A dataset's files are written to temporary names, then inside one records transaction the
rows are inserted and the files renamed into place: if anything fails (or the process dies)
the transaction is not committed, so there is never a record without its file nor a partial
file at a final path. Paths are relative to the root and checked again (`checkRelativePath`)
before any file is touched. Formatter failures become `FormatterError` (or
`DatasetTypeMismatchError` when the object does not fit the format), naming the file and the
formatter.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import posixpath
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import sqlalchemy as sa
from fsspec.implementations.local import LocalFileSystem

from ...dataset_ref import DatasetRef
from ...exceptions import (
    DatasetExistsError,
    DatasetIntegrityError,
    DatasetNotFoundError,
    DatasetTypeMismatchError,
    FormatterError,
    InvalidParameterError,
)
from ...formatters.base import Formatter
from ...storage_class import StorageClass
from ._io import asidePathFor, moveNoReplace, readWhole, removeQuietly, writeTemp
from ._layout import FileLayout
from ._records import FileRecordTable, StoredFileInfo
from ._templates import checkRelativePath

__all__ = ["FileAccess", "FileWrite"]

log = logging.getLogger(__name__)

_LEFTOVER = re.compile(r"^\..+\.(?:tmp-|removed-(?:(?P<setAside>[0-9]+)-)?)[0-9a-f]{32}$")
"""A temporary file (``.<name>.tmp-<hex>``) or a file set aside by a remove
(``.<name>.removed-<seconds>-<hex>``; ``.<name>.removed-<hex>`` from older versions)."""

FileWrite = tuple[str | None, str, str, StorageClass, Callable[[], tuple[str, int, str | None]]]
"""One file to store: ``(component, relPath, formatterName, storageClass, write)``; ``write()``
makes the temporary file and returns ``(tempPath, size, checksum)``."""


class FileAccess:
    """Reads, writes, moves and deletes the files under one root.

    Parameters
    ----------
    fs : fsspec.AbstractFileSystem
        The file system.
    rootPath : str
        The root, as a path in ``fs``.
    checksumAlgorithm : str or None
        What to hash files with as they are written (`None`: not at all); whether to verify
        them when read (with the algorithm recorded for each file).
    layout : FileLayout
        Gives the formatter recorded for each file.
    records : FileRecordTable
        Where files are recorded; a file and its record are committed together.
    datastoreName : str
        For messages.
    """

    def __init__(
        self,
        fs: Any,
        rootPath: str,
        checksumAlgorithm: str | None,
        layout: FileLayout,
        records: FileRecordTable,
        datastoreName: str,
    ) -> None:
        self.fs = fs
        self.rootPath = rootPath
        self.checksumAlgorithm = checksumAlgorithm
        self.checksum = checksumAlgorithm is not None
        self.layout = layout
        self.records = records
        self.datastoreName = datastoreName
        self.isLocal = isinstance(fs, LocalFileSystem)

    def fullPath(self, relPath: str) -> str:
        """Return the path in ``fs`` of ``relPath``.

        Raises
        ------
        UnsafePathError
            ``relPath`` is not a safe relative path.
        """
        return f"{self.rootPath}/{checkRelativePath(relPath)}"

    def uri(self, relPath: str) -> str:
        """Return the URI of ``relPath`` (``file:///...``, ``s3://...``)."""
        return str(self.fs.unstrip_protocol(self.fullPath(relPath)))

    def writeFile(
        self, ref: DatasetRef, relPath: str, formatter: Formatter, obj: Any, storageClass: StorageClass
    ) -> tuple[str, int, str | None]:
        """Write ``obj`` with ``formatter`` to a temporary file beside ``relPath``.

        Returns
        -------
        tempPath, size, checksum : str, int, str or None
            Where it was written, how many bytes, and their checksum (if checksums are on).

        Raises
        ------
        DatasetTypeMismatchError
            The formatter cannot write this object.
        FormatterError
            The formatter (or the file system) failed; no file is left behind.
        """
        try:
            return writeTemp(
                self.fs,
                self.fullPath(relPath),
                lambda s: formatter.write(obj, s, storageClass),
                self.checksumAlgorithm,
            )
        except DatasetTypeMismatchError as exc:
            raise DatasetTypeMismatchError(
                f"{formatter.name} cannot write {ref} to {self.uri(relPath)}: {exc}"
            ) from exc
        except Exception as exc:
            raise FormatterError(
                f"{formatter.name} failed to write {ref} to {self.uri(relPath)}; nothing was stored: {exc}"
            ) from exc

    def readFile(
        self,
        ref: DatasetRef,
        info: StoredFileInfo,
        storageClass: StorageClass,
        parameters: Mapping[str, Any] | None,
    ) -> Any:
        """Read one file with its recorded formatter; push down what parameters it can."""
        assert info.formatter is not None
        formatter = self.layout.getRecordedFormatter(info.formatter)
        pushed = {k: v for k, v in (parameters or {}).items() if k in formatter.pushdownParameters}
        rest = {k: v for k, v in (parameters or {}).items() if k not in formatter.pushdownParameters}
        fullPath, uri = self.fullPath(info.path), self.uri(info.path)
        try:
            if self.checksum or not formatter.prefersStream:
                checksum = info.checksum if self.checksum else None
                buffer = readWhole(self.fs, fullPath, uri, info.fileSize, checksum, formatter.newBuffer)
                obj = formatter.readBuffer(buffer, storageClass, pushed)
            else:
                try:
                    with self.fs.open(fullPath, "rb") as stream:
                        obj = formatter.readStream(stream, storageClass, pushed)
                except FileNotFoundError as exc:
                    raise DatasetNotFoundError(
                        f"File {uri} of {ref} is recorded but no longer exists."
                    ) from exc
        except (InvalidParameterError, DatasetIntegrityError, DatasetNotFoundError):
            raise
        except DatasetTypeMismatchError as exc:
            raise DatasetTypeMismatchError(f"{formatter.name} cannot read {uri} as {ref}: {exc}") from exc
        except Exception as exc:
            raise FormatterError(f"{formatter.name} failed to read {uri} ({ref}): {exc}") from exc
        return storageClass.delegate().handleParameters(obj, rest) if rest else obj

    def deleteFiles(self, infos: list[StoredFileInfo]) -> None:
        """Delete the files of ``infos``, then their folders if empty; failures are logged."""
        for info in sorted(infos, key=lambda i: i.formatter is None):  # files before their folder
            path = self.fullPath(info.path)
            if info.formatter is not None:
                removeQuietly(self.fs, path)
            else:
                with contextlib.suppress(Exception):  # object stores have no folders
                    self.fs.rmdir(path)

    def rename(self, source: str, target: str) -> None:
        """Rename ``source`` to ``target`` (paths in ``fs``), replacing a file there.

        Callers rename into a path that the records make theirs. On a local file system this
        is one ``rename`` system call; fsspec's ``mv`` would first check whether the target is
        a folder.
        """
        if self.isLocal:
            os.replace(source, target)
        else:
            self.fs.mv(source, target)

    def moveAside(self, relPath: str) -> tuple[str, str]:
        """Rename ``relPath`` to a hidden name beside it; return ``(path, asidePath)`` to undo it."""
        path = self.fullPath(relPath)
        aside = asidePathFor(path)
        self.fs.mv(path, aside)
        return path, aside

    def copyFile(self, relPath: str, data: memoryview) -> tuple[str, int, str | None]:
        """Write ``data`` as it is to a temporary file beside ``relPath``; like `writeFile`."""

        def write(stream: IO[bytes]) -> None:
            stream.write(data)

        return writeTemp(self.fs, self.fullPath(relPath), write, self.checksumAlgorithm)

    def readBytes(self, info: StoredFileInfo, verify: bool | None = None) -> memoryview:
        """Return the whole of a recorded file, size- and (if ``verify``) checksum-checked.

        ``verify`` defaults to the datastore's ``checksum`` setting.

        Raises
        ------
        DatasetNotFoundError
            The file is gone.
        DatasetIntegrityError
            It changed since it was written.
        """
        checksum = info.checksum if (self.checksum if verify is None else verify) else None
        return readWhole(self.fs, self.fullPath(info.path), self.uri(info.path), info.fileSize, checksum)

    # -- files and records together --

    def store(self, ref: DatasetRef, writes: list[FileWrite], folder: str | None) -> list[StoredFileInfo]:
        """Write every file of ``ref``, then record them and move them into place, all or nothing.

        Returns
        -------
        infos : list of StoredFileInfo
            What was recorded (the folder of a disassembled composite first).

        Raises
        ------
        DatasetExistsError
            ``ref`` is already recorded, or one of its paths belongs to another dataset.
        Exception
            Whatever a ``write`` raises; nothing is left behind.
        """
        temps: list[tuple[str, str]] = []
        try:
            infos = []
            now = time.time()
            for component, relPath, formatterName, storageClass, write in writes:
                tempPath, size, checksum = write()
                temps.append((tempPath, self.fullPath(relPath)))
                parentID = ref.id if component else None
                infos.append(
                    StoredFileInfo(
                        now,
                        storageClass,
                        parentID,
                        path=relPath,
                        formatter=formatterName,
                        component=component,
                        fileSize=size,
                        checksum=checksum,
                    )
                )
            if folder is not None:
                total = sum(info.fileSize for info in infos)
                storageClass = ref.datasetType.storageClass
                infos.insert(
                    0, StoredFileInfo(now, storageClass, path=folder, formatter=None, fileSize=total)
                )
            self._commit(ref, infos, temps)
        except BaseException:
            for tempPath, _ in temps:
                removeQuietly(self.fs, tempPath)
            raise
        return infos

    def _commit(self, ref: DatasetRef, infos: list[StoredFileInfo], temps: list[tuple[str, str]]) -> None:
        moved: list[str] = []
        try:
            with self.records.recording(ref.id, ref.datasetType.name, infos):
                for tempPath, finalPath in temps:
                    self.rename(tempPath, finalPath)
                    moved.append(finalPath)
        except sa.exc.IntegrityError as exc:
            raise self.existsError(ref, [info.path for info in infos]) from exc
        except BaseException:
            for path in moved:
                removeQuietly(self.fs, path)
            raise

    def existsError(self, ref: DatasetRef, paths: list[str] | None = None) -> DatasetExistsError:
        """Return the error for a put of ``ref`` that is already stored or whose ``paths`` are taken."""
        if paths is None or self.records.has(ref.id) is not None:
            return DatasetExistsError(
                f"Dataset {ref} is already in datastore {self.datastoreName!r}; nothing was stored. "
                f"Remove it first to replace it."
            )
        owners = self._owners(paths)
        taken = ", ".join(f"{self.uri(p)} (dataset {o})" for p, o in owners.items() if o)
        return DatasetExistsError(
            f"Cannot put {ref}: its file path is already used by another dataset: {taken}. The file template "
            f"for {ref.datasetType.name!r} must give every dataset its own path (e.g. include {{id}} or {{run}})."
        )

    def drop(self, ref: DatasetRef, stored: list[StoredFileInfo] | None = None) -> None:
        """Forget ``ref`` and delete its files.

        The files are moved aside in the records transaction and deleted after it: once it is
        committed, another writer may store a file at one of their paths.

        ``stored`` (what a put recorded) covers records that are already gone because the
        registry transaction they were written in rolled back: the files the put moved into
        place are then deleted too, unless another dataset's record holds their path now.
        """
        removed = self.unstore(ref, moveAside=True)
        if removed is not None:
            infos, moved = removed
        elif stored:
            infos, moved = stored, self._unclaimedAside(stored)
        else:
            return
        self.deleteAside(moved, [info for info in infos if info.formatter is None])

    def _unclaimedAside(self, infos: list[StoredFileInfo]) -> list[tuple[str, str]]:
        """Move aside the files of ``infos`` whose paths no record holds; return the renames."""
        moved: list[tuple[str, str]] = []
        with self.records.begin() as conn:  # holds the paths while the files are moved
            for info in infos:
                if info.formatter is not None and self.records.pathOwner(conn, info.path) is None:
                    with contextlib.suppress(FileNotFoundError):
                        moved.append(self.moveAside(info.path))
        return moved

    def lookup(self, ref: DatasetRef) -> dict[str, StoredFileInfo] | None:
        """Return ``{component or "": info}`` of the stored dataset ``ref`` belongs to, or `None`.

        `None` means that nothing is stored under its id with its (parent) dataset type.
        """
        rows = self.records.fetch(ref.id)
        whole = rows.get("")
        if whole is None or whole[0] != ref.datasetType.nameAndComponent()[0]:
            return None
        return {component: info for component, (_, info) in rows.items()}

    def unstore(
        self, ref: DatasetRef, moveAside: bool
    ) -> tuple[list[StoredFileInfo], list[tuple[str, str]]] | None:
        """Delete the records of ``ref`` and, if ``moveAside``, rename its files to hidden names.

        Returns
        -------
        removed : tuple or None
            ``(infos, moved)`` — the records deleted and the ``(path, asidePath)`` renames — or
            `None` if ``ref`` is not stored.
        """
        moved: list[tuple[str, str]] = []
        try:
            with self.records.begin() as conn:
                rows = self.records.fetch(ref.id, conn)
                whole = rows.get("")
                if whole is None or whole[0] != ref.datasetType.name:
                    return None
                self.records.delete(conn, ref.id)
                infos = [info for _, info in rows.values()]
                for info in infos if moveAside else []:
                    if info.formatter is not None:
                        with contextlib.suppress(FileNotFoundError):  # already gone: nothing to keep
                            moved.append(self.moveAside(info.path))
        except BaseException:
            for path, aside in reversed(moved):
                self.fs.mv(aside, path)
            raise
        return infos, moved

    def restore(self, ref: DatasetRef, infos: list[StoredFileInfo], moved: list[tuple[str, str]]) -> None:
        """Undo `unstore`: insert the records again, then rename the files back, all or nothing.

        `unstore` committed, so another writer may have stored a dataset at one of the paths
        since (templates without ``{id}`` allow it). The records go in first, in one records
        transaction that holds the paths while the files are renamed back, and no file is ever
        renamed over an existing one: if a path is taken, nothing is restored or overwritten.

        Raises
        ------
        DatasetExistsError
            A path of ``ref`` (or its id) is used again; the files moved aside are left there,
            named in the message.
        """
        back: list[tuple[str, str]] = []
        try:
            if self.records.fetch(ref.id):
                # Records kept in a registry's database came back by themselves when the
                # registry transaction that deleted them rolled back; they hold the paths, so
                # the files go back without waiting for the write lock.
                for path, aside in moved:
                    moveNoReplace(self.fs, aside, path)
                    back.append((path, aside))
                return
            with self.records.begin() as conn:
                if not self.records.fetch(ref.id, conn):
                    self.records.insert(conn, ref.id, ref.datasetType.name, infos)
                for path, aside in moved:
                    moveNoReplace(self.fs, aside, path)
                    back.append((path, aside))
        except (sa.exc.IntegrityError, FileExistsError) as exc:
            self._unrestore(back)
            raise self._restoreError(ref, infos, moved) from exc
        except BaseException:
            self._unrestore(back)
            raise

    def _unrestore(self, back: list[tuple[str, str]]) -> None:
        """Move files `restore` put back aside again (their records were not committed)."""
        for path, aside in reversed(back):
            try:
                self.fs.mv(path, aside)
            except Exception as exc:  # the original error matters more
                log.warning("Could not move %s back aside to %s: %s", path, aside, exc)

    def _restoreError(
        self, ref: DatasetRef, infos: list[StoredFileInfo], moved: list[tuple[str, str]]
    ) -> DatasetExistsError:
        owners = self._owners([info.path for info in infos])
        taken = [f"{self.uri(p)} by dataset {o}" for p, o in owners.items() if o and o != str(ref.id)]
        if self.records.has(ref.id) is not None:
            taken.append(f"its id by a dataset stored again as {ref.id}")
        if not taken:
            taken = [
                f"{self.uri(path)} by a file no dataset records" for path, _ in moved if self.fs.exists(path)
            ]
        kept = ", ".join(str(self.fs.unstrip_protocol(aside)) for _, aside in moved)
        return DatasetExistsError(
            f"Cannot restore {ref} in datastore {self.datastoreName!r} on rollback of its removal: "
            f"since it was removed, another writer has used {'; '.join(taken) or 'its path'}. Nothing was "
            f"overwritten: {ref} stays removed and its file(s) are left at {kept or '(no files)'} "
            f"(copy them elsewhere to keep them; removeLeftoverFiles deletes them once old)."
        )

    def _owners(self, paths: list[str]) -> dict[str, str | None]:
        """Return ``{path: id (as str) of the dataset recorded there, or None}``."""
        with self.records.begin() as conn:
            return {p: self.records.pathOwner(conn, p) for p in paths}

    def deleteAside(self, moved: list[tuple[str, str]], folders: list[StoredFileInfo]) -> None:
        """Delete the files `unstore` moved aside, then the emptied folders."""
        for _, aside in moved:
            removeQuietly(self.fs, aside)
        self.deleteFiles(folders)

    def copyPlan(
        self, source: FileAccess, ref: DatasetRef, sourceInfos: dict[str, StoredFileInfo]
    ) -> tuple[list[FileWrite], str | None] | None:
        """Return the writes (and folder) that copy ``ref``'s files from ``source`` byte for byte.

        `None` means that this layout would use other formatters than the ones that wrote them.
        """
        whole = sourceInfos[""]
        relPath = self.layout.templates.render(ref)
        mine = self.layout.formatterFor(ref.datasetType)
        if whole.formatter is not None:
            if mine is None or mine.name != whole.formatter:
                return None
            pairs: list[tuple[str | None, str, StoredFileInfo]] = [(None, relPath + mine.extension, whole)]
            folder = None
        else:
            if mine is not None:
                return None
            pairs = []  # one per component file
            for component, info in sourceInfos.items():
                if component:
                    mineForComponent = self.layout.formatterFor(
                        ref.datasetType.makeComponentDatasetType(component)
                    )
                    if mineForComponent is None or mineForComponent.name != info.formatter:
                        return None
                    pairs.append((component, f"{relPath}/{component}{mineForComponent.extension}", info))
            folder = relPath

        def copy(info: StoredFileInfo, target: str) -> tuple[str, int, str | None]:
            return self.copyFile(target, source.readBytes(info))

        writes: list[FileWrite] = [
            (component, target, str(info.formatter), info.storageClass, functools.partial(copy, info, target))
            for component, target, info in pairs
        ]
        return writes, folder

    def leftoverFiles(self, olderThan: float) -> list[str]:
        """Return the temporary and set-aside files under the root older than ``olderThan`` seconds.

        These are what a crashed put (``.<name>.tmp-<hex>``) or a crashed transaction
        (``.<name>.removed-<seconds>-<hex>``) leaves behind; younger ones may belong to a put or
        a transaction in progress. A temporary file is aged by its modification time, a file
        set aside by the time in its name (it kept the modification time of the dataset's file).
        """
        cutoff = datetime.now(UTC) - timedelta(seconds=olderThan)
        found = []
        for path in self.fs.find(self.rootPath):
            match = _LEFTOVER.match(posixpath.basename(path))
            if match is None:
                continue
            modified = None
            if match["setAside"] is not None:
                with contextlib.suppress(OverflowError, ValueError, OSError):  # not a time after all
                    modified = datetime.fromtimestamp(int(match["setAside"]), UTC)
            if modified is None:
                modified = self.fs.modified(path)
                if modified.tzinfo is None:
                    modified = modified.replace(tzinfo=UTC)
            if modified <= cutoff:
                found.append(path)
        return sorted(found)
