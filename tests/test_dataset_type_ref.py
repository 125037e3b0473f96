"""DatasetType and DatasetRef."""

from __future__ import annotations

import pickle
import uuid

import numpy as np
import pytest

from databutler import (
    DataIdError,
    DatasetRef,
    DatasetType,
    DatasetTypeError,
    StorageClass,
    StorageClassFactory,
    UnknownComponentError,
    UnknownStorageClassError,
)


def test_dataset_type_basics() -> None:
    dt = DatasetType("calexp", ["visit", "detector", "visit"], "MaskedImage")
    assert dt.dimensions == ("detector", "visit")
    assert dt.storageClass.name == "MaskedImage"
    assert dt.isComposite() and not dt.isComponent()
    assert dt.component() is None
    assert dt.componentTypeName("image") == "calexp.image"
    comp = dt.makeComponentDatasetType("image")
    assert comp.name == "calexp.image" and comp.component() == "image"
    assert comp.storageClass.name == "NumpyArray"
    assert comp.makeCompositeDatasetType() == dt
    assert dt == DatasetType("calexp", ("detector", "visit"), dt.storageClass)
    assert hash(dt) == hash(DatasetType("calexp", ("detector", "visit"), "MaskedImage"))
    assert dt != DatasetType("calexp", ("visit",), "MaskedImage")
    with pytest.raises(UnknownComponentError, match="psf"):
        dt.componentTypeName("psf")
    with pytest.raises(DatasetTypeError):
        dt.makeCompositeDatasetType()


@pytest.mark.parametrize("name", ["", "1abc", "a b", "a/b", "../x", "a.b.c", "a.", "x" * 200, "é"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(DatasetTypeError):
        DatasetType(name, ["visit"], "StructuredDataDict")


def test_invalid_dimensions_and_storage_class() -> None:
    with pytest.raises(DatasetTypeError, match="iterable"):
        DatasetType("x", "visit", "StructuredDataDict")
    with pytest.raises(DatasetTypeError):
        DatasetType("x", ["vis it"], "StructuredDataDict")
    with pytest.raises(DatasetTypeError):
        DatasetType("x", [1], "StructuredDataDict")  # type: ignore[list-item]
    with pytest.raises(UnknownStorageClassError):
        DatasetType("x", ["visit"], "NoSuchClass")
    with pytest.raises(DatasetTypeError):
        DatasetType("x", ["visit"], 3)  # type: ignore[arg-type]


def test_custom_factory_resolves_names() -> None:
    factory = StorageClassFactory()
    factory.registerStorageClass(StorageClass("Mine", pytype=dict))
    dt = DatasetType("x", ["visit"], "Mine", storageClassFactory=factory)
    assert dt.storageClass is factory.getStorageClass("Mine")


def test_dataset_ref_basics() -> None:
    dt = DatasetType("calexp", ["visit", "detector"], "MaskedImage")
    ref = DatasetRef(dt, {"visit": np.int64(5), "detector": 2}, run="run1")
    assert isinstance(ref.id, uuid.UUID)
    assert dict(ref.dataId) == {"detector": 2, "visit": 5}
    assert type(ref.dataId["visit"]) is int
    with pytest.raises(TypeError):
        ref.dataId["visit"] = 3  # type: ignore[index]
    same = DatasetRef(dt, {"visit": 5, "detector": 2}, id=str(ref.id), run="run1")
    assert same == ref and hash(same) == hash(ref)
    assert DatasetRef(dt, {"visit": 5, "detector": 2}, run="run1") != ref
    image = ref.makeComponentRef("image")
    assert image.id == ref.id and image.datasetType.name == "calexp.image"
    assert image != ref and image.isComponent()
    assert image.makeCompositeRef() == ref
    assert set(ref.components) == {"image", "mask", "metadata"}
    assert ref.components["mask"].datasetType.storageClass.name == "NumpyArray"
    assert pickle.loads(pickle.dumps(ref)) == ref
    assert "calexp" in str(ref) and str(ref.id) in repr(ref)


@pytest.mark.parametrize(
    ("dataId", "message"),
    [
        ({"visit": 1}, r"missing \['detector'\]"),
        ({"visit": 1, "detector": 2, "band": "r"}, r"unexpected \['band'\]"),
        ({"visit": 1.5, "detector": 2}, "int or str"),
        ({"visit": True, "detector": 2}, "booleans"),
        ({"visit": "", "detector": 2}, "empty"),
        ([("visit", 1)], "mapping"),
    ],
)
def test_malformed_data_ids(dataId: object, message: str) -> None:
    dt = DatasetType("calexp", ["visit", "detector"], "MaskedImage")
    with pytest.raises(DataIdError, match=message):
        DatasetRef(dt, dataId)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        DatasetRef(dt, dataId)  # type: ignore[arg-type]


def test_bad_ids_and_runs() -> None:
    dt = DatasetType("x", ["visit"], "StructuredDataDict")
    with pytest.raises(TypeError, match="UUID"):
        DatasetRef(dt, {"visit": 1}, id="not-a-uuid")
    with pytest.raises(TypeError):
        DatasetRef(dt, {"visit": 1}, id=123)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="run"):
        DatasetRef(dt, {"visit": 1}, run="")
    with pytest.raises(TypeError, match="DatasetType"):
        DatasetRef("x", {"visit": 1})  # type: ignore[arg-type]
