"""`QueryTests`: the query contract (``where`` strings, bind values), run on every registry back end.

A back end's test class says only how to build an empty registry, as for `RegistryTests`.
Hostile inputs (SQL in strings and bind values, quotes) are tested here, so every back end
proves that no query value can reach the SQL text.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..exceptions import (
    CollectionError,
    ConflictingRecordError,
    DataIdError,
    InvalidQueryError,
    MissingRunError,
)
from ..registry import Registry
from .registry_support import RegistryFixtures, makeDatasetType

__all__ = ["ChainTests", "DimensionTests", "QueryResultTests", "QueryTests"]

RAW = makeDatasetType("raw", ("instrument", "visit", "detector"), "StructuredDataDict")
NAMED = makeDatasetType("named", ("visit", "physical_filter"), "StructuredDataDict")

HOSTILE = [
    "1; DROP TABLE dataset --",
    "'; DROP TABLE dataset; --",
    "x' OR '1'='1",
    'a"b',
    "O'Brien",
    "\\",
    "%",
    "_",
    "*",
    "[a]",
    "--",
    "/* */",
    "\x00",
    "é\u2028",
]


class QueryTests(RegistryFixtures):
    """The query contract. Subclasses implement `makeRegistry` (see `RegistryFixtures`)."""

    @pytest.fixture
    def raws(self, registry: Registry) -> Registry:
        """Visits 100..109 x detectors 1..10 of instrument 'HSC' in run1; visit 100 again in run2."""
        registry.registerDatasetType(RAW)
        registry.registerRun("run1")
        registry.registerRun("run2")
        registry.addDatasets(
            "raw",
            [{"instrument": "HSC", "visit": v, "detector": d} for v in range(100, 110) for d in range(1, 11)],
            "run1",
        )
        registry.addDatasets(
            "raw", [{"instrument": "HSC", "visit": 100, "detector": d} for d in range(1, 11)], "run2"
        )
        return registry

    @staticmethod
    def pairs(registry: Registry, where: Any, **kwargs: Any) -> set[tuple[int, int]]:
        """Return the ``(visit, detector)`` pairs of the run1 raws that ``where`` selects."""
        refs = registry.queryDatasets("raw", collections=["run1"], where=where, **kwargs)
        return {(int(ref.dataId["visit"]), int(ref.dataId["detector"])) for ref in refs}

    def testComparisons(self, raws: Registry) -> None:
        """Check =, !=, <, <=, >, >=, with the literal on either side, and AND/OR/NOT precedence."""
        everything = {(v, d) for v in range(100, 110) for d in range(1, 11)}
        cases = {
            "visit = 101": {p for p in everything if p[0] == 101},
            "visit != 101": {p for p in everything if p[0] != 101},
            "visit < 102": {p for p in everything if p[0] < 102},
            "visit <= 102": {p for p in everything if p[0] <= 102},
            "visit > 107": {p for p in everything if p[0] > 107},
            "108 <= visit": {p for p in everything if p[0] >= 108},
            "visit >= 107 AND detector = 3": {p for p in everything if p[0] >= 107 and p[1] == 3},
            "visit = 100 or visit = 109": {p for p in everything if p[0] in (100, 109)},
            "NOT (visit > 100) AND detector <= 2": {p for p in everything if p[0] <= 100 and p[1] <= 2},
            "visit = 101 AND (detector = 1 OR detector = 2)": {(101, 1), (101, 2)},
            "visit = 101 AND detector = 1 OR detector = 2": {(101, 1)} | {p for p in everything if p[1] == 2},
            "instrument = 'HSC' AND visit = 105 AND detector = 5": {(105, 5)},
            "instrument = 'LSST'": set(),
        }
        for where, expected in cases.items():
            assert self.pairs(raws, where) == expected, where

    def testInRangesAndStrides(self, raws: Registry) -> None:
        """Check IN with lists, ranges and strided ranges, NOT IN, and that an empty range is refused."""
        assert self.pairs(raws, "visit = 101 AND detector IN (1..3)") == {(101, 1), (101, 2), (101, 3)}
        assert self.pairs(raws, "visit = 101 AND detector IN (2..9:3, 10)") == {
            (101, 2),
            (101, 5),
            (101, 8),
            (101, 10),
        }
        assert self.pairs(raws, "visit IN (101, 103) AND detector = 1") == {(101, 1), (103, 1)}
        assert self.pairs(raws, "visit NOT IN (100..108) AND detector = 1") == {(109, 1)}
        with pytest.raises(InvalidQueryError, match="empty"):
            self.pairs(raws, "detector IN (5..1)")

    def testBindParameters(self, raws: Registry) -> None:
        """Check that :name values (lists in IN) are bound, and that a missing or misplaced one raises."""
        bind = {"visits": [101, 102], "det": 4, "inst": "HSC"}
        where = "visit IN (:visits) AND detector = :det AND instrument = :inst"
        assert self.pairs(raws, where, bind=bind) == {(101, 4), (102, 4)}
        assert self.pairs(raws, "visit IN (:none)", bind={"none": []}) == set()
        with pytest.raises(InvalidQueryError, match=r":det has no value.*given: inst"):
            self.pairs(raws, "detector = :det", bind={"inst": "HSC"})
        with pytest.raises(InvalidQueryError, match="only allowed in IN"):
            self.pairs(raws, "detector = :d", bind={"d": [1, 2]})

    def testValuesAreCoercedOrRefused(self, raws: Registry) -> None:
        """Check that values are coerced to the dimension's type, or refused naming it."""
        # visit is an int dimension: '101' is 101, 'abc' is an error naming the dimension and type.
        assert self.pairs(raws, "visit = '101' AND detector = 1") == {(101, 1)}
        assert self.pairs(raws, "visit IN (:v) AND detector = 1", bind={"v": ["101", 102]}) == {
            (101, 1),
            (102, 1),
        }
        assert self.pairs(raws, {"visit": "101", "detector": "1"}) == {(101, 1)}
        for where in ("visit = 'abc'", "visit = 1.5", "instrument = 3"):
            with pytest.raises(InvalidQueryError, match=r"visit holds integers|instrument holds strings"):
                self.pairs(raws, where)

    def testUnknownNamesListWhatExists(self, raws: Registry) -> None:
        """Check that an unknown name raises `InvalidQueryError` listing the dimensions that exist."""
        with pytest.raises(InvalidQueryError, match="'visti'"):
            self.pairs(raws, "visti = 1")
        with pytest.raises(InvalidQueryError) as info:
            self.pairs(raws, "visti = 1")
        assert "detector" in str(info.value) and "visit" in str(info.value)

    def testSyntaxErrorsNamePositionAndExpected(self, raws: Registry) -> None:
        """Check that a syntax error names its column and what was expected there."""
        with pytest.raises(InvalidQueryError, match="column 14") as info:
            self.pairs(raws, "visit > 1 AND")
        assert "expected" in str(info.value)
        with pytest.raises(InvalidQueryError, match=r"column 7.*expected"):
            self.pairs(raws, "visit 100")

    def testGlobAndStrings(self, registry: Registry) -> None:
        """Check that GLOB is case-sensitive, treats % and _ literally, and that quotes escape by doubling."""
        registry.registerDatasetType(NAMED)
        registry.registerRun("run")
        names = ["HSC-R", "HSC-G", "hsc-r", "DECam-r", "O'Brien", "50%_off", "a*b"]
        registry.addDatasets("named", [{"visit": 1, "physical_filter": n} for n in names], "run")

        def found(where: str, **kwargs: Any) -> set[str]:
            refs = registry.queryDatasets("named", collections="run", where=where, **kwargs)
            return {str(ref.dataId["physical_filter"]) for ref in refs}

        assert found("GLOB(physical_filter, 'HSC-*')") == {
            "HSC-R",
            "HSC-G",
        }  # case-sensitive on every back end
        assert found("GLOB(physical_filter, '???-r')") == {"hsc-r"}
        assert found("GLOB(physical_filter, '50%*')") == {"50%_off"}
        assert found("GLOB(physical_filter, '50_*')") == set()  # % and _ are literal characters
        assert found("physical_filter = 'O''Brien'") == {"O'Brien"}
        assert found("GLOB(physical_filter, :p)", bind={"p": "*'*"}) == {"O'Brien"}
        assert found("NOT GLOB(physical_filter, '*-*')") == {"O'Brien", "50%_off", "a*b"}

    def testHostileStringsAreOnlyValues(self, registry: Registry) -> None:
        """Check that hostile strings, as literals or bind values, only ever match themselves."""
        registry.registerDatasetType(NAMED)
        registry.registerRun("run")
        values = [v for v in HOSTILE if "\x00" not in v] + ["plain"]
        registry.addDatasets("named", [{"visit": 1, "physical_filter": v} for v in values], "run")
        for value in values:
            quoted = "'" + value.replace("'", "''") + "'"
            for where, bind in (
                (f"physical_filter = {quoted}", None),
                ("physical_filter = :v", {"v": value}),
                ("physical_filter IN (:v)", {"v": [value]}),
            ):
                refs = registry.queryDatasets("named", collections="run", where=where, bind=bind)
                assert [ref.dataId["physical_filter"] for ref in refs] == [value], where
        # The tables are all still there, with every row.
        assert len(registry.queryDatasets("named", collections="run")) == len(values)
        assert registry.queryDatasetTypes()[0].name == "named"

    def testHostileExpressionsNeverRunSql(self, raws: Registry) -> None:
        """Check that SQL fragments in an expression raise `InvalidQueryError` and leave the data intact."""
        attacks = [
            "visit = 1; DROP TABLE dataset",
            "visit = 1 -- comment",
            "visit = 1 /* x */",
            "visit = 1 UNION SELECT * FROM dataset",
            'visit = "1"',
            "visit = 1) OR (1 = 1",
            "dataset.id = 1",
            "visit = :x",
        ]
        for where in attacks:
            with pytest.raises(InvalidQueryError):
                self.pairs(raws, where, bind={"y": 1})
        assert len(self.pairs(raws, None)) == 100

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.differing_executors],
    )
    @given(value=st.text(max_size=30).filter(lambda v: "\x00" not in v))
    def testAnyTextIsAValue(self, raws: Registry, value: str) -> None:
        """Check with generated text that any string literal or bind value is compared as a value."""
        # Any text, as a literal or a bind value, is compared as a value: never an error, never a match.
        quoted = "'" + value.replace("'", "''") + "'"
        assert self.pairs(raws, f"instrument = {quoted} AND visit = 100", bind=None) == (
            {(100, d) for d in range(1, 11)} if value == "HSC" else set()
        )
        assert self.pairs(raws, "instrument IN (:v)", bind={"v": [value, "nothing"]}) == (
            {(v, d) for v in range(100, 110) for d in range(1, 11)} if value == "HSC" else set()
        )

    def testDictWhereStillWorks(self, raws: Registry) -> None:
        """Check that a dict ``where`` still selects as before."""
        assert self.pairs(raws, {"visit": [101, 102], "detector": 1}) == {(101, 1), (102, 1)}

    def testFindFirstWithExpression(self, raws: Registry) -> None:
        """Check that findFirst combines with an expression: each data ID from the first run that has it."""
        refs = raws.queryDatasets(
            "raw", collections=["run2", "run1"], where="visit <= 101 AND detector = 1", findFirst=True
        )
        assert sorted((ref.dataId["visit"], ref.run) for ref in refs) == [(100, "run2"), (101, "run1")]


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime.datetime:
    return datetime.datetime(year, month, day, hour, minute, tzinfo=datetime.UTC)


