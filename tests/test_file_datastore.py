"""FileDatastore runs the datastore contract on a local root and on memory://, plus its own tests."""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import re
import sqlite3
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xxhash

from databutler import (
    Config,
    ConfigError,
    DatasetExistsError,
    DatasetIntegrityError,
    DatasetNotFoundError,
    DatasetRef,
    DatasetType,
    DatasetTypeError,
    DatasetTypeMismatchError,
    FileDatastore,
    FormatterError,
    InvalidParameterError,
    JsonFormatter,
    MaskedImage,
    StoredFileInfo,
    StoredItemInfoExistsError,
    StoredItemInfoNotFoundError,
)
from databutler.datastores.file import _io as file_io
from databutler.testing import DatastoreTests, makeRef


def makeFileDatastore(root: str, registry: Any = None, **extra: Any) -> FileDatastore:
    return FileDatastore(
        {"datastore": {"cls": "databutler.FileDatastore", "root": root, **extra}}, registry=registry
    )


class TestFileDatastoreLocal(DatastoreTests):
    @pytest.fixture(autouse=True)
    def _root(self, tmp_path: Path) -> None:
        self.tmpPath = tmp_path

    def makeDatastore(self, registry: Any = None) -> FileDatastore:
        return makeFileDatastore(str(self.tmpPath / uuid.uuid4().hex), registry)


class TestFileDatastoreMemory(DatastoreTests):
    def makeDatastore(self, registry: Any = None) -> FileDatastore:
        # fsspec's memory file system is one process-wide store: every datastore gets its own root.
        return makeFileDatastore(f"memory://databutler-tests/{uuid.uuid4().hex}", registry)


# -- FileDatastore's own behaviour --------------------------------------------------------------


def makeStore(root: Path, **extra: Any) -> FileDatastore:
    return makeFileDatastore(str(root), **extra)


def pathOf(store: FileDatastore, ref: DatasetRef) -> Path:
    return Path(store.getUri(ref).removeprefix("file://"))


def visibleFiles(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "sqlite3" not in p.name
    )


class WrongTypeFormatter(JsonFormatter):
    def readBuffer(self, buffer: memoryview, storageClass: Any, parameters: Any) -> Any:
        return "not a dict"


class FailingFormatter(JsonFormatter):
    def write(self, inMemoryDataset: Any, stream: Any, storageClass: Any) -> None:
        stream.write(b'{"half": ')
        raise OSError("disk full")


def test_records_cannot_make_a_read_unpickle(tmp_path: Path) -> None:
    pickling = makeStore(tmp_path, formatters={"Object": "databutler.formatters.pickle.PickleFormatter"})
    ref = makeRef("thing", "Object")
    pickling.put(complex(1, 2), ref)
    reader = makeStore(tmp_path)  # the same files, but this configuration does not use pickle
    with pytest.raises(FormatterError, match="can run code"):
        reader.get(ref)
    assert pickling.get(ref) == complex(1, 2)


def test_records_cannot_name_an_arbitrary_formatter(tmp_path: Path) -> None:
    store = makeStore(tmp_path)
    ref = makeRef("metrics", "StructuredDataDict")
    store.put({"x": 1}, ref)
    with contextlib.closing(sqlite3.connect(tmp_path / "fileDatastore.sqlite3")) as db, db:
        db.execute("UPDATE fileDatastoreRecords SET formatter = 'someones.module.Reader'")
    with pytest.raises(FormatterError, match=r"someones\.module\.Reader"):
        makeStore(tmp_path).get(ref)


def test_records_live_in_sqlite_in_the_root(tmp_path: Path) -> None:
    store = makeStore(tmp_path)
    ref = makeRef("metrics", "StructuredDataDict")
    store.put({"x": 1}, ref)
    path = pathOf(store, ref)
    data = path.read_bytes()
    with contextlib.closing(sqlite3.connect(tmp_path / "fileDatastore.sqlite3")) as db:
        rows = db.execute(
            "SELECT datastoreName, datasetId, component, datasetType, path, formatter, storageClass, "
            "fileSize, checksum FROM fileDatastoreRecords"
        ).fetchall()
    assert rows == [
        (
            "FileDatastore",
            str(ref.id),
            "",
            "metrics",
            str(path.relative_to(tmp_path)),
            "databutler.formatters.json.JsonFormatter",
            "StructuredDataDict",
            len(data),
            "xxh3_128:" + xxhash.xxh3_128(data).hexdigest(),  # the default algorithm
        )
    ]
    info = store.getStoredItemInfo(ref)
    assert isinstance(info, StoredFileInfo) and info.fileSize == len(data) and info.component is None
    again = makeStore(tmp_path)  # a new instance (or process) sees the same records
    assert again.exists(ref) and again.get(ref) == {"x": 1} and len(again) == 1


