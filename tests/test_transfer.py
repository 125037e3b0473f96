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
    DatasetNotFoundError,
    Datastore,
    FileDatastore,
    InMemoryDatastore,
    MaskedImage,
)
from databutler.testing import makeRef

MEMORY = "databutler.datastores.in_memory.InMemoryDatastore"
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