VISITS = [
    {
        "instrument": "HSC",
        "visit": v,
        "band": "r" if v % 2 else "g",
        "physical_filter": "HSC-R" if v % 2 else "HSC-G",
        "exposureTime": 30.0 + v - 100,
        "timespan": (_utc(2024, 1, 1, v - 100), _utc(2024, 1, 1, v - 100, 30)),
    }
    for v in range(100, 110)
]


class DimensionTests(RegistryFixtures):
    """Dimension universe, coercion and records: the contract of every registry back end."""

    @pytest.fixture
    def withRecords(self, registry: Registry) -> Registry:
        """Return a registry with raws of visits 100..109 x detectors 1..3 and a record per visit."""
        registry.registerDatasetType(RAW)
        registry.registerRun("run1")
        registry.addDatasets(
            "raw",
            [{"instrument": "HSC", "visit": v, "detector": d} for v in range(100, 110) for d in range(1, 4)],
            "run1",
        )
        registry.insertDimensionData("instrument", {"instrument": "HSC", "detectorMax": 3})
        registry.insertDimensionData("visit", VISITS)
        return registry

    def testDefaultUniverse(self, registry: Registry) -> None:
        """Check the packaged universe: types, relations, fields."""
        universe = registry.dimensions
        assert universe["visit"].valueType == "int" and universe["band"].valueType == "str"
        assert universe["visit"].implies == ("physical_filter", "band")
        assert universe.requiredKeys("detector") == ("instrument", "detector")
        assert universe["visit"].fields["timespan"] == "timespan"

    def testRecordsRoundTrip(self, withRecords: Registry) -> None:
        """Check that records come back with their fields, timespans included, and can be queried."""
        records = withRecords.queryDimensionRecords("visit")
        assert len(records) == 10 and records[0].visit == 100 and records[0].band == "g"
        assert records[1].timespan.begin == _utc(2024, 1, 1, 1)
        assert records[1].timespan.end == _utc(2024, 1, 1, 1, 30)
        assert records[1].exposureTime == 31.0 and records[1].name is None
        assert [
            r.visit for r in withRecords.queryDimensionRecords("visit", "band = 'r' AND exposureTime > 35")
        ] == [
            107,
            109,
        ]
        assert [r.visit for r in withRecords.queryDimensionRecords("visit", dataId={"visit": "103"})] == [103]
        overlapping = withRecords.queryDimensionRecords(
            "visit", "visit.timespan OVERLAPS (T'2024-01-01T02:15:00', T'2024-01-01T03:10:00')"
        )
        assert [r.visit for r in overlapping] == [102, 103]
        at = withRecords.queryDimensionRecords(
            "visit", "timespan OVERLAPS :t", bind={"t": _utc(2024, 1, 1, 4, 29)}
        )
        assert [r.visit for r in at] == [104]
        assert withRecords.queryDimensionRecords("detector") == []  # records are optional

    def testRecordErrors(self, withRecords: Registry) -> None:
        """Check every documented error of insertDimensionData and queryDimensionRecords."""
        with pytest.raises(ConflictingRecordError, match="syncDimensionData"):
            withRecords.insertDimensionData("visit", VISITS[0])
        with pytest.raises(DataIdError, match=r"unknown fields \['colour'\]"):
            withRecords.insertDimensionData("visit", {"instrument": "HSC", "visit": 1, "colour": "red"})
        with pytest.raises(DataIdError, match=r"lacks \['instrument'\]"):
            withRecords.insertDimensionData("visit", {"visit": 1})
        with pytest.raises(DataIdError, match="visit='abc' is not an integer"):
            withRecords.insertDimensionData("visit", {"instrument": "HSC", "visit": "abc"})
        with pytest.raises(DataIdError, match="not a dimension of this repository"):
            withRecords.queryDimensionRecords("nope")
        with pytest.raises(InvalidQueryError, match=r"do not have; they have \['instrument', 'visit'"):
            withRecords.queryDimensionRecords("visit", "seeing < 1")

    def testSync(self, withRecords: Registry) -> None:
        """Check that sync inserts what is missing, refuses a change without update, applies it with."""
        assert withRecords.syncDimensionData("visit", VISITS[0]) is False
        assert withRecords.syncDimensionData("visit", {**VISITS[0], "visit": 200}) is True
        changed = {**VISITS[0], "band": "z"}
        with pytest.raises(ConflictingRecordError, match=r"other values of \['band'\].*update=True"):
            withRecords.syncDimensionData("visit", changed)
        assert withRecords.syncDimensionData("visit", changed, update=True) is True
        assert withRecords.queryDimensionRecords("visit", dataId={"visit": 100})[0].band == "z"

    def testRecordFieldsInDatasetQueries(self, withRecords: Registry) -> None:
        """Check record fields, implied dimensions, GLOB and OVERLAPS in dataset queries."""

        def visits(where: str, **kwargs: Any) -> list[int]:
            refs = withRecords.queryDatasets("raw", collections="run1", where=where, **kwargs)
            return sorted({int(ref.dataId["visit"]) for ref in refs})

        assert visits("visit.band = 'r' AND visit < 104") == [101, 103]
        assert visits("band = 'g' AND visit > 105") == [106, 108]  # band implied by the visit
        assert visits("visit.exposureTime >= 38") == [108, 109]
        assert visits("GLOB(visit.physical_filter, 'HSC-?') AND detector = 1 AND visit <= 101") == [100, 101]
        assert visits("visit.timespan OVERLAPS (T'2024-01-01T05:45', NULL)") == [106, 107, 108, 109]
        refs = withRecords.queryDatasets("raw", collections="run1", where="visit.band = 'r' AND visit = 101")
        assert len(refs) == 3  # one per detector, no duplicates from the join
        with pytest.raises(InvalidQueryError, match=r"record fields \[.*'visit.band'"):
            visits("visit.seeing < 1")

    def testDatasetsWithoutRecordsDoNotMatchRecordConditions(self, withRecords: Registry) -> None:
        """Check that records are optional: a dataset without one only fails record conditions."""
        withRecords.addDatasets("raw", [{"instrument": "HSC", "visit": 500, "detector": 1}], "run1")
        refs = withRecords.queryDatasets("raw", collections="run1", where="visit >= 109")
        assert sorted({r.dataId["visit"] for r in refs}) == [109, 500]
        refs = withRecords.queryDatasets("raw", collections="run1", where="visit >= 109 AND band = 'r'")
        assert sorted({r.dataId["visit"] for r in refs}) == [109]


