"""Low-level file work for FileDatastore: atomic writes with checksums, verified reads.

Every write goes to a temporary file beside its target (``.<name>.tmp-<random>``), hashed as
it is written (over the very buffers handed to the file, in the same pass), and is renamed
into place only once complete; a crash leaves at worst a temporary file, never a partial file
at a dataset's path. Reads either take the whole file into one buffer (the formatter's, read
into in place) and check its size and checksum, or open it as a stream.

A checksum is recorded as ``"<algorithm>:<hex digest>"``; a value without a prefix (written
by early versions) is BLAKE2b-256. A file is always verified with the algorithm its record
names, whatever the datastore is configured to write now. The algorithms
(`CHECKSUM_ALGORITHMS`):

``xxh3_128`` (the default)
    XXH3-128 from the ``xxhash`` package (``xxhsum -H2``), about 20 GB/s: detects corruption,
    truncation and accidental changes, not deliberate tampering.
``blake2b``
    BLAKE2b with a 32-byte digest (``b2sum -l 256``): cryptographic, but about 0.5-1 GB/s.

A big write is handed to the file in 16 MiB pieces, each hashed in a second thread while the
kernel copies that same piece into the file (with a single CPU, each piece is hashed right
before it is written, so that the kernel copies it from the CPU cache). A big read is read in
4 MB pieces: with xxh3 each piece is hashed right after it is read, while it is still in the
CPU cache; blake2b hashes in a second thread while the next piece is read, so it costs about
``max(I/O, hashing)``.

On a local file system a new file is opened with the builtin `open` (fsspec's file objects
cost tens of µs per file); other file systems go through fsspec.

Two things make big local files as fast as `numpy.save` / `numpy.load`: a write of a big
buffer first reserves its disk blocks (``fallocate``, as ``ndarray.tofile`` does), and a
whole-file read goes into a page-aligned buffer (the kernel copies a file's pages much
faster into memory at the same offset within a page).
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import logging
import os
import posixpath
import queue
import random
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any, cast

from fsspec.implementations.local import LocalFileSystem

from ...exceptions import DatasetFileMissingError, DatasetIntegrityError

__all__ = [
    "CHECKSUM_ALGORITHMS",
    "DEFAULT_CHECKSUM_ALGORITHM",
    "LEGACY_CHECKSUM_ALGORITHM",
    "HashingWriter",
    "asidePathFor",
    "isWithin",
    "moveNoReplace",
    "newHasher",
    "readWhole",
    "removeQuietly",
    "splitChecksum",
    "tempPathFor",
    "writeTemp",
]

log = logging.getLogger(__name__)


def _xxh3_128() -> Any:
    import xxhash  # imported on first use: only datastores that hash with it need it

    return xxhash.xxh3_128()


def _blake2b() -> Any:
    return hashlib.blake2b(digest_size=32)


_HASHERS: dict[str, Callable[[], Any]] = {"xxh3_128": _xxh3_128, "blake2b": _blake2b}

CHECKSUM_ALGORITHMS: tuple[str, ...] = tuple(_HASHERS)
"""The algorithms a FileDatastore can record checksums with (its ``checksum`` config)."""

DEFAULT_CHECKSUM_ALGORITHM = "xxh3_128"
"""What ``checksum: true`` means."""

LEGACY_CHECKSUM_ALGORITHM = "blake2b"
"""The algorithm of a recorded checksum with no ``<algorithm>:`` prefix."""

_CHUNK = 4 * 1024 * 1024
"""Big files are read (and hashed) in pieces of this size (small enough to be still in the
CPU cache when hashed right after being read)."""

_WRITE_PIECE = 16 * 1024 * 1024
"""A big write is handed to the file and to the hashing thread in pieces of this size.

