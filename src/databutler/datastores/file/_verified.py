"""Ingesting files whose sizes and checksums are known in advance (`FileDatastore.ingestVerified`).

An import brings in files another datastore wrote and recorded: each must have exactly the size
and checksum recorded there, checked before the file is recorded. A copy (`copyVerified`) reads
each file once: every piece read is hashed (with the recorded checksum's algorithm, and with this
datastore's too if that is another) and written to the temporary file, so verifying costs no
second read. A link (`checkedWrite` around the transfer writer of `_ingest`) hashes the source.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Callable
from typing import Any

from ...dataset_ref import DatasetRef
from ...exceptions import DatasetIntegrityError, IngestError
from ._ingest import _hashFile
from ._io import newHasher, removeQuietly, splitChecksum, tempPathFor

__all__ = ["VerifiedFile", "VerifiedIngest", "checkedWrite", "copyVerified"]

_CHUNK = 1 << 20
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)

VerifiedFile = tuple[str | None, str, str, int, str | None]
"""One file: ``(component, path, formatterName, fileSize, checksum)``."""

VerifiedIngest = tuple[DatasetRef, list[VerifiedFile]]
"""One dataset: its ref and its files."""


def checkedWrite(
    fs: Any,
    writer: Callable[[], tuple[str | None, int, str | None]],
    source: str,
    ref: DatasetRef,
    fileSize: int,
    checksum: str | None,
    algorithm: str | None,
) -> tuple[str | None, int, str | None]:
    """Check ``source`` against ``fileSize`` and ``checksum``, run ``writer``, check what it wrote.

    Returns what ``writer`` returns: ``(tempPath, size, checksum)``.

    Raises
    ------
    DatasetIntegrityError
        The size or checksum differs; nothing of the write is left.
    IngestError
        ``source`` is missing.
    """
    try:
        size = os.stat(source).st_size
    except FileNotFoundError as exc:
        raise IngestError(
            f"Cannot ingest {ref}: file {source} does not exist; nothing was ingested."
        ) from exc
    if size != fileSize:
        raise DatasetIntegrityError(
            f"Cannot ingest {ref}: file {source} has {size} bytes, not the {fileSize} recorded for it; "
            "nothing was ingested."
        )
    recordedAlgorithm = splitChecksum(checksum)[0] if checksum is not None else None
    if checksum is not None and recordedAlgorithm != algorithm:
        found = _hashFile(source, recordedAlgorithm)
        if found != checksum:
            raise _mismatch(ref, source, f"its checksum is {found}, not the {checksum} recorded for it")
    tempPath, written, writtenChecksum = writer()
    problem = None
    if written != fileSize:
        problem = f"{written} bytes were written, not the {fileSize} recorded (did it change meanwhile?)"
    elif checksum is not None and recordedAlgorithm == algorithm and writtenChecksum != checksum:
        problem = f"its checksum is {writtenChecksum}, not the {checksum} recorded for it"
    if problem is not None:
        if tempPath is not None:
            removeQuietly(fs, tempPath)
        raise _mismatch(ref, source, problem)
    return tempPath, written, writtenChecksum


def copyVerified(
    fs: Any,
    source: str,
    target: str,
    ref: DatasetRef,
    fileSize: int,
    checksum: str | None,
    algorithm: str | None,
) -> tuple[str | None, int, str | None]:
    """Copy ``source`` to a new temporary file beside ``target``, checking its size and checksum as it goes.

    ``fs`` is the datastore's local file system; ``target`` a path in it checked to be inside
    the root. One pass over the bytes: each piece read is hashed and written, with no second read to
    verify. ``source`` must be a regular file, not a symbolic link (it is opened without
    following one). A small file costs two opens, one ``fstat``, one read and one write. The
    temporary file is removed if anything fails.

    Returns ``(tempPath, size, checksum)`` as a put's write does (``checksum`` with ``algorithm``,
    this datastore's; `None` if it records none).

    Raises
    ------
    DatasetIntegrityError
        The size or checksum differs from those given.
    IngestError
        ``source`` is missing, a symbolic link or not a regular file.
    """
    recorded, expected = splitChecksum(checksum) if checksum is not None else (None, None)
    check = newHasher(recorded) if recorded is not None else None
    own = check if algorithm == recorded else (newHasher(algorithm) if algorithm is not None else None)
    try:
        inFd = os.open(source, os.O_RDONLY | _CLOEXEC | _NOFOLLOW)
    except FileNotFoundError as exc:
        raise IngestError(
            f"Cannot ingest {ref}: file {source} does not exist; nothing was ingested."
        ) from exc
    except OSError as exc:
        if os.path.islink(source):
            raise IngestError(
                f"Cannot ingest {ref}: {source} is a symbolic link, not a file; nothing was ingested."
            ) from exc
        raise
    try:
        info = os.fstat(inFd)
        if not stat.S_ISREG(info.st_mode):
            raise IngestError(f"Cannot ingest {ref}: {source} is not a regular file; nothing was ingested.")
        if info.st_size != fileSize:
            raise DatasetIntegrityError(
                f"Cannot ingest {ref}: file {source} has {info.st_size} bytes, not the {fileSize} recorded "
                "for it; nothing was ingested."
            )
        tempPath = tempPathFor(target)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC
        try:
            outFd = os.open(tempPath, flags, 0o666)
        except FileNotFoundError:  # a new folder (checked only now: it saves a stat per file)
            os.makedirs(posixpath.dirname(target), exist_ok=True)
            outFd = os.open(tempPath, flags, 0o666)
        try:
            try:
                size = _copyHashing(inFd, outFd, fileSize, check, own)
            finally:
                os.close(outFd)
            problem = None
            if size != fileSize:
                problem = f"{size} bytes were read, not the {fileSize} recorded (did it change meanwhile?)"
            elif check is not None and check.hexdigest() != expected:
                problem = (
                    f"its checksum is {recorded}:{check.hexdigest()}, not the {checksum} recorded for it"
                )
            if problem is not None:
                raise _mismatch(ref, source, problem)
        except BaseException:
            removeQuietly(fs, tempPath)
            raise
    finally:
        os.close(inFd)
    return tempPath, size, None if own is None else f"{algorithm}:{own.hexdigest()}"


def _copyHashing(inFd: int, outFd: int, fileSize: int, check: Any, own: Any) -> int:
    """Copy from ``inFd`` to ``outFd``, feeding each piece to the hashers; return the bytes read.

    Reads at most one byte more than ``fileSize`` (so that a longer file shows); a read shorter
    than asked is the end of the file (for a regular file), which saves a last empty read.
    """
    size = 0
    while True:
        wanted = min(_CHUNK, fileSize - size + 1)
        chunk = os.read(inFd, wanted)
        size += len(chunk)
        if not chunk or size > fileSize:
            return size
        if check is not None:
            check.update(chunk)
        if own is not None and own is not check:
            own.update(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(outFd, view) :]
        if len(chunk) < wanted:
            return size


def _mismatch(ref: DatasetRef, source: str, problem: str) -> DatasetIntegrityError:
    return DatasetIntegrityError(
        f"Cannot ingest {ref}: file {source} is not the file that was recorded: {problem}; it was "
        "damaged or replaced; nothing was ingested."
    )
