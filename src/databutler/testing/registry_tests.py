"""`RegistryTests`: the contract every registry back end must meet, as a pytest mixin.

A back end's test class says only how to build an empty registry (and, if it needs to, how
to clean up after one)::

    class TestSqliteRegistry(RegistryTests):
        def makeRegistry(self, tmpPath):
            return SqlRegistry(f"sqlite:///{tmpPath}/registry.sqlite3", create=True)

Every documented error of `SqlRegistry` has a test here; so do several processes writing to
one registry at once (`RegistryTests.testConcurrentProcesses`).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from ..dataset_ref import DatasetRef
from ..dataset_type import DatasetType
from ..exceptions import (
    ConflictingDatasetError,
    DataIdError,
    DatasetTypeConflictError,
    DatasetTypeError,
    MissingDatasetTypeError,
    MissingRunError,
    UnknownComponentError,
    UnknownStorageClassError,
)
from ..registry import Registry
from ..storage_class import StorageClass
from .registry_support import CALEXP, CATALOG, makeDatasetType
from .registry_transaction_tests import RegistryTransactionTests

__all__ = ["RegistryTests"]


class RegistryTests(RegistryTransactionTests):
    """The registry contract. Subclasses implement `makeRegistry` (see `RegistryFixtures`)."""

    # -- dataset types --

    def testRegisterDatasetType(self, registry: Registry) -> None:
        """Check that registering a dataset type reports whether it was new and lists it afterwards."""
        assert registry.registerDatasetType(CALEXP) is True
        assert (
            registry.registerDatasetType(makeDatasetType("calexp", ("detector", "visit"), "MaskedImage"))
            is False
        )
        assert registry.getDatasetType("calexp") == CALEXP
        registry.registerDatasetType(CATALOG)
        assert [t.name for t in registry.queryDatasetTypes()] == ["calexp", "catalog"]

    def testRegisterConflictingDatasetType(self, registry: Registry) -> None:
        """Check that redefining a dataset type raises `DatasetTypeConflictError` naming both definitions."""
        registry.registerDatasetType(CALEXP)
        for other in (
            makeDatasetType("calexp", ("visit",), "MaskedImage"),
            makeDatasetType("calexp", ("visit", "detector"), "NumpyArray"),
        ):
            with pytest.raises(DatasetTypeConflictError) as info:
                registry.registerDatasetType(other)
            message = str(info.value)
            assert "'MaskedImage'" in message and str(list(other.dimensions)) in message
            assert other.storageClass.name in message and "['detector', 'visit']" in message
        assert registry.getDatasetType("calexp") == CALEXP

    def testRegisterBadDatasetTypes(self, registry: Registry) -> None:
        """Check that component types, names and unknown storage classes cannot be registered."""
        with pytest.raises(DatasetTypeError, match="component"):
            registry.registerDatasetType(CALEXP.makeComponentDatasetType("image"))
        with pytest.raises(TypeError):
            registry.registerDatasetType("calexp")  # type: ignore[arg-type]
        with pytest.raises(UnknownStorageClassError, match="Unregistered"):
            registry.registerDatasetType(DatasetType("odd", ("visit",), StorageClass("Unregistered")))

    def testGetDatasetTypeErrorsAndComponents(self, registry: Registry) -> None:
        """Check that an unknown type raises `MissingDatasetTypeError` and that components resolve."""
        with pytest.raises(MissingDatasetTypeError, match="'calexp' is not registered") as info:
            registry.getDatasetType("calexp")
        assert isinstance(info.value, KeyError)
        registry.registerDatasetType(CALEXP)
        component = registry.getDatasetType("calexp.image")
        assert component == CALEXP.makeComponentDatasetType("image")
        assert component.parentStorageClass is not None and component.parentStorageClass.name == "MaskedImage"
        with pytest.raises(UnknownComponentError):
            registry.getDatasetType("calexp.nope")

    def testDatasetTypesSurviveReopening(self, registry: Registry) -> None:
        """Check that dataset types, runs and datasets are found again by a reopened registry."""
        registry.registerDatasetType(CALEXP)
        registry.registerRun("run1")
        ref = registry.addDataset("calexp", {"visit": 1, "detector": 2}, "run1")
        with self.reopen(registry) as again:
            assert again.getDatasetType("calexp") == CALEXP
            assert again.queryRuns() == ["run1"]
            assert again.getDataset(ref.id) == ref

    # -- runs --

    def testRegisterRun(self, registry: Registry) -> None:
        """Check that registering a run reports whether it was new and that bad run names raise."""
        assert registry.registerRun("b") is True
        assert registry.registerRun("b") is False
        registry.registerRun("a/with/slashes")
        assert registry.queryRuns() == ["a/with/slashes", "b"]
        for bad in ("", None, "x" * 129):
            with pytest.raises(TypeError):
                registry.registerRun(bad)  # type: ignore[arg-type]

    # -- adding datasets --

    def testAddAndFind(self, filled: Registry) -> None:
        """Check that an added dataset is found by data ID, run and id, and not elsewhere."""
        ref = filled.addDataset("calexp", {"visit": 903334, "detector": 10}, "run1")
        assert ref.run == "run1" and ref.datasetType == CALEXP and isinstance(ref.id, uuid.UUID)
        assert filled.findDataset("calexp", {"detector": 10, "visit": 903334}, "run1") == ref
        assert filled.findDataset(CALEXP, {"detector": 10, "visit": 903334}, ["run1"]) == ref
        assert filled.findDataset("calexp", {"detector": 11, "visit": 903334}, "run1") is None
        assert filled.findDataset("calexp", {"detector": 10, "visit": 903334}, "run2") is None
        assert filled.findDataset("calexp", {"detector": 10, "visit": 903334}, []) is None
        assert filled.getDataset(ref.id) == ref and filled.getDataset(str(ref.id)) == ref

    def testAddWithGivenId(self, filled: Registry) -> None:
        """Check that a dataset can be added with a given id and that reusing the id raises."""
        ident = uuid.uuid4()
        ref = filled.addDataset("catalog", {"visit": 1, "band": "r"}, "run1", id=str(ident))
        assert ref.id == ident and filled.getDataset(ident) == ref
        with pytest.raises(ConflictingDatasetError, match=str(ident)):
            filled.addDataset("catalog", {"visit": 2, "band": "r"}, "run1", id=ident)

    def testDataIdValuesAreCoercedToTheirDimensionType(self, filled: Registry) -> None:
        """Check that data ID values are coerced to their dimension's type, or refused naming it."""
        asInt = filled.addDataset("catalog", {"visit": 1, "band": "r"}, "run1")
        with pytest.raises(ConflictingDatasetError):
            filled.addDataset("catalog", {"visit": "1", "band": "r"}, "run1")  # "1" is visit 1
        found = filled.findDataset("catalog", {"visit": "1", "band": "r"}, "run1")
        assert found is not None and found.dataId["visit"] == 1 and found.id == asInt.id
        with pytest.raises(
            DataIdError, match=r"visit='abc' is not an integer; dimension 'visit' has type int"
        ):
            filled.addDataset("catalog", {"visit": "abc", "band": "r"}, "run1")
        with pytest.raises(DataIdError, match="dimension 'band' has type str"):
            filled.findDataset("catalog", {"visit": 1, "band": 3.5}, "run1")
        big = filled.addDataset("catalog", {"visit": 2**62, "band": "ünïcode"}, "run1")
        assert filled.getDataset(big.id) == big

    def testDuplicateDatasetIsAnError(self, filled: Registry) -> None:
        """Check that the same data ID twice in one run raises `ConflictingDatasetError` naming it."""
        first = filled.addDataset("calexp", {"visit": 1, "detector": 2}, "run1")
        with pytest.raises(ConflictingDatasetError) as info:
            filled.addDataset("calexp", {"visit": 1, "detector": 2}, "run1")
        message = str(info.value)
        assert "'calexp'" in message and "'visit': 1" in message and "'run1'" in message
        assert str(first.id) in message
        other = filled.addDataset("calexp", {"visit": 1, "detector": 2}, "run2")
        assert other.id != first.id

    def testAddErrors(self, filled: Registry) -> None:
        """Check that bad types, runs, components and data IDs raise and add nothing."""
        with pytest.raises(MissingDatasetTypeError, match="'nope'"):
            filled.addDataset("nope", {"visit": 1}, "run1")
        with pytest.raises(MissingRunError, match="'nope'") as info:
            filled.addDataset("calexp", {"visit": 1, "detector": 2}, "nope")
        assert isinstance(info.value, KeyError)
        with pytest.raises(TypeError, match="run"):
            filled.addDataset("calexp", {"visit": 1, "detector": 2}, None)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="DatasetType or its name"):
            filled.addDataset(42, {"visit": 1, "detector": 2}, "run1")  # type: ignore[arg-type]
        with pytest.raises(DatasetTypeError, match="component"):
            filled.addDataset("calexp.image", {"visit": 1, "detector": 2}, "run1")
        with pytest.raises(DatasetTypeConflictError):
            filled.addDataset(makeDatasetType("calexp", ("visit",), "MaskedImage"), {"visit": 1}, "run1")
        bad: list[dict[str, Any]] = [
            {"visit": 1},
            {"visit": 1, "detector": 2, "extra": 3},
            {"visit": 1.5, "detector": 2},
            {"visit": True, "detector": 2},
            {"visit": 2**64, "detector": 2},
            {"visit": "x" * 600, "detector": 2},
        ]
        for dataId in bad:
            with pytest.raises(DataIdError):
                filled.addDataset("calexp", dataId, "run1")
        names = ("instrument", "band", "physical_filter", "group", "skymap")
        wide = makeDatasetType("wide", names, "StructuredDataDict")
        filled.registerDatasetType(wide)
        with pytest.raises(DataIdError, match="bytes as JSON"):
            filled.addDataset("wide", {k: "é" * 250 for k in names}, "run1")
        with pytest.raises(DataIdError, match=r"unknown dimension\(s\) \['a'\].*'visit'"):
            filled.registerDatasetType(makeDatasetType("odd", ("a", "visit"), "StructuredDataDict"))
        assert filled.queryDatasets("calexp") == []

    def testAddDatasetsIsAllOrNothing(self, filled: Registry) -> None:
        """Check that addDatasets adds all data IDs or none, with distinct time-ordered ids."""
        refs = filled.addDatasets("calexp", [{"visit": v, "detector": 1} for v in range(5)], "run1")
        assert [r.dataId["visit"] for r in refs] == list(range(5))
        with pytest.raises(ConflictingDatasetError, match="'visit': 4"):
            filled.addDatasets("calexp", [{"visit": v, "detector": 1} for v in range(4, 9)], "run1")
        with pytest.raises(ConflictingDatasetError, match="twice"):
            filled.addDatasets("calexp", [{"visit": 20, "detector": 1}] * 2, "run1")
        with pytest.raises(ValueError, match="2 data IDs but 1 ids"):
            filled.addDatasets("calexp", [{"visit": 30, "detector": 1}] * 2, "run1", ids=[uuid.uuid4()])
        assert len(filled.queryDatasets("calexp")) == 5
        assert filled.addDatasets("calexp", [], "run1") == []
        # ids the registry makes are time-ordered (version 7) UUIDs, all different
        assert {r.id.version for r in refs} == {7} and len({r.id for r in refs}) == 5

    def testAddDatasetRefsCoercesOnlyWhatNeedsIt(self, registry: Registry) -> None:
        """Check that addDatasetRefs returns the refs in order, each as given unless its data ID was coerced."""
        rawType = makeDatasetType("rawByInstrument", ("instrument", "detector"), "StructuredDataDict")
        registry.registerDatasetType(rawType)
        for run in ("runA", "runB"):
            registry.registerRun(run)
        refs = [
            DatasetRef(rawType, {"instrument": "Cam", "detector": 1}, run="runA"),
            DatasetRef(rawType, {"instrument": 7, "detector": 1}, run="runB"),  # an int for a str dimension
            DatasetRef(rawType, {"instrument": "Cam", "detector": 2}, run="runB"),
            DatasetRef(rawType, {"instrument": "Cam", "detector": 3}, run="runA"),
        ]
        added = registry.addDatasetRefs(refs)
        assert [ref.id for ref in added] == [ref.id for ref in refs]
        assert [added[i] is refs[i] for i in range(4)] == [True, False, True, True]
        assert dict(added[1].dataId) == {"instrument": "7", "detector": 1} and added[1].run == "runB"
        found = registry.findDataset(rawType, {"instrument": "7", "detector": 1}, "runB")
        assert found is not None and found.id == refs[1].id
        assert {ref.id for ref in registry.queryDatasets("rawByInstrument", ["runA", "runB"])} == {
            ref.id for ref in refs
        }

    def testAddDatasetRefsKeepsIds(self, filled: Registry, tmp_path: Path) -> None:
        """Check that addDatasetRefs copies refs with their ids into another registry."""
        refs = filled.addDatasets("calexp", [{"visit": v, "detector": 1} for v in range(3)], "run1")
        copy = self.makeRegistry(tmp_path / "copy")
        try:
            copy.registerDatasetType(CALEXP)
            with pytest.raises(MissingRunError):
                copy.addDatasetRefs(refs)
            copy.registerRun("run1")
            assert copy.addDatasetRefs(refs) == refs
            assert copy.queryDatasets("calexp", "run1") == refs
            with pytest.raises(ConflictingDatasetError):
                copy.addDatasetRefs(refs[:1])
            with pytest.raises(MissingRunError, match="no run"):
                copy.addDatasetRefs([DatasetRef(CALEXP, {"visit": 9, "detector": 1})])
        finally:
            copy.close()
            self.cleanupRegistry(copy)

    # -- finding and querying --

    def testFindSearchesCollectionsInOrder(self, filled: Registry) -> None:
        """Check that findDataset returns the match in the first collection that has one."""
        dataId = {"visit": 1, "detector": 2}
        inRun2 = filled.addDataset("calexp", dataId, "run2")
        assert filled.findDataset("calexp", dataId, ["run1", "run2"]) == inRun2
        inRun1 = filled.addDataset("calexp", dataId, "run1")
        assert filled.findDataset("calexp", dataId, ["run1", "run2"]) == inRun1
        assert filled.findDataset("calexp", dataId, ["run2", "run1"]) == inRun2
        with pytest.raises(MissingRunError, match="'nope'"):
            filled.findDataset("calexp", dataId, ["run1", "nope"])
        with pytest.raises(DataIdError):
            filled.findDataset("calexp", {"visit": 1}, "run1")
        with pytest.raises(MissingDatasetTypeError):
            filled.findDataset("nope", dataId, "run1")
        with pytest.raises(TypeError, match="collections"):
            filled.findDataset("calexp", dataId, None)  # type: ignore[arg-type]

    def testFindComponent(self, filled: Registry) -> None:
        """Check that finding a component returns the parent's component ref."""
        parent = filled.addDataset("calexp", {"visit": 1, "detector": 2}, "run1")
        found = filled.findDataset("calexp.mask", {"visit": 1, "detector": 2}, "run1")
        assert found == parent.makeComponentRef("mask")
        with pytest.raises(UnknownComponentError):
            filled.findDataset("calexp.nope", {"visit": 1, "detector": 2}, "run1")

    def testQueryDatasets(self, filled: Registry) -> None:
        """Check queryDatasets' order (run, then data ID) and its collection and where filters."""
        for run in ("run2", "run1"):
            for visit in (3, 1, 2):
                for band in ("g", "r"):
                    filled.addDataset("catalog", {"visit": visit, "band": band}, run)
        everything = filled.queryDatasets("catalog")
        assert len(everything) == 12 and [r.run for r in everything] == ["run1"] * 6 + ["run2"] * 6
        # then by data ID, compared dimension by dimension in sorted order (band, then visit)
        assert [(r.dataId["band"], r.dataId["visit"]) for r in everything[:3]] == [
            ("g", 1),
            ("g", 2),
            ("g", 3),
        ]
        inRun2 = filled.queryDatasets("catalog", collections="run2", where={"visit": 2})
        assert sorted(r.dataId["band"] for r in inRun2) == ["g", "r"]
        assert {r.run for r in inRun2} == {"run2"}
        several = filled.queryDatasets("catalog", ["run1"], where={"visit": [1, 3], "band": "r"})
        assert [dict(r.dataId) for r in several] == [{"band": "r", "visit": 1}, {"band": "r", "visit": 3}]
        exact = filled.queryDatasets("catalog", where={"visit": 2, "band": ["r"]})
        assert [(r.run, dict(r.dataId)) for r in exact] == [
            ("run1", {"band": "r", "visit": 2}),
            ("run2", {"band": "r", "visit": 2}),
        ]
        assert filled.queryDatasets("catalog", "run1", where={"visit": 2, "band": "x"}) == []
        assert filled.queryDatasets("catalog", where={"visit": []}) == []
        assert len(filled.queryDatasets("catalog", where={"visit": "1"})) == 4  # coerced to visit 1
        assert filled.queryDatasets("catalog", collections=[]) == []
        assert filled.queryDatasets("calexp") == []

    def testQueryFindFirstAndComponents(self, filled: Registry) -> None:
        """Check that findFirst keeps the first collection's match and that components can be queried."""
        old = filled.addDatasets("calexp", [{"visit": v, "detector": 1} for v in (1, 2)], "run1")
        new = filled.addDataset("calexp", {"visit": 2, "detector": 1}, "run2")
        firsts = filled.queryDatasets("calexp", ["run2", "run1"], findFirst=True)
        assert firsts == [new, old[0]]
        assert len(filled.queryDatasets("calexp", ["run2", "run1"])) == 3
        images = filled.queryDatasets("calexp.image", "run1")
        assert images == [ref.makeComponentRef("image") for ref in old]

    def testQueryErrors(self, filled: Registry) -> None:
        """Check that bad where clauses, unknown runs and unknown dataset types raise."""
        with pytest.raises(DataIdError, match="'exposure', which is not a dimension") as info:
            filled.queryDatasets("calexp", where={"exposure": 1})
        assert "['detector', 'visit']" in str(info.value)
        with pytest.raises(DataIdError, match=r"visit=1.5 is not an integer; dimension .visit. has type int"):
            filled.queryDatasets("calexp", where={"visit": 1.5})
        with pytest.raises(DataIdError, match="mapping"):
            filled.queryDatasets("calexp", where=[("visit", 1)])  # type: ignore[arg-type]
        with pytest.raises(MissingRunError):
            filled.queryDatasets("calexp", collections="nope")
        with pytest.raises(MissingDatasetTypeError):
            filled.queryDatasets("nope")

    def testGetDataset(self, filled: Registry) -> None:
        """Check that getDataset returns `None` for an unknown id and raises for one that is not a UUID."""
        assert filled.getDataset(uuid.uuid4()) is None
        with pytest.raises(TypeError, match="not a UUID"):
            filled.getDataset("not-a-uuid")

    # -- removing --

    def testRemoveDatasets(self, filled: Registry) -> None:
        """Check that removed datasets and their locations are gone and can be added again."""
        refs = filled.addDatasets("calexp", [{"visit": v, "detector": 1} for v in range(3)], "run1")
        filled.addDatasetLocations("store", refs)
        filled.removeDatasets([refs[0], refs[1], refs[1]])
        assert filled.queryDatasets("calexp") == [refs[2]]
        assert filled.getDataset(refs[0].id) is None and filled.getDatasetLocations(refs[0]) == set()
        assert filled.queryDatasets("calexp", where={"visit": 0}) == []
        filled.removeDatasets(refs[:1])  # already gone: nothing to do
        again = filled.addDataset("calexp", {"visit": 0, "detector": 1}, "run1")
        assert filled.findDataset("calexp", {"visit": 0, "detector": 1}, "run1") == again
