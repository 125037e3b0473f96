"""`QueryPlanTests`: what the fast query paths must keep true, on every registry back end.

Chains are resolved from a cache keyed by a version token that every chain change replaces,
``findFirst`` runs in SQL, ``orderBy``/``limit`` run in SQL, and refs are built in bulk; each
test here compares one of those paths with what the plain definition says.
"""

from __future__ import annotations

import gc
import itertools
import pickle
import uuid
from typing import Any

import pytest

from ..dataset_ref import DatasetRef
from ..exceptions import InvalidQueryError
from ..registry import Registry, SqlRegistry
from .registry_support import RegistryFixtures, makeDatasetType

__all__ = ["QueryPlanTests"]

RAW = makeDatasetType("raw", ("instrument", "visit", "detector"), "StructuredDataDict")
DATA_ID = {"instrument": "HSC", "visit": 1, "detector": 1}


def _checkOrderByAndLimit(
    registry: Registry, collection: str, unsorted: list[Any], *, findFirst: bool
) -> None:
    """Check ``raw`` queries in ``collection`` with orderBy/limit against sorting ``unsorted`` in Python.

    ``unsorted`` is what the query returns without orderBy, in its default order (ties).
    """
    for orderBy in (["-visit"], ["detector", "-visit"], ["visit"], []):
        expected = list(unsorted)
        for key in reversed(orderBy):  # stable sorts, last key first
            name = key.lstrip("-")
            expected = sorted(expected, key=lambda r: r.dataId[name], reverse=key[0] == "-")
        for limit in (None, 5, 0, 1000):
            found = registry.queryDatasets(
                "raw", collection, findFirst=findFirst, orderBy=orderBy, limit=limit
            )
            assert found == expected[: len(expected) if limit is None else limit]


