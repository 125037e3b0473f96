"""Space kept in reserve beside a SQLite registry, so that removals can run on a full disk.

A SQLite registry in write-ahead-log mode appends every change, deletions included, to its
``-wal`` file. When the disk is full that append fails (``database or disk is full``), so a
removal could not commit, and the datastore's files, which are deleted only after the commit,
would never be freed: a full disk could not be emptied through the Butler. A `SpaceReserve` is
a file of allocated blocks beside the registry. When a removal fails with a
`DatabaseFullError`, the Butler deletes the reserve and tries the removal once more, on the
space just given back; once the removal has freed the datasets' files, the reserve is made
again. Removing many datasets at once needs more log (about 33 KB for one, 1.3 MB for a
thousand), so on a full disk remove them a few hundred at a time.

A PostgreSQL registry keeps its space on the server; there is no reserve.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

__all__ = ["RESERVE_BYTES", "SpaceReserve"]

RESERVE_BYTES = 2 * 1024 * 1024
"""The size of a reserve: room in the log for a removal of about a thousand datasets."""

_SUFFIX = ".reserve"


class SpaceReserve:
    """A file of allocated blocks beside a SQLite registry file, given up to free space.

    Parameters
    ----------
    databaseFile : Path
        The registry's SQLite file; the reserve is ``<databaseFile>.reserve``.
    size : int
        Its size in bytes.
    """

    def __init__(self, databaseFile: Path, size: int = RESERVE_BYTES) -> None:
        self.path = databaseFile.with_name(databaseFile.name + _SUFFIX)
        self.size = size

    def __repr__(self) -> str:
        """Show the reserve's path and size."""
        return f"SpaceReserve({str(self.path)!r}, size={self.size})"

    def exists(self) -> bool:
        """Return `True` if the reserve is in place."""
        return self.path.exists()

    def ensure(self) -> bool:
        """Make the reserve if it is missing; return `True` if it is in place afterwards.

        Best effort: on a disk without the room, or in a folder that cannot be written, there
        is simply no reserve (a partly written one is deleted).
        """
        if self.path.exists():
            return True
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError:
            return False
        try:
            try:
                _allocate(fd, self.size)
            finally:
                os.close(fd)
            os.replace(temp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            return False
        return True

    def release(self) -> bool:
        """Delete the reserve to give its space back; return `True` if there was one."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True


def _allocate(fd: int, size: int) -> None:
    """Give the file ``fd`` ``size`` bytes of real blocks (not a sparse hole)."""
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is not None:
        try:
            fallocate(fd, 0, size)
            return
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
    block = b"\0" * (1 << 16)
    written = 0
    while written < size:
        written += os.write(fd, block[: size - written])
