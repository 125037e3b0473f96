"""Bringing existing files into a FileDatastore: the transfer modes of `FileDatastore.ingest`.

``copy`` and ``move`` write a temporary copy beside the dataset's templated path (hashed as it
is written), which `_access.FileAccess.storeMany` records and renames into place exactly as a
put's temporary file. The links (``hardlink``, ``link``, ``symlink``, ``relsymlink``) need no
temporary entry: the source is hashed first, every record of the call is inserted (which holds
the paths), then each link is made directly at its final path with a call that never replaces
an entry (`makeLink`; see `FileAccess.linkMany`). Either way a failure leaves neither a file nor
a record, and a crash leaves at worst unrecorded entries that the leftover and orphan cleanups
find. The file is never decoded; its size and checksum are recorded (`verify` reads it later).
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from typing import IO

from fsspec.implementations.local import LocalFileSystem

from ...dataset_ref import DatasetRef
from ...exceptions import IngestError
from ._io import newHasher, removeQuietly, tempPathFor, writeTemp

__all__ = [
    "LINK_MODES",
    "OUTSIDE_MODES",
    "SMALL_COPY",
    "SYMBOLIC_MODES",
    "TRANSFER_MODES",
    "copySmall",
    "hashSource",
    "makeLink",
    "statSource",
    "transferWriter",
]

TRANSFER_MODES = ("auto", "copy", "move", "link", "hardlink", "symlink", "relsymlink", "direct")
"""What `FileDatastore.ingest` can do with a file (``auto`` copies; ``move`` copies, then
deletes the source once everything is committed; ``link`` is a hard link, else a symbolic one;
``direct`` leaves it where it is and records its absolute URI)."""

LINK_MODES = frozenset({"link", "hardlink", "symlink", "relsymlink"})
"""The modes that place a link (hard or symbolic) to the source, made directly at its final path."""
OUTSIDE_MODES = frozenset({"move", "link", "symlink", "relsymlink", "direct"})
"""The modes whose source must lie outside the root: ``move`` deletes it, a symbolic link (``link``
may make one) or ``direct`` would leave a dataset resting on a file the datastore owns for another
dataset or for itself."""
SYMBOLIC_MODES = frozenset({"link", "symlink", "relsymlink", "direct"})
"""The modes that keep pointing at the source by name: a source that is itself a symbolic link
must not lead into the root either."""

_CHUNK = 1 << 20

SMALL_COPY = 1 << 20
"""A copied file smaller than this (bytes) is read whole into memory once, hashed and written (`copySmall`)."""

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC
_LOCAL = LocalFileSystem()


def statSource(path: str, ref: DatasetRef) -> tuple[str, int, bool]:
    """Return the absolute path and the size of ``path`` if it is an existing regular file (links followed).

    The third item says whether ``path`` itself is a symbolic link. One ``lstat`` call (and a
    ``stat`` for a link).

    Raises
    ------
    IngestError
        It does not exist, or is a folder or a special file.
    """
    absolute = os.path.abspath(os.fspath(path))
    try:
        info = os.lstat(absolute)
        isLink = stat.S_ISLNK(info.st_mode)
        if isLink:
            info = os.stat(absolute)
    except (FileNotFoundError, NotADirectoryError):
        raise IngestError(
            f"Cannot ingest {ref}: file {absolute} does not exist; nothing was ingested."
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise IngestError(
            f"Cannot ingest {ref}: {absolute} is not a regular file (a folder or a device); "
            "name one file per dataset; nothing was ingested."
        )
    return absolute, info.st_size, isLink


def hashSource(path: str, algorithm: str | None, expected: int | None = None) -> tuple[int, str | None]:
    """Return ``(size, checksum)`` of the file at ``path`` (links followed), read once.

    The size is that of the bytes hashed, so the two always agree. Without an ``algorithm``
    the size is the file's (``stat``) and the checksum `None`. ``expected`` (the size a
    ``stat`` gave) lets a small file be read with one call: a read shorter than asked is the
    end of a regular file, so it is asked for one byte more than expected.
    """
    if algorithm is None:
        return os.stat(path).st_size, None
    hasher = newHasher(algorithm)
    size = 0
    wanted = _CHUNK if expected is None else min(_CHUNK, expected + 1)
    fd = os.open(path, os.O_RDONLY | _CLOEXEC)  # no file object: µs per small file
    try:
        while chunk := os.read(fd, wanted):
            hasher.update(chunk)
            size += len(chunk)
            if len(chunk) < wanted:
                break
            wanted = _CHUNK
    finally:
        os.close(fd)
    return size, f"{algorithm}:{hasher.hexdigest()}"


def makeLink(source: str, path: str, transfer: str) -> None:
    """Make ``path`` a link to ``source`` as ``transfer`` says, and its folder if needed; never replace an entry.

    ``hardlink`` is a hard link; ``link`` a hard link, else (another file system, no hard
    links) a symbolic one; ``symlink`` an absolute and ``relsymlink`` a relative symbolic link.
    The folder is made only when the link cannot be (it saves a ``stat`` per file).

    Raises
    ------
    FileExistsError
        Something is at ``path`` already; nothing was changed.
    OSError
        The link cannot be made.
    """
    try:
        _link(source, path, transfer)
    except FileExistsError:
        raise
    except FileNotFoundError:  # a new folder (or, for a hard link, a source gone: raised again)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        _link(source, path, transfer)


def _link(source: str, path: str, transfer: str) -> None:
    if transfer == "symlink":
        os.symlink(source, path)
    elif transfer == "relsymlink":
        os.symlink(os.path.relpath(source, os.path.dirname(path)), path)
    elif transfer == "hardlink":
        os.link(source, path)
    else:
        try:
            os.link(source, path)
        except (FileExistsError, FileNotFoundError):
            raise
        except OSError:
            os.symlink(source, path)  # another file system: "link" falls back


def _hashFile(path: str, algorithm: str | None) -> str | None:
    return None if algorithm is None else hashSource(path, algorithm)[1]


def copySmall(
    source: str, target: str, algorithm: str | None, expected: int
) -> tuple[str, int, str | None] | None:
    """Copy a small local file ``source`` to a new temporary file beside ``target``, reading it once.

    Returns ``(tempPath, size, checksum)`` as `writeTemp` does, or `None` (nothing made) if the
    file is no longer small (it grew past `SMALL_COPY` since ``expected``, its ``stat`` size, was
    taken): the caller copies it in chunks instead. The whole file is read with one ``read`` of
    one byte more than expected (if it gives anything but the expected size, it reads on until an
    empty read: a short read is not the end of the file), the bytes are
    hashed from that buffer and written with raw file descriptors (no file objects: several µs
    a file). The temporary file is opened exclusively (always new) and removed if anything
    fails; its folder is made only when the open finds it missing (no ``stat`` a file).
    """
    flags = os.O_RDONLY | _CLOEXEC
    fd = os.open(source, flags)
    try:
        data = os.read(fd, expected + 1)
        if len(data) > expected and len(data) >= SMALL_COPY:
            return None
        if len(data) != expected:
            # It grew a little since its stat, or the read came back short (a signal, a network
            # or FUSE file system): only an empty read is the end of the file.
            while more := os.read(fd, SMALL_COPY):
                data += more
                if len(data) >= SMALL_COPY:
                    return None
    finally:
        os.close(fd)
    tempPath = tempPathFor(target)
    try:
        out = os.open(tempPath, _NEW, 0o666)
    except FileNotFoundError:  # the folder is new
        os.makedirs(os.path.dirname(target), exist_ok=True)
        out = os.open(tempPath, _NEW, 0o666)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(out, view) :]
        finally:
            os.close(out)
    except BaseException:
        removeQuietly(_LOCAL, tempPath)
        raise
    if algorithm is None:
        return tempPath, len(data), None
    hasher = newHasher(algorithm)
    hasher.update(data)
    return tempPath, len(data), f"{algorithm}:{hasher.hexdigest()}"


def transferWriter(
    fs: object,
    source: str,
    target: str,
    transfer: str,
    algorithm: str | None,
    expected: int | None = None,
) -> Callable[[], tuple[str | None, int, str | None]]:
    """Return the function that makes the temporary entry for ``target`` from ``source``.

    It returns ``(tempPath, size, checksum)``, as a put's write does. ``target`` is a local path
    already checked to be inside the root (for ``direct``, the source itself: no temporary entry,
    ``tempPath`` is `None`). ``expected`` is the source's size from a ``stat``, if known: a copy
    of a local file smaller than `SMALL_COPY` then reads it once into memory (`copySmall`).

    Raises
    ------
    IngestError
        ``transfer`` is not a mode of `TRANSFER_MODES`.
    """
    if transfer in ("auto", "copy", "move"):

        def copy() -> tuple[str | None, int, str | None]:
            if expected is not None and expected < SMALL_COPY and isinstance(fs, LocalFileSystem):
                small = copySmall(source, target, algorithm, expected)
                if small is not None:
                    return small
            with open(source, "rb") as src:

                def write(stream: IO[bytes]) -> None:
                    shutil.copyfileobj(src, stream, _CHUNK)

                return writeTemp(fs, target, write, algorithm)

        return copy
    if transfer == "direct":

        def direct() -> tuple[str | None, int, str | None]:
            return (None, *hashSource(source, algorithm))

        return direct
    if transfer in LINK_MODES:

        def link() -> tuple[str | None, int, str | None]:
            temp = tempPathFor(target)
            try:
                makeLink(source, temp, transfer)
                return (temp, *hashSource(source, algorithm))
            except BaseException:
                removeQuietly(fs, temp)
                raise

        return link
    raise IngestError(
        f"Unknown transfer mode {transfer!r}; use one of {', '.join(TRANSFER_MODES)}; nothing was ingested."
    )
