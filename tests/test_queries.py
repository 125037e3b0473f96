"""The query contract (`QueryTests`) on SQLite and PostgreSQL, and the parser on its own."""

from __future__ import annotations

import datetime
import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from databutler import ConfigError, DatasetType, InvalidQueryError, RegistryError, SqlRegistry
from databutler.registry.queries import ResolvedColumn, compileExpression, parseExpression
from databutler.registry.queries.expressions import (
    And,
    Bind,
    Compare,
    Glob,
    In,
    Literal,
    Name,
    Not,
    Or,
    Overlaps,
    Range,
)
from databutler.testing.collection_tests import CollectionTests
from databutler.testing.query_plan_tests import QueryPlanTests
from databutler.testing.query_tests import ChainTests, DimensionTests, QueryResultTests, QueryTests
from databutler.testing.registry_support import dropNamespace, newNamespace, postgresUrl


class TestSqliteQueries(
    QueryTests, DimensionTests, QueryResultTests, ChainTests, QueryPlanTests, CollectionTests
):
    def makeRegistry(self, tmpPath: Path) -> SqlRegistry:
        return SqlRegistry(f"sqlite:///{tmpPath}/registry.sqlite3", create=True)

    def testLookupThroughAChainOfRunsIsOneStatement(self, layered: SqlRegistry) -> None:
        """Check that a lookup through a chain of runs, once resolved, runs one statement (token included)."""
        dataId = {"instrument": "HSC", "visit": 1, "detector": 1}
        assert layered.findDataset("raw", dataId, "all").run == "run3"  # type: ignore[union-attr]
        with layered._db.read() as connection:  # this thread's own connection (a SQLite file)
            driver = connection.connection.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        statements: list[str] = []
        driver.set_trace_callback(statements.append)
        try:
            for collections in ("all", ("all",), "all"):
                statements.clear()
                ref = layered.findDataset("raw", dataId, collections)
                assert ref is not None and ref.run == "run3"
                if collections == ("all",):
                    statements.clear()  # its first lookup resolved it; now the same as "all"
                    ref = layered.findDataset("raw", dataId, collections)
                    assert ref is not None and ref.run == "run3"
                assert len(statements) == 1  # the datasets and the chain version token together
                assert "LEFT OUTER JOIN dataset" in statements[0] and "butler_attribute" in statements[0]
            layered.setCollectionChain("all", ["run1"])
            statements.clear()
            assert layered.findDataset("raw", dataId, "all").run == "run1"  # type: ignore[union-attr]
            assert len(statements) > 1  # the token changed: the chain was resolved anew
        finally:
            driver.set_trace_callback(None)


class TestPostgresQueries(
    QueryTests, DimensionTests, QueryResultTests, ChainTests, QueryPlanTests, CollectionTests
):
    def makeRegistry(self, tmpPath: Path) -> SqlRegistry:
        return SqlRegistry(postgresUrl(), namespace=newNamespace(), create=True)

    def cleanupRegistry(self, registry: SqlRegistry) -> None:
        assert registry.namespace is not None
        dropNamespace(registry.url, registry.namespace)


# -- the parser --


def test_parse_precedence_and_nodes() -> None:
    tree = parseExpression("visit > 100 AND detector IN (1..8:2, 12) OR NOT band = 'r'")
    assert isinstance(tree, Or)
    first, second = tree.operands
    assert isinstance(first, And) and isinstance(second, Not)
    compare, inList = first.operands
    assert compare == Compare(">", Name("visit", None, 1), Literal(100, 9), 1)
    assert isinstance(inList, In) and inList.items == (Range(1, 8, 2, 30), Literal(12, 38))
    assert second.operand == Compare("=", Name("band", None, 49), Literal("r", 56), 49)


def test_parse_keywords_any_case_and_names_that_start_like_keywords() -> None:
    tree = parseExpression("android = 1 and NOTE = 2 Or index not in (:xs)")
    assert isinstance(tree, Or)
    assert tree.operands[0] == And(
        (
            Compare("=", Name("android", None, 1), Literal(1, 11), 1),
            Compare("=", Name("NOTE", None, 17), Literal(2, 24), 17),
        ),
        1,
    )
    assert tree.operands[1] == In(Name("index", None, 29), (Bind("xs", 43),), True, 29)


