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
import filecmp
import functools
import logging
import os
import pathlib
import posixpath
import re
import stat
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from fsspec.implementations.local import LocalFileSystem

from ...dataset_ref import DatasetRef
from ...exceptions import (
    DatasetExistsError,
    DatasetIntegrityError,
    DatasetNotFoundError,
    DatasetTypeMismatchError,
    FormatterError,
    InvalidParameterError,
    RecordConflictError,
    UnsafePathError,
)
from ...formatters.base import Formatter
from ...storage_class import StorageClass
from ._io import asidePathFor, isWithin, moveNoReplace, readWhole, removeQuietly, tempPathFor, writeTemp
from ._layout import FileLayout
from ._records import FileRecordTable, StoredFileInfo
from ._templates import checkRelativePath

__all__ = ["EXTERNAL_PREFIX", "FileAccess", "FileWrite", "externalUri", "isExternal"]

log = logging.getLogger(__name__)

_LEFTOVER = re.compile(r"^\..+\.(?:tmp-|removed-(?:(?P<setAside>[0-9]+)-)?)[0-9a-f]{32}$")
"""A temporary file (``.<name>.tmp-<hex>``) or a file set aside by a remove
(``.<name>.removed-<seconds>-<hex>``; ``.<name>.removed-<hex>`` from older versions)."""

_ASIDE_OF = re.compile(r"^\.(?P<name>.+)\.removed-(?:[0-9]+-)?[0-9a-f]{32}$")
"""The name a set-aside file had (``.<name>.removed-...`` → ``<name>``)."""

_DATA_EXTENSIONS = (".json", ".yaml", ".yml", ".npy", ".parquet", ".fits", ".pickle")
"""What a file at the top of the root must end with to be taken for a dataset's file (the
rest there is the repository's own: ``butler.yaml``, the registry and records databases)."""

_REPOSITORY_FILES = frozenset({"butler.yaml"})

_PURGE_CHUNK = 500
"""Removed datasets whose files are deleted in one records transaction."""

FileWrite = tuple[str | None, str, str, StorageClass, Callable[[], tuple[str | None, int, str | None]]]
"""One file to store: ``(component, relPath, formatterName, storageClass, write)``; ``write()``
makes the temporary file and returns ``(tempPath, size, checksum)`` (``tempPath`` `None`: the
file is external, see `isExternal`, and stays where it is)."""

EXTERNAL_PREFIX = "file://"
"""How a record names a file outside the root (ingested with ``transfer="direct"``): by its
absolute ``file://`` URI instead of a path relative to the root."""


def isExternal(path: str) -> bool:
    """Return whether a recorded ``path`` is an external file's URI (never moved or deleted)."""
    return path.startswith(EXTERNAL_PREFIX)


def externalUri(absolutePath: str) -> str:
    """Return the URI a record keeps for the external file ``absolutePath``."""
    return pathlib.Path(absolutePath).as_uri()