class QueryPlanTests(RegistryFixtures):
    """The fast paths' contract. Subclasses implement `makeRegistry` (see `RegistryFixtures`)."""

    @pytest.fixture
    def layered(self, registry: Registry) -> Registry:
        """Raws in run1 (visits 1..6 x detectors 1..4), run2 (visits 1..4), run3 (visits 1..2); chain 'all'."""
        registry.registerDatasetType(RAW)
        for run, top in (("run1", 6), ("run2", 4), ("run3", 2)):
            registry.registerRun(run)
            registry.addDatasets(
                "raw",
                [
                    {"instrument": "HSC", "visit": v, "detector": d}
                    for v in range(1, top + 1)
                    for d in range(1, 5)
                ],
                run,
            )
        registry.setCollectionChain("all", ["run3", "run2", "run1"])
        return registry

    def testChainChangeInAnotherRegistryIsSeen(self, layered: Registry) -> None:
        """Check that a chain changed through another connection is resolved anew at once."""
        assert layered.findDataset("raw", DATA_ID, "all").run == "run3"  # type: ignore[union-attr]
        other = self.reopen(layered)
        try:
            other.setCollectionChain("all", ["run1", "run2"])
            assert layered.findDataset("raw", DATA_ID, "all").run == "run1"  # type: ignore[union-attr]
            assert {r.run for r in layered.queryDatasets("raw", "all", findFirst=True)} == {"run1"}
            other.setCollectionChain("inner", ["run2"])
            other.setCollectionChain("all", ["inner", "run1"])
            assert layered.findDataset("raw", DATA_ID, "all").run == "run2"  # type: ignore[union-attr]
            other.setCollectionChain("inner", ["run3"])  # a nested chain changed: the outer one too
            assert layered.findDataset("raw", DATA_ID, "all").run == "run3"  # type: ignore[union-attr]
        finally:
            other.close()

    def testLookupThroughAChainSeesEveryChangeOfAnotherRegistry(self, layered: Registry) -> None:
        """Check lookups through a chain of runs (one statement once resolved) against another's changes.

        Each lookup is asked twice in a row, the second through the search kept by the first;
        then another registry on the same database changes the chain, its runs or their
        datasets, and the next lookup must see it.
        """

        def found(collections: str | tuple[str, ...] = "all") -> Any:
            first = layered.findDataset("raw", DATA_ID, collections)
            assert layered.findDataset("raw", DATA_ID, collections) == first
            return first

        assert found().run == "run3" and found(("all",)).run == "run3"
        unknown = {"instrument": "HSC", "visit": 99, "detector": 1}
        assert layered.findDataset("raw", unknown, "all") is None
        assert layered.findDataset("raw", unknown, "all") is None
        other = self.reopen(layered)
        try:
            other.registerRun("run0")
            added = other.addDataset("raw", DATA_ID, "run0")
            assert found().run == "run3"  # not in the chain yet
            other.prependCollectionChain("all", ["run0"])
            assert found() == added and found(("all",)) == added
            other.removeDatasets([added])
            assert found().run == "run3"
            assert layered.findDataset("raw", unknown, "all") is None
            other.addDataset("raw", unknown, "run0")
            assert layered.findDataset("raw", unknown, "all").run == "run0"  # type: ignore[union-attr]
            # The run taken out, removed and made again under its name: another run id.
            other.removeFromCollectionChain("all", ["run0"])
            other.removeDatasets(other.queryDatasets("raw", "run0"))
            other.removeRun("run0")
            other.registerRun("run0")
            again = other.addDataset("raw", DATA_ID, "run0")
            other.prependCollectionChain("all", ["run0"])
            assert found() == again and found(("all",)) == again
            # A TAGGED collection first in the chain, and what it holds changed.
            tagged = layered.findDataset("raw", DATA_ID, "run1")
            assert tagged is not None
            other.registerCollection("best", "TAGGED")
            other.prependCollectionChain("all", ["best"])
            assert found() == again
            other.associate("best", [tagged])
            assert found() == tagged
            other.disassociate("best", [tagged])
            assert found() == again
            # Back to runs only; the same chain nested in another.
            other.removeFromCollectionChain("all", ["best", "run0"])
            assert found().run == "run3"
            other.setCollectionChain("outer", ["all"])
            assert found("outer").run == "run3"
            other.setCollectionChain("all", ["run2", "run1"])
            assert found("outer").run == "run2" and found().run == "run2"
        finally:
            other.close()

    def testRolledBackChainChangeLeavesNothingStale(self, layered: Registry) -> None:
        """Check that a chain change rolled back is forgotten, also by the cache."""
        with pytest.raises(RuntimeError), layered.transaction():
            layered.setCollectionChain("all", ["run1"])
            assert layered.findDataset("raw", DATA_ID, "all").run == "run1"  # type: ignore[union-attr]
            raise RuntimeError("roll back")
        assert layered.findDataset("raw", DATA_ID, "all").run == "run3"  # type: ignore[union-attr]
        assert layered.getCollectionChain("all") == ["run3", "run2", "run1"]

    def testFindFirstMatchesItsDefinition(self, layered: Registry) -> None:
        """Check findFirst (in SQL) against the first-in-search-order rule, for several orders."""
        everything = layered.queryDatasets("raw", ["run1", "run2", "run3"])
        for order in itertools.permutations(["run1", "run2", "run3"]):
            expected: dict[Any, Any] = {}
            for run in order:
                for ref in everything:
                    if ref.run == run:
                        expected.setdefault(tuple(ref.dataId.values()), ref)
            for where in (None, "visit >= 2 AND detector IN (1, 3)", {"visit": [1, 5]}):
                found = layered.queryDatasets("raw", list(order), where, findFirst=True)
                keys = [tuple(r.dataId.values()) for r in found]
                assert len(keys) == len(set(keys))
                wanted = {k: v for k, v in expected.items() if k in set(keys)}
                assert {tuple(r.dataId.values()): r for r in found} == wanted
                rank: dict[str | None, int] = {run: i for i, run in enumerate(order)}
                assert keys == [
                    tuple(r.dataId.values())
                    for r in sorted(found, key=lambda r: (rank[r.run], *r.dataId.values()))
                ]
        assert len(layered.queryDatasets("raw", "all", findFirst=True)) == 24  # 6 visits x 4 detectors

    def testOrderByAndLimitMatchSortingInPython(self, layered: Registry) -> None:
        """Check orderBy/limit (in SQL) against sorting every result in Python, ties by run then data ID."""
        everything = layered.queryDatasets("raw", "all")
        rank = {"run3": 0, "run2": 1, "run1": 2}

        def default(ref: Any) -> tuple[Any, ...]:
            return (rank[ref.run], *ref.dataId.values())

        _checkOrderByAndLimit(layered, "all", sorted(everything, key=default), findFirst=False)
        first = layered.queryDatasets(
            "raw", "all", "visit > 2", findFirst=True, orderBy=["-detector"], limit=3
        )
        assert [(r.dataId["detector"], r.dataId["visit"], r.run) for r in first] == [
            (4, 3, "run2"),
            (4, 4, "run2"),
            (4, 5, "run1"),
        ]
        with pytest.raises(InvalidQueryError, match="orderBy names 'band'"):
            layered.queryDatasets("raw", "all", orderBy=["band"])

    def testStringDimensionsSortByCodePoint(self, registry: Registry) -> None:
        """Check that SQL sorts string values as Python does (code points, not a locale's collation)."""
        named = makeDatasetType("named", ("instrument", "physical_filter"), "StructuredDataDict")
        registry.registerDatasetType(named)
        registry.registerRun("run1")
        filters = ["b", "B", "a", "_x", "é", "Z", "a b", "ab"]
        registry.addDatasets("named", [{"instrument": "HSC", "physical_filter": f} for f in filters], "run1")
        found = registry.queryDatasets("named", "run1", orderBy=["physical_filter"], limit=100)
        assert [r.dataId["physical_filter"] for r in found] == sorted(filters)
        assert [r.dataId["physical_filter"] for r in registry.queryDatasets("named", "run1")] == sorted(
            filters
        )

    def testDataIdsFromRecordsMatchDataIdsFromDatasets(self, layered: Registry) -> None:
        """Check queryDataIds read from records (a record condition) against the datasets' own data IDs."""
        layered.insertDimensionData("instrument", {"instrument": "HSC"})
        layered.insertDimensionData(
            "visit",
            [{"instrument": "HSC", "visit": v, "band": "r" if v % 2 else "g"} for v in (1, 2, 3, 4, 99)],
        )  # visits 5 and 6 have datasets but no record; visit 99 a record but no dataset
        assert layered.queryDataIds("visit", "visit.band = 'r'", collections="all") == [
            {"visit": 1},
            {"visit": 3},
        ]
        assert layered.queryDataIds("visit", "band = 'r' AND detector = 2", collections="run3") == [
            {"visit": 1}
        ]
        assert layered.queryDataIds("visit", "visit.band = 'g' AND visit > 2", datasets="raw") == [
            {"visit": 4}
        ]
        assert layered.queryDataIds(["instrument", "visit"], "visit.band = 'g'") == [
            {"instrument": "HSC", "visit": 2},
            {"instrument": "HSC", "visit": 4},
        ]
        both = layered.queryDataIds(["visit", "detector"], "visit.band = 'r'", collections="run2")
        assert both == [{"visit": v, "detector": d} for v in (1, 3) for d in range(1, 5)]
        assert layered.queryDataIds("visit", "visit.band = 'z'") == []

    def testBulkRefsAreOrdinaryRefs(self, layered: Registry) -> None:
        """Check that refs built in bulk equal, hash and print like refs found one by one."""
        for ref in layered.queryDatasets("raw", "all", "visit < 3", findFirst=True):
            alone = layered.getDataset(ref.id)
            assert alone == ref and hash(alone) == hash(ref) and repr(alone) == repr(ref)
            assert ref.id == uuid.UUID(str(ref.id)) and ref.id.int == int(ref.id.hex, 16)
            assert ref.id.version == alone.id.version and ref.id.is_safe == uuid.SafeUUID.unknown
            assert layered.findDataset("raw", ref.dataId, "all") == ref
            assert pickle.loads(pickle.dumps(ref)) == ref

    def testQueriesSortByRunThenDataIdWhateverTheRowOrder(self, registry: Registry) -> None:
        """Check the default order against sorting in Python, rows added in a shuffled order.

        The database returns rows in whatever order its plan gives (here not the data IDs'
        order, as the datasets were added shuffled); the refs come sorted by run rank, then
        data ID, and within one run in the order `sorted` gives refs made by hand.
        """
        registry.registerDatasetType(RAW)
        dataIds = [
            {"instrument": instrument, "visit": v, "detector": d}
            for instrument in ("HSC", "DECam")
            for v in (1, 2, 10, 11)
            for d in (1, 2, 9, 10, 100)
        ]
        shuffled = [dataIds[(i * 17) % len(dataIds)] for i in range(len(dataIds))]
        assert sorted(map(str, shuffled)) == sorted(map(str, dataIds))  # a permutation
        registry.registerRun("a")
        registry.registerRun("b")
        registry.addDatasets("raw", shuffled, "a")
        registry.addDatasets("raw", shuffled[::3], "b")
        registry.setCollectionChain("ba", ["b", "a"])
        rank: dict[str | None, int] = {"b": 0, "a": 1}
        names = RAW.dimensions
        for where in (None, "visit >= 2 AND visit < 11", "detector IN (100, 2, 9)"):
            found = registry.queryDatasets("raw", "ba", where)
            assert found and {r.run for r in found} == {"a", "b"}
            assert found == sorted(found, key=lambda r: (rank[r.run], *(r.dataId[k] for k in names)))
            inOne = registry.queryDatasets("raw", "a", where)
            byHand = [DatasetRef(RAW, dict(r.dataId), r.id, r.run) for r in inOne]
            assert inOne == sorted(inOne) == sorted(byHand) == byHand
            assert [repr(r) for r in inOne] == [repr(r) for r in byHand]
            mixed = inOne[::2] + byHand[1::2]
            assert sorted(reversed(mixed)) == inOne

    def testExplainQueryShowsThePlan(self, layered: Registry) -> None:
        """Check that explainQuery returns the database's plan of the statement queryDatasets runs."""
        assert isinstance(layered, SqlRegistry)
        plan = layered.explainQuery("raw", "all", "visit >= :v", bind={"v": 2}, findFirst=True)
        assert plan and all(isinstance(line, str) and line for line in plan)
        text = "\n".join(plan)
        if layered.isSqlite:
            assert "USING COVERING INDEX dataset_dimension_dimension_int_value_idx" in text
            assert "GROUP BY" in text
        else:
            assert "Unique" in text  # DISTINCT ON
        assert layered.explainQuery("raw", [], "visit > 1") == []
        with pytest.raises(InvalidQueryError, match="orderBy names 'band'"):
            layered.explainQuery("raw", "all", orderBy=["band"])

    def testRepeatedQueriesSeeTheCurrentState(self, layered: Registry) -> None:
        """Check that a query asked again (its statement reused) sees datasets and chains as they are now."""
        where = "visit >= :low AND visit < 3"
        before = layered.queryDatasets("raw", "all", where, bind={"low": 1}, findFirst=True)
        assert len(before) == 8 and {r.run for r in before} == {"run3"}
        layered.addDataset("raw", {"instrument": "HSC", "visit": 2, "detector": 9}, "run1")
        again = layered.queryDatasets("raw", "all", where, bind={"low": 1}, findFirst=True)
        assert len(again) == 9 and again[:8] == before
        layered.setCollectionChain("all", ["run1", "run2"])
        assert {r.run for r in layered.queryDatasets("raw", "all", where, bind={"low": 1})} == {
            "run1",
            "run2",
        }
        assert {
            r.run for r in layered.queryDatasets("raw", "all", where, bind={"low": 1}, findFirst=True)
        } == {"run1"}
        assert len(layered.queryDatasets("raw", "all", where, bind={"low": 2}, findFirst=True)) == 5
        assert len(layered.queryDataIds("visit", "visit < 3", collections="all")) == 2
        layered.setCollectionChain("all", ["run3"])
        assert layered.queryDataIds("visit", "visit < 3", collections="all") == [{"visit": 1}, {"visit": 2}]
        layered.setCollectionChain("all", ["run2"])
        assert layered.queryDataIds("visit", "visit > 2", collections="all") == [{"visit": 3}, {"visit": 4}]

    def testRepeatedQueriesCheckTheirValuesAgain(self, layered: Registry) -> None:
        """Check that a value equal in Python but of another type is not served a reused statement."""
        assert len(layered.queryDatasets("raw", "all", "visit = :v", bind={"v": 1})) == 12
        with pytest.raises(InvalidQueryError, match="is a bool"):
            layered.queryDatasets("raw", "all", "visit = :v", bind={"v": True})
        for _ in range(2):  # an error is raised again, never remembered as an empty result
            with pytest.raises(InvalidQueryError, match="names 'seeing'"):
                layered.queryDatasets("raw", "all", "seeing < 1")
        hostile = "1'); DROP TABLE dataset; --"
        for _ in range(2):
            assert layered.queryDatasets("raw", "all", "instrument = :i", bind={"i": hostile}) == []
        assert len(layered.queryDatasets("raw", "all", "instrument = :i", bind={"i": "HSC"})) == 24 + 16 + 8
        assert len(layered.queryDatasets("raw", "all", {"visit": [1, 2]})) == 24
        assert len(layered.queryDatasets("raw", "all", {"visit": [1]})) == 12

    def testOrderByAndLimitThroughTaggedCollections(self, layered: Registry) -> None:
        """Check orderBy/limit through a TAGGED collection (in SQL) against sorting in Python."""
        layered.registerCollection("best", "TAGGED")
        picked = [r for r in layered.queryDatasets("raw", "run1") if r.dataId["detector"] in (2, 3)]
        layered.associate("best", picked)
        layered.setCollectionChain("mixed", ["best", "run2", "run1"])
        rank = {"best": 0, "run2": 1, "run1": 2}
        everything = layered.queryDatasets("raw", "mixed")

        def position(ref: Any) -> int:
            return 0 if ref in picked else rank[ref.run]

        assert len(everything) == 24 + 16 and everything == sorted(
            everything, key=lambda r: (position(r), *r.dataId.values())
        )
        for findFirst in (False, True):
            found = layered.queryDatasets("raw", "mixed", findFirst=findFirst)
            _checkOrderByAndLimit(layered, "mixed", found, findFirst=findFirst)
        first = layered.queryDatasets("raw", "mixed", "visit > 3", findFirst=True, orderBy="-visit", limit=3)
        # visit 6 is only in run1; its tagged detectors (2, 3) come first: "best" is searched first
        assert [r.dataId["detector"] for r in first] == [2, 3, 1]
        assert {r.dataId["visit"] for r in first} == {6} and first[0] in picked and first[2] not in picked

    def testQueriesLeaveTheGarbageCollectorAsTheyFoundIt(self, layered: Registry) -> None:
        """Check that building refs in bulk leaves the cyclic garbage collector on, or off, as it was."""
        assert gc.isenabled()
        assert len(layered.queryDatasets("raw", "all")) == 48 and gc.isenabled()
        gc.disable()
        try:
            assert len(layered.queryDatasets("raw", "all", findFirst=True)) == 24
            assert not gc.isenabled()
        finally:
            gc.enable()
        with pytest.raises(InvalidQueryError):
            layered.queryDatasets("raw", "all", "seeing < 1")
        assert gc.isenabled()