class QueryResultTests(RegistryFixtures):
    """queryDataIds, countDatasets and the explanations of empty results, on every back end."""

    @pytest.fixture
    def runs(self, registry: Registry) -> Registry:
        """Return a registry with raws in run1 (visits 100..104) and run2 (visit 200), visit records."""
        registry.registerDatasetType(RAW)
        registry.registerDatasetType(NAMED)
        for run in ("run1", "run2", "empty"):
            registry.registerRun(run)
        registry.addDatasets(
            "raw",
            [{"instrument": "HSC", "visit": v, "detector": d} for v in range(100, 105) for d in (1, 2)],
            "run1",
        )
        registry.addDatasets("raw", [{"instrument": "HSC", "visit": 200, "detector": 1}], "run2")
        registry.insertDimensionData("visit", VISITS[:5])
        return registry

    def testQueryDataIds(self, runs: Registry) -> None:
        """Check distinct data IDs over some dimensions, with where, datasets and collections."""
        visits = runs.queryDataIds("visit")
        assert visits == [{"visit": v} for v in (100, 101, 102, 103, 104, 200)]
        assert runs.queryDataIds(["visit", "detector"], "visit.band = 'r'", collections="run1") == [
            {"visit": v, "detector": d} for v in (101, 103) for d in (1, 2)
        ]
        assert runs.queryDataIds("visit", datasets="raw", collections=["run2"]).count() == 1
        assert runs.queryDataIds("detector", "visit > :v", bind={"v": 103}) == [
            {"detector": 1},
            {"detector": 2},
        ]
        with pytest.raises(DataIdError, match="unknown dimension"):
            runs.queryDataIds("colour")
        with pytest.raises(InvalidQueryError, match="has no dimension"):
            runs.queryDataIds("detector", datasets="named")

    def testCountDatasets(self, runs: Registry) -> None:
        """Check that countDatasets agrees with queryDatasets."""
        assert runs.countDatasets("raw") == 11
        assert runs.countDatasets("raw", "run1", "visit > 102") == 4
        assert runs.countDatasets("raw", "empty") == 0

    def testExplainNoResults(self, runs: Registry) -> None:
        """Check that each way of finding nothing is named: type, collections, condition, records."""
        assert runs.explainDatasetQuery("raw", "run1", "visit > 100") == []
        (reason,) = runs.explainDatasetQuery("named", None, None)
        assert "no 'named' datasets in any collection" in reason
        (reason,) = runs.explainDatasetQuery("raw", ["empty"], "visit > 100")
        assert "(['empty']) hold no 'raw' datasets; 11 are in ['run1', 'run2']" in reason
        (reason,) = runs.explainDatasetQuery("raw", "run1", "detector = 1 AND visit > 150")
        assert "'visit > 150' alone matches none of the 10 'raw' datasets" in reason
        (reason,) = runs.explainDatasetQuery("raw", "run1", "visit = 100 AND visit = 101")
        assert "but no dataset matches them all" in reason
        (reason,) = runs.explainDatasetQuery("raw", "run2", "visit.band = 'r'")
        assert "alone matches none" in reason
        (reason,) = runs.explainDatasetQuery("raw", "run1", {"visit": 999})
        assert "visit=999" in reason


