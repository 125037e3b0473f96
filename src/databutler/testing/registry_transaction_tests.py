"""`RegistryTransactionTests`: locations, transactions, threads and processes of the registry contract.

Part of `RegistryTests` (which inherits it); kept apart to keep each module readable.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from ..dataset_ref import DatasetRef
from ..datastore.bridge import DatasetLocationRegistry
from ..exceptions import (
    ConflictingDatasetError,
    MissingDatasetError,
    MissingRunError,
)
from ..registry import Registry
from .registry_support import CALEXP, RegistryFixtures, concurrentWriters, forkedAdds

__all__ = ["RegistryTransactionTests"]


class RegistryTransactionTests(RegistryFixtures):
    """Where datasets are stored, transactions, and several threads or processes at once."""

    # -- locations --

    def testDatasetLocations(self, filled: Registry) -> None:
        """Check that dataset locations are added, removed and refused for unknown datasets."""
        assert isinstance(filled, DatasetLocationRegistry)
        ref = filled.addDataset("calexp", {"visit": 1, "detector": 2}, "run1")
        assert filled.getDatasetLocations(ref) == set()
        filled.addDatasetLocations("memory", [ref])
        filled.addDatasetLocations("memory", [ref])
        filled.addDatasetLocations("file", [ref.makeComponentRef("image")])
        assert filled.getDatasetLocations(ref) == {"memory", "file"}
        filled.removeDatasetLocations("memory", [ref])
        filled.removeDatasetLocations("memory", [ref])
        assert filled.getDatasetLocations(ref) == {"file"}
        stranger = DatasetRef(CALEXP, {"visit": 5, "detector": 5}, run="run1")
        with pytest.raises(MissingDatasetError, match=str(stranger.id)):
            filled.addDatasetLocations("memory", [ref, stranger])
        assert filled.getDatasetLocations(ref) == {"file"}

    def testDatastoreRecordsLocations(self, filled: Registry) -> None:
        """Check that a datastore with this registry records its puts and removes as locations."""
        from ..datastores.memory import InMemoryDatastore

        datastore = InMemoryDatastore({"datastore": {"cls": "databutler.InMemoryDatastore"}}, registry=filled)
        catalog = filled.addDataset("catalog", {"visit": 1, "band": "r"}, "run1")
        datastore.put({"a": 1}, catalog)
        assert filled.getDatasetLocations(catalog) == {datastore.name}
        datastore.remove(catalog)
        assert filled.getDatasetLocations(catalog) == set()

    # -- transactions --

    def testTransactionRollsBackEverything(self, registry: Registry) -> None:
        """Check that a failed transaction undoes dataset types, runs, datasets and the id cache."""
        with pytest.raises(RuntimeError, match="boom"), registry.transaction():
            registry.registerDatasetType(CALEXP)
            registry.registerRun("run1")
            ref = registry.addDataset("calexp", {"visit": 1, "detector": 2}, "run1")
            registry.addDatasetLocations("memory", [ref])
            assert registry.findDataset("calexp", {"visit": 1, "detector": 2}, "run1") == ref
            raise RuntimeError("boom")
        assert registry.queryDatasetTypes() == [] and registry.queryRuns() == []
        assert registry.registerDatasetType(CALEXP) is True
        with pytest.raises(MissingRunError):  # the id cache forgot the rolled-back run too
            registry.addDataset("calexp", {"visit": 1, "detector": 2}, "run1")
        assert registry.registerRun("run1") is True

    def testNestedTransactionAndCaughtConflict(self, filled: Registry) -> None:
        """Check that caught conflicts and a failed inner transaction leave the outer one's rows intact."""
        with filled.transaction():
            kept = filled.addDataset("calexp", {"visit": 1, "detector": 2}, "run1")
            with pytest.raises(ConflictingDatasetError):
                filled.addDataset("calexp", {"visit": 1, "detector": 2}, "run1")
            with pytest.raises(ConflictingDatasetError):  # the first two rows must not stay
                filled.addDatasets(
                    "calexp",
                    [{"visit": 7, "detector": 2}, {"visit": 8, "detector": 2}, {"visit": 1, "detector": 2}],
                    "run1",
                )
            with pytest.raises(MissingDatasetError):
                filled.addDatasetLocations(
                    "memory", [DatasetRef(CALEXP, {"visit": 9, "detector": 9}, run="run1")]
                )
            filled.addDatasetLocations("memory", [kept])
            with pytest.raises(RuntimeError), filled.transaction():
                filled.registerRun("inner")
                filled.addDataset("calexp", {"visit": 2, "detector": 2}, "run1")
                raise RuntimeError("inner only")
            after = filled.addDataset("calexp", {"visit": 3, "detector": 2}, "run1")
        assert filled.queryDatasets("calexp") == [kept, after]
        assert filled.getDatasetLocations(kept) == {"memory"}
        assert "inner" not in filled.queryRuns()

    def testOtherThreadsAreNotInTheTransaction(self, filled: Registry) -> None:
        """Check that another thread does not see a transaction's uncommitted rows."""
        seen: list[Any] = []
        with filled.transaction():
            ref = filled.addDataset("catalog", {"visit": 1, "band": "r"}, "run1")
            thread = threading.Thread(target=lambda: seen.append(filled.getDataset(ref.id)))
            thread.start()
            thread.join(timeout=60)
        assert seen == [None] and filled.getDataset(ref.id) == ref

    def testThreadsShareARegistry(self, filled: Registry) -> None:
        """Check that threads adding datasets through one registry all succeed."""
        errors: list[BaseException] = []

        def work(worker: int) -> None:
            try:
                for visit in range(25):
                    filled.addDataset("calexp", {"visit": visit, "detector": worker}, "run1")
                    assert filled.findDataset("calexp", {"visit": visit, "detector": worker}, "run1")
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == [] and len(filled.queryDatasets("calexp")) == 100

    # -- several processes --

    def testConcurrentProcesses(self, registry: Registry) -> None:
        """Check that processes adding overlapping data IDs add each exactly once, the rest conflicting."""
        workers, count, stride = 4, 200, 100
        results = concurrentWriters(registry, workers=workers, count=count, stride=stride)
        added = [e for r in results for e in r.added]
        conflicts = [e for r in results for e in r.conflicts]
        assert len(added) + len(conflicts) == workers * count
        expected = set(range((workers - 1) * stride + count))
        assert sorted(added) == sorted(expected), "each data ID added exactly once"
        stored = registry.queryDatasets("raw")
        assert sorted(ref.dataId["exposure"] for ref in stored) == sorted(expected)
        assert len(conflicts) == workers * count - len(expected)
        assert len({ref.id for ref in stored}) == len(stored)

    def testForkedChildrenUseTheirOwnConnections(self, filled: Registry) -> None:
        """Check that forked children open their own connections and their adds all arrive."""
        parent = filled.addDataset("calexp", {"visit": 0, "detector": 0}, "run1")  # pool in use
        results = forkedAdds(filled, [1, 2, 3])
        assert all(len(value) == 36 for value in results.values()), results
        refs = filled.queryDatasets("calexp")
        assert sorted(ref.dataId["visit"] for ref in refs) == [0, 1, 2, 3]
        assert filled.getDataset(parent.id) == parent