The thread hashes a piece while the kernel copies the same piece into the file. In a write-only
microbenchmark (100 MB, xxh3, idle 2-CPU machine) 2-4 MiB pieces measured 1.05x the unhashed
write against 1.08x for 16 MiB, but whole 100 MB puts measured slightly better with 16 MiB
(median 1.14x `numpy.save` against 1.18x), so 16 MiB it stays. With one CPU (or a busy second
one) hashing each piece in the writing thread right before writing it is better (it is then in
the CPU cache): see `_SPARE_CPU`."""

_CACHED_PIECE = 2 * 1024 * 1024
"""Without a `_SPARE_CPU`, a big write is hashed and written in pieces of this size, each hashed
right before it is written so that the kernel copies it from the CPU cache (100 MB, xxh3, the
write alone against `numpy.save`: 1.11-1.17x with 2-4 MiB pieces, 1.23x with 512 KiB, 1.16x
with 8 MiB; smaller pieces cost more system calls, bigger ones fall out of the cache)."""

_SPARE_CPU = (
    len(os.sched_getaffinity(0)) > 1 if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1) > 1
)
"""Whether this process may run on more than one CPU, so a hashing thread can run beside the writer."""

_THREADED_READS = frozenset({"blake2b"})
"""Algorithms slow enough to hash in a second thread while the next piece is read (hashlib
releases the GIL). An xxh3 read hashes each piece right after reading it, while it is in the
CPU cache: that measured faster than a second thread, which must hand the GIL (xxhash holds
it) back to the reader between pieces."""

_OVERLAP_MIN = 4 * 1024 * 1024
"""Hash in a second thread from this many bytes: on write (the thread hashes a piece while the
kernel copies that same piece into the file) if there is a `_SPARE_CPU`, for `_THREADED_READS`
on read."""

_BIG = 1024 * 1024
"""From this many bytes, space is preallocated before a write and read buffers are aligned."""

_PAGE = 4096


def _findFallocate() -> Any:
    """Return Linux's ``fallocate(fd, mode, offset, len)`` from the C library, or `None`."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fallocate = ctypes.CDLL(None, use_errno=True).fallocate
    except (OSError, AttributeError):
        return None
    fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fallocate.restype = ctypes.c_int
    return fallocate


_FALLOCATE = _findFallocate()
_FALLOC_FL_KEEP_SIZE = 1
"""Allocate blocks without changing the file's size (what `numpy.ndarray.tofile` does, too)."""


def newHasher(algorithm: str) -> Any:
    """Return a new hashlib-style hasher (``update``, ``hexdigest``) for ``algorithm``.

    Raises
    ------
    ValueError
        ``algorithm`` is not one of `CHECKSUM_ALGORITHMS`.
    """
    try:
        factory = _HASHERS[algorithm]
    except KeyError:
        raise ValueError(
            f"unknown checksum algorithm {algorithm!r}; known: {', '.join(CHECKSUM_ALGORITHMS)}"
        ) from None
    return factory()


