"""The fast deep copy of JSON-like data, and every copy path the in-memory store now takes.

Each path is checked the same way: the caller mutates what it put (at every depth), a reader
mutates what it got (at every depth), and the store still hands out the original value.
"""

from __future__ import annotations

import copy
import sys
from collections import OrderedDict, defaultdict
from enum import IntEnum
from typing import Any

import numpy as np
import pytest

from databutler import COPY_MODES, InMemoryDatastore, StorageClass, StorageClassDelegate
from databutler.delegates.copying import copyJsonLike, jsonLikeCopier, jsonLikeDeepcopy, jsonLikeSize
from databutler.storage_class import CopyMode
from databutler.testing import makeRef


def makeStore(**options: Any) -> InMemoryDatastore:
    return InMemoryDatastore({"datastore": {"cls": "databutler.InMemoryDatastore", **options}})


def mutateEverywhere(obj: Any) -> None:
    """Change every mutable container reachable from ``obj``, in place."""
    if isinstance(obj, dict):
        for value in list(obj.values()):
            mutateEverywhere(value)
        obj["added"] = "by a caller"
    elif isinstance(obj, list):
        for value in obj:
            mutateEverywhere(value)
        obj.append("by a caller")
    elif isinstance(obj, tuple):
        for value in obj:
            mutateEverywhere(value)