def test_parse_strings_fields_glob_and_times() -> None:
    assert parseExpression("visit.band = 'it''s'") == Compare(
        "=", Name("visit", "band", 1), Literal("it's", 14), 1
    )
    assert parseExpression("GLOB(physical_filter, 'HSC-*')") == Glob(
        Name("physical_filter", None, 6), Literal("HSC-*", 23), 1
    )
    tree = parseExpression("visit.timespan OVERLAPS (T'2024-01-01', T'2024-01-02T12:00:00+02:00')")
    assert isinstance(tree, Overlaps)
    assert tree.right.begin == datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)  # type: ignore[union-attr]
    assert tree.right.end == datetime.datetime(2024, 1, 2, 10, tzinfo=datetime.UTC)  # type: ignore[union-attr]
    assert parseExpression("exposureTime >= 1.5e1").right == Literal(15.0, 17)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("visit >", ["column 8", "found the end", "a number", "a string", "a name"]),
        ("visit = 1 AND", ["column 14", "expected", "NOT"]),
        ("visit == 1", ["column 8", "found '='"]),
        ("visit = 1 $", ["column 11", "unexpected character '$'"]),
        ("(visit = 1", ["found the end", "')'"]),
        ("visit IN 1..3", ["column 10", "'('"]),
        ("", ["empty"]),
        ("visit", ["column 6", "expected IN", "a comparison"]),
        ("visit = T'yesterday'", ["not a time", "ISO 8601"]),
        ("visit IN (1..3:0)", ["stride", "at least 1"]),
    ],
)
def test_syntax_errors(text: str, pieces: list[str]) -> None:
    with pytest.raises(InvalidQueryError) as info:
        parseExpression(text)
    for piece in pieces:
        assert piece in str(info.value), (piece, str(info.value))


# -- the compiler, on a table of its own --


class _Resolver:
    def __init__(self, table: sa.Table) -> None:
        self.table = table

    def resolve(self, name: Name) -> ResolvedColumn:
        c = self.table.c
        if name.element == "visit" and name.field is None:
            return ResolvedColumn("int", column=c.visit)
        if str(name) == "visit.band":
            return ResolvedColumn("str", column=c.band)
        if str(name) == "visit.timespan":
            return ResolvedColumn("timespan", begin=c.begin, end=c.end)
        raise InvalidQueryError(f"unknown {name}")


def _compiled(where: str, bind: dict[str, object] | None = None) -> tuple[str, dict[str, object]]:
    table = sa.Table(
        "t",
        sa.MetaData(),
        sa.Column("visit", sa.Integer),
        sa.Column("band", sa.String),
        sa.Column("begin", sa.BigInteger),
        sa.Column("end", sa.BigInteger),
    )
    condition = compileExpression(where, parseExpression(where), _Resolver(table), bind)
    compiled = condition.compile(dialect=sa.dialects.sqlite.dialect())
    return str(compiled), dict(compiled.params)


def test_values_are_bound_never_formatted() -> None:
    hostile = "x'); DROP TABLE dataset; --"
    sql, params = _compiled("visit.band = :b OR GLOB(visit.band, :b)", {"b": hostile})
    assert "DROP" not in sql and hostile in params.values()
    sql, params = _compiled("visit = '101'")  # coerced to the declared int type
    assert params == {"visit_1": 101} and "101" not in sql


def test_type_errors_name_the_column() -> None:
    for where, message in [
        ("visit = 'abc'", "column 9: visit holds integers; 'abc' is not one"),
        ("visit.band = 3", "column 14: visit.band holds strings"),
        ("visit.timespan = 3", "timespan; compare it with OVERLAPS"),
        ("visit.band IN (1..3)", "does not hold integers"),
        ("visit OVERLAPS T'2024-01-01'", "not a time or timespan"),
        ("GLOB(visit, 'a*')", "GLOB needs a string column"),
        ("1 = 1", "dimension or record field on one side"),
    ]:
        with pytest.raises(InvalidQueryError, match=message):
            _compiled(where)


def test_overlaps_conditions() -> None:
    sql, params = _compiled("visit.timespan OVERLAPS (T'1970-01-01T00:00:01', NULL)")
    assert sql.count("<") == 1 and 1_000_000_000 in params.values()
    sql, params = _compiled("visit.timespan OVERLAPS :t", {"t": datetime.datetime(1970, 1, 1, 0, 0, 2)})
    assert "<=" in sql and 2_000_000_000 in params.values()


# -- registries made before dimension universes --


def _makeOldRegistry(path: Path) -> None:
    """Write what the previous release wrote: its tables and rows, no universe, no record tables."""
    from databutler.registry import schema

    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        schema.metadata.create_all(connection)
        connection.execute(sa.insert(schema.attributeTable).values(name="schemaVersion", value="1"))
        connection.execute(
            sa.insert(schema.datasetTypeTable),
            [
                {"id": 1, "name": "old", "dimensions": "ccd,visit", "storageClass": "StructuredDataDict"},
                {"id": 2, "name": "named", "dimensions": "exposure", "storageClass": "StructuredDataDict"},
            ],
        )
        connection.execute(sa.insert(schema.runTable).values(id=1, name="night1"))
        rows = [(1, {"ccd": "A", "visit": 7}), (1, {"ccd": "B", "visit": 8}), (2, {"exposure": "e1"})]
        for typeId, dataId in rows:
            ident = uuid.uuid4()
            text = json.dumps(dataId, sort_keys=True, separators=(",", ":"))
            connection.execute(
                sa.insert(schema.datasetTable).values(id=ident, datasetTypeId=typeId, runId=1, dataId=text)
            )
            for key, value in dataId.items():
                isInt = isinstance(value, int)
                connection.execute(
                    sa.insert(schema.datasetDimensionTable).values(
                        datasetId=ident,
                        dimension=key,
                        intValue=value if isInt else None,
                        strValue=None if isInt else value,
                    )
                )
    engine.dispose()