def splitChecksum(checksum: str) -> tuple[str, str]:
    """Return ``(algorithm, hexdigest)`` of a recorded checksum.

    ``"xxh3_128:<hex>"`` gives ``("xxh3_128", "<hex>")``; a bare ``"<hex>"`` (records written
    before the algorithm was recorded) is `LEGACY_CHECKSUM_ALGORITHM`.
    """
    algorithm, sep, digest = checksum.partition(":")
    if not sep:
        return LEGACY_CHECKSUM_ALGORITHM, checksum
    return algorithm, digest


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

    Each buffer written is hashed as it is (no copy), in the same pass as it is written (a big
    one piece by piece, see `_WRITE_PIECE`).

    Parameters
    ----------
    stream : binary file
        Where the bytes go.
    algorithm : str or None
        What to hash them with (one of `CHECKSUM_ALGORITHMS`), or `None` not to hash.
    """

    def __init__(self, stream: IO[bytes], algorithm: str | None) -> None:
        super().__init__()
        self._stream = stream
        self._algorithm = algorithm
        self._hasher = newHasher(algorithm) if algorithm is not None else None
        self._fd: int | None = -1  # -1: not looked up yet; None: no file descriptor
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        size = view.nbytes
        if size >= _BIG:
            self._preallocate(size)
        hasher = self._hasher
        if hasher is None:
            self._stream.write(view)
        elif size < _OVERLAP_MIN:
            hasher.update(view)
            self._stream.write(view)
        elif _SPARE_CPU:
            # Hash each piece while it is written; all done before returning (``data`` may be reused).
            worker = _HashWorker(hasher)
            try:
                for start in range(0, size, _WRITE_PIECE):
                    piece = view[start : start + _WRITE_PIECE]
                    worker.feed(piece)
                    self._stream.write(piece)
            finally:
                worker.finish()
        else:
            update, write = hasher.update, self._stream.write
            for start in range(0, size, _CACHED_PIECE):
                piece = view[start : start + _CACHED_PIECE]
                update(piece)  # brings the piece into the CPU cache...
                write(piece)  # ...from which the kernel copies it into the file
        self.size += size
        return size

    def _preallocate(self, size: int) -> None:
        """Reserve disk blocks for the next ``size`` bytes of a local file, if the OS can.

        Writing into blocks allocated up front is much faster (about a third, for 100 MB on
        ext4) than letting the file system extend the file page by page. The file's size is
        not changed; where this is not supported nothing happens.
        """
        if self._fd == -1:
            try:
                self._fd = self._stream.fileno()
            except (AttributeError, OSError, ValueError):  # memory://, object stores
                self._fd = None
        if self._fd is not None and _FALLOCATE is not None:
            _FALLOCATE(self._fd, _FALLOC_FL_KEEP_SIZE, self.size, size)  # failure: just not preallocated

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._stream.flush()

    @property
    def checksum(self) -> str | None:
        """``"<algorithm>:<hex>"`` of everything written, or `None` when not hashing."""
        return None if self._hasher is None else f"{self._algorithm}:{self._hasher.hexdigest()}"


_names = random.Random()  # seeded from os.urandom; never the global one, which users may seed
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_names.seed)  # a forked child must not repeat its parent's names


def _randomHex() -> str:
    """Return 32 random hex digits (128 bits) for a temporary name: ~0.4 µs, `uuid.uuid4` ~3 µs."""
    return f"{_names.getrandbits(128):032x}"


def tempPathFor(path: str) -> str:
    """Return a fresh temporary path in the same folder as ``path`` (so a rename is atomic)."""
    folder, name = posixpath.split(path)
    return posixpath.join(folder, f".{name}.tmp-{_randomHex()}")


def isWithin(path: str, folder: str) -> bool:
    """Return whether the real path ``path`` is the real path ``folder`` or lies below it."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def asidePathFor(path: str) -> str:
    """Return a fresh hidden path beside ``path`` to set it aside in, naming the time it is set aside.

    The name is ``.<name>.removed-<seconds since the epoch>-<random>``: a rename keeps the
    file's old modification time, so leftover cleanup ages a set-aside file by its name.
    """
    folder, name = posixpath.split(path)
    return posixpath.join(folder, f".{name}.removed-{int(time.time())}-{_randomHex()}")


def _openNew(fs: Any, path: str, local: bool) -> IO[bytes]:
    """Open a new file for writing: locally with the builtin `open`, failing if it exists."""
    if local:
        return open(path, "xb")
    return cast(IO[bytes], fs.open(path, "wb"))


def writeTemp(
    fs: Any, path: str, writeFunc: Callable[[IO[bytes]], None], algorithm: str | None
) -> tuple[str, int, str | None]:
    """Write a temporary file beside ``path`` with ``writeFunc``; return ``(tempPath, size, checksum)``.

    The bytes are hashed with ``algorithm`` (`None`: not hashed, ``checksum`` is `None`) as
    they are written. The temporary file is removed if ``writeFunc`` raises (the exception
    propagates). A local file is opened with the builtin `open`, in exclusive mode (the
    temporary file is always new).
    """
    tempPath = tempPathFor(path)
    local = isinstance(fs, LocalFileSystem)
    ours = not local  # an exclusive open that failed made no file: nothing of ours to remove
    try:
        try:
            raw = _openNew(fs, tempPath, local)
        except FileNotFoundError:  # the folder is new (checked only now: it saves a stat per put)
            if local:
                os.makedirs(posixpath.dirname(path), exist_ok=True)
            else:
                fs.makedirs(posixpath.dirname(path), exist_ok=True)
            raw = _openNew(fs, tempPath, local)
        ours = True
        with raw:
            writer = HashingWriter(raw, algorithm)
            writeFunc(writer)  # type: ignore[arg-type]
    except BaseException:
        if ours:
            removeQuietly(fs, tempPath)
        raise
    return tempPath, writer.size, writer.checksum


