"""FileDatastore checksums: the configurable algorithm, records of every algorithm (and of none,
and unprefixed legacy blake2b ones) verified by what they record, and big-file read/write paths."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xxhash

from databutler import ConfigError, DatasetIntegrityError, DatasetRef, FileDatastore
from databutler.datastores.file import _io as file_io
from databutler.testing import makeRef


def makeStore(root: Path, **extra: Any) -> FileDatastore:
    return FileDatastore({"datastore": {"cls": "databutler.FileDatastore", "root": str(root), **extra}})


def pathOf(store: FileDatastore, ref: DatasetRef) -> Path:
    return Path(store.getUri(ref).removeprefix("file://"))


def setRecordedChecksum(root: Path, ref: DatasetRef, checksum: str | None) -> None:
    with contextlib.closing(sqlite3.connect(root / "fileDatastore.sqlite3")) as db, db:
        db.execute(
            "UPDATE fileDatastoreRecords SET checksum = ? WHERE datasetId = ?", (checksum, str(ref.id))
        )


def blake2b(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=32).hexdigest()


@pytest.mark.parametrize(
    ("setting", "algorithm"),
    [(True, "xxh3_128"), ("xxh3_128", "xxh3_128"), ("blake2b", "blake2b"), (False, None), ("none", None)],
)
def test_checksum_setting_picks_the_algorithm(tmp_path: Path, setting: Any, algorithm: str | None) -> None:
    store = makeStore(tmp_path, checksum=setting)
    assert store.checksumAlgorithm == algorithm and store.checksum is (algorithm is not None)
    ref = makeRef("image", "NumpyArray")
    store.put(np.arange(10.0), ref)
    data = pathOf(store, ref).read_bytes()
    expected = {
        "xxh3_128": f"xxh3_128:{xxhash.xxh3_128(data).hexdigest()}",
        "blake2b": f"blake2b:{blake2b(data)}",
        None: None,
    }[algorithm]
    assert store.getStoredItemInfo(ref).checksum == expected


def test_default_is_xxh3_128(tmp_path: Path) -> None:
    store = FileDatastore({"datastore": {"cls": "databutler.FileDatastore", "root": str(tmp_path)}})
    assert store.checksumAlgorithm == "xxh3_128"


def test_unknown_algorithm_is_a_config_error_naming_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"checksum must be one of true, false, none, xxh3_128, blake2b"):
        makeStore(tmp_path / "root", checksum="md5")
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize("algorithm", ["xxh3_128", "blake2b"])
@pytest.mark.parametrize("size", [100, 6_000_000])  # inline, and piecewise in a second thread
def test_changed_truncated_or_grown_files_are_caught(tmp_path: Path, algorithm: str, size: int) -> None:
    store = makeStore(tmp_path, checksum=algorithm)
    ref = makeRef("image", "NumpyArray")
    array = np.random.default_rng(0).random(size // 8)
    store.put(array, ref)
    np.testing.assert_array_equal(store.get(ref), array)
    path = pathOf(store, ref)
    data = path.read_bytes()
    assert store.getStoredItemInfo(ref).checksum.startswith(f"{algorithm}:")
    for position in (0, len(data) // 2, len(data) - 1):  # header, middle of a piece, last byte
        changed = bytearray(data)
        changed[position] ^= 1
        path.write_bytes(bytes(changed))
        with pytest.raises(DatasetIntegrityError, match=rf"{algorithm} checksum.*changed on disk"):
            store.get(ref)
        with pytest.raises(DatasetIntegrityError, match=str(path)):
            store.verify(ref)
    for damaged in (data[:-1], data + b"\0"):
        path.write_bytes(damaged)
        with pytest.raises(DatasetIntegrityError, match="truncated or changed"):
            store.get(ref)
    path.write_bytes(data)
    assert store.verify(ref) and np.array_equal(store.get(ref), array)


def test_legacy_unprefixed_blake2b_records_still_verify(tmp_path: Path) -> None:
    store = makeStore(tmp_path)  # configured for xxh3_128
    ref = makeRef("image", "NumpyArray")
    store.put(np.arange(1000.0), ref)
    path = pathOf(store, ref)
    data = path.read_bytes()
    setRecordedChecksum(tmp_path, ref, blake2b(data))  # as written before the algorithm was recorded
    assert store.verify(ref)
    np.testing.assert_array_equal(store.get(ref), np.arange(1000.0))
    changed = bytearray(data)
    changed[-3] ^= 4
    path.write_bytes(bytes(changed))
    with pytest.raises(DatasetIntegrityError, match="blake2b checksum"):
        store.get(ref)
    with pytest.raises(DatasetIntegrityError):
        store.verify(ref)


def test_each_file_is_verified_with_its_recorded_algorithm(tmp_path: Path) -> None:
    refs = [makeRef("image", "NumpyArray", visit=v) for v in range(3)]
    makeStore(tmp_path, checksum="blake2b").put(np.full(5, 0.0), refs[0])
    makeStore(tmp_path, checksum="xxh3_128").put(np.full(5, 1.0), refs[1])
    legacy = makeStore(tmp_path, checksum="blake2b")
    legacy.put(np.full(5, 2.0), refs[2])
    setRecordedChecksum(tmp_path, refs[2], legacy.getStoredItemInfo(refs[2]).checksum.split(":")[1])
    for setting in (True, "blake2b", False):  # whatever is configured now
        store = makeStore(tmp_path, checksum=setting)
        for visit, ref in enumerate(refs):
            assert store.verify(ref)
            np.testing.assert_array_equal(store.get(ref), np.full(5, float(visit)))
    store = makeStore(tmp_path, checksum="blake2b")
    path = pathOf(store, refs[1])
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetIntegrityError, match="xxh3_128 checksum"):
        store.get(refs[1])  # checked with xxh3_128, as recorded, not with the configured blake2b


def test_a_record_of_an_unknown_algorithm_cannot_be_verified(tmp_path: Path) -> None:
    store = makeStore(tmp_path)
    ref = makeRef("image", "NumpyArray")
    store.put(np.zeros(3), ref)
    setRecordedChecksum(tmp_path, ref, "sha999:abcd")
    with pytest.raises(DatasetIntegrityError, match=r"unknown algorithm 'sha999'.*xxh3_128, blake2b"):
        store.get(ref)
    with pytest.raises(DatasetIntegrityError, match="sha999"):
        store.verify(ref)


def test_transfer_copies_verified_files_and_hashes_them_with_the_target_algorithm(tmp_path: Path) -> None:
    source = makeStore(tmp_path / "src", checksum="blake2b")
    target = makeStore(tmp_path / "dst")
    ref = makeRef("image", "NumpyArray")
    source.put(np.arange(7.0), ref)
    target.transfer(source, ref)
    data = pathOf(target, ref).read_bytes()
    assert data == pathOf(source, ref).read_bytes()
    assert target.getStoredItemInfo(ref).checksum == f"xxh3_128:{xxhash.xxh3_128(data).hexdigest()}"


def test_splitChecksum() -> None:
    assert file_io.splitChecksum("xxh3_128:ab12") == ("xxh3_128", "ab12")
    assert file_io.splitChecksum("blake2b:cd34") == ("blake2b", "cd34")
    assert file_io.splitChecksum("ef56") == ("blake2b", "ef56")


@pytest.mark.parametrize("spareCpu", [True, False])  # hashed in a second thread, or in the writer's
@pytest.mark.parametrize("algorithm", [None, "xxh3_128", "blake2b"])
def test_hashing_writer_hashes_every_piece_once_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, algorithm: str | None, spareCpu: bool
) -> None:
    monkeypatch.setattr(file_io, "_SPARE_CPU", spareCpu)
    monkeypatch.setattr(file_io, "_WRITE_PIECE", 4 * 1024 * 1024)  # 9 MB: three pieces, the last short
    monkeypatch.setattr(file_io, "_CACHED_PIECE", 4 * 1024 * 1024)
    data = np.random.default_rng(1).integers(0, 256, 9 * 1024 * 1024 + 17, dtype=np.uint8)
    path = tmp_path / "out"
    with open(path, "wb") as fh:
        writer = file_io.HashingWriter(fh, algorithm)
        writer.write(b"head")
        writer.write(data)  # big: space reserved, hashed in pieces
        writer.write(memoryview(data)[:5])
    whole = b"head" + data.tobytes() + data[:5].tobytes()
    assert path.read_bytes() == whole and writer.size == len(whole)
    if algorithm is None:
        assert writer.checksum is None
    else:
        expected = file_io.newHasher(algorithm)
        expected.update(whole)
        assert writer.checksum == f"{algorithm}:{expected.hexdigest()}"


def test_whole_reads_go_into_a_page_aligned_buffer_of_the_right_size(tmp_path: Path) -> None:
    import fsspec

    fs = fsspec.filesystem("file")
    data = np.random.default_rng(2).integers(0, 256, 3 * 1024 * 1024 + 5, dtype=np.uint8).tobytes()
    path = tmp_path / "f"
    path.write_bytes(data)
    checksum = f"xxh3_128:{xxhash.xxh3_128(data).hexdigest()}"
    for newBuffer in (lambda n: memoryview(bytearray(n)), lambda n: np.empty(n, np.uint8).data):
        view = file_io.readWhole(fs, str(path), str(path), len(data), checksum, newBuffer)
        assert len(view) == len(data) and view == data and not view.readonly
        assert np.frombuffer(view, np.uint8).ctypes.data % 4096 == 0


def test_big_arrays_round_trip_on_memory_fs() -> None:
    import uuid

    store = FileDatastore(
        {"datastore": {"cls": "databutler.FileDatastore", "root": f"memory://checksums/{uuid.uuid4().hex}"}}
    )
    ref = makeRef("image", "NumpyArray")
    array = np.random.default_rng(3).random(1_000_000)  # 8 MB: no file descriptor to preallocate
    store.put(array, ref)
    np.testing.assert_array_equal(store.get(ref), array)
    assert store.verify(ref) and store.getStoredItemInfo(ref).checksum.startswith("xxh3_128:")