def test_registry_made_before_universes_is_migrated_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    _makeOldRegistry(path)
    with SqlRegistry(f"sqlite:///{path}") as registry:
        universe = registry.dimensions
        assert universe["ccd"].valueType == "str"  # not in the defaults: typed by what is stored
        assert universe["exposure"].valueType == "str"  # stored as strings: kept readable
        assert universe["visit"].valueType == "int" and "band" in universe
        refs = registry.queryDatasets("old", collections="night1", where="visit = '8'")
        assert [dict(r.dataId) for r in refs] == [{"ccd": "B", "visit": 8}]
        assert registry.findDataset("named", {"exposure": "e1"}, "night1") is not None
        assert len(registry.queryDatasets("old", collections="night1")) == 2  # nothing lost
        registry.insertDimensionData("visit", {"instrument": "HSC", "visit": 7, "band": "r"})
    with SqlRegistry(f"sqlite:///{path}") as again:  # the migration was stored, records kept
        assert again.dimensions == universe
        assert [r.visit for r in again.queryDimensionRecords("visit")] == [7]


def test_old_registry_with_mixed_value_types_is_refused_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    _makeOldRegistry(path)
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE dataset_dimension SET int_value = NULL, str_value = '7' WHERE int_value = 7")
        )
    engine.dispose()
    with pytest.raises(RegistryError, match="both int and str values of dimension 'visit'"):
        SqlRegistry(f"sqlite:///{path}")


def test_universe_declared_when_made(tmp_path: Path) -> None:
    extra = {"ccd": {"type": "str", "requires": ["instrument"], "fields": {"gain": "float"}}}
    with SqlRegistry(f"sqlite:///{tmp_path}/r.sqlite3", create=True, dimensions=extra) as registry:
        registry.registerDatasetType(DatasetType("flat", ("instrument", "ccd"), "StructuredDataDict"))
        registry.insertDimensionData("ccd", {"instrument": "HSC", "ccd": "S1", "gain": 1.5})
        assert registry.queryDimensionRecords("ccd", "gain > 1")[0].ccd == "S1"
    with SqlRegistry(f"sqlite:///{tmp_path}/r.sqlite3", dimensions={"other": {}}) as reopened:
        assert "ccd" in reopened.dimensions and "other" not in reopened.dimensions  # kept as made
    with pytest.raises(ConfigError, match="type 'float'"):
        SqlRegistry("sqlite://", create=True, dimensions={"bad": {"type": "float"}})
    with pytest.raises(ConfigError, match="'nowhere', which is not a dimension"):
        SqlRegistry("sqlite://", create=True, dimensions={"bad": {"requires": ["nowhere"]}})


def test_butler_coerces_data_ids(tmp_path: Path) -> None:
    from databutler import Butler, DataIdError

    Butler.makeRepo(tmp_path / "repo")
    with Butler(tmp_path / "repo", run="run") as butler:
        butler.registerDatasetType("m", ("visit",), "StructuredDataDict")
        ref = butler.put({"a": 1}, "m", visit="101")
        assert ref.dataId["visit"] == 101
        assert butler.get("m", visit=101) == {"a": 1} and butler.get("m", visit="101") == {"a": 1}
        with pytest.raises(
            DataIdError, match="visit='abc' is not an integer; dimension 'visit' has type int"
        ):
            butler.put({"a": 2}, "m", visit="abc")


def test_sorted_positions_put_ints_before_strs_when_a_key_holds_both() -> None:
    """Check the sort of query rows by run rank, then data ID, when one key mixes ints and strs."""
    from databutler.registry.datasets import DatasetManager

    dataIds = [{"a": a, "b": b} for a in (2, "x", 1, "10") for b in ("q", 3, 1)]
    runIds = [7 if i % 4 else 5 for i in range(len(dataIds))]
    positions = DatasetManager._sortedPositions(dataIds, runIds, {"first": 5, "second": 7})

    def key(i: int) -> tuple[Any, ...]:
        return (runIds[i] != 5, *((isinstance(v, str), v) for v in dataIds[i].values()))

    assert positions == sorted(range(len(dataIds)), key=key)
    plain = [{"a": a, "b": b} for a in (3, 1, 2) for b in (2, 1)]
    assert DatasetManager._sortedPositions(plain, [1] * 6, {"r": 1}) == [3, 2, 5, 4, 1, 0]
    constant = [{"a": 7, "b": "HSC", "c": c} for c in (3, 1, 2)] + [{"a": 5, "b": "HSC", "c": 9}]
    assert DatasetManager._sortedPositions(constant, [2, 1, 2, 1], {"one": 1, "two": 2}) == [3, 1, 2, 0]
