"""A second review of queries, collections and import: odd literals, times and record timespans.

Each test is an input a careless or hostile user could give (an integer beyond 64 bits written
as a range, a float or a string; a time before 1677 or after 2262; a visit whose timespan has an
open end; a timespan that ends before it begins; one id given to two datasets of a manifest) and
asserts the safe behaviour: a typed `DatabutlerError` (one line and exit status 1 from the CLI),
or the answer the documentation promises, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import datetime
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from databutler import (
    ArgumentTypeError,
    ArtifactError,
    Butler,
    DatabaseValueError,
    DataIdError,
    ExportError,
    InvalidQueryError,
    ManifestError,
)
from databutler.cli.main import cli
from test_review_attacks import backend  # noqa: F401 (a fixture: SQLite, then PostgreSQL)

UTC = datetime.UTC
JAN1 = datetime.datetime(2024, 1, 1, tzinfo=UTC)
JAN2 = datetime.datetime(2024, 1, 2, tzinfo=UTC)


@pytest.fixture
def butler(tmp_path: Path, backend: dict[str, Any]) -> Iterator[Butler]:  # noqa: F811 (the fixture)
    """Visits 100 to 103 of HSC, detector 1: 100 has [Jan 1, Jan 2), 101 (open, Jan 1), 102 a
    record without a timespan, 103 no record at all."""
    Butler.makeRepo(tmp_path / "repo", backend)
    with Butler(tmp_path / "repo", run="night1") as b:
        b.registerDatasetType("raw", ("instrument", "visit", "detector"), "StructuredDataDict")
        for visit in range(100, 104):
            b.put({"v": visit}, "raw", instrument="HSC", visit=visit, detector=1)
        b.registry.insertDimensionData(
            "visit",
            [
                {"instrument": "HSC", "visit": 100, "exposureTime": 30.0, "timespan": (JAN1, JAN2)},
                {"instrument": "HSC", "visit": 101, "timespan": (None, JAN1)},
                {"instrument": "HSC", "visit": 102, "band": "g"},
            ],
        )
        yield b


def visits(butler: Butler, where: str, bind: dict[str, Any] | None = None) -> list[int]:
    """The visits of the ``raw`` datasets ``where`` matches, and check the other query verbs agree."""
    found = sorted(int(ref.dataId["visit"]) for ref in butler.queryDatasets("raw", where=where, bind=bind))
    dataIds = sorted(int(d["visit"]) for d in butler.queryDataIds("visit", where=where, bind=bind))
    records = sorted(r.visit for r in butler.registry.queryDimensionRecords("visit", where=where, bind=bind))
    assert dataIds == found and records == [v for v in found if v != 103]
    return found


@pytest.mark.parametrize(
    "where",
    [
        "visit IN (1..99999999999999999999999)",
        "visit IN (-99999999999999999999999..5)",
        "visit IN (1..5:99999999999999999999999)",
        "visit = 1e20",
        "visit = '99999999999999999999999'",
        "detector IN (1, 2, '-99999999999999999999999')",
    ],
)
def test_an_integer_beyond_64_bits_in_any_form_is_a_data_id_error(butler: Butler, where: str) -> None:
    with pytest.raises(DataIdError, match="does not fit in a signed 64-bit integer"):
        butler.queryDatasets("raw", where=where)
    assert len(butler.queryDatasets("raw")) == 4


def test_a_float_field_takes_a_big_integer(butler: Butler) -> None:
    assert visits(butler, "visit.exposureTime < 100000000000000000000") == [100]
    assert visits(butler, "visit.exposureTime < :x", {"x": 10**30}) == [100]


@pytest.mark.parametrize("time", ["2300-01-01", "1600-01-01T00:00:00", "9999-12-31T23:59:59"])
def test_a_time_literal_beyond_64_bit_nanoseconds_names_its_column(butler: Butler, time: str) -> None:
    where = f"visit.timespan OVERLAPS (T'2024-01-01', T'{time}')"
    with pytest.raises(InvalidQueryError, match=r"Column 41: .*1677-09-21.*2262-04-11"):
        butler.queryDatasets("raw", where=where)


def test_times_beyond_64_bit_nanoseconds_are_refused_everywhere(butler: Butler) -> None:
    far = datetime.datetime(2300, 1, 1, tzinfo=UTC)
    registry = butler.registry
    with pytest.raises(DatabaseValueError, match="2300-01-01"):
        butler.queryDatasets("raw", where="visit.timespan OVERLAPS :t", bind={"t": far})
    with pytest.raises(DatabaseValueError, match="2300-01-01"):
        registry.insertDimensionData("visit", {"instrument": "HSC", "visit": 104, "timespan": (JAN1, far)})
    registry.registerCollection("calib", "CALIBRATION")
    ref = butler.queryDatasets("raw", where="visit = 100")[0]
    with pytest.raises(DatabaseValueError, match="1000-01-01"):
        registry.certify("calib", [ref], (datetime.datetime(1000, 1, 1, tzinfo=UTC), JAN1))
    registry.certify("calib", [ref], (JAN1, None))
    with pytest.raises(DatabaseValueError, match="2300-01-01"):
        registry.findDataset("raw", ref.dataId, "calib", timespan=far)
    assert registry.findDataset("raw", ref.dataId, "calib", timespan=JAN2) == ref
    assert [r.visit for r in registry.queryDimensionRecords("visit")] == [100, 101, 102]


def test_a_record_timespan_with_an_open_end_is_unbounded_there(butler: Butler) -> None:
    # 101 is (unbounded, Jan 1): it holds every earlier time, as its record says.
    assert visits(butler, "visit.timespan OVERLAPS T'2023-06-01'") == [101]
    assert visits(butler, "visit.timespan OVERLAPS (T'2023-06-01', T'2023-07-01')") == [101]
    assert visits(butler, "visit.timespan OVERLAPS (NULL, T'2030-01-01')") == [100, 101]
    assert visits(butler, "visit.timespan OVERLAPS (T'2024-01-01', NULL)") == [100]
    assert visits(butler, "visit.timespan OVERLAPS T'2024-01-01T12:00'") == [100]
    assert visits(butler, "visit.timespan OVERLAPS visit.timespan") == [100, 101]


def test_a_record_without_a_timespan_matches_no_overlaps_even_negated(butler: Butler) -> None:
    # 102's record has no timespan and 103 has no record: nothing to compare, either way.
    assert visits(butler, "visit.timespan OVERLAPS (NULL, NULL)") == [100, 101]
    assert visits(butler, "NOT visit.timespan OVERLAPS T'2023-06-01'") == [100]
    assert visits(butler, "NOT visit.timespan OVERLAPS (NULL, NULL)") == []
    assert visits(butler, "visit.band = 'g' OR visit.timespan OVERLAPS T'2024-01-01T12:00'") == [100, 102]


@pytest.mark.parametrize(
    "timespan", ["(T'2024-01-02', T'2024-01-01')", "(T'2024-01-01T12:00', T'2024-01-01T12:00')", ":ts"]
)
def test_an_empty_or_inverted_timespan_in_a_query_is_refused(butler: Butler, timespan: str) -> None:
    bind = {"ts": (JAN2, JAN1)}
    with pytest.raises(InvalidQueryError, match=r"column 25: the timespan .* is empty"):
        butler.queryDatasets("raw", where=f"visit.timespan OVERLAPS {timespan}", bind=bind)


def test_a_record_timespan_that_ends_before_it_begins_is_refused(butler: Butler) -> None:
    registry = butler.registry
    with pytest.raises(DataIdError, match="ends before it begins"):
        registry.insertDimensionData("visit", {"instrument": "HSC", "visit": 104, "timespan": (JAN2, JAN1)})
    assert registry.syncDimensionData("visit", {"instrument": "HSC", "visit": 104, "timespan": (JAN1, JAN1)})
    assert [r.visit for r in registry.queryDimensionRecords("visit")] == [100, 101, 102, 104]


@pytest.mark.parametrize(
    "where",
    ["visit IN (1..99999999999999999999999)", "visit.timespan OVERLAPS T'2300-01-01'", "visit = 1e20"],
)
def test_the_cli_says_one_line_and_exits_1_for_a_value_out_of_range(butler: Butler, where: str) -> None:
    result = CliRunner().invoke(cli, ["query-datasets", str(butler.root), "raw", "-w", where])
    assert result.exit_code == 1 and result.exception is not None
    assert isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.output


def test_a_manifest_giving_one_id_to_two_datasets_is_refused_and_adds_nothing(tmp_path: Path) -> None:
    Butler.makeRepo(tmp_path / "source")
    with Butler(tmp_path / "source", run="night1") as source:
        source.registerDatasetType("metrics", ("instrument", "visit"), "StructuredDataDict")
        for visit in range(3):
            source.put({"v": visit}, "metrics", instrument="HSC", visit=visit)
        source.export(tmp_path / "export", source.queryDatasets("metrics"))
    manifestPath = tmp_path / "export" / "export.json"
    manifest = json.loads(manifestPath.read_text())
    refs = manifest["datasets"][0]["refs"]
    refs[2]["id"] = refs[0]["id"]
    manifestPath.write_text(json.dumps(manifest))
    Butler.makeRepo(tmp_path / "target")
    with Butler(tmp_path / "target", run="other") as target:
        with pytest.raises(ManifestError, match=f"have the same id {refs[0]['id']}"):
            target.import_(tmp_path / "export")
        assert target.registry.queryDatasetTypes() == []
        assert target.registry.queryCollections() == ["other"]
    assert not (tmp_path / "target" / "night1").exists()
    shutil.rmtree(tmp_path / "export")


def test_an_implied_value_only_a_later_record_of_one_insert_has_is_kept(butler: Butler) -> None:
    # One INSERT of many rows takes its columns from the first row: a band given only in the
    # second record (or a physical_filter only in the third) must not be dropped.
    registry = butler.registry
    registry.insertDimensionData(
        "visit",
        [
            {"instrument": "HSC", "visit": 200},
            {"instrument": "HSC", "visit": 201, "band": "r"},
            {"instrument": "HSC", "visit": 202, "physical_filter": "HSC-I", "band": "i"},
        ],
    )
    records = registry.queryDimensionRecords("visit", "visit >= 200")
    assert [(r.visit, r.band, r.physical_filter) for r in records] == [
        (200, None, None),
        (201, "r", None),
        (202, "i", "HSC-I"),
    ]
    assert visits(butler, "visit.band = 'g'") == [102]


@pytest.mark.parametrize("mode", ["symlink", "relsymlink", "hardlink", "copy"])
@pytest.mark.parametrize("inside", ["", "r1", "r1/metrics"])
def test_artifacts_cannot_be_retrieved_into_the_repository_itself(
    tmp_path: Path, mode: str, inside: str
) -> None:
    # With overwrite, a symbolic link written over the stored file would point at itself (and an
    # undo after a failure would delete the stored file): the datastore's root is refused.
    Butler.makeRepo(tmp_path / "repo")
    with Butler(tmp_path / "repo", run="r1") as butler:
        butler.registerDatasetType("metrics", ("visit",), "StructuredDataDict")
        refs = [butler.put({"visit": visit}, "metrics", visit=visit) for visit in range(2)]
        before = sorted(p for p in (tmp_path / "repo" / "r1").rglob("*"))
        with pytest.raises(ArtifactError, match="inside the root"):
            butler.retrieveArtifacts(refs, tmp_path / "repo" / inside, transfer=mode, overwrite=True)
        assert sorted(p for p in (tmp_path / "repo" / "r1").rglob("*")) == before
    with Butler(tmp_path / "repo", writeable=False) as fresh:  # no memory tier to hide a loss
        assert [fresh.get(ref) for ref in refs] == [{"visit": 0}, {"visit": 1}]
    (tmp_path / "link").symlink_to(tmp_path / "repo")
    result = CliRunner().invoke(
        cli, ["retrieve-artifacts", str(tmp_path / "repo"), str(tmp_path / "link"), "--clobber"]
    )
    assert result.exit_code == 1 and "inside the root" in result.output and "Traceback" not in result.output


def test_ingest_files_reads_a_csv_saved_with_a_byte_order_mark(tmp_path: Path) -> None:
    Butler.makeRepo(tmp_path / "repo")
    with Butler(tmp_path / "repo") as butler:
        butler.registerDatasetType("metrics", ("visit",), "StructuredDataDict")
    (tmp_path / "a.json").write_text('{"a": 1}')
    (tmp_path / "files.csv").write_bytes(b'\xef\xbb\xbffile,visit\r\n"a.json",7\r\n')
    result = CliRunner().invoke(
        cli, ["ingest-files", str(tmp_path / "repo"), "metrics", str(tmp_path / "files.csv"), "--run", "raw"]
    )
    assert result.exit_code == 0, result.output
    with Butler(tmp_path / "repo", writeable=False) as butler:
        assert butler.get("metrics", visit=7, collections="raw") == {"a": 1}


@pytest.mark.parametrize("items", [5, None, 3.5])
def test_put_many_of_something_not_iterable_is_a_typed_error(tmp_path: Path, items: Any) -> None:
    Butler.makeRepo(tmp_path / "repo")
    with Butler(tmp_path / "repo", run="r") as butler, pytest.raises(ArgumentTypeError, match="an iterable"):
        butler.putMany(items)


@pytest.mark.parametrize(
    "arguments",
    [
        {"where": 5},
        {"where": "visit = :v", "bind": [("v", 100)]},
        {"orderBy": [5]},
        {"limit": 2.5},
        {"limit": "3"},
        {"limit": True},
    ],
)
def test_query_arguments_of_the_wrong_type_are_typed_errors(
    butler: Butler, arguments: dict[str, Any]
) -> None:
    with pytest.raises(ArgumentTypeError):
        butler.queryDatasets("raw", **arguments)


def test_other_query_verbs_refuse_odd_arguments_with_typed_errors(butler: Butler) -> None:
    with pytest.raises(ArgumentTypeError, match="glob pattern"):
        butler.queryCollections(5)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="glob pattern"):
        butler.queryDatasetTypes([None])  # type: ignore[list-item]
    with pytest.raises(ArgumentTypeError, match="bind is a mapping"):
        butler.queryDataIds("visit", "visit = :v", bind=[("v", 1)])  # type: ignore[arg-type]
    with pytest.raises(InvalidQueryError, match="at least one dimension"):
        butler.queryDataIds([])
    with pytest.raises(DataIdError, match="does not fit in a signed 64-bit integer"):
        butler.registry.queryDimensionRecords("visit", dataId={"visit": 10**30})
    assert butler.registry.queryDimensionRecords("visit", dataId={"exposureTime": 10**30}) == []
    assert [r.visit for r in butler.registry.queryDimensionRecords("visit", dataId={"exposureTime": 30})] == [
        100
    ]


def test_a_limit_beyond_64_bits_keeps_everything(butler: Butler) -> None:
    assert len(butler.queryDatasets("raw", limit=10**30)) == 4
    assert len(butler.queryDatasets("raw", orderBy="-visit", limit=10**30)) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "{repo}", "{tmp}/out", "rwa"], "'rwa' is not registered"),
        (["export", "{repo}", "{tmp}/out", "raw", "rwa"], "'rwa' is not registered"),
        (["query-dataset-types", "{repo}", "rwa"], "'rwa' is not registered"),
        (["query-collections", "{repo}", "nigth1"], "'nigth1' is not registered"),
    ],
)
def test_a_mistyped_plain_name_is_an_error_not_an_empty_result(
    butler: Butler, tmp_path: Path, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(cli, [a.format(repo=butler.root, tmp=tmp_path) for a in args])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], result.output
    assert not (tmp_path / "out").exists()
    for pattern in (
        ["query-dataset-types", str(butler.root), "rw*"],
        ["query-collections", str(butler.root), "nigth?"],
    ):
        result = CliRunner().invoke(cli, pattern)  # a pattern that matches nothing is an empty answer
        assert result.exit_code == 0 and result.output.startswith("0 "), result.output


@pytest.mark.parametrize(
    ("exportFormat", "transfer"), [("zip", "copy"), ("zip", "hardlink"), ("directory", "copy")]
)
def test_an_import_bigger_than_the_free_disk_is_refused_before_any_byte_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exportFormat: str, transfer: str
) -> None:
    Butler.makeRepo(tmp_path / "source")
    with Butler(tmp_path / "source", run="night1") as source:
        source.registerDatasetType("metrics", ("visit",), "StructuredDataDict")
        refs = [source.put({"v": "x" * 100}, "metrics", visit=visit) for visit in range(3)]
        where = tmp_path / ("export.zip" if exportFormat == "zip" else "export")
        source.export(where, refs, format=exportFormat)
    Butler.makeRepo(tmp_path / "target")
    real = shutil.disk_usage

    def fewBytesFree(path: Any) -> Any:
        return real(path)._replace(free=200)  # less than the three files' 300-odd bytes

    monkeypatch.setattr("databutler.export.importing.shutil.disk_usage", fewBytesFree)
    with Butler(tmp_path / "target", run="other") as target:
        with pytest.raises(ExportError, match="200 free; nothing was imported"):
            target.import_(where, transfer=transfer)
        assert target.registry.queryDatasetTypes() == []
    assert sorted(p.name for p in (tmp_path / "target").iterdir() if not p.name.startswith("registry")) == [
        "butler.yaml"
    ]
    monkeypatch.undo()
    with Butler(tmp_path / "target", run="other") as target:
        assert len(target.import_(where, transfer=transfer).imported) == 3


def test_query_data_ids_takes_a_where_mapping_as_query_datasets_does(butler: Butler) -> None:
    assert butler.queryDataIds("visit", where={"visit": [100, 102]}) == [{"visit": 100}, {"visit": 102}]
    assert butler.queryDataIds("visit", where={"visit.band": "g", "detector": 1}) == [{"visit": 102}]
    assert butler.queryDataIds("visit", where={"instrument": "HSC'; DROP TABLE dataset; --"}) == []
    with pytest.raises(ArgumentTypeError, match="keys are dimension names"):
        butler.queryDataIds("visit", where={"visit = 1 OR visit": 2})
    with pytest.raises(ArgumentTypeError, match="takes where as an expression"):
        butler.registry.queryDataIds("visit", where={"visit": 100})  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="give a data ID mapping as dataId="):
        butler.registry.queryDimensionRecords("visit", where={"visit": 100})  # type: ignore[arg-type]
    assert len(butler.queryDatasets("raw")) == 4
