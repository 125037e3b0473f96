"""Bringing existing files into a FileDatastore: the transfer modes of `FileDatastore.ingest`.

Every mode makes a temporary entry beside the dataset's templated path (a copy, a hard link or
a symbolic link to the source), which `_access.FileAccess.store` then records and renames into
place exactly as a put's temporary file: a failure anywhere leaves neither a file nor a record.
The file is never decoded; its size and checksum are recorded (`verify` reads it later).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from typing import IO

from ...dataset_ref import DatasetRef
from ...exceptions import IngestError
from ._io import newHasher, removeQuietly, tempPathFor, writeTemp

__all__ = ["TRANSFER_MODES", "checkSource", "transferWriter"]

TRANSFER_MODES = ("auto", "copy", "move", "link", "hardlink", "symlink", "relsymlink", "direct")
"""What `FileDatastore.ingest` can do with a file (``auto`` copies; ``move`` copies, then
deletes the source once everything is committed; ``link`` is a hard link, else a symbolic one;
``direct`` leaves it where it is and records its absolute URI)."""

_CHUNK = 1 << 20


def checkSource(path: str, ref: DatasetRef) -> str:
    """Return the absolute path of ``path`` if it is an existing regular file (links followed).

    Raises
    ------
    IngestError
        It does not exist, or is a folder or a special file.
    """
    absolute = os.path.abspath(os.fspath(path))
    if not os.path.exists(absolute):
        raise IngestError(f"Cannot ingest {ref}: file {absolute} does not exist; nothing was ingested.")
    if not os.path.isfile(absolute):
        raise IngestError(
            f"Cannot ingest {ref}: {absolute} is not a regular file (a folder or a device); "
            "name one file per dataset; nothing was ingested."
        )
    return absolute


def _hashFile(path: str, algorithm: str | None) -> str | None:
    if algorithm is None:
        return None
    hasher = newHasher(algorithm)
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            hasher.update(chunk)
    return f"{algorithm}:{hasher.hexdigest()}"


def transferWriter(
    fs: object, source: str, target: str, transfer: str, algorithm: str | None
) -> Callable[[], tuple[str | None, int, str | None]]:
    """Return the function that makes the temporary entry for ``target`` from ``source``.

    It returns ``(tempPath, size, checksum)``, as a put's write does. ``target`` is a local path
    already checked to be inside the root (for ``direct``, the source itself: no temporary entry,
    ``tempPath`` is `None`).

    Raises
    ------
    IngestError
        ``transfer`` is not a mode of `TRANSFER_MODES`.
    """
    if transfer in ("auto", "copy", "move"):

        def copy() -> tuple[str | None, int, str | None]:
            with open(source, "rb") as src:

                def write(stream: IO[bytes]) -> None:
                    shutil.copyfileobj(src, stream, _CHUNK)

                return writeTemp(fs, target, write, algorithm)

        return copy
    if transfer == "direct":

        def direct() -> tuple[str | None, int, str | None]:
            return None, os.stat(source).st_size, _hashFile(source, algorithm)

        return direct
    if transfer in ("link", "hardlink", "symlink", "relsymlink"):

        def link() -> tuple[str | None, int, str | None]:
            temp = tempPathFor(target)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            try:
                if transfer in ("link", "hardlink"):
                    try:
                        os.link(source, temp)
                    except OSError:
                        if transfer == "hardlink":
                            raise
                        os.symlink(source, temp)  # another file system: "link" falls back
                elif transfer == "symlink":
                    os.symlink(source, temp)
                else:
                    os.symlink(os.path.relpath(source, os.path.dirname(target)), temp)
                return temp, os.stat(source).st_size, _hashFile(source, algorithm)
            except BaseException:
                removeQuietly(fs, temp)
                raise

        return link
    raise IngestError(
        f"Unknown transfer mode {transfer!r}; use one of {', '.join(TRANSFER_MODES)}; nothing was ingested."
    )
