"""Admission of read-through copies into a bounded store: scans do not flush what it holds."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from databutler import ConfigError, DatasetNotFoundError, InMemoryDatastore
from databutler.testing import makeRef


def makeStore(**options: Any) -> InMemoryDatastore:
    return InMemoryDatastore({"datastore": {"cls": "databutler.InMemoryDatastore", **options}})


def cyclicScan(store: InMemoryDatastore, items: int, passes: int) -> int:
    """Read ``items`` datasets in order ``passes`` times, adopting each miss; return the hits."""
    refs = [makeRef("metrics", "StructuredDataDict", visit=v) for v in range(items)]
    hits = 0
    for _ in range(passes):
        for i, ref in enumerate(refs):
            try:
                store.get(ref)
                hits += 1
            except DatasetNotFoundError:
                store.adopt({"v": i}, ref)
    return hits


def test_frequency_admission_resists_a_cyclic_scan() -> None:
    store = makeStore(maxItems=10)
    hits = cyclicScan(store, items=15, passes=3)
    stats = store.stats()
    assert hits / 45 >= 0.30
    assert (stats.hits, stats.misses) == (hits, 45 - hits)
    assert stats.count == 10 and stats.evictions == 0
    assert stats.refused == 45 - hits - 10  # every miss after the store filled was turned away


def test_lru_admission_thrashes_on_the_same_scan() -> None:
    store = makeStore(maxItems=10, admission="all")
    assert cyclicScan(store, items=15, passes=3) == 0
    stats = store.stats()
    assert stats.refused == 0 and stats.evictions == 45 - 10


def test_a_frequently_read_dataset_displaces_a_rarely_read_one() -> None:
    store = makeStore(maxItems=2)
    refs = [makeRef("metrics", "StructuredDataDict", visit=v) for v in range(3)]
    store.adopt({"v": 0}, refs[0])
    store.adopt({"v": 1}, refs[1])
    for _ in range(3):  # refs[2] is wanted again and again, and misses each time
        with pytest.raises(DatasetNotFoundError):
            store.get(refs[2])
    store.adopt({"v": 2}, refs[2])
    assert store.exists(refs[2])
    assert store.stats().evictions == 1


def test_puts_are_always_admitted() -> None:
    store = makeStore(maxItems=2)
    refs = [makeRef("metrics", "StructuredDataDict", visit=v) for v in range(3)]
    for i, ref in enumerate(refs):
        store.put({"v": i}, ref)
    assert store.exists(refs[2]) and not store.exists(refs[0])
    assert store.stats().refused == 0


def test_large_read_through_copies_are_not_admitted() -> None:
    store = makeStore(maxBytes=100_000, admitFraction=0.25)
    small = makeRef("image", "NumpyArray", visit=1)
    large = makeRef("image", "NumpyArray", visit=2)
    store.adopt(np.zeros(100), small)
    given = store.adopt(np.zeros(5_000), large)  # 40 kB: more than a quarter of maxBytes
    assert given.shape == (5_000,)
    assert store.exists(small) and not store.exists(large)
    assert store.stats().refused == 1
    store.put(np.zeros(5_000), large)  # an explicit put is stored all the same
    assert store.exists(large)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"admission": "lfu"}, "admission"),
        ({"admitFraction": 0}, "admitFraction"),
        ({"admitFraction": 1.5}, "admitFraction"),
        ({"admitFraction": "half"}, "admitFraction"),
    ],
)
def test_bad_admission_config(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        makeStore(maxItems=3, **options)


def test_tryGet_counts_like_get_and_raises_nothing_on_a_miss() -> None:
    store = makeStore(maxItems=5)
    held = makeRef("metrics", "StructuredDataDict", visit=1)
    absent = makeRef("metrics", "StructuredDataDict", visit=2)
    store.put({"a": [1]}, held)
    found, obj = store.tryGet(held)
    assert found and obj == {"a": [1]}
    obj["a"].append(2)  # a reader's own copy, as from get
    assert store.tryGet(absent) == (False, None)
    stats = store.stats()
    assert (stats.hits, stats.misses) == (1, 1)
    assert store.get(held) == {"a": [1]}


def countFreezes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the frozen copies NumPy arrays get (each is a copy of the whole array)."""
    from databutler.delegates.numpy_array import NumpyArrayDelegate

    calls: list[int] = []
    original = NumpyArrayDelegate.freeze

    def counting(self: NumpyArrayDelegate, array: Any) -> Any:
        calls.append(array.nbytes)
        return original(self, array)

    monkeypatch.setattr(NumpyArrayDelegate, "freeze", counting)
    return calls


