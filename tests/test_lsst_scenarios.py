"""Scenarios from the LSST butler's own test suite that databutler failed (issue 11)."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from databutler import (
    Butler,
    DatasetRef,
    DatasetType,
    InMemoryDatastore,
    MissingDatasetTypeError,
    StorageClassError,
    StorageClassFactory,
    StoredItemInfo,
    StoredItemInfoExistsError,
    StoredItemInfoNotFoundError,
)


@pytest.fixture
def butler(tmp_path: Path) -> Butler:
    Butler.makeRepo(tmp_path / "repo")
    with Butler(tmp_path / "repo", run="run1") as opened:
        yield opened


def test_dataset_type_registered_in_a_rolled_back_transaction_is_gone(butler: Butler) -> None:
    with pytest.raises(RuntimeError, match="undo"), butler.transaction():
        butler.registerDatasetType("flat", ("visit",), "NumpyArray")
        assert butler.getDatasetType("flat").storageClass.name == "NumpyArray"
        butler.put(np.zeros(3), "flat", visit=1)
        raise RuntimeError("undo")
    with pytest.raises(MissingDatasetTypeError, match="'flat'"):
        butler.getDatasetType("flat")
    with pytest.raises(MissingDatasetTypeError, match="'flat'"):
        butler.put(np.zeros(3), "flat", visit=1)
    # Registered again (differently), it is the new definition that is used.
    butler.registerDatasetType("flat", ("visit", "detector"), "NumpyArray")
    ref = butler.put(np.ones(2), "flat", visit=1, detector=2)
    assert butler.getDatasetType("flat").dimensions == ("detector", "visit")
    assert np.array_equal(butler.get(ref), np.ones(2))


def test_membership_of_an_unhashable_value_is_false() -> None:
    factory = StorageClassFactory.fromDefaults()
    assert ({} in factory) is False
    assert ([] in factory) is False
    assert (None in factory) is False
    assert "NumpyArray" in factory
    assert factory.getStorageClass("NumpyArray") in factory


def test_str_of_butler_names_datastore_and_registry(butler: Butler) -> None:
    text = str(butler)
    assert str(butler.datastore) in text
    assert str(butler.registry) in text
    assert "registry.sqlite3" in text and "FileDatastore" in text


def test_refs_sort_by_dataset_type_name_then_data_id(butler: Butler) -> None:
    butler.registerDatasetType("b", ("visit", "detector"), "StructuredDataDict")
    butler.registerDatasetType("a", ("visit",), "StructuredDataDict")
    made = [
        butler.put({}, "b", visit=2, detector=1),
        butler.put({}, "b", visit=1, detector=3),
        butler.put({}, "a", visit=10),
        butler.put({}, "b", visit=1, detector=2),
        butler.put({}, "a", visit=9),
    ]
    ordered = sorted(made)
    assert [(r.datasetType.name, dict(r.dataId)) for r in ordered] == [
        ("a", {"visit": 9}),
        ("a", {"visit": 10}),
        ("b", {"detector": 1, "visit": 2}),
        ("b", {"detector": 2, "visit": 1}),
        ("b", {"detector": 3, "visit": 1}),
    ]
    assert sorted(reversed(made)) == ordered
    assert ordered[0] < ordered[1] <= ordered[1] and ordered[2] > ordered[1] >= ordered[0]


def test_refs_with_int_and_str_values_of_one_dimension_sort() -> None:
    dt = DatasetType("x", ("visit",), "StructuredDataDict")
    refs = [DatasetRef(dt, {"visit": "b"}), DatasetRef(dt, {"visit": 3}), DatasetRef(dt, {"visit": "a"})]
    assert [r.dataId["visit"] for r in sorted(refs)] == [3, "a", "b"]
    with pytest.raises(TypeError):
        _ = refs[0] < "x"  # type: ignore[operator]


def test_storage_class_inherits_from_another_in_config() -> None:
    factory = StorageClassFactory.fromDefaults()
    factory.addFromConfig(
        {
            "storageClasses": {
                "Base": {"pytype": "dict", "parameters": ["a"], "copyMode": "copy"},
                "Child": {"inheritsFrom": "Base", "parameters": ["b"]},
                "Grandchild": {"inheritsFrom": "Child", "pytype": "collections.OrderedDict"},
                "ArrayLike": {"inheritsFrom": "NumpyArray"},  # a packaged one
            }
        }
    )
    child = factory.getStorageClass("Child")
    assert child.pytype is dict and child.parameters == {"a", "b"} and child.copyMode == "copy"
    grandchild = factory.getStorageClass("Grandchild")
    assert grandchild.pytypeName == "collections.OrderedDict" and grandchild.parameters == {"a", "b"}
    numpyArray = factory.getStorageClass("NumpyArray")
    arrayLike = factory.getStorageClass("ArrayLike")
    assert arrayLike.pytype is numpyArray.pytype and arrayLike.delegateName == numpyArray.delegateName
    assert arrayLike.parameters == numpyArray.parameters
    assert arrayLike.delegate().handleParameters(np.arange(5), {"slice": slice(1, 3)}).tolist() == [1, 2]


def test_inherits_from_keeps_and_extends_components() -> None:
    factory = StorageClassFactory.fromDefaults()
    factory.addFromConfig(
        {
            "storageClasses": {
                "Pair": {"pytype": "dict", "components": {"left": "NumpyArray"}},
                "Triple": {"inheritsFrom": "Pair", "components": {"right": "StructuredDataDict"}},
            }
        }
    )
    assert set(factory.getStorageClass("Triple").components) == {"left", "right"}


@pytest.mark.parametrize(
    ("definitions", "message"),
    [
        ({"A": {"inheritsFrom": "Nope"}}, r"'A'.*inheritsFrom.*Nope"),
        ({"A": {"inheritsFrom": "B"}, "B": {"inheritsFrom": "A"}}, "inherits from itself"),
        ({"A": {"inheritsFrom": ["B"]}, "B": {}}, "inheritsFrom names one storage class"),
        ({"A": {"inheritFrom": "B"}}, r"unknown key.*inheritFrom.*inheritsFrom"),
    ],
)
def test_bad_inherits_from_is_a_storage_class_error(definitions: dict, message: str) -> None:
    with pytest.raises(StorageClassError, match=message):
        StorageClassFactory.fromDefaults().addFromConfig({"storageClasses": definitions})


def test_in_memory_info_for_a_dataset_it_does_not_hold() -> None:
    store = InMemoryDatastore({"datastore": {"cls": "databutler.InMemoryDatastore"}})
    datasetType = DatasetType("metrics", ("visit",), "StructuredDataDict")
    ref = DatasetRef(datasetType, {"visit": 1}, id=uuid.uuid4(), run="run1")
    info = StoredItemInfo(12.5, datasetType.storageClass)
    store.addStoredItemInfo(ref, info)  # the spec names only KeyError, for an existing entry
    assert store.getStoredItemInfo(ref) == info
    assert store.exists(ref) is False
    with pytest.raises(StoredItemInfoExistsError, match="metrics"):
        store.addStoredItemInfo(ref, info)
    with pytest.raises(KeyError):
        store.addStoredItemInfo(ref, info)
    store.removeStoredItemInfo(ref)
    with pytest.raises(StoredItemInfoNotFoundError):
        store.getStoredItemInfo(ref)
    with pytest.raises(KeyError):
        store.removeStoredItemInfo(ref)
    store.addStoredItemInfo(ref, info)
    store.put({"x": 1}, ref)  # the info recorded by hand stays with the dataset
    assert store.getStoredItemInfo(ref) == info and store.get(ref) == {"x": 1}
    store.remove(ref)
    with pytest.raises(KeyError):
        store.getStoredItemInfo(ref)
