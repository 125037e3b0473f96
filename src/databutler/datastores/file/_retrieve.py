"""Copying or linking a FileDatastore's files out as they are (`FileDatastore.retrieveArtifacts`).

Every target is planned and checked before any file is written: its path relative to the
destination is a safe relative path (a record cannot climb out with ``..``), no two datasets
share it, and an existing file there is refused unless ``overwrite``. Each file is written to a
temporary name beside its target, checked against the recorded size and checksum while it is
copied, then renamed into place (without replacing an existing file unless ``overwrite``). The
folder of every target must resolve inside the destination, so a symbolic link planted there
cannot lead a file out, and the destination cannot be inside the datastore's root. A failure
removes the files this call placed.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, NamedTuple

from fsspec.implementations.local import LocalFileSystem

from ...dataset_ref import DatasetRef
from ...exceptions import ArtifactError, ArtifactExistsError, DatasetIntegrityError, UnsafePathError
from ._access import isExternal
from ._io import isWithin, moveNoReplace, removeQuietly, splitChecksum, tempPathFor, writeTemp
from ._records import StoredFileInfo
from ._templates import checkRelativePath

if TYPE_CHECKING:
    from ._datastore import FileDatastore

__all__ = ["RETRIEVE_MODES", "retrieveArtifacts"]

RETRIEVE_MODES = ("copy", "link", "hardlink", "symlink", "relsymlink")
"""How `FileDatastore.retrieveArtifacts` can place a file (``link``: a hard link, else a symbolic one)."""

_LOCAL = LocalFileSystem()
_CHUNK = 1 << 20


class _Planned(NamedTuple):
    ref: DatasetRef
    info: StoredFileInfo
    relPath: str
    target: str


def retrieveArtifacts(
    store: FileDatastore,
    refs: Iterable[DatasetRef],
    destination: str,
    transfer: str,
    preserve: bool,
    overwrite: bool,
) -> list[str]:
    """Copy or link the files of ``refs`` under ``destination``; see `FileDatastore.retrieveArtifacts`."""
    if transfer not in RETRIEVE_MODES:
        raise ArtifactError(
            f"Unknown transfer mode {transfer!r} for retrieving artifacts; use one of "
            f"{', '.join(RETRIEVE_MODES)}; nothing was written."
        )
    if transfer != "copy" and not store.files.isLocal:
        raise ArtifactError(
            f"Datastore {store.name!r} is not on a local disk: its files can only be copied out, not "
            f"linked (transfer={transfer!r}); use transfer='copy'."
        )
    destination = os.path.abspath(os.fspath(destination))
    if store.files.isLocal:
        root, real = store.files.realRoot, os.path.realpath(destination)
        if isWithin(real, root):
            # The targets would be the stored files themselves (or beside them): a link or an
            # undo written over one would lose it.
            raise ArtifactError(
                f"Cannot retrieve artifacts into {destination}: it is inside the root {root} of datastore "
                f"{store.name!r}, where they are stored; choose a folder outside the repository; nothing "
                "was written."
            )
    plan = _plan(store, refs, destination, preserve, overwrite)
    os.makedirs(destination, exist_ok=True)
    realDestination = os.path.realpath(destination)
    placed: list[str] = []
    try:
        for item in plan:
            _place(store, item, realDestination, transfer, overwrite)
            placed.append(item.target)
    except BaseException:
        for path in placed:
            removeQuietly(_LOCAL, path)
        raise
    return [item.target for item in plan]


def _plan(
    store: FileDatastore, refs: Iterable[DatasetRef], destination: str, preserve: bool, overwrite: bool
) -> list[_Planned]:
    plan: list[_Planned] = []
    owners: dict[str, DatasetRef] = {}
    for ref in refs:
        infos = store._lookup(ref, "retrieve the artifacts of")
        for info in infos.values():
            if info.formatter is None:
                continue  # the folder of a disassembled composite: its files are listed too
            relPath = info.path
            if isExternal(relPath):  # ingested with "direct": placed where a copy would have been
                extension = posixpath.splitext(relPath)[1]
                relPath = store.layout.templates.render(ref) + extension
            if not preserve:
                relPath = posixpath.basename(relPath)
            try:
                checkRelativePath(relPath)
            except UnsafePathError as exc:
                raise UnsafePathError(
                    f"Cannot retrieve {ref}: its recorded path {info.path!r} would leave the destination "
                    f"{destination}; nothing was written."
                ) from exc
            other = owners.get(relPath)
            if other is not None and other.id != ref.id:
                raise ArtifactExistsError(
                    f"Cannot retrieve {ref} and {other} to one destination without their folders: both "
                    f"files are named {relPath!r}; use preserve=True (drop --flat); nothing was written."
                )
            owners[relPath] = ref
            target = os.path.join(destination, *relPath.split("/"))
            if not overwrite and os.path.lexists(target):
                raise ArtifactExistsError(
                    f"Cannot retrieve {ref} to {target}: a file is already there; pass overwrite=True "
                    "(--clobber) to replace it; nothing was written."
                )
            plan.append(_Planned(ref, info, relPath, target))
    return plan


def _checkInside(target: str, realDestination: str) -> None:
    folder = os.path.realpath(os.path.dirname(target))
    if not isWithin(folder, realDestination):
        raise UnsafePathError(
            f"Refusing to write {target}: its folder resolves to {folder}, outside the destination "
            f"{realDestination} (a symbolic link inside it points out); nothing was kept."
        )


def _place(
    store: FileDatastore, item: _Planned, realDestination: str, transfer: str, overwrite: bool
) -> None:
    _checkInside(item.target, realDestination)
    os.makedirs(os.path.dirname(item.target), exist_ok=True)
    _checkInside(item.target, realDestination)  # the folders made may have been swapped for links
    source = store.files.fullPath(item.info.path)
    temp = _copy(store, item, source) if transfer == "copy" else _link(source, item.target, transfer)
    try:
        if overwrite:
            os.replace(temp, item.target)
        else:
            moveNoReplace(_LOCAL, temp, item.target)
    except FileExistsError as exc:
        raise ArtifactExistsError(
            f"Cannot retrieve {item.ref} to {item.target}: a file appeared there meanwhile; pass "
            "overwrite=True (--clobber) to replace it; nothing was written."
        ) from exc
    finally:
        removeQuietly(_LOCAL, temp)


def _copy(store: FileDatastore, item: _Planned, source: str) -> str:
    """Copy the stored bytes to a temporary file beside the target, checked as they go."""
    info = item.info
    algorithm = expected = None
    if info.checksum:
        algorithm, expected = splitChecksum(info.checksum)

    def write(stream: IO[bytes]) -> None:
        with store.files.fs.open(source, "rb") as src:
            shutil.copyfileobj(src, stream, _CHUNK)

    try:
        temp, size, checksum = writeTemp(_LOCAL, item.target, write, algorithm)
    except FileNotFoundError as exc:
        raise DatasetIntegrityError(
            f"Cannot retrieve {item.ref}: its file {store.files.uri(info.path)} is recorded but gone."
        ) from exc
    actual = checksum.partition(":")[2] if checksum else None
    if size != info.fileSize or (expected is not None and actual != expected):
        removeQuietly(_LOCAL, temp)
        raise DatasetIntegrityError(
            f"Cannot retrieve {item.ref}: its file {store.files.uri(info.path)} is {size} bytes"
            f"{'' if expected is None else f' with checksum {actual}'}, not the recorded {info.fileSize}"
            f"{'' if expected is None else f' with {expected}'}; it changed on disk (databutler verify); "
            "nothing was written."
        )
    return temp


def _link(source: str, target: str, transfer: str) -> str:
    temp = tempPathFor(target)
    if transfer in ("link", "hardlink"):
        try:
            os.link(source, temp)
            return temp
        except OSError:
            if transfer == "hardlink":
                raise
    if transfer == "relsymlink":
        os.symlink(os.path.relpath(os.path.realpath(source), os.path.dirname(target)), temp)
    else:
        os.symlink(os.path.realpath(source), temp)
    return temp
