"""transfer works between every pair of the three datastores, in both directions."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from databutler import (
    ChainedDatastore,
    DatasetExistsError,
    DatasetIntegrityError,
    DatasetNotFoundError,
    Datastore,
    FileDatastore,
    InMemoryDatastore,
    JsonFormatter,
    MaskedImage,
)
from databutler.testing import makeRef

MEMORY = "databutler.datastores.memory.InMemoryDatastore"
FILE = "databutler.datastores.file.FileDatastore"


def inMemory(tmp: Path) -> Datastore:
    return InMemoryDatastore({"datastore": {"cls": MEMORY}})


def fileLocal(tmp: Path) -> Datastore:
    return FileDatastore({"datastore": {"cls": FILE, "root": str(tmp / uuid.uuid4().hex)}})


def fileMemoryFs(tmp: Path) -> Datastore:
    return FileDatastore({"datastore": {"cls": FILE, "root": f"memory://transfer/{uuid.uuid4().hex}"}})


def chained(tmp: Path) -> Datastore:
    children = [{"cls": MEMORY}, {"cls": FILE, "root": str(tmp / uuid.uuid4().hex)}]
    return ChainedDatastore({"datastore": {"cls": "databutler.ChainedDatastore", "datastores": children}})


KINDS: dict[str, Callable[[Path], Datastore]] = {
    "memory": inMemory,
    "file": fileLocal,
    "file-memoryfs": fileMemoryFs,
    "chained": chained,
}
PAIRS = list(itertools.product(KINDS, KINDS))


def samples() -> list[tuple[Any, Any]]:
    return [
        ({"a": [1, 2], "b": "text"}, makeRef("metrics", "StructuredDataDict")),
        (np.arange(12.0).reshape(3, 4), makeRef("image", "NumpyArray")),
        (pa.table({"ra": [1.0], "dec": [2.0]}), makeRef("sources", "ArrowTable")),
        (
            MaskedImage(image=np.ones((2, 2)), mask=np.zeros((2, 2), dtype=np.int32), metadata={"x": 1}),
            makeRef("calexp", "MaskedImage"),
        ),
    ]


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return bool(np.array_equal(a, b))
    if isinstance(a, pa.Table):
        return bool(a.equals(b))
    if isinstance(a, MaskedImage):
        return same(a.image, b.image) and same(a.mask, b.mask) and a.metadata == b.metadata
    return bool(a == b)


@pytest.mark.parametrize(("source", "target"), PAIRS, ids=[f"{s}->{t}" for s, t in PAIRS])
def test_transfer_every_pair(tmp_path: Path, source: str, target: str) -> None:
    src = KINDS[source](tmp_path)
    dst = KINDS[target](tmp_path)
    for obj, ref in samples():
        src.put(obj, ref)
        dst.transfer(src, ref)
        assert same(dst.get(ref), obj)
        assert src.exists(ref)  # a transfer copies
        if ref.datasetType.isComposite():
            np.testing.assert_array_equal(dst.get(ref.makeComponentRef("mask")), obj.mask)
        with pytest.raises(DatasetExistsError):
            dst.transfer(src, ref)
    missing = makeRef("metrics", "StructuredDataDict", visit=99)
    with pytest.raises(FileNotFoundError):
        dst.transfer(src, missing)
    with pytest.raises(DatasetNotFoundError):
        dst.get(missing)


def test_transfer_is_undone_with_the_transaction(tmp_path: Path) -> None:
    src, dst = fileLocal(tmp_path), chained(tmp_path)
    ref = makeRef("metrics", "StructuredDataDict")
    src.put({"x": 1}, ref)
    with pytest.raises(RuntimeError), dst.transaction():
        dst.transfer(src, ref)
        raise RuntimeError("roll back")
    assert not dst.exists(ref) and src.exists(ref)


class UnreadableJsonFormatter(JsonFormatter):
    """Writes JSON but refuses to read: proves a transfer copied bytes without decoding them."""

    def readBuffer(self, buffer: memoryview, storageClass: Any, parameters: Any) -> Any:
        raise AssertionError("decoded")


def fileStore(root: Path, **extra: Any) -> FileDatastore:
    return FileDatastore({"datastore": {"cls": FILE, "root": str(root), **extra}})


def test_file_to_file_copies_bytes_without_decoding(tmp_path: Path) -> None:
    formatters = {"StructuredDataDict": f"{__name__}.UnreadableJsonFormatter"}
    src = fileStore(tmp_path / "src", formatters=formatters)
    dst = fileStore(tmp_path / "dst", formatters=formatters, templates={"default": "{datasetType}/{id}"})
    ref = makeRef("metrics", "StructuredDataDict")
    src.put({"x": 1}, ref)
    dst.transfer(src, ref)
    srcInfo, dstInfo = src.getStoredItemInfo(ref), dst.getStoredItemInfo(ref)
    assert dstInfo.checksum == srcInfo.checksum and dstInfo.path == f"metrics/{ref.id}.json"
    assert (
        Path(dst.getUri(ref).removeprefix("file://")).read_bytes()
        == Path(src.getUri(ref).removeprefix("file://")).read_bytes()
    )
    calexp = makeRef("calexp", "MaskedImage")
    src.put(MaskedImage(image=np.ones(3), metadata={"a": 1}), calexp)
    dst.transfer(src, calexp)
    assert (
        dst.getStoredItemInfo(calexp.makeComponentRef("image")).checksum
        == src.getStoredItemInfo(calexp.makeComponentRef("image")).checksum
    )
    np.testing.assert_array_equal(dst.get(calexp.makeComponentRef("image")), np.ones(3))


def test_file_to_file_with_other_formatters_reads_and_puts(tmp_path: Path) -> None:
    src = fileStore(tmp_path / "src")
    dst = fileStore(
        tmp_path / "dst", formatters={"StructuredDataDict": "databutler.formatters.yaml.YamlFormatter"}
    )
    ref = makeRef("metrics", "StructuredDataDict")
    src.put({"x": 1}, ref)
    dst.transfer(src, ref)
    assert dst.getUri(ref).endswith(".yaml") and dst.get(ref) == {"x": 1}


def test_transfer_of_a_changed_file_stores_nothing(tmp_path: Path) -> None:
    src, dst = fileStore(tmp_path / "src"), fileStore(tmp_path / "dst")
    ref = makeRef("image", "NumpyArray")
    src.put(np.zeros(10), ref)
    path = Path(src.getUri(ref).removeprefix("file://"))
    path.write_bytes(path.read_bytes()[:-1] + b"\x01")
    with pytest.raises(DatasetIntegrityError, match=str(path)):
        dst.transfer(src, ref)
    assert not dst.exists(ref)
    assert not [p for p in (tmp_path / "dst").rglob("*") if p.is_file() and "sqlite3" not in p.name]
