"""Copy modes: what a caller gets back cannot be changed by another caller (unless `reference`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from astropy.table import Table

from databutler import COPY_MODES, DatasetRef, InMemoryDatastore, MaskedImage, StorageClassError
from databutler.testing import makeRef


def makeStore(copyMode: Any = None) -> InMemoryDatastore:
    config: dict[str, Any] = {"cls": "databutler.InMemoryDatastore"}
    if copyMode is not None:
        config["copyMode"] = copyMode
    return InMemoryDatastore({"datastore": config})


def _mutateDict(d: dict[str, Any]) -> None:
    d["a"] = 999
    d["nested"].append(999)


def _mutateList(values: list[Any]) -> None:
    values[0] = 999
    values[1].append(999)


def _mutateArray(a: np.ndarray) -> None:
    a[0] = 999.0


def _mutateFrame(df: pd.DataFrame) -> None:
    df.loc[0, "a"] = 999.0


def _mutateAstropy(t: Table) -> None:
    t["a"][0] = 999.0


def _mutateMasked(m: MaskedImage) -> None:
    m.image[0] = 999.0
    m.metadata["k"] = "changed"


# storage class, factory of a fresh object, in-place mutation, equality check
FAMILIES: dict[str, tuple[str, Callable[[], Any], Callable[[Any], None], Callable[[Any, Any], bool]]] = {
    "dict": ("StructuredDataDict", lambda: {"a": 1, "nested": [1, 2]}, _mutateDict, lambda x, y: x == y),
    "list": ("StructuredDataList", lambda: [1, [2, 3]], _mutateList, lambda x, y: x == y),
    "numpy": ("NumpyArray", lambda: np.arange(4.0), _mutateArray, lambda x, y: np.array_equal(x, y)),
    "pandas": ("DataFrame", lambda: pd.DataFrame({"a": [1.0, 2.0]}), _mutateFrame, lambda x, y: x.equals(y)),
    "astropy": (
        "AstropyTable",
        lambda: Table({"a": [1.0, 2.0]}),
        _mutateAstropy,
        lambda x, y: list(x["a"]) == list(y["a"]),
    ),
    "composite": (
        "MaskedImage",
        lambda: MaskedImage(image=np.arange(3.0), metadata={"k": "v"}),
        _mutateMasked,
        lambda x, y: np.array_equal(x.image, y.image) and x.metadata == y.metadata,
    ),
}


def _tryMutate(mutate: Callable[[Any], None], obj: Any) -> bool:
    """Mutate ``obj`` in place; return False if it refused because it is read-only."""
    try:
        mutate(obj)
    except ValueError as exc:
        assert "read-only" in str(exc)
        return False
    return True


# A shallow copy protects only the top level of a plain container (see test_copy_is_shallow),
# so "copy" is checked against the families whose copy is a full one.
PROTECTED = [
    (family, mode)
    for family in sorted(FAMILIES)
    for mode in ("copy", "deepcopy", "freeze", "default")
    if not (mode == "copy" and family in {"dict", "list", "composite"})
]


@pytest.mark.parametrize(("family", "mode"), PROTECTED)
def test_protected_modes(family: str, mode: str) -> None:
    storageClass, make, mutate, same = FAMILIES[family]
    store = makeStore(None if mode == "default" else mode)
    ref = makeRef("thing", storageClass)
    original = make()
    store.put(original, ref)
    _tryMutate(mutate, original)  # the caller changes its own object after put
    first = store.get(ref)
    assert same(first, make()), "a change to the caller's object reached the store"
    _tryMutate(mutate, first)  # a reader changes what it got
    assert same(store.get(ref), make()), "a change to a returned object reached the store"


@pytest.mark.parametrize(("family", "mode"), PROTECTED)
def test_protected_modes_on_the_fast_paths(family: str, mode: str) -> None:
    """A second put of a dataset type takes put's fast path; a get by the very ref, get's."""
    storageClass, make, mutate, same = FAMILIES[family]
    store = makeStore(None if mode == "default" else mode)
    first = makeRef("thing", storageClass, visit=1)
    second = DatasetRef(first.datasetType, {"visit": 2, "detector": 2}, run="test/run")
    store.put(make(), first)  # checks the dataset type and fills the put cache
    original = make()
    store.put(original, second)
    _tryMutate(mutate, original)
    got = store.get(second)
    assert same(got, make()), "a change to the caller's object reached the store"
    _tryMutate(mutate, got)
    assert same(store.get(second), make()), "a change to a returned object reached the store"
    sameDataset = DatasetRef(second.datasetType, {"visit": 2, "detector": 2}, id=second.id, run="test/run")
    assert same(store.get(sameDataset), make())  # an equal ref that is another object


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_reference_mode_fast_paths_share_the_object(family: str) -> None:
    storageClass, make, _mutate, _same = FAMILIES[family]
    store = makeStore("reference")
    first = makeRef("thing", storageClass, visit=1)
    second = DatasetRef(first.datasetType, {"visit": 2, "detector": 2}, run="test/run")
    store.put(make(), first)
    original = make()
    store.put(original, second)
    assert store.get(second) is original
    assert store.stats().hits == 1


def test_copy_is_shallow() -> None:
    store = makeStore("copy")
    ref = makeRef("thing", "StructuredDataDict")
    original = {"a": 1, "nested": [1]}
    store.put(original, ref)
    original["a"] = 2
    assert store.get(ref)["a"] == 1
    original["nested"].append(2)  # a shallow copy shares nested containers, as documented
    assert store.get(ref)["nested"] == [1, 2]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_reference_mode_shares_the_object(family: str) -> None:
    storageClass, make, mutate, _same = FAMILIES[family]
    store = makeStore("reference")
    ref = makeRef("thing", storageClass)
    original = make()
    store.put(original, ref)
    assert store.get(ref) is original
    mutate(original)
    assert store.get(ref) is original


def test_frozen_array_views_cannot_be_unfrozen() -> None:
    store = makeStore()  # NumpyArray defaults to freeze
    ref = makeRef("image", "NumpyArray")
    store.put(np.arange(4.0), ref)
    view = store.get(ref)
    assert not view.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        view[0] = 1.0
    with pytest.raises(ValueError):
        view.setflags(write=True)
    assert store.get(ref)[0] == 0.0
    sliced = store.get(ref, parameters={"slice": slice(0, 2)})
    assert not sliced.flags.writeable
    with pytest.raises(ValueError):
        sliced.setflags(write=True)


def test_defaults_per_type_family() -> None:
    store = makeStore()
    expected = {
        "StructuredDataDict": "deepcopy",
        "StructuredDataList": "deepcopy",
        "NumpyArray": "freeze",
        "ArrowTable": "reference",
        "DataFrame": "copy",
        "AstropyTable": "copy",
        "String": "reference",
        "Bytes": "reference",
        "Integer": "reference",
        "Float": "reference",
        "Tuple": "freeze",
        "MaskedImage": "deepcopy",
    }
    for storageClass, mode in expected.items():
        assert store.copyModeFor(makeRef("x", storageClass).datasetType) == mode, storageClass


def test_immutable_values_are_stored_as_they_are() -> None:
    store = makeStore()
    for storageClass, value in [
        ("String", "text"),
        ("Bytes", b"raw"),
        ("Integer", 10**30),
        ("Float", 1.5),
        ("Tuple", (1, "a", (2.0,))),
        ("ArrowTable", pa.table({"a": [1]})),
    ]:
        ref = makeRef("value", storageClass)
        store.put(value, ref)
        assert store.get(ref) is value


def test_mutable_tuple_contents_are_copied() -> None:
    store = makeStore()
    ref = makeRef("value", "Tuple")
    value = (1, [2, 3])
    store.put(value, ref)
    value[1].append(4)
    got = store.get(ref)
    assert got == (1, [2, 3])
    got[1].append(5)
    assert store.get(ref) == (1, [2, 3])


def test_components_and_slices_follow_the_policy() -> None:
    store = makeStore()
    ref = makeRef("calexp", "MaskedImage")  # deepcopy
    store.put(MaskedImage(image=np.arange(3.0), metadata={"k": [1]}), ref)
    image = store.get(ref.makeComponentRef("image"))
    image[0] = 999.0
    metadata = store.get(ref.makeComponentRef("metadata"))
    metadata["k"].append(2)
    assert store.get(ref).image[0] == 0.0
    assert store.get(ref.makeComponentRef("metadata")) == {"k": [1]}
    listRef = makeRef("values", "StructuredDataList")
    store.put([[1], [2], [3]], listRef)
    part = store.get(listRef, parameters={"slice": slice(0, 2)})
    part[0].append(99)
    assert store.get(listRef) == [[1], [2], [3]]
    frameRef = makeRef("frame", "DataFrame")
    store.put(pd.DataFrame({"a": [1.0], "b": [2.0]}), frameRef)
    columns = store.get(frameRef, parameters={"columns": ["a"]})
    columns.loc[0, "a"] = 999.0
    assert store.get(frameRef).loc[0, "a"] == 1.0


def test_config_overrides() -> None:
    store = makeStore({"NumpyArray": "reference", "special": "deepcopy", "StructuredDataDict": "copy"})
    array = np.arange(3.0)
    plain = makeRef("image", "NumpyArray")
    special = makeRef("special", "NumpyArray")
    store.put(array, plain)
    store.put(array, special)
    assert store.get(plain) is array
    got = store.get(special)
    assert got is not array and got.flags.writeable  # dataset type name wins over storage class name
    assert store.copyModeFor(makeRef("m", "StructuredDataDict").datasetType) == "copy"
    assert store.copyModeFor(makeRef("m", "StructuredDataList").datasetType) == "deepcopy"


def test_global_mode_and_freeze_errors() -> None:
    assert makeStore("freeze").copyModeFor(makeRef("d", "StructuredDataDict").datasetType) == "deepcopy"
    assert makeStore("freeze").copyModeFor(makeRef("a", "NumpyArray").datasetType) == "freeze"
    store = makeStore({"StructuredDataDict": "freeze"})
    ref = makeRef("d", "StructuredDataDict")
    with pytest.raises(StorageClassError, match="cannot be frozen"):
        store.put({"a": 1}, ref)
    assert not store.exists(ref)
    assert set(COPY_MODES) == {"reference", "copy", "deepcopy", "freeze"}


def test_frozen_array_base_cannot_be_made_writeable() -> None:
    store = makeStore()
    ref = makeRef("image", "NumpyArray")
    store.put(np.arange(4.0), ref)
    view = store.get(ref)
    for array in (view, view.base):
        with pytest.raises(ValueError):
            array.setflags(write=True)
    assert store.get(ref).tolist() == [0.0, 1.0, 2.0, 3.0]


def test_object_arrays_hand_out_copies() -> None:
    store = makeStore()
    ref = makeRef("image", "NumpyArray")
    values = np.empty(2, dtype=object)
    values[0], values[1] = [1], {"k": "v"}
    store.put(values, ref)
    values[0].append(2)  # the caller's own elements
    got = store.get(ref)
    got[0].append(999)
    got[1]["k"] = "changed"
    again = store.get(ref)
    assert again[0] == [1] and again[1] == {"k": "v"}


class Point:
    def __init__(self, x: int) -> None:
        self.x = x


def test_tuples_of_mutable_objects_are_copied() -> None:
    store = makeStore()
    ref = makeRef("value", "Tuple")
    point = Point(1)
    store.put((point, "label"), ref)  # hashable, but not immutable
    point.x = 42
    got = store.get(ref)
    assert got[0].x == 1
    got[0].x = -1
    assert store.get(ref)[0].x == 1