def _externalPath(uri: str) -> str:
    """Return the local path of the external file ``uri`` (see `externalUri`)."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.netloc not in ("", "localhost"):
        raise UnsafePathError(f"Recorded external file {uri!r} is not on this machine.")
    return urllib.request.url2pathname(parsed.path)


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
        self.realRoot = os.path.realpath(rootPath) if self.isLocal else rootPath

    def fullPath(self, relPath: str) -> str:
        """Return the path in ``fs`` of ``relPath``.

        Raises
        ------
        UnsafePathError
            ``relPath`` is not a safe relative path (nor an external file's URI).
        """
        if isExternal(relPath):
            return _externalPath(relPath)
        return f"{self.rootPath}/{checkRelativePath(relPath)}"

    def insidePath(self, relPath: str) -> str:
        """Return the path in ``fs`` of ``relPath``, to be written, renamed or deleted.

        Raises
        ------
        UnsafePathError
            ``relPath`` is unsafe or an external file's URI, or its folder resolves outside the
            root (see `checkInside`).
        """
        if isExternal(relPath):
            raise UnsafePathError(
                f"Refusing to change {relPath}: it is an external file (ingested with transfer='direct'), "
                f"not one of datastore {self.datastoreName!r}'s."
            )
        return self.checkInside(self.fullPath(relPath))

    def checkInside(self, path: str) -> str:
        """Return ``path`` (in ``fs``) if its folder, with every symbolic link resolved, is in the root.

        A symbolic link planted inside the root (``run -> /elsewhere``) would otherwise make a
        write, rename or delete land outside it. Only local roots have links; the root itself
        may be one (it is resolved once, when the datastore is opened). The file itself may be
        a link: it is replaced or unlinked, never followed, by writes and deletes.

        Raises
        ------
        UnsafePathError
            The folder of ``path`` resolves outside the root.
        """
        if self.isLocal:
            folder = os.path.realpath(os.path.dirname(path))
            if not isWithin(folder, self.realRoot):
                raise UnsafePathError(
                    f"Refusing to change {path}: its folder resolves to {folder}, outside the root "
                    f"{self.realRoot} of datastore {self.datastoreName!r} (a symbolic link inside the "
                    f"root points out of it). Replace the link with a real folder."
                )
        return path

    def insideChecker(self) -> FolderChecks:
        """Return `insidePath` for the many paths of one call, resolving each folder only once.

        Every path is still checked to be a safe relative path (`checkRelativePath`); the
        resolution of its folder's symbolic links (`checkInside`) is done for the first path in
        each folder and taken as it is for the others in the same call, until
        `FolderChecks.confirm` resolves each folder once more after the files are placed.
        """
        return FolderChecks(self)

    def uri(self, relPath: str) -> str:
        """Return the URI of ``relPath`` (``file:///...``, ``s3://...``)."""
        if isExternal(relPath):
            return relPath
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
            target = self.insidePath(relPath)
        except UnsafePathError as exc:
            raise UnsafePathError(f"Cannot put {ref}: {exc}") from exc
        try:
            return writeTemp(
                self.fs,
                target,
                lambda s: formatter.write(obj, s, storageClass),
                self.checksumAlgorithm,
            )
        except DatasetTypeMismatchError as exc:  # also UnstorableDatasetError, kept as it is
            raise type(exc)(f"{formatter.name} cannot write {ref} to {self.uri(relPath)}: {exc}") from exc
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
            if isExternal(info.path):
                continue  # not ours: never deleted
            try:
                path = self.insidePath(info.path)
            except UnsafePathError as exc:
                log.warning("Not deleting %s: %s", info.path, exc)
                continue
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
        path = self.insidePath(relPath)
        aside = asidePathFor(path)
        self.fs.mv(path, aside)
        return path, aside

    def copyFile(self, relPath: str, data: memoryview) -> tuple[str, int, str | None]:
        """Write ``data`` as it is to a temporary file beside ``relPath``; like `writeFile`."""

        def write(stream: IO[bytes]) -> None:
            stream.write(data)

        return writeTemp(self.fs, self.insidePath(relPath), write, self.checksumAlgorithm)

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
        with self._temporaryFiles() as temps:
            infos = self._written(ref, writes, folder, time.time(), temps)
            self._commit(ref, infos, temps)
        return infos

    @contextlib.contextmanager
    def _temporaryFiles(self) -> Iterator[list[tuple[str, str]]]:
        """Yield the list in which writes note (temporary file, final path); on failure, remove them all."""
        temps: list[tuple[str, str]] = []
        try:
            yield temps
        except BaseException:
            for tempPath, _ in temps:
                removeQuietly(self.fs, tempPath)
            raise

    def _written(
        self,
        ref: DatasetRef,
        writes: list[FileWrite],
        folder: str | None,
        now: float,
        temps: list[tuple[str, str]],
    ) -> list[StoredFileInfo]:
        """Run every write of ``ref``, noting in ``temps`` each temporary file and its final path.

        Returns the infos to record (the folder of a disassembled composite first).
        """
        infos = []
        for component, relPath, formatterName, storageClass, write in writes:
            tempPath, size, checksum = write()
            if tempPath is not None:
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
            infos.insert(0, StoredFileInfo(now, storageClass, path=folder, formatter=None, fileSize=total))
        return infos

    def _commit(self, ref: DatasetRef, infos: list[StoredFileInfo], temps: list[tuple[str, str]]) -> None:
        moved: list[str] = []
        enclosed = not self.records.commitsOnExit
        try:
            with self.records.recording(ref.id, ref.datasetType.name, infos):
                self._moveIntoPlace(temps, [ref] * len(temps), moved, enclosed)
        except RecordConflictError as exc:
            raise self.existsError(ref, [info.path for info in infos]) from exc
        except BaseException:
            for path in moved:
                removeQuietly(self.fs, path)
            raise

    def storeMany(
        self,
        items: list[tuple[DatasetRef, list[FileWrite], str | None]],
        confirm: Callable[[], None] | None = None,
    ) -> list[tuple[DatasetRef, list[StoredFileInfo]]]:
        """Store many datasets as `store` does one: write every file, record all, move them into place.

        All or nothing; the records go in one INSERT, not one per dataset (what a bulk import needs).
        ``confirm`` is called once every file is in place, before the records commit; if it
        raises, they are undone as after a failed write.

        Raises
        ------
        DatasetExistsError
            One of them is already recorded, or one of their paths is taken.
        Exception
            Whatever a ``write`` raises; nothing is left behind.
        """
        owners: list[DatasetRef] = []  # the dataset of each temporary file
        planned: list[tuple[DatasetRef, list[StoredFileInfo]]] = []
        with self._temporaryFiles() as temps:
            now = time.time()
            for ref, writes, folder in items:
                before = len(temps)
                planned.append((ref, self._written(ref, writes, folder, now, temps)))
                owners.extend([ref] * (len(temps) - before))
            self._commitMany(planned, temps, owners, confirm)
        return planned

    def _commitMany(
        self,
        planned: list[tuple[DatasetRef, list[StoredFileInfo]]],
        temps: list[tuple[str, str]],
        owners: list[DatasetRef],
        confirm: Callable[[], None] | None = None,
    ) -> None:
        moved: list[str] = []
        enclosed = not self.records.commitsOnExit
        try:
            with self.records.recordingMany(planned):
                self._moveIntoPlace(temps, owners, moved, enclosed)
                if confirm is not None:
                    confirm()
        except RecordConflictError as exc:
            raise self._manyExistError(len(planned)) from exc
        except BaseException:
            for path in moved:
                removeQuietly(self.fs, path)
            raise

    def _moveIntoPlace(
        self, temps: list[tuple[str, str]], owners: list[DatasetRef], moved: list[str], enclosed: bool
    ) -> None:
        """Rename each temporary file to its final path (its record holds it), noting it in ``moved``.

        ``enclosed``: the records are written in an enclosing (registry) transaction, whose
        removals may not be committed yet (see `_keepExisting`); asked before the records'
        own transaction, if any, is begun.
        """
        for (tempPath, finalPath), ref in zip(temps, owners, strict=True):
            if enclosed:
                if self.isLocal and self.placeNew(tempPath, finalPath, moved):
                    continue
                if self._keepExisting(ref, tempPath, finalPath):
                    continue
            self.rename(tempPath, finalPath)
            moved.append(finalPath)

    def placeNew(self, tempPath: str, finalPath: str, moved: list[str]) -> bool:
        """Hard-link a local temporary file to its final path if nothing is there, then unlink it.

        ``finalPath`` is noted in ``moved`` once it is linked (before the unlink, so a failure
        of that removes it too).

        `False`: something is at ``finalPath`` (``link`` never replaces an entry, so this is the
        check `_keepExisting` would make with an ``lstat``, done atomically and in the same call)
        or the file system has no hard links; nothing was changed. A process killed between the
        two calls leaves the temporary name as well, which the leftover cleanup removes as any
        other. Paired on a local disk, ``link`` + ``unlink`` is about 1 µs a file less than
        ``lstat`` + ``rename``.
        """
        try:
            os.link(tempPath, finalPath, follow_symlinks=False)  # a symbolic link itself, not its target
        except OSError:  # FileExistsError: for _keepExisting to judge; else no hard links here
            return False
        moved.append(finalPath)
        os.unlink(tempPath)
        return True

    def _manyExistError(self, count: int) -> DatasetExistsError:
        return DatasetExistsError(
            f"Cannot store {count} datasets in datastore {self.datastoreName!r}: one of them is "
            "already there, or its file path is used by another dataset; nothing was stored."
        )

    def linkMany(
        self,
        planned: list[tuple[DatasetRef, list[StoredFileInfo]]],
        links: list[tuple[str, str]],
        makeLink: Callable[[str, str], None],
        confirm: Callable[[], None] | None = None,
    ) -> None:
        """Record many datasets of one file each (one INSERT), then link each file in at its final path.

        ``links`` holds ``(source, finalPath)`` in the order of ``planned``; ``makeLink(source,
        path)`` makes the link at ``path`` and raises `FileExistsError` if something is there,
        never replacing it. The records go in first, so each path is held while its link is made
        (no other writer can record it, and the cleanups leave it alone); then each link is
        made directly at the final path, with no temporary name. Only where an entry is already
        there (left by a crash, or the file of a removal not yet committed) is the link made at a
        temporary name and renamed into place as a put's file would be. All or nothing: if a
        link fails, the records are undone and every link made is removed; a process killed
        meanwhile leaves links that no record names, which `orphanFiles` lists.

        Raises
        ------
        DatasetExistsError
            One of them is already recorded, or one of their paths is taken; nothing was made.
        Exception
            Whatever ``makeLink`` raises; nothing is left behind.
        """
        made: list[str] = []
        temps: list[tuple[str, str]] = []
        owners: list[DatasetRef] = []
        enclosed = not self.records.commitsOnExit
        try:
            with self.records.recordingMany(planned):
                for (ref, _), (source, finalPath) in zip(planned, links, strict=True):
                    try:
                        makeLink(source, finalPath)
                    except FileExistsError:
                        tempPath = tempPathFor(finalPath)
                        makeLink(source, tempPath)
                        temps.append((tempPath, finalPath))
                        owners.append(ref)
                    else:
                        made.append(finalPath)
                self._moveIntoPlace(temps, owners, made, enclosed)
                if confirm is not None:
                    confirm()  # before the records commit: a failure removes every link made
        except RecordConflictError as exc:
            raise self._manyExistError(len(planned)) from exc
        except BaseException:
            for tempPath, _ in temps:
                removeQuietly(self.fs, tempPath)
            for path in made:
                removeQuietly(self.fs, path)
            raise

    def _keepExisting(self, ref: DatasetRef, tempPath: str, finalPath: str) -> bool:
        """Check the file a put is about to replace at ``finalPath``; `True`: keep it, drop the new one.

        Called for a put inside an enclosing (registry) transaction. The put's record holds the
        path, so a file there is either left by a crash (no record names it: it is replaced) or
        that of a removed dataset still in the trash, whose removal may not be committed yet: a
        template without ``{id}`` gives a dataset removed and put again in one transaction the
        same path, and replacing the file would destroy the removed one's if the transaction
        rolls back or the process dies. Then the file is kept if it has the same bytes (a
        dataset transferred back) and the put is refused otherwise. (A put in a transaction of
        its own sees only committed removals, whose files may go.)

        Raises
        ------
        DatasetExistsError
            The path holds another file of a removed dataset; nothing is replaced.
        """
        exists = os.path.lexists(finalPath) if self.isLocal else self.fs.exists(finalPath)
        if not exists:
            return False
        relPath = finalPath[len(self.rootPath.rstrip("/")) + 1 :]
        if not self.records.trashedPaths([relPath]):
            return False
        if _sameBytes(self.fs, tempPath, finalPath, self.isLocal):
            removeQuietly(self.fs, tempPath)
            return True
        raise DatasetExistsError(
            f"Cannot put {ref}: its path {self.uri(relPath)} still holds the file of a removed dataset "
            f"whose removal may not be committed yet (removed in this transaction, or by a process that "
            f"has not finished it). Commit the removal first, then put (reopening the repository "
            f"finishes a crashed one), or give each dataset its own path with {{id}} in the file template."
        )

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

    def drop(self, ref: DatasetRef, stored: list[StoredFileInfo] | None = None) -> bool:
        """Forget ``ref`` and delete its files (the undo of a put).

        ``stored`` (what a put recorded) covers records that are already gone because the
        registry transaction they were written in rolled back: the files the put moved into
        place are then deleted too, unless a record holds their path now. Rows of ``ref`` that
        are not the ones the put wrote are left alone: that rollback brought back what was
        there before (a transaction that removed a dataset, then transferred it back).

        Returns
        -------
        pending : bool
            `True` if the records were deleted inside a registry transaction: the files are in
            the trash, deleted once it commits (by `purge` or the next `recover`).
        """
        infos = self.unstore(ref, onlyIf=stored)
        if infos is not None:
            if not self.records.commitsOnExit:
                return True
            self.purge([(ref.id, infos)])
        elif stored:
            self.purge([(ref.id, stored)], trash=False, now=True)
        return False

    def purge(
        self,
        removals: list[tuple[uuid.UUID, list[StoredFileInfo]]],
        trash: bool = True,
        now: bool = False,
    ) -> None:
        """Delete the files of removed datasets, then (if ``trash``) their trash rows.

        Called once the removals are committed. Each file is deleted only while its path is held
        (`FileRecordTable.holdPaths`), so never when another dataset's record names the path by
        then, and only if it still has its recorded size (it is not some other file put there).
        Inside a registry transaction nothing is done (the removals may still roll back; the
        trash rows commit with them and `recover` finishes them), unless ``now``: the records are
        known to be gone for good.
        """
        if not (now or self.records.commitsOnExit):
            return
        for start in range(0, len(removals), _PURGE_CHUNK):
            chunk = removals[start : start + _PURGE_CHUNK]
            files = [info for _, infos in chunk for info in infos if _isOwnFile(info)]
            with self.records.begin():
                held = self.records.holdPaths([info.path for info in files])
                for info in files:
                    if info.path in held:
                        self._deleteIfUnchanged(info)
                self.records.releasePaths(held)
                if trash:
                    self.records.deleteTrash([datasetId for datasetId, _ in chunk])
            self.deleteFiles([info for _, infos in chunk for info in infos if info.formatter is None])

    def _deleteIfUnchanged(self, info: StoredFileInfo) -> None:
        """Delete the file of ``info`` if it has the recorded size (log anything else).

        A symbolic link (an ingest with ``symlink``/``relsymlink``) is always unlinked: that
        never touches the file it points to, and its recorded size is that file's.
        """
        try:
            path = self.insidePath(info.path)
            if self.isLocal and os.path.islink(path):
                os.unlink(path)
                return
            size = os.lstat(path).st_size if self.isLocal else self.fs.size(path)
        except FileNotFoundError:
            return
        except Exception as exc:
            log.warning("Could not check %s before deleting it: %s", self.uri(info.path), exc)
            return
        if size != info.fileSize:
            log.warning(
                "Not deleting %s: it is %s bytes, not the %s of the removed dataset's file; another "
                "file was put there.",
                self.uri(info.path),
                size,
                info.fileSize,
            )
            return
        removeQuietly(self.fs, path)

    def recover(self) -> int:
        """Finish the removals a crashed process committed but did not finish; return how many."""
        trashed = self.records.trashed()
        if trashed:
            self.purge(list(trashed.items()))
        return len(trashed)

    def moveAsideHeld(self, infos: list[StoredFileInfo]) -> list[tuple[str, str]]:
        """Move aside the files of committed-removed ``infos`` whose paths no record holds.

        Returns the ``(path, asidePath)`` renames, for `restore` or `deleteAside`.
        """
        moved: list[tuple[str, str]] = []
        files = [info for info in infos if _isOwnFile(info)]
        with self.records.begin():  # holds the paths while the files are moved
            held = self.records.holdPaths([info.path for info in files])
            for info in files:
                if info.path in held:
                    with contextlib.suppress(FileNotFoundError):  # already gone: nothing to keep
                        moved.append(self.moveAside(info.path))
            self.records.releasePaths(held)
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
        self, ref: DatasetRef, onlyIf: list[StoredFileInfo] | None = None
    ) -> list[StoredFileInfo] | None:
        """Delete the records of ``ref``, noting its files in the trash; no file is touched.

        Both happen in one records transaction (inside a registry transaction, in it), so the
        files are deleted (`purge`) only once the removal is committed, and a crash at any
        point leaves either the dataset whole or a trash row that `recover` finishes.

        Parameters
        ----------
        ref : DatasetRef
            The dataset to remove.
        onlyIf : list of StoredFileInfo, optional
            Only remove it if its records are these (the undo of the put that wrote them).

        Returns
        -------
        infos : list of StoredFileInfo or None
            The records deleted, or `None` if ``ref`` is not stored (or not as ``onlyIf``).
        """
        with self.records.begin():
            rows = self.records.fetch(ref.id)
            whole = rows.get("")
            if whole is None or whole[0] != ref.datasetType.name:
                return None
            infos = [info for _, info in rows.values()]
            if onlyIf is not None and _identities(infos) != _identities(onlyIf):
                return None
            for info in infos:  # refused before anything changes
                if isExternal(info.path):
                    continue
                try:
                    self.insidePath(info.path)
                except UnsafePathError as exc:
                    raise UnsafePathError(f"Cannot remove {ref}: {exc}") from exc
            self.records.delete(ref.id)
            self.records.trash(ref.id, ref.datasetType.name, infos)
        return infos

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
                # registry transaction that deleted them rolled back (their trash rows went
                # with it); they hold the paths, so the files go back without the write lock.
                for path, aside in moved:
                    moveNoReplace(self.fs, aside, path)
                    back.append((path, aside))
                return
            with self.records.begin():
                if not self.records.fetch(ref.id):
                    self.records.insert(ref.id, ref.datasetType.name, infos)
                for path, aside in moved:
                    self.checkInside(path)
                    moveNoReplace(self.fs, aside, path)
                    back.append((path, aside))
                self._checkPresent(ref, infos)
                self.records.delete(ref.id, trash=True)
        except (RecordConflictError, FileExistsError) as exc:
            self._unrestore(back)
            raise self._restoreError(ref, infos, moved) from exc
        except BaseException:
            self._unrestore(back)
            raise

    def _checkPresent(self, ref: DatasetRef, infos: list[StoredFileInfo]) -> None:
        """Raise if a file of ``infos`` is not at its path.

        A records row must never name a missing file, and another process's `recover` may
        have deleted it.
        """
        for info in infos:
            if info.formatter is not None and not self.fs.exists(self.fullPath(info.path)):
                raise DatasetNotFoundError(
                    f"Cannot restore {ref}: its file {self.uri(info.path)} is gone (its removal had been "
                    f"committed, and another process finished it); {ref} stays removed."
                )

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
        return self.records.pathOwners(paths)

    def deleteAside(
        self, datasetId: uuid.UUID, moved: list[tuple[str, str]], folders: list[StoredFileInfo]
    ) -> None:
        """Delete the files `moveAsideHeld` moved aside, then the emptied folders and the trash rows."""
        for _, aside in moved:
            try:
                removeQuietly(self.fs, self.checkInside(aside))
            except UnsafePathError as exc:
                log.warning("Not deleting %s: %s", aside, exc)
        self.deleteFiles(folders)
        with self.records.begin():
            self.records.delete(datasetId, trash=True)

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

    def _walk(self) -> list[str]:
        """Return every regular file and every symbolic link to a non-folder under the root (paths in ``fs``).

        Links are never followed: a link to a folder is neither entered nor listed, and a link
        listed here (an ingest with ``symlink`` that a crash left unrecorded, say) is only ever
        unlinked by a cleanup, which leaves what it points to alone.
        """
        if not self.isLocal:
            return [str(p) for p in self.fs.find(self.rootPath)]
        found = []
        for folder, _, names in os.walk(self.rootPath, followlinks=False):
            for name in names:  # os.walk lists a link to a folder with the folders
                path = os.path.join(folder, name)
                with contextlib.suppress(OSError):
                    mode = os.lstat(path).st_mode
                    if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
                        found.append(path)
        return found

    def _age(self, path: str) -> float:
        """Return the seconds since ``path`` was last modified."""
        if self.isLocal:
            return time.time() - os.lstat(path).st_mtime
        modified = self.fs.modified(path)
        if modified.tzinfo is None:
            modified = modified.replace(tzinfo=UTC)
        return float((datetime.now(UTC) - modified).total_seconds())

    def orphanFiles(self, olderThan: float) -> list[str]:
        """Return the complete files under the root that no record names, older than ``olderThan`` s.

        A process killed after moving a put's file into place but before the records commit
        leaves such a file (with ``{id}`` in the template, a retry writes another path, so
        nothing ever replaces it). Hidden files (temporary and set-aside ones, see
        `leftoverFiles`) are not included, nor the repository's own files at the top of the root.
        """
        recorded = self.records.paths()
        prefix = self.rootPath.rstrip("/") + "/"
        found = []
        for path in self._walk():
            if not path.startswith(prefix):
                continue
            relPath = path[len(prefix) :]
            parts = relPath.split("/")
            if any(part.startswith(".") for part in parts) or relPath in recorded:
                continue
            if len(parts) == 1 and (relPath in _REPOSITORY_FILES or not relPath.endswith(_DATA_EXTENSIONS)):
                continue
            with contextlib.suppress(FileNotFoundError):
                if self._age(path) >= olderThan:
                    found.append(path)
        return sorted(found)

    def removeUnrecorded(self, paths: list[str]) -> list[str]:
        """Delete each of ``paths`` (in ``fs``) while no record names it; return those deleted."""
        prefix = self.rootPath.rstrip("/") + "/"
        removed: list[str] = []
        for start in range(0, len(paths), _PURGE_CHUNK):
            chunk = {path[len(prefix) :]: path for path in paths[start : start + _PURGE_CHUNK]}
            with self.records.begin():
                held = self.records.holdPaths(list(chunk))
                for relPath in held:
                    try:
                        removeQuietly(self.fs, self.checkInside(chunk[relPath]))
                    except UnsafePathError as exc:
                        log.warning("Not deleting %s: %s", chunk[relPath], exc)
                        continue
                    removed.append(chunk[relPath])
                self.records.releasePaths(held)
        return sorted(removed)

    def restoreClaimed(self, asides: list[str], dryRun: bool = False) -> list[str]:
        """Move back set-aside files that a record still names; return those moved back.

        A file is moved back if a record names its original path, no file is there and it
        has the recorded size.

        Earlier versions set a removed file aside before the removal committed, so a crash
        could leave a record naming a hidden file: this gives such datasets their file back
        instead of letting the leftover cleanup delete it. With ``dryRun`` nothing is moved:
        the files that would be are returned.
        """
        prefix = self.rootPath.rstrip("/") + "/"
        restored = []
        for aside in asides:
            match = _ASIDE_OF.match(posixpath.basename(aside))
            if match is None or not aside.startswith(prefix):
                continue
            relPath = posixpath.join(posixpath.dirname(aside[len(prefix) :]), match["name"])
            owner = self._owners([relPath])[relPath]
            if owner is None:
                continue
            infos = [
                info for _, info in self.records.fetch(uuid.UUID(owner)).values() if info.path == relPath
            ]
            try:
                size = _entrySize(self.fs, aside, self.isLocal)
                if not infos or size != infos[0].fileSize:
                    continue
                if dryRun:
                    if not self.fs.exists(self.insidePath(relPath)):
                        restored.append(aside)
                    continue
                moveNoReplace(self.fs, self.checkInside(aside), self.insidePath(relPath))
            except (FileExistsError, FileNotFoundError, UnsafePathError):
                continue
            log.warning(
                "Restored %s (set aside by a crashed removal) for dataset %s.", self.uri(relPath), owner
            )
            restored.append(aside)
        return restored

    def leftoverFiles(self, olderThan: float) -> list[str]:
        """Return the temporary and set-aside files under the root older than ``olderThan`` seconds.

        These are what a crashed put (``.<name>.tmp-<hex>``) or a crashed transaction
        (``.<name>.removed-<seconds>-<hex>``) leaves behind; younger ones may belong to a put or
        a transaction in progress. A temporary file is aged by its modification time, a file
        set aside by the time in its name (it kept the modification time of the dataset's file).
        """
        cutoff = datetime.now(UTC) - timedelta(seconds=olderThan)
        found = []
        for path in self._walk():
            match = _LEFTOVER.match(posixpath.basename(path))
            if match is None:
                continue
            modified = None
            if match["setAside"] is not None:
                with contextlib.suppress(OverflowError, ValueError, OSError):  # not a time after all
                    modified = datetime.fromtimestamp(int(match["setAside"]), UTC)
            if modified is None:
                try:
                    age = self._age(path)  # a link's own time, never its target's
                except FileNotFoundError:
                    continue
                if age >= olderThan:
                    found.append(path)
            elif modified <= cutoff:
                found.append(path)
        return sorted(found)


def _identities(infos: list[StoredFileInfo]) -> set[tuple[Any, ...]]:
    """Return what tells one put's records of a dataset from another's: paths, times, sizes, checksums."""
    return {(info.component, info.path, info.timestamp, info.fileSize, info.checksum) for info in infos}


def _isOwnFile(info: StoredFileInfo) -> bool:
    """Return whether ``info`` is a file under the root (not a folder, not an external file)."""
    return info.formatter is not None and not isExternal(info.path)


def _entrySize(fs: Any, path: str, isLocal: bool) -> int | None:
    """Return the size of the file at ``path``, following a symbolic link (`None` if it dangles)."""
    if not isLocal:
        return int(fs.size(path))
    if os.path.islink(path):
        try:
            return os.stat(path).st_size
        except FileNotFoundError:
            return None
    return os.lstat(path).st_size


def _sameBytes(fs: Any, one: str, other: str, isLocal: bool) -> bool:
    """Return whether the files ``one`` and ``other`` (paths in ``fs``) hold the same bytes."""
    try:
        if isLocal:
            return filecmp.cmp(one, other, shallow=False)
        return bool(fs.size(one) == fs.size(other) and fs.cat_file(one) == fs.cat_file(other))
    except OSError:
        return False


class FolderChecks:
    """`FileAccess.insidePath` for the paths of one call, each folder resolved once, then once more.

    A folder found inside the root may become a symbolic link out of it before the call's
    files are placed (the datasets of an ingest are consumed as it goes). `confirm`, called
    once every file is placed and before the records commit, resolves each folder again, so
    that nothing placed through such a link is kept: one more ``realpath`` per folder.
    """

    def __init__(self, access: FileAccess) -> None:
        self._access = access
        self._folders: dict[str, str] = {}  # relative folder -> the full path of one file in it

    def __call__(self, relPath: str) -> str:
        folder = posixpath.dirname(relPath)
        if folder in self._folders:
            return self._access.fullPath(relPath)
        path = self._access.insidePath(relPath)
        self._folders[folder] = path
        return path

    def confirm(self) -> None:
        """Resolve every folder met again.

        Raises
        ------
        UnsafePathError
            One of them now resolves outside the root.
        """
        for path in self._folders.values():
            self._access.checkInside(path)
