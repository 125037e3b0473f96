"""copyVerified: an import's copy, read once, hashed as it is written, refusing any file that differs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import xxhash
from fsspec.implementations.local import LocalFileSystem

from databutler import DatasetIntegrityError, DatasetRef, DatasetType, IngestError
from databutler.datastores.file._io import newHasher
from databutler.datastores.file._verified import copyVerified

FS = LocalFileSystem()
REF = DatasetRef(DatasetType("m", ("visit",), "StructuredDataDict"), {"visit": 1}, run="r")


def checksumOf(data: bytes, algorithm: str) -> str:
    hasher = newHasher(algorithm)
    hasher.update(data)
    return f"{algorithm}:{hasher.hexdigest()}"


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != "source")


@pytest.mark.parametrize("size", [0, 1, 100, (1 << 20) - 1, 1 << 20, (5 << 19) + 3])
@pytest.mark.parametrize(
    "recorded, here", [("xxh3_128", "xxh3_128"), ("blake2b", "xxh3_128"), ("xxh3_128", None)]
)
def test_a_copy_is_byte_for_byte_and_hashed_with_this_datastores_algorithm(
    tmp_path: Path, size: int, recorded: str, here: str | None
) -> None:
    data = os.urandom(size)
    (tmp_path / "source").write_bytes(data)
    target = str(tmp_path / "sub" / "m.json")  # a new folder: made on the way
    tempPath, written, checksum = copyVerified(
        FS, str(tmp_path / "source"), target, REF, size, checksumOf(data, recorded), here
    )
    assert Path(tempPath).parent == tmp_path / "sub" and Path(tempPath).read_bytes() == data
    assert written == size
    assert checksum == (None if here is None else checksumOf(data, here))
    assert checksum is None or checksum.split(":")[1] == xxhash.xxh3_128(data).hexdigest()


@pytest.mark.parametrize("size", [10, (3 << 20) + 1])
def test_a_changed_byte_is_refused_and_nothing_is_left(tmp_path: Path, size: int) -> None:
    data = bytearray(os.urandom(size))
    recorded = checksumOf(bytes(data), "xxh3_128")
    data[size // 2] ^= 1
    (tmp_path / "source").write_bytes(bytes(data))
    with pytest.raises(DatasetIntegrityError, match="checksum"):
        copyVerified(FS, str(tmp_path / "source"), str(tmp_path / "m.json"), REF, size, recorded, "xxh3_128")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("actual", [9, 11])
def test_a_size_other_than_recorded_is_refused(tmp_path: Path, actual: int) -> None:
    (tmp_path / "source").write_bytes(b"x" * actual)
    with pytest.raises(DatasetIntegrityError, match="bytes"):
        copyVerified(FS, str(tmp_path / "source"), str(tmp_path / "m.json"), REF, 10, None, "xxh3_128")
    assert leftovers(tmp_path) == []


def test_a_missing_file_a_link_and_a_folder_are_refused(tmp_path: Path) -> None:
    (tmp_path / "source").write_bytes(b"0123456789")
    (tmp_path / "link").symlink_to(tmp_path / "source")
    (tmp_path / "folder").mkdir()
    cases = [("missing", "does not exist"), ("link", "symbolic link"), ("folder", "not a regular file")]
    for name, message in cases:
        with pytest.raises(IngestError, match=message):
            copyVerified(FS, str(tmp_path / name), str(tmp_path / "m.json"), REF, 10, None, "xxh3_128")
    assert leftovers(tmp_path) == ["folder", "link"]
