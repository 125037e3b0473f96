"""Low-level file work for FileDatastore: atomic writes with checksums, verified reads.

Every write goes to a temporary file beside its target (``.<name>.tmp-<random>``), hashed as
it is written, and is renamed into place only once complete; a crash leaves at worst a
temporary file, never a partial file at a dataset's path. Reads either take the whole file
into one buffer and check its size and blake2b checksum, or open it as a stream.

Hashing a big file runs in a second thread while the file is written or read (both release the
GIL), so a checksum costs about ``max(I/O, hashing)`` rather than their sum. The digest is the
plain sequential BLAKE2b-256 of the file, the same as ``b2sum -l 256``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import posixpath
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import IO, Any

from fsspec.implementations.local import LocalFileSystem

from ..exceptions import DatasetIntegrityError, DatasetNotFoundError

__all__ = [
    "CHECKSUM_ALGORITHM",
    "HashingWriter",
    "asidePathFor",
    "moveNoReplace",
    "readWhole",
    "removeQuietly",
    "tempPathFor",
    "writeTemp",
]

log = logging.getLogger(__name__)

CHECKSUM_ALGORITHM = "blake2b"
"""Recorded checksums are ``"blake2b:<hex>"`` of a 32-byte BLAKE2b digest."""

_CHUNK = 8 * 1024 * 1024
_OVERLAP_MIN = 4 * 1024 * 1024
"""Hash in a second thread, overlapping the I/O, from this many bytes."""


def _newHasher() -> Any:
    return hashlib.blake2b(digest_size=32)


class _HashWorker:
    """Feeds chunks, in order, to ``hasher`` in a thread of its own."""

    def __init__(self, hasher: Any) -> None:
        self.hasher = hasher
        self._queue: queue.SimpleQueue[memoryview | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="databutler-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self.hasher.update(chunk)

    def feed(self, chunk: memoryview) -> None:
        self._queue.put(chunk)

    def finish(self) -> None:
        self._queue.put(None)
        self._thread.join()


class HashingWriter(io.RawIOBase):
    """A write-only stream that passes bytes on to ``stream``, counting and hashing them.

    Parameters
    ----------
    stream : binary file
        Where the bytes go.
    checksum : bool
        Whether to hash them.
    """

    def __init__(self, stream: IO[bytes], checksum: bool) -> None:
        super().__init__()
        self._stream = stream
        self._hasher = _newHasher() if checksum else None
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        hasher = self._hasher
        if hasher is not None and view.nbytes >= _OVERLAP_MIN:
            # Hash while writing; both finish before returning, as the caller may reuse ``data``.
            worker = _HashWorker(hasher)
            worker.feed(view)
            try:
                self._stream.write(view)
            finally:
                worker.finish()
        else:
            self._stream.write(view)
            if hasher is not None:
                hasher.update(view)
        self.size += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._stream.flush()

    @property
    def checksum(self) -> str | None:
        """``"blake2b:<hex>"`` of everything written, or `None` when not hashing."""
        return None if self._hasher is None else f"{CHECKSUM_ALGORITHM}:{self._hasher.hexdigest()}"


def tempPathFor(path: str) -> str:
    """Return a fresh temporary path in the same folder as ``path`` (so a rename is atomic)."""
    folder, name = posixpath.split(path)
    return posixpath.join(folder, f".{name}.tmp-{uuid.uuid4().hex}")


def asidePathFor(path: str) -> str:
    """Return a fresh hidden path beside ``path`` to set it aside in, naming the time it is set aside.

    The name is ``.<name>.removed-<seconds since the epoch>-<random>``: a rename keeps the
    file's old modification time, so leftover cleanup ages a set-aside file by its name.
    """
    folder, name = posixpath.split(path)
    return posixpath.join(folder, f".{name}.removed-{int(time.time())}-{uuid.uuid4().hex}")


def writeTemp(
    fs: Any, path: str, writeFunc: Callable[[IO[bytes]], None], checksum: bool
) -> tuple[str, int, str | None]:
    """Write a temporary file beside ``path`` with ``writeFunc``; return ``(tempPath, size, checksum)``.

    The temporary file is removed if ``writeFunc`` raises (the exception propagates).
    """
    tempPath = tempPathFor(path)
    try:
        try:
            raw = fs.open(tempPath, "wb")
        except FileNotFoundError:  # the folder is new (checked only now: it saves a stat per put)
            fs.makedirs(posixpath.dirname(path), exist_ok=True)
            raw = fs.open(tempPath, "wb")
        with raw:
            writer = HashingWriter(raw, checksum)
            writeFunc(writer)  # type: ignore[arg-type]
    except BaseException:
        removeQuietly(fs, tempPath)
        raise
    return tempPath, writer.size, writer.checksum


def moveNoReplace(fs: Any, source: str, target: str) -> None:
    """Rename ``source`` to ``target`` unless ``target`` exists; never replace a file.

    On a local file system the new name is made with a hard link, which fails atomically if
    ``target`` exists, and the old name is then unlinked. Elsewhere (or where hard links are not
    supported) ``target`` is checked first: callers hold the records lock of ``target``'s path,
    so no other datastore writer can move a file there in between.

    Raises
    ------
    FileExistsError
        ``target`` exists; nothing was moved.
    """
    if isinstance(fs, LocalFileSystem):
        try:
            os.link(source, target)
        except FileExistsError:
            raise
        except OSError:  # no hard links here (some network and FUSE file systems)
            if os.path.lexists(target):
                raise FileExistsError(f"{target} exists; {source} was not moved there.") from None
            os.rename(source, target)
        else:
            os.unlink(source)
        return
    if fs.exists(target):
        raise FileExistsError(f"{target} exists; {source} was not moved there.")
    fs.mv(source, target)


def removeQuietly(fs: Any, path: str) -> None:
    """Remove ``path`` if it exists; log, do not raise, on failure."""
    try:
        fs.rm_file(path)
    except FileNotFoundError:
        pass
    except Exception as exc:  # cleanup must not hide the original error
        log.warning("Could not remove %s: %s", path, exc)


def readWhole(
    fs: Any,
    path: str,
    uri: str,
    fileSize: int,
    checksum: str | None,
    newBuffer: Callable[[int], memoryview] = lambda size: memoryview(bytearray(size)),
) -> memoryview:
    """Read the whole of ``path`` into a new writeable buffer, checking size and checksum.

    Parameters
    ----------
    fs : fsspec.AbstractFileSystem
        The file system.
    path : str
        The file's path in ``fs``.
    uri : str
        The file's URI, for messages.
    fileSize : int
        The recorded size.
    checksum : str or None
        The recorded checksum; `None` skips the check.
    newBuffer : callable
        Returns a writeable buffer of the given size to read into (a formatter's `newBuffer`).

    Raises
    ------
    DatasetNotFoundError
        The file does not exist although it is recorded.
    DatasetIntegrityError
        The file is shorter or longer than recorded, or its checksum differs.
    """
    view = newBuffer(fileSize)
    hasher = _newHasher() if checksum is not None else None
    worker = _HashWorker(hasher) if hasher is not None and fileSize >= _OVERLAP_MIN else None
    got = 0
    try:
        with fs.open(path, "rb") as stream:
            while got < fileSize:
                n = stream.readinto(view[got : got + _CHUNK])
                if not n:
                    break
                if worker is not None:
                    worker.feed(view[got : got + n])  # hashed while the next chunk is read
                got += n
            extra = stream.read(1)
    except FileNotFoundError as exc:
        raise DatasetNotFoundError(
            f"File {uri} is recorded in the datastore but no longer exists; the dataset cannot be read."
        ) from exc
    finally:
        if worker is not None:
            worker.finish()
    if got != fileSize or extra:
        actual = f"{got}" if not extra else f"more than {fileSize}"
        raise DatasetIntegrityError(
            f"File {uri} is {actual} bytes but {fileSize} were written: it was truncated or changed "
            f"on disk. Nothing was modified; restore the file or remove the dataset."
        )
    if checksum is not None and hasher is not None:
        algorithm, _, expected = checksum.partition(":")
        if algorithm != CHECKSUM_ALGORITHM:
            raise DatasetIntegrityError(f"File {uri} has a checksum of unknown algorithm {algorithm!r}.")
        if worker is None:
            hasher.update(view)
        if hasher.hexdigest() != expected:
            raise DatasetIntegrityError(
                f"File {uri} does not match the blake2b checksum recorded when it was written: it was "
                f"changed on disk. Nothing was modified; restore the file or remove the dataset."
            )
    return view