class ChainTests(RegistryFixtures):
    """CHAINED collections: order, nesting, cycles, and every collection argument accepting a chain."""

    @pytest.fixture
    def chained(self, registry: Registry) -> Registry:
        """Return a registry with raws in run1..run3 (visit 1 in all, visit 2 in run1) and chain 'all'."""
        registry.registerDatasetType(RAW)
        for run in ("run1", "run2", "run3"):
            registry.registerRun(run)
            registry.addDatasets("raw", [{"instrument": "HSC", "visit": 1, "detector": 1}], run)
        registry.addDatasets("raw", [{"instrument": "HSC", "visit": 2, "detector": 1}], "run1")
        registry.setCollectionChain("all", ["run3", "run2", "run1"])
        return registry

    def testFindThroughChain(self, chained: Registry) -> None:
        """Check that lookups and findFirst queries search a chain in order."""
        dataId = {"instrument": "HSC", "visit": 1, "detector": 1}
        assert chained.findDataset("raw", dataId, "all").run == "run3"  # type: ignore[union-attr]
        refs = chained.queryDatasets("raw", "all", "visit >= 1", findFirst=True)
        assert sorted((r.dataId["visit"], r.run) for r in refs) == [(1, "run3"), (2, "run1")]
        assert len(chained.queryDatasets("raw", "all")) == 4
        assert chained.countDatasets("raw", ["all"]) == 4
        assert chained.queryDataIds("visit", collections="all") == [{"visit": 1}, {"visit": 2}]

    def testEditingAndNesting(self, chained: Registry) -> None:
        """Check prepend, extend, remove, nested chains and queryCollections."""
        chained.setCollectionChain("recent", ["run3"])
        chained.setCollectionChain("outer", ["recent", "all"])
        assert chained.queryDatasets("raw", "outer", findFirst=True)[0].run == "run3"
        chained.removeFromCollectionChain("all", "run3")
        chained.prependCollectionChain("all", ["run1"])
        assert chained.getCollectionChain("all") == ["run1", "run2"]
        chained.extendCollectionChain("all", "run3")
        assert chained.getCollectionChain("all") == ["run1", "run2", "run3"]
        found = chained.findDataset("raw", {"instrument": "HSC", "visit": 1, "detector": 1}, "all")
        assert found is not None and found.run == "run1"
        assert chained.queryCollections("CHAINED") == ["all", "outer", "recent"]
        assert str(chained.getCollectionType("outer")) == "CHAINED"
        assert str(chained.getCollectionType("run1")) == "RUN"

    def testChainErrors(self, chained: Registry) -> None:
        """Check that cycles, duplicates, unknown children and name clashes are refused."""
        chained.setCollectionChain("outer", ["all"])
        with pytest.raises(CollectionError, match="a cycle"):
            chained.setCollectionChain("all", ["run1", "outer"])
        with pytest.raises(CollectionError, match="a cycle"):
            chained.setCollectionChain("all", ["all"])
        with pytest.raises(CollectionError, match="twice"):
            chained.setCollectionChain("x", ["run1", "run1"])
        with pytest.raises(MissingRunError, match="'nope' is not registered"):
            chained.setCollectionChain("x", ["nope"])
        with pytest.raises(CollectionError, match="RUN collection"):
            chained.setCollectionChain("run1", ["run2"])
        with pytest.raises(CollectionError, match="CHAINED collection"):
            chained.registerRun("all")
        with pytest.raises(CollectionError, match="not a CHAINED collection"):
            chained.getCollectionChain("run1")
        assert chained.getCollectionChain("all") == ["run3", "run2", "run1"]  # unchanged
