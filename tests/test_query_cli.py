"""Butler query verbs (findFirst, orderBy, limit, count/any/explainNoResults) and the query commands."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from databutler import Butler, InvalidQueryError
from databutler.cli.main import cli
from databutler.cli.query_commands import whereFromOptions


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    Butler.makeRepo(root)
    with Butler(root, run="run1") as butler:
        butler.registerDatasetType("raw", ("instrument", "visit", "detector"), "StructuredDataDict")
        butler.registerDatasetType("calexp", ("visit",), "StructuredDataDict")
        for visit in range(100, 106):
            for detector in (1, 2):
                butler.put({"v": visit}, "raw", instrument="HSC", visit=visit, detector=detector)
        butler.registry.insertDimensionData(
            "visit",
            [{"instrument": "HSC", "visit": v, "band": "r" if v % 2 else "g"} for v in range(100, 106)],
        )
    with Butler(root, run="run2") as butler:
        butler.put({"v": "new"}, "raw", instrument="HSC", visit=101, detector=1)
    return root


def test_butler_query_datasets_options(repo: Path) -> None:
    with Butler(repo) as butler:
        refs = butler.queryDatasets("raw", collections=["run2", "run1"], where="visit = 101", findFirst=True)
        assert sorted((r.dataId["detector"], r.run) for r in refs) == [(1, "run2"), (2, "run1")]
        ordered = butler.queryDatasets("raw", collections="run1", orderBy=["-visit", "detector"], limit=3)
        assert [(r.dataId["visit"], r.dataId["detector"]) for r in ordered] == [(105, 1), (105, 2), (104, 1)]
        assert ordered.count() == 3 and ordered.any()
        empty = butler.queryDatasets("raw", collections="run1", where="visit > 100 AND visit.band = 'z'")
        assert not empty.any() and empty.count() == 0
        assert "visit.band = 'z'\" alone matches none of the 12 'raw'" in empty.explainNoResults()[0]
        assert butler.queryDatasets("raw", collections="run1", where="visit = 100").explainNoResults() == []
        with pytest.raises(InvalidQueryError, match="findFirst needs collections"):
            butler.queryDatasets("raw", findFirst=True)
        with pytest.raises(InvalidQueryError, match="orderBy names 'band'"):
            butler.queryDatasets("raw", orderBy="band")
        assert (
            butler.queryDatasets("raw", where="visit = :v", bind={"v": 104}, detector=2)[0].dataId["detector"]
            == 2
        )


@pytest.mark.parametrize("values", [[1, 2], (1, 2), {1, 2}, frozenset({1, 2})])
def test_a_keyword_of_several_values_beside_a_where_string_is_an_in(repo: Path, values: object) -> None:
    with Butler(repo) as butler:
        refs = butler.queryDatasets("raw", collections="run1", where="visit = 104", detector=values)
        assert sorted(r.dataId["detector"] for r in refs) == [1, 2]


def test_butler_query_data_ids_types_collections(repo: Path) -> None:
    with Butler(repo) as butler:
        assert butler.queryDataIds("visit", "band = 'g'") == [{"visit": 100}, {"visit": 102}, {"visit": 104}]
        assert [t.name for t in butler.queryDatasetTypes("r*")] == ["raw"]
        assert [t.name for t in butler.queryDatasetTypes(["cal*", "raw"])] == ["calexp", "raw"]
        assert butler.queryCollections() == ["run1", "run2"]
        assert butler.queryCollections("*2", types="RUN") == ["run2"]
        assert butler.queryCollections(types=["CHAINED"]) == []
        with pytest.raises(InvalidQueryError, match="not a collection type"):
            butler.queryCollections(types="FOLDER")
        none = butler.queryDatasets("calexp")
        assert none.explainNoResults() == ["There are no 'calexp' datasets in any collection."]


def test_where_options_are_bound() -> None:
    assert whereFromOptions(["visit=101..103"], []) == ("visit IN (101..103)", {})
    expression, bind = whereFromOptions(["band=r,g", "visit > 1"], ["x=1,2"])
    assert expression == "band IN (:_w0_0, :_w0_1) AND (visit > 1)"
    assert bind == {"_w0_0": "r", "_w0_1": "g", "x": ["1", "2"]}


def test_cli_query_datasets_where_range_and_formats(repo: Path) -> None:
    result = invoke("query-datasets", repo, "raw", "-c", "run1", "-w", "visit=101..103", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert sorted({row["dataId"]["visit"] for row in rows}) == [101, 102, 103] and len(rows) == 6
    result = invoke(
        "query-datasets",
        repo,
        "raw",
        "-c",
        "run2,run1",
        "-w",
        "visit = :v",
        "--bind",
        "v=101",
        "--find-first",
        "--format",
        "csv",
        "--show-uri",
    )
    assert result.exit_code == 0, result.output
    table = list(csv.DictReader(io.StringIO(result.output)))
    assert sorted(row["run"] for row in table) == ["run1", "run2"] and all(row["uri"] for row in table)
    result = invoke("query-datasets", repo, "raw", "--order-by", "-visit", "--limit", "2", "--format", "json")
    assert [row["dataId"]["visit"] for row in json.loads(result.output)] == [105, 105]
    result = invoke("query-datasets", repo, "raw", "-w", "visit > 1000")
    assert result.exit_code == 0 and "alone matches none" in result.output  # explained (on stderr)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["query-datasets", "{repo}", "nope"], "'nope' is not registered"),
        (["query-datasets", "{repo}", "raw", "-w", "visti > 1"], "'visti'"),
        (["query-datasets", "{repo}", "raw", "-w", "visit > "], "Cannot parse"),
        (["query-datasets", "{repo}", "raw", "-w", "visit=abc"], "visit holds integers"),
        (["query-data-ids", "{repo}", "colour"], "unknown dimension"),
        (["query-dimension-records", "{repo}", "colour"], "not a dimension"),
        (["query-dimension-records", "{repo}", "visit", "-w", "seeing < 1"], "seeing"),
        (["query-collections", "{repo}", "-t", "FOLDER"], "not a collection type"),
    ],
)
def test_cli_unknown_names_exit_1_with_one_line(repo: Path, args: list[str], message: str) -> None:
    result = invoke(*[a.format(repo=repo) for a in args])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], result.output


def test_cli_other_query_commands(repo: Path) -> None:
    result = invoke("query-data-ids", repo, "visit", "-w", "visit.band = 'r'", "--format", "json")
    assert json.loads(result.output) == [{"visit": 101}, {"visit": 103}, {"visit": 105}]
    result = invoke("query-dimension-records", repo, "visit", "-w", "band = 'g'", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [row["visit"] for row in rows] == ["100", "102", "104"] and rows[0]["band"] == "g"
    result = invoke("query-collections", repo, "--format", "json")
    assert json.loads(result.output) == [{"name": "run1", "type": "RUN"}, {"name": "run2", "type": "RUN"}]
    result = invoke("query-dataset-types", repo, "raw")
    assert (
        result.exit_code == 0 and "instrument, visit, detector" in result.output
    ) or "detector" in result.output
    result = invoke("query-dataset-types", repo, "--format", "json")
    assert [row["name"] for row in json.loads(result.output)] == ["calexp", "raw"]


def test_chains_from_butler_and_cli(repo: Path) -> None:
    assert invoke("collection-chain", repo, "all", "run2", "run1").output.strip() == "all: run2, run1"
    with Butler(repo, collections="all") as butler:
        assert butler.get("raw", instrument="HSC", visit=101, detector=1) == {"v": "new"}  # run2 first
        assert butler.get("raw", instrument="HSC", visit=102, detector=1) == {"v": 102}
        assert butler.queryCollections(types="CHAINED") == ["all"]
    result = invoke(
        "query-datasets", repo, "raw", "-c", "all", "-w", "visit = 101", "--find-first", "--format", "json"
    )
    assert sorted(row["run"] for row in json.loads(result.output)) == ["run1", "run2"]
    assert invoke("collection-chain", repo, "all", "run1", "--mode", "remove").output.strip() == "all: run2"
    result = invoke("collection-chain", repo, "all", "all")
    assert result.exit_code == 1 and "cycle" in result.output
    result = invoke("query-collections", repo, "--format", "json")
    assert {"name": "all", "type": "CHAINED"} in json.loads(result.output)
