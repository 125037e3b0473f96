"""Thread safety: 8 threads x 10,000 mixed operations on overlapping refs, then invariants."""

from __future__ import annotations

import contextlib
import random
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from databutler import (
    DatasetExistsError,
    DatasetNotFoundError,
    DatasetRef,
    InMemoryDatastore,
    InMemoryLocationRegistry,
)
from databutler.testing import makeRef

THREADS = 8
OPS = 10_000


@pytest.fixture(autouse=True)
def frequentThreadSwitches() -> Iterator[None]:
    """Switch threads far more often than usual, so that races show up."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


def makeStore(registry: Any = None, **options: Any) -> InMemoryDatastore:
    return InMemoryDatastore(
        {"datastore": {"cls": "databutler.InMemoryDatastore", **options}}, registry=registry
    )


def _run(
    store: InMemoryDatastore,
    source: InMemoryDatastore,
    shared: list[DatasetRef],
    checkVisibility: bool,
    maxItems: int | None,
) -> tuple[Counter[str], list[BaseException]]:
    counts: Counter[str] = Counter()
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(THREADS)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        local: Counter[str] = Counter()
        own = [makeRef("own", "NumpyArray", visit=seed, detector=d) for d in range(50)]
        barrier.wait()
        try:
            for i in range(OPS):
                op = rng.random()
                ref = rng.choice(shared)
                if op < 0.25:
                    with contextlib.suppress(DatasetExistsError):
                        store.put(np.full(8, float(i)), ref)
                elif op < 0.45:
                    try:
                        got = store.get(ref)
                        assert got.shape == (8,) and not got.flags.writeable
                        local["hit"] += 1
                    except DatasetNotFoundError:
                        local["miss"] += 1
                elif op < 0.55:
                    found = store.getMany(rng.sample(shared, 3), missing=(missing := []))
                    local["hit"] += len(found)
                    local["miss"] += len(missing)
                elif op < 0.65:
                    store.exists(ref)
                    store.existsMany(shared[:5])
                elif op < 0.8:
                    with contextlib.suppress(DatasetNotFoundError):
                        store.remove(ref)
                elif op < 0.88:
                    with contextlib.suppress(DatasetExistsError):
                        store.transfer(source, ref)
                else:
                    mine = own[i % len(own)]
                    store.put(np.full(8, float(seed)), mine)  # only this thread touches `mine`
                    if checkVisibility:
                        assert store.exists(mine)
                        assert store.get(mine)[0] == float(seed)
                        local["hit"] += 1
                    try:
                        store.remove(mine)
                    except DatasetNotFoundError:
                        if checkVisibility:  # without bounds nothing but this thread removes it
                            raise
                if maxItems is not None and i % 97 == 0:
                    assert len(store) <= maxItems
        except BaseException as exc:  # report, don't hang the other threads
            with lock:
                errors.append(exc)
        with lock:
            counts.update(local)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counts, errors


def _checkInvariants(
    store: InMemoryDatastore, registry: InMemoryLocationRegistry, refs: list[DatasetRef]
) -> None:
    present = [r for r in refs if store.exists(r)]
    assert len(store) == len(present) == store.stats().count
    for ref in refs:  # no record without a dataset, no dataset without a record
        hasRecord = True
        try:
            store.getStoredItemInfo(ref)
        except KeyError:
            hasRecord = False
        assert hasRecord == store.exists(ref)
        assert (store.name in registry.getDatasetLocations(ref)) == store.exists(ref)
    size = store.storageClassFactory.getStorageClass("NumpyArray").delegate().getSize(np.zeros(8))
    assert store.stats().bytesHeld == len(present) * size


@pytest.mark.parametrize("bounded", [False, True], ids=["unbounded", "maxItems"])
def test_concurrent_mixed_operations(bounded: bool) -> None:
    registry = InMemoryLocationRegistry()
    maxItems = 60 if bounded else None
    store = makeStore(registry=registry, maxItems=maxItems, maxBytes=10**9)
    source = makeStore()
    shared = [makeRef("shared", "NumpyArray", visit=v) for v in range(100)]
    for ref in shared:
        source.put(np.zeros(8), ref)
    counts, errors = _run(store, source, shared, checkVisibility=not bounded, maxItems=maxItems)
    assert not errors, f"{len(errors)} unexpected exception(s), first: {errors[0]!r}"
    stats = store.stats()
    assert stats.hits == counts["hit"]
    assert stats.misses == counts["miss"]
    own = [makeRef("own", "NumpyArray", visit=s, detector=d) for s in range(THREADS) for d in range(50)]
    assert not any(store.exists(r) for r in own) or bounded
    _checkInvariants(store, registry, shared)
    if bounded:
        assert stats.evictions > 0 and stats.count <= maxItems