def test_records_db_can_be_configured(tmp_path: Path) -> None:
    db = tmp_path / "elsewhere.sqlite3"
    store = makeStore(tmp_path / "root", records={"db": f"sqlite:///{db}"})
    store.put({"x": 1}, makeRef("metrics", "StructuredDataDict"))
    assert db.exists() and not (tmp_path / "root" / "fileDatastore.sqlite3").exists()
    for bad in (42, "not a url"):
        with pytest.raises(ConfigError, match=r"records\.db must be a database URL"):
            makeStore(tmp_path / "r2", records={"db": bad})
        assert not (tmp_path / "r2").exists()


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"root": None}, "root"),
        ({"root": ""}, "root"),
        ({"rot": "/x"}, r"does not accept config key\(s\) \[.rot.\]"),
        ({"checksum": "yes"}, "checksum"),
        ({"checksum": "sha1"}, r"checksum must be one of true, false, none, xxh3_128, blake2b"),
        ({"checksum": 1}, "checksum"),
        ({"templates": ["{id}"]}, "templates"),
        ({"formatters": "json"}, "formatters"),
        ({"storageOptions": 3}, "storageOptions"),
        ({"root": "nosuchprotocol://x"}, "cannot be opened"),
    ],
)
def test_bad_config(tmp_path: Path, extra: dict[str, Any], match: str) -> None:
    config = {"cls": "databutler.FileDatastore", "root": str(tmp_path / "root"), **extra}
    with pytest.raises(ConfigError, match=match):
        FileDatastore({"datastore": config})
    assert not (tmp_path / "root").exists()


def test_formatter_config_errors(tmp_path: Path) -> None:
    ref = makeRef("metrics", "StructuredDataDict")
    for name, match in [("no.such.Formatter", "no.such"), ("databutler.Config", "not a Formatter")]:
        store = makeStore(tmp_path / uuid.uuid4().hex, formatters={"StructuredDataDict": name})
        with pytest.raises(ConfigError, match=match):
            store.put({"x": 1}, ref)
        assert not store.exists(ref)
    store = makeStore(tmp_path / "root")
    objectRef = makeRef("thing", "Object")
    with pytest.raises(ConfigError, match=r"no formatter.*PickleFormatter"):
        store.put(object(), objectRef)
    with pytest.raises(ConfigError, match="no formatter"):
        store.getUri(objectRef, predict=True)
    assert visibleFiles(tmp_path / "root") == []


def test_formatters_chosen_per_dataset_type(tmp_path: Path) -> None:
    store = makeStore(
        tmp_path,
        formatters={
            "flat": "databutler.formatters.fits.FitsFormatter",
            "config": "databutler.formatters.yaml.YamlFormatter",
        },
    )
    flat, image = makeRef("flat", "NumpyArray"), makeRef("image", "NumpyArray")
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    store.put(array, flat)
    store.put(array, image)
    assert store.getUri(flat).endswith(".fits") and store.getUri(image).endswith(".npy")
    np.testing.assert_array_equal(store.get(flat, parameters={"slice": (slice(1, 2),)}), array[1:2])
    assert store.getStoredItemInfo(flat).formatter == "databutler.formatters.fits.FitsFormatter"
    config = makeRef("config", "StructuredDataDict")
    store.put({1: "int keys survive in YAML"}, config)
    assert store.getUri(config).endswith(".yaml") and store.get(config) == {1: "int keys survive in YAML"}


def test_pickle_only_when_configured(tmp_path: Path) -> None:
    defaults = makeStore(tmp_path / "a").layout.formatterNames
    assert not any("pickle" in str(v).lower() for v in defaults.values())
    store = makeStore(tmp_path / "b", formatters={"Object": "databutler.formatters.pickle.PickleFormatter"})
    ref = makeRef("thing", "Object")
    store.put(complex(1, 2), ref)
    assert store.get(ref) == complex(1, 2)
    assert store.getUri(ref).endswith(".pickle")


