"""Low-level file work for FileDatastore: atomic writes with checksums, verified reads.

Every write goes to a temporary file beside its target (``.<name>.tmp-<random>``), hashed as
it is written, and is renamed into place only once complete; a crash leaves at worst a
temporary file, never a partial file at a dataset's path. Reads either take the whole file
into one buffer and check its size and blake2b checksum, or open it as a stream.
"""

from __future__ import annotations

import hashlib
import io
import logging
import posixpath
import uuid
from collections.abc import Callable
from typing import IO, Any

from ..exceptions import DatasetIntegrityError, DatasetNotFoundError

__all__ = ["CHECKSUM_ALGORITHM", "HashingWriter", "readWhole", "removeQuietly", "tempPathFor", "writeTemp"]

log = logging.getLogger(__name__)

CHECKSUM_ALGORITHM = "blake2b"
"""Recorded checksums are ``"blake2b:<hex>"`` of a 32-byte BLAKE2b digest."""

_CHUNK = 8 * 1024 * 1024


def _newHasher() -> Any:
    return hashlib.blake2b(digest_size=32)


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
        self._stream.write(view)
        if self._hasher is not None:
            self._hasher.update(view)
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
    try:
        with fs.open(path, "rb") as stream:
            got = 0
            while got < fileSize:
                n = stream.readinto(view[got : got + _CHUNK])
                if not n:
                    break
                got += n
            extra = stream.read(1)
    except FileNotFoundError as exc:
        raise DatasetNotFoundError(
            f"File {uri} is recorded in the datastore but no longer exists; the dataset cannot be read."
        ) from exc
    if got != fileSize or extra:
        actual = f"{got}" if not extra else f"more than {fileSize}"
        raise DatasetIntegrityError(
            f"File {uri} is {actual} bytes but {fileSize} were written: it was truncated or changed "
            f"on disk. Nothing was modified; restore the file or remove the dataset."
        )
    if checksum is not None:
        algorithm, _, expected = checksum.partition(":")
        if algorithm != CHECKSUM_ALGORITHM:
            raise DatasetIntegrityError(f"File {uri} has a checksum of unknown algorithm {algorithm!r}.")
        hasher = _newHasher()
        hasher.update(view)
        if hasher.hexdigest() != expected:
            raise DatasetIntegrityError(
                f"File {uri} does not match the blake2b checksum recorded when it was written: it was "
                f"changed on disk. Nothing was modified; restore the file or remove the dataset."
            )
    return view