def fullArrayStore() -> tuple[InMemoryDatastore, list[Any]]:
    """A bounded store (frozen arrays) filled by four read-through copies; the fifth ref does not fit."""
    store = makeStore(maxBytes=4 * 1000, admitFraction=1)
    refs = [makeRef("image", "NumpyArray", visit=v) for v in range(5)]
    for ref in refs[:4]:
        store.adopt(np.zeros(100), ref)  # 800 bytes of data each, plus the header
    assert store.stats().count == 4
    return store, refs


def test_a_refused_read_through_makes_no_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    store, refs = fullArrayStore()
    freezes = countFreezes(monkeypatch)
    decoded = np.arange(100.0)
    given = store.adopt(decoded, refs[4])  # as often read as the victim: refused
    assert given is decoded and given.flags.writeable  # the reader's own, untouched
    assert freezes == []  # no frozen copy was made only to be thrown away
    stats = store.stats()
    assert (stats.count, stats.refused, stats.evictions) == (4, 1, 0)
    assert not store.exists(refs[4])


def test_an_admitted_read_through_is_copied_once_and_sized_as_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    store, refs = fullArrayStore()
    freezes = countFreezes(monkeypatch)
    for _ in range(2):  # refs[4] now read more often than the victim
        assert store.tryGet(refs[4]) == (False, None)
    decoded = np.arange(100.0)
    given = store.adopt(decoded, refs[4])
    assert given is decoded and given.flags.writeable
    assert freezes == [800]  # one frozen copy, kept
    stored = store.get(refs[4])
    assert not stored.flags.writeable and np.array_equal(stored, decoded)
    decoded[0] = -1.0  # the reader's object is not the stored one
    assert store.get(refs[4])[0] == 0.0
    stats = store.stats()
    assert (stats.count, stats.evictions, stats.refused) == (4, 1, 0)
    sizeOf = refs[4].datasetType.storageClass.delegate().getSize
    assert stats.bytesHeld == sum(sizeOf(store.get(ref)) for ref in refs[1:])  # exact, as puts count


def test_a_read_through_larger_than_the_store_makes_no_copy_and_is_not_counted_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, refs = fullArrayStore()
    freezes = countFreezes(monkeypatch)
    decoded = np.zeros(1000)  # 8 kB: more than maxBytes on its own
    assert store.adopt(decoded, refs[4]) is decoded
    assert freezes == []
    stats = store.stats()
    assert (stats.count, stats.refused, stats.evictions) == (4, 0, 0)


def test_a_refused_read_through_still_reports_what_expired(monkeypatch: pytest.MonkeyPatch) -> None:
    import databutler.datastores.memory._entries as entries

    clock = [1000.0]
    monkeypatch.setattr(entries.time, "time", lambda: clock[0])
    store = makeStore(maxItems=2, expireSeconds=10)
    refs = [makeRef("metrics", "StructuredDataDict", visit=v) for v in range(3)]
    store.adopt({"v": 0}, refs[0])
    clock[0] += 5
    store.adopt({"v": 1}, refs[1])
    clock[0] += 6  # refs[0] has expired: its room is free again, so refs[2] is admitted
    assert store.adopt({"v": 2}, refs[2]) == {"v": 2}
    stats = store.stats()
    assert (stats.count, stats.expirations, stats.evictions, stats.refused) == (2, 1, 0, 0)
    assert store.exists(refs[2]) and not store.exists(refs[0])