def test_changed_file_is_an_integrity_error_and_nothing_is_touched(tmp_path: Path) -> None:
    store = makeStore(tmp_path)
    ref = makeRef("image", "NumpyArray")
    store.put(np.arange(100.0), ref)
    path = pathOf(store, ref)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetIntegrityError, match=re.escape(str(path))) as excinfo:
        store.get(ref)
    assert "checksum" in str(excinfo.value)
    assert path.read_bytes() == bytes(data) and store.exists(ref)
    path.write_bytes(bytes(data[:-10]))  # truncated
    with pytest.raises(DatasetIntegrityError, match=r"truncated"):
        store.get(ref)
    path.write_bytes(bytes(data) + b"extra")  # grown
    with pytest.raises(ValueError, match="more than"):
        store.get(ref)
    path.unlink()
    with pytest.raises(DatasetNotFoundError, match=re.escape(str(path))):
        store.get(ref)
    assert store.knows(ref) and not store.exists(ref)  # recorded, but the file is gone
    store.remove(ref)  # a dataset whose file vanished can still be removed
    assert not store.knows(ref)


def test_big_files_are_hashed_while_written_and_read(tmp_path: Path) -> None:
    store = makeStore(tmp_path, checksum="blake2b")
    ref = makeRef("image", "NumpyArray")
    array = np.random.default_rng(0).random(3_000_000)  # 24 MB: hashed in a second thread
    store.put(array, ref)
    data = pathOf(store, ref).read_bytes()
    assert (
        store.getStoredItemInfo(ref).checksum
        == "blake2b:" + hashlib.blake2b(data, digest_size=32).hexdigest()
    )
    np.testing.assert_array_equal(store.get(ref), array)
    path = pathOf(store, ref)
    changed = bytearray(data)
    changed[len(changed) // 2] ^= 1  # in the middle of a chunk hashed in the background
    path.write_bytes(bytes(changed))
    with pytest.raises(DatasetIntegrityError, match="checksum"):
        store.get(ref)


def test_verify_checks_every_file_without_decoding(tmp_path: Path) -> None:
    store = makeStore(tmp_path, checksum=False)  # checksums recorded by an earlier, checking writer
    writer = makeStore(tmp_path)
    ref = makeRef("calexp", "MaskedImage")
    writer.put(MaskedImage(image=np.zeros(4), mask=np.zeros(4), metadata={"a": 1}), ref)
    assert store.verify(ref) is True
    maskPath = pathOf(store, ref.makeComponentRef("mask"))
    data = bytearray(maskPath.read_bytes())
    data[-1] ^= 1
    maskPath.write_bytes(bytes(data))
    with pytest.raises(DatasetIntegrityError, match=re.escape(str(maskPath))):
        store.verify(ref)
    with pytest.raises(DatasetNotFoundError):
        store.verify(makeRef("calexp", "MaskedImage", visit=9))


def test_checksums_can_be_turned_off(tmp_path: Path) -> None:
    store = makeStore(tmp_path, checksum=False)
    ref = makeRef("image", "NumpyArray")
    store.put(np.zeros(4), ref)
    assert store.getStoredItemInfo(ref).checksum is None
    path = pathOf(store, ref)
    data = bytearray(path.read_bytes())
    data[-1] = 0x3F  # same size, different value: not detected when checksums are off
    path.write_bytes(bytes(data))
    assert store.get(ref)[-1] != 0.0
    checked = makeStore(tmp_path)  # records written without a checksum: size is still checked
    path.write_bytes(bytes(data[:-1]))
    with pytest.raises(DatasetIntegrityError):
        checked.get(ref)


def test_formatter_failures_name_file_and_formatter(tmp_path: Path) -> None:
    failing = makeStore(tmp_path / "a", formatters={"StructuredDataDict": f"{__name__}.FailingFormatter"})
    ref = makeRef("metrics", "StructuredDataDict")
    with pytest.raises(
        FormatterError, match=r"FailingFormatter failed to write .*metrics.*\.json.*disk full"
    ):
        failing.put({"x": 1}, ref)
    assert not failing.exists(ref)
    assert not [p for p in (tmp_path / "a").rglob("*") if p.is_file() and "sqlite3" not in p.name]
    store = makeStore(tmp_path / "b", checksum=False)
    store.put({"x": 1}, ref)
    path = pathOf(store, ref)
    path.write_bytes(b"{" * len(path.read_bytes()))
    with pytest.raises(FormatterError, match=rf"JsonFormatter failed to read {re.escape(store.getUri(ref))}"):
        store.get(ref)
    with pytest.raises(ValueError):
        store.get(ref)
    wrong = makeStore(tmp_path / "c", formatters={"StructuredDataDict": f"{__name__}.WrongTypeFormatter"})
    wrong.put({"x": 1}, ref)
    with pytest.raises(DatasetTypeMismatchError, match=r"unexpected|not the"):
        wrong.get(ref)


def test_objects_a_format_cannot_hold_are_type_errors(tmp_path: Path) -> None:
    store = makeStore(tmp_path)
    with pytest.raises(TypeError, match=r"JsonFormatter.*key 1"):
        store.put({1: "int key"}, makeRef("metrics", "StructuredDataDict"))
    with pytest.raises(TypeError, match=r"NpyFormatter.*object"):
        store.put(np.array([{}, []], dtype=object), makeRef("image", "NumpyArray"))
    assert visibleFiles(tmp_path) == [] and len(store) == 0


def test_transaction_rollback_removes_file_and_record(tmp_path: Path) -> None:
    store = makeStore(tmp_path)
    kept = makeRef("metrics", "StructuredDataDict", visit=1)
    store.put({"kept": 1}, kept)
    keptPath = pathOf(store, kept)
    undone = makeRef("metrics", "StructuredDataDict", visit=2)
    with pytest.raises(RuntimeError), store.transaction():
        store.put({"x": 1}, undone)
        undonePath = pathOf(store, undone)
        store.remove(kept)
        assert not keptPath.exists()
        raise RuntimeError("roll back")
    assert not undonePath.exists() and not store.exists(undone)
    assert keptPath.exists() and store.get(kept) == {"kept": 1}
    assert visibleFiles(tmp_path) == [str(keptPath.relative_to(tmp_path))]
    with store.transaction():
        store.remove(kept)
    assert visibleFiles(tmp_path) == [] and len(store) == 0  # nothing left aside after commit


def test_disassembled_composite(tmp_path: Path) -> None:
    store = makeStore(tmp_path)
    ref = makeRef("calexp", "MaskedImage")
    store.put(MaskedImage(image=np.ones((2, 2)), mask=None, metadata={"exptime": 30.0}), ref)
    folder = pathOf(store, ref)
    assert folder.is_dir()
    assert sorted(p.name for p in folder.iterdir()) == ["image.npy", "metadata.json"]
    imageRef, maskRef = ref.makeComponentRef("image"), ref.makeComponentRef("mask")
    assert pathOf(store, imageRef) == folder / "image.npy"
    assert store.get(maskRef) is None
    assert store.getUri(maskRef) == store.getUri(ref)
    info = store.getStoredItemInfo(imageRef)
    assert info.component == "image" and info.parentID == ref.id and info.formatter.endswith("NpyFormatter")
    assert store.getStoredItemInfo(ref).formatter is None
    whole = store.get(ref)
    assert whole.mask is None and whole.metadata == {"exptime": 30.0}
    other = makeRef("calexp", "MaskedImage", visit=5)
    assert store.getUri(other.makeComponentRef("image"), predict=True).endswith("/image.npy#predicted")
    assert not store.getUri(other, predict=True).removesuffix("#predicted").endswith(".npy")
    store.remove(ref)
    assert not folder.exists()


def test_file_deleted_behind_its_back_is_known_but_does_not_exist(tmp_path: Path) -> None:
    store = makeStore(tmp_path)
    ref = makeRef("metrics", "StructuredDataDict")
    store.put({"x": 1}, ref)
    pathOf(store, ref).unlink()
    assert store.knows(ref) and not store.exists(ref)
    assert store.knowsMany([ref]) == {ref: True} and store.existsMany([ref]) == {ref: False}
    assert ref not in store
    with pytest.raises(DatasetNotFoundError):
        store.verify(ref)
    store.remove(ref)  # the record is what remove clears; the missing file is no obstacle
    assert not store.knows(ref) and len(store) == 0


def test_component_exists_only_while_its_own_file_does(tmp_path: Path) -> None:
    store = makeStore(tmp_path)
    ref = makeRef("calexp", "MaskedImage")
    store.put(MaskedImage(image=np.ones((2, 2)), mask=np.zeros((2, 2)), metadata={"a": 1}), ref)
    imageRef, maskRef = ref.makeComponentRef("image"), ref.makeComponentRef("mask")
    pathOf(store, imageRef).unlink()
    assert store.knows(imageRef) and not store.exists(imageRef)
    assert store.exists(maskRef)  # its file is still there
    assert store.knows(ref) and not store.exists(ref)  # the composite needs every file


def test_composite_written_whole_when_configured(tmp_path: Path) -> None:
    store = makeStore(tmp_path, formatters={"MaskedImage": "databutler.formatters.pickle.PickleFormatter"})
    ref = makeRef("calexp", "MaskedImage")
    store.put(MaskedImage(image=np.ones((2, 2)), mask=np.zeros((2, 2)), metadata={"a": 1}), ref)
    assert visibleFiles(tmp_path) == [str(pathOf(store, ref).relative_to(tmp_path))]
    imageRef = ref.makeComponentRef("image")
    np.testing.assert_array_equal(store.get(imageRef, parameters={"slice": (slice(0, 1),)}), np.ones((1, 2)))
    assert store.getUri(imageRef) == store.getUri(ref)
    other = makeRef("calexp", "MaskedImage", visit=3).makeComponentRef("image")
    assert store.getUri(other, predict=True).endswith(".pickle#predicted")


def test_columns_are_pushed_down(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    table = pa.table({f"c{i}": np.random.default_rng(i).random(50_000) for i in range(10)})
    ref = makeRef("sources", "ArrowTable")
    for checksum in (True, False):
        store = makeStore(tmp_path / str(checksum), checksum=checksum)
        store.put(table, ref)
        size = store.getStoredItemInfo(ref).fileSize
        opened = store.fs.open
        counted: list[int] = []

        def countingOpen(
            path: str, mode: str = "rb", _opened: Any = opened, _counted: list[int] = counted, **kwargs: Any
        ) -> Any:
            handle = _opened(path, mode, **kwargs)
            return CountingReader(handle, _counted)

        def countingLocalOpen(
            path: str, mode: str = "rb", _counted: list[int] = counted, **kwargs: Any
        ) -> Any:
            return CountingReader(builtins.open(path, mode, **kwargs), _counted)

        store.fs.open = countingOpen  # type: ignore[method-assign]
        file_io.open = countingLocalOpen  # type: ignore[attr-defined]  # local whole-file reads
        try:
            got = store.get(ref, parameters={"columns": ["c3"]})
        finally:
            del store.fs.open
            del file_io.open  # type: ignore[attr-defined]
        assert got.column_names == ["c3"] and got.equals(table.select(["c3"]))
        if checksum:
            assert sum(counted) == size  # verifying the checksum needs the whole file
        else:
            assert sum(counted) < size / 4  # only the c3 column chunk and the footer
        with pytest.raises(InvalidParameterError, match="nope"):
            store.get(ref, parameters={"columns": ["nope"]})


class CountingReader:
    """Wraps a file, counting the bytes read through it."""

    def __init__(self, handle: Any, counted: list[int]) -> None:
        self._handle = handle
        self._counted = counted

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._counted.append(len(data))
        return bytes(data)

    def readinto(self, buffer: Any) -> int:
        n = self._handle.readinto(buffer)
        self._counted.append(n or 0)
        return n

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def __enter__(self) -> CountingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()


def test_path_collision_never_overwrites(tmp_path: Path) -> None:
    store = makeStore(tmp_path, templates={"default": "{run}/{datasetType}"})
    first = makeRef("metrics", "StructuredDataDict", visit=1)
    second = makeRef("metrics", "StructuredDataDict", visit=2)
    store.put({"first": 1}, first)
    with pytest.raises(DatasetExistsError, match=rf"already used by another dataset.*{first.id}"):
        store.put({"second": 2}, second)
    assert store.get(first) == {"first": 1} and not store.exists(second)
    assert len(visibleFiles(tmp_path)) == 1


def test_leftover_files_on_memory_fs() -> None:
    store = makeFileDatastore(f"memory://databutler-tests/{uuid.uuid4().hex}")
    ref = makeRef("metrics", "StructuredDataDict")
    store.put({"x": 1}, ref)
    leftover = f"{store.rootPath}/a/.b.json.removed-{uuid.uuid4().hex}"
    store.fs.pipe_file(leftover, b"{")
    store.fs.pipe_file(f"{store.rootPath}/a/.not-a-leftover.tmp-123", b"{")
    assert store.removeLeftoverFiles(olderThan=0) == [f"memory://{leftover}"]
    assert store.get(ref) == {"x": 1}


def test_orphan_file_without_record_is_replaced(tmp_path: Path) -> None:
    store = makeStore(tmp_path)
    ref = makeRef("metrics", "StructuredDataDict")
    path = Path(store.getUri(ref, predict=True).removeprefix("file://").removesuffix("#predicted"))
    path.parent.mkdir(parents=True)
    path.write_text("left by a crash after rename")
    store.put({"x": 1}, ref)
    assert store.get(ref) == {"x": 1}


def test_component_refs_cannot_be_put_or_removed(tmp_path: Path) -> None:
    store = makeStore(tmp_path)
    ref = makeRef("calexp", "MaskedImage")
    with pytest.raises(DatasetTypeError, match="component"):
        store.put(np.ones(2), ref.makeComponentRef("image"))
    store.put(MaskedImage(image=np.ones(2)), ref)
    with pytest.raises(DatasetTypeError, match="component"):
        store.remove(ref.makeComponentRef("image"))


def test_same_id_other_dataset_type_is_not_found(tmp_path: Path) -> None:
    store = makeStore(tmp_path)
    ref = makeRef("metrics", "StructuredDataDict")
    store.put({"x": 1}, ref)
    imposter = DatasetRef(
        DatasetType("other", ("visit", "detector"), "StructuredDataDict"),
        dict(ref.dataId),
        id=ref.id,
        run=ref.run,
    )
    assert not store.exists(imposter)
    with pytest.raises(DatasetNotFoundError):
        store.get(imposter)
    with pytest.raises(DatasetNotFoundError):
        store.remove(imposter)
    with pytest.raises(DatasetExistsError):
        store.put({"y": 2}, imposter)


def test_stored_item_info_verbs(tmp_path: Path) -> None:
    store = makeStore(tmp_path)
    ref = makeRef("metrics", "StructuredDataDict")
    store.put({"x": 1}, ref)
    info = store.getStoredItemInfo(ref)
    with pytest.raises(StoredItemInfoExistsError):
        store.addStoredItemInfo(ref, info)
    with pytest.raises(TypeError, match="StoredFileInfo"):
        store.addStoredItemInfo(ref, object())  # type: ignore[arg-type]
    store.removeStoredItemInfo(ref)
    assert not store.exists(ref)
    with pytest.raises(StoredItemInfoNotFoundError):
        store.removeStoredItemInfo(ref)
    store.addStoredItemInfo(ref, info)  # re-attach the file that is still on disk
    assert store.get(ref) == {"x": 1}


def test_setConfigRoot(tmp_path: Path) -> None:
    config = Config({"datastore": {"cls": "databutler.FileDatastore"}})
    FileDatastore.setConfigRoot(str(tmp_path / "repo"), config, config.copy())
    assert config["datastore.root"] == str(tmp_path / "repo")
    assert config["datastore.templates.default"] == "{run}/{datasetType}/{datasetType}_{dataId}_{id}"
    store = FileDatastore(config)
    assert store.root == f"file://{tmp_path / 'repo'}"


def test_many_threads(tmp_path: Path) -> None:
    store = makeStore(tmp_path)
    refs = [makeRef("metrics", "StructuredDataDict", visit=v) for v in range(80)]

    def work(ref: DatasetRef) -> Any:
        store.put({"v": ref.dataId["visit"]}, ref)
        return store.get(ref)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, refs))
    assert results == [{"v": v} for v in range(80)]
    assert len(store) == 80
