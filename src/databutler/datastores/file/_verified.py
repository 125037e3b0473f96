"""Ingesting files whose sizes and checksums are known in advance (`FileDatastore.ingestVerified`).

An import brings in files another datastore wrote and recorded: each must have exactly the size
and checksum recorded there. The check wraps the transfer writer of `_ingest`, so that it runs
before the file is recorded: with the same checksum algorithm here as there, the bytes are hashed
once, as they are copied; otherwise the source is hashed first with the recorded algorithm.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ...dataset_ref import DatasetRef
from ...exceptions import DatasetIntegrityError, IngestError
from ._ingest import _hashFile
from ._io import removeQuietly, splitChecksum

__all__ = ["VerifiedFile", "VerifiedIngest", "checkedWrite"]

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


def _mismatch(ref: DatasetRef, source: str, problem: str) -> DatasetIntegrityError:
    return DatasetIntegrityError(
        f"Cannot ingest {ref}: file {source} is not the file that was recorded: {problem}; it was "
        "damaged or replaced; nothing was ingested."
    )