SHAPES = {
    "flat dict": lambda: {"a": 1, "b": 2.5, "c": "x", "d": None, "e": True, "f": b"raw"},
    "nested dict": lambda: {"a": {"b": {"c": [1, 2, {"d": [3]}]}}, "e": [[4], [5, [6]]]},
    "tuple holding a list": lambda: {"t": (1, [2, 3], (4, [5]))},
    "shared sublist": lambda: (lambda shared: {"x": shared, "y": shared})([1, 2]),
    "int keys": lambda: {1: [1], 2: {3: [4]}},
    "not JSON-like: tuple keys": lambda: {(1, 2): [3]},
    "not JSON-like: set inside": lambda: {"s": [{1, 2}]},
    "not JSON-like: OrderedDict inside": lambda: {"o": OrderedDict(a=[1])},
    "not JSON-like: defaultdict inside": lambda: {"d": defaultdict(list, a=[1])},
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_default_dict_mode_protects_every_depth(shape: str) -> None:
    make = SHAPES[shape]
    store = makeStore()
    ref = makeRef("metrics", "StructuredDataDict")
    original = make()
    store.put(original, ref)
    mutateEverywhere(original)
    got = store.get(ref)
    assert got == make(), "a caller's change after put reached the store"
    mutateEverywhere(got)
    assert store.get(ref) == make(), "a reader's change reached the store"
    again = store.getMany([ref])[ref]
    assert again == make() and again is not store.get(ref)


def test_list_storage_class_and_slices_are_protected() -> None:
    store = makeStore()
    ref = makeRef("values", "StructuredDataList")
    store.put([[1], {"a": [2]}, 3], ref)
    part = store.get(ref, parameters={"slice": slice(0, 2)})
    mutateEverywhere(part)
    assert store.get(ref) == [[1], {"a": [2]}, 3]


def test_cycles_fall_back_to_deepcopy() -> None:
    cyclic: dict[str, Any] = {"a": [1]}
    cyclic["self"] = cyclic
    assert jsonLikeDeepcopy(cyclic) is None
    store = makeStore()
    ref = makeRef("metrics", "StructuredDataDict")
    store.put(cyclic, ref)
    got = store.get(ref)
    assert got["self"] is got and got is not cyclic
    got["a"].append(2)
    assert store.get(ref)["a"] == [1]


def test_copier_shares_only_immutable_leaves() -> None:
    leaf = "a string"
    original = {"k": [leaf, (1, 2)], "t": (1, "x"), "n": {"m": [1.5]}}
    copied = copyJsonLike(original)
    assert copied == original
    assert copied["k"] is not original["k"] and copied["n"]["m"] is not original["n"]["m"]
    assert copied["k"][0] is leaf  # immutable leaves are shared
    assert copied["t"] is original["t"]  # so is a tuple of immutable scalars
    with pytest.raises(TypeError, match="not JSON-like"):
        copyJsonLike({"x": object()})


@pytest.mark.parametrize(
    "value",
    [
        OrderedDict(a=1),
        {"a": IntEnum("Level", "LOW HIGH").LOW},  # an int subclass may carry state
        {"a": np.float64(1.0)},
        [object()],
        {frozenset({1}): 1},
    ],
)
def test_non_json_like_values_are_not_copied_by_the_fast_path(value: Any) -> None:
    assert jsonLikeDeepcopy(value) is None
    assert jsonLikeCopier(value) is None
    assert jsonLikeSize(value) is None


def test_the_chosen_copier_suits_the_stored_shape() -> None:
    flat = {"a": 1}
    found = jsonLikeDeepcopy(flat)
    assert found is not None
    stored, copier = found
    assert stored == flat and stored is not flat and copier is dict.copy
    nested = {"a": [1]}
    found = jsonLikeDeepcopy(nested)
    assert found is not None and found[1] is copyJsonLike
    assert jsonLikeCopier((1, "a")) is not None and jsonLikeCopier((1, "a"))((1, "a")) == (1, "a")


def test_delegate_with_its_own_deepcopy_keeps_it() -> None:
    calls: list[Any] = []

    class CountingDelegate(StorageClassDelegate):
        def deepcopy(self, inMemoryDataset: Any) -> Any:
            calls.append(inMemoryDataset)
            return copy.deepcopy(inMemoryDataset)

    storageClass = StorageClass("CountedDict", pytype=dict, delegate=CountingDelegate)
    store = makeStore()
    ref = makeRef("counted", storageClass)
    store.put({"a": [1]}, ref)
    store.get(ref)
    assert len(calls) == 2  # one copy on put, one on get


def test_sizes_of_json_like_data() -> None:
    flat = {"a": 1, "b": "text"}
    size = jsonLikeSize(flat)
    assert size is not None and size >= sys.getsizeof(flat) + sys.getsizeof("text")
    assert jsonLikeSize({"a": [1, 2, 3], "b": flat}) > size  # type: ignore[operator]
    store = makeStore(maxBytes=10_000)
    ref = makeRef("metrics", "StructuredDataDict")
    store.put(flat, ref)
    assert store.stats().bytesHeld == size


def test_copy_modes_are_a_str_enum() -> None:
    assert COPY_MODES == ("reference", "copy", "deepcopy", "freeze")
    store = makeStore()
    mode = store.copyModeFor(makeRef("metrics", "StructuredDataDict").datasetType)
    assert mode is CopyMode.DEEPCOPY and mode == "deepcopy"
    assert StorageClass("Mine", pytype=dict, copyMode="freeze").copyMode is CopyMode.FREEZE


def test_adopt_takes_the_object_and_hands_out_a_copy() -> None:
    store = makeStore()
    ref = makeRef("metrics", "StructuredDataDict")
    decoded = {"a": [1, 2]}
    given = store.adopt(decoded, ref)
    assert given == decoded and given is not decoded
    given["a"].append(3)
    assert store.get(ref) == {"a": [1, 2]}


def test_adopt_of_a_frozen_type_keeps_a_frozen_copy_and_gives_the_original() -> None:
    store = makeStore()
    ref = makeRef("image", "NumpyArray")
    decoded = np.arange(4.0)
    given = store.adopt(decoded, ref)
    assert given is decoded
    given[0] = 99.0
    view = store.get(ref)
    assert view[0] == 0.0 and not view.flags.writeable


def test_adopt_of_a_dataset_already_held_changes_nothing() -> None:
    store = makeStore()
    ref = makeRef("metrics", "StructuredDataDict")
    store.put({"a": 1}, ref)
    assert store.adopt({"a": 2}, ref) == {"a": 2}
    assert store.get(ref) == {"a": 1}
