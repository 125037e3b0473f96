"""Bounded memory: maxItems, maxBytes, expireSeconds, LRU eviction and statistics."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest

from databutler import (
    DatasetNotFoundError,
    DatasetTooLargeError,
    InMemoryDatastore,
    InMemoryLocationRegistry,
    MaskedImage,
)
from databutler.datastores.memory import _datastore as in_memory
from databutler.datastores.memory import _entries as entry_table
from databutler.testing import makeRef


def makeStore(registry: Any = None, **options: Any) -> InMemoryDatastore:
    return InMemoryDatastore(
        {"datastore": {"cls": "databutler.InMemoryDatastore", **options}}, registry=registry
    )


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(in_memory, "time", fake)
    monkeypatch.setattr(entry_table, "time", fake)
    return fake


def test_maxItems_evicts_least_recently_used(caplog: pytest.LogCaptureFixture) -> None:
    registry = InMemoryLocationRegistry()
    store = makeStore(registry=registry, maxItems=3)
    refs = [makeRef("metrics", "StructuredDataDict", visit=v) for v in range(5)]
    for i, ref in enumerate(refs[:3]):
        store.put({"v": i}, ref)
    store.get(refs[0])  # refs[1] is now the least recently used
    with caplog.at_level(logging.DEBUG, logger="databutler.datastores.memory"):
        store.put({"v": 3}, refs[3])
    assert len(store) == 3
    assert not store.exists(refs[1])
    assert all(store.exists(r) for r in (refs[0], refs[2], refs[3]))
    assert any("evicted" in r.message and str(refs[1].id) in r.message for r in caplog.records)
    with pytest.raises(DatasetNotFoundError, match=r"evicted at \d{4}-.*maxItems=3"):
        store.get(refs[1])
    assert registry.getDatasetLocations(refs[1]) == frozenset()
    assert store.name in registry.getDatasetLocations(refs[3])
    stats = store.stats()
    assert (stats.count, stats.evictions, stats.maxItems) == (3, 1, 3)
    assert stats.misses == 1 and stats.hits == 1
    store.put({"v": 1}, refs[1])  # an evicted dataset can be put again
    assert store.get(refs[1]) == {"v": 1}


def test_maxBytes_never_exceeded() -> None:
    store = makeStore(maxBytes=20_000)
    arraySize = store.storageClassFactory.getStorageClass("NumpyArray").delegate().getSize(np.zeros(1000))
    for v in range(10):
        store.put(np.full(1000, float(v)), makeRef("image", "NumpyArray", visit=v))
        stats = store.stats()
        assert stats.bytesHeld <= 20_000
        assert stats.bytesHeld == stats.count * arraySize
    assert store.stats().count == 20_000 // arraySize
    assert store.stats().evictions == 10 - 20_000 // arraySize


def test_dataset_larger_than_maxBytes_is_refused_and_evicts_nothing() -> None:
    store = makeStore(maxBytes=10_000)
    small = makeRef("image", "NumpyArray", visit=1)
    store.put(np.zeros(100), small)
    big = makeRef("image", "NumpyArray", visit=2)
    with pytest.raises(DatasetTooLargeError, match=r"maxBytes=10000"):
        store.put(np.zeros(10_000), big)
    assert store.exists(small) and not store.exists(big)
    assert store.stats().evictions == 0
    with pytest.raises(DatasetTooLargeError):
        store.putMany([(np.zeros(1000), makeRef("image", "NumpyArray", visit=v)) for v in range(3, 6)])
    assert len(store) == 1


def test_evicting_a_composite_takes_its_components() -> None:
    store = makeStore(maxItems=1)
    first = makeRef("calexp", "MaskedImage", visit=1)
    store.put(MaskedImage(image=np.zeros(2), mask=np.zeros(2)), first)
    store.put(MaskedImage(image=np.ones(2)), makeRef("calexp", "MaskedImage", visit=2))
    for component in first.components.values():
        assert not store.exists(component)
        with pytest.raises(KeyError):
            store.getStoredItemInfo(component)
        with pytest.raises(DatasetNotFoundError, match="evicted"):
            store.get(component)


def test_expiry_on_access_and_sweep(clock: FakeClock) -> None:
    registry = InMemoryLocationRegistry()
    store = makeStore(registry=registry, expireSeconds=60)
    old = makeRef("metrics", "StructuredDataDict", visit=1)
    store.put({"v": 1}, old)
    clock.now += 30
    young = makeRef("metrics", "StructuredDataDict", visit=2)
    store.put({"v": 2}, young)
    clock.now += 31  # old is 61 s old, young 31 s
    assert not store.exists(old)
    with pytest.raises(DatasetNotFoundError, match=r"expired at .*60.0s after it was put"):
        store.get(old)
    assert store.get(young) == {"v": 2}
    assert registry.getDatasetLocations(old) == frozenset()
    clock.now += 30
    assert store.sweepExpired() == 1
    assert len(store) == 0
    stats = store.stats()
    assert stats.expirations == 2 and stats.count == 0
    assert registry.getDatasetLocations(young) == frozenset()


def test_expired_dataset_can_be_put_again_and_puts_sweep(clock: FakeClock) -> None:
    store = makeStore(expireSeconds=10)
    refs = [makeRef("metrics", "StructuredDataDict", visit=v) for v in range(3)]
    for ref in refs:
        store.put({"v": 0}, ref)
    clock.now += 11
    store.put({"v": 1}, refs[0])  # the expired entry does not block a new put
    assert store.get(refs[0]) == {"v": 1}
    assert len(store) == 1  # the put swept the other two
    assert store.stats().expirations == 3


def test_stats_counts_and_bytes_without_limits() -> None:
    store = makeStore()
    refs = [makeRef("image", "NumpyArray", visit=v) for v in range(4)]
    for ref in refs:
        store.put(np.zeros(100), ref)
    store.get(refs[0])
    store.getMany(refs[:2])
    with pytest.raises(DatasetNotFoundError):
        store.get(makeRef("image", "NumpyArray", visit=99))
    stats = store.stats()
    size = store.storageClassFactory.getStorageClass("NumpyArray").delegate().getSize(np.zeros(100))
    assert (stats.count, stats.bytesHeld, stats.hits, stats.misses) == (4, 4 * size, 3, 1)
    assert (stats.evictions, stats.expirations, stats.maxBytes, stats.maxItems) == (0, 0, None, None)


@pytest.mark.parametrize("copyMode", ["reference", "deepcopy"])
def test_getMany_counts_a_hit_or_miss_per_ref_even_when_repeated(copyMode: str) -> None:
    store = makeStore(copyMode=copyMode)
    ref, absent = makeRef("m", "StructuredDataDict", visit=1), makeRef("m", "StructuredDataDict", visit=2)
    store.put({"a": 1}, ref)
    missing: list[Any] = []
    assert store.getMany([ref, ref, absent, absent], missing=missing) == {ref: {"a": 1}}
    assert missing == [absent, absent]
    assert (store.stats().hits, store.stats().misses) == (2, 2)


def test_getMany_under_bounds_updates_recency() -> None:
    store = makeStore(maxItems=2)
    a, b, c = (makeRef("m", "StructuredDataDict", visit=v) for v in range(3))
    store.put({"a": 1}, a)
    store.put({"b": 1}, b)
    assert store.getMany([a]) == {a: {"a": 1}}
    store.put({"c": 1}, c)
    assert store.existsMany([a, b, c]) == {a: True, b: False, c: True}


def test_failed_put_still_reports_what_it_expired(clock: FakeClock) -> None:
    registry = InMemoryLocationRegistry()
    store = makeStore(registry=registry, expireSeconds=10, maxBytes=10_000)
    old = makeRef("image", "NumpyArray", visit=1)
    store.put(np.zeros(10), old)
    clock.now += 11
    with pytest.raises(DatasetTooLargeError):
        store.put(np.zeros(10_000), makeRef("image", "NumpyArray", visit=2))
    assert not store.exists(old)
    assert registry.getDatasetLocations(old) == frozenset()
    assert store.stats().expirations == 1