def moveNoReplace(fs: Any, source: str, target: str) -> None:
    """Rename ``source`` to ``target`` unless ``target`` exists; never replace a file.

    On a local file system the new name is made with a hard link, which fails atomically if
    ``target`` exists, and the old name is then unlinked. Elsewhere (or where hard links are not
    supported) ``target`` is checked first: callers have recorded ``target``'s path already (a
    path is unique in the records), so no other datastore writer can claim it and move a file
    there in between.

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
        if isinstance(fs, LocalFileSystem):
            os.unlink(path)
        else:
            fs.rm_file(path)
    except FileNotFoundError:
        pass
    except Exception as exc:  # cleanup must not hide the original error
        log.warning("Could not remove %s: %s", path, exc)


def _alignedBuffer(newBuffer: Callable[[int], memoryview], size: int) -> memoryview:
    """Return a buffer of ``size`` bytes from ``newBuffer`` that starts at a page boundary.

    The file is read into it from offset 0, so the kernel copies between addresses with the
    same offset in a page, which is much faster (for 100 MB, ~18 ms instead of ~30 ms) than
    into a buffer a few bytes off (``malloc`` returns page + 16, for instance). Costs at most
    one page more memory; small buffers are used as they are.
    """
    if size < _BIG:
        return newBuffer(size)
    raw = newBuffer(size + _PAGE - 1).cast("B")
    try:
        address = ctypes.addressof(ctypes.c_char.from_buffer(raw))
    except (TypeError, ValueError):  # read-only: the read will say so
        return raw[:size]
    start = -address % _PAGE
    return raw[start : start + size]


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
    hasher = None
    if checksum is not None:
        algorithm, expected = splitChecksum(checksum)
        try:
            hasher = newHasher(algorithm)
        except ValueError:
            raise DatasetIntegrityError(
                f"File {uri} has a recorded checksum of unknown algorithm {algorithm!r} (known: "
                f"{', '.join(CHECKSUM_ALGORITHMS)}); it cannot be verified."
            ) from None
    view = _alignedBuffer(newBuffer, fileSize)
    threaded = hasher is not None and algorithm in _THREADED_READS and fileSize >= _OVERLAP_MIN
    worker = _HashWorker(hasher) if threaded else None
    got = 0
    try:
        stream = (
            open(path, "rb", buffering=0)  # noqa: SIM115
            if isinstance(fs, LocalFileSystem)
            else fs.open(path, "rb")
        )
        with stream:
            while got < fileSize:
                n = stream.readinto(view[got : got + _CHUNK])
                if not n:
                    break
                if worker is not None:
                    worker.feed(view[got : got + n])  # hashed while the next piece is read
                elif hasher is not None:
                    hasher.update(view[got : got + n])  # hashed while in the CPU cache
                got += n
            extra = stream.read(1)
    except FileNotFoundError as exc:
        raise DatasetFileMissingError(
            f"File {uri} is recorded in the datastore but no longer exists; the dataset cannot be read."
        ) from exc
    except IsADirectoryError as exc:
        raise DatasetIntegrityError(
            f"File {uri} is recorded in the datastore but a directory is there instead; the dataset "
            "cannot be read. Nothing was modified; restore the file or remove the dataset."
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
    if hasher is not None and hasher.hexdigest() != expected:
        raise DatasetIntegrityError(
            f"File {uri} does not match the {algorithm} checksum recorded when it was written: it "
            f"was changed on disk. Nothing was modified; restore the file or remove the dataset."
        )
    return view
