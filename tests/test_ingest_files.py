"""``databutler ingest-files``: a CSV, ECSV or Parquet table of files and data IDs, all or nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from databutler import Butler, IngestError, script
from databutler.cli import cli
from databutler.script.ingest import ingestFiles


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    script.createRepo(root)
    script.registerDatasetType(root, "raw", "StructuredDataDict", ("visit", "detector"))
    return root


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    for i in range(4):
        (folder / f"f{i}.json").write_text(json.dumps({"i": i}))
    return folder


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def oneLineError(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def count(repo: Path) -> int:
    with Butler(repo, writeable=False) as butler:
        return butler.queryDatasets("raw").count()


def writeCsv(path: Path, rows: list[str], header: str = "file,visit,detector") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_a_csv_table_is_ingested_relative_to_its_folder(repo: Path, data: Path) -> None:
    table = writeCsv(data / "files.csv", [f"f{i}.json,{i},1" for i in range(4)])
    result = invoke("ingest-files", repo, "raw", table, "--run", "night1")
    assert result.exit_code == 0, result.output
    assert "Ingested 4 file(s) as 'raw' into run 'night1' (auto)." in result.stdout
    with Butler(repo, collections=["night1"]) as butler:
        assert [butler.get("raw", visit=i, detector=1) for i in range(4)] == [{"i": i} for i in range(4)]


def test_columns_in_any_order_a_named_file_column_and_a_transfer_mode(repo: Path, data: Path) -> None:
    table = writeCsv(
        data / "files.csv", [f"1,{i},{data / f'f{i}.json'}" for i in range(2)], header="detector,visit,path"
    )
    result = invoke(
        "ingest-files", repo, "raw", table, "-r", "night1", "--file-column", "path", "--transfer", "symlink"
    )
    assert result.exit_code == 0, result.output
    with Butler(repo, collections=["night1"]) as butler:
        ref = butler.findDataset("raw", {"visit": 1, "detector": 1})
        assert ref is not None
        assert Path(butler.getUri(ref).removeprefix("file://")).is_symlink()


@pytest.mark.parametrize(
    ("rows", "header", "message"),
    [
        (
            ["f0.json,0,1", "f1.json,1,1", "nowhere.json,2,1"],
            None,
            r"line 4: file .*nowhere.json' does not exist",
        ),
        (["f0.json,0,1", "f1.json,one,1"], None, r"line 3: .*visit='one' is not an integer"),
        (["f0.json,0,1", "f1.json,0,1"], None, r"line 3: data ID .* is also on line 2"),
        (["f0.json,0,1", ",1,1"], None, r"line 3: no file in column 'file'"),
        (["f0.json,0,1", "f1.json,1"], None, r"line 3: 2 field\(s\), but the header names 3"),
        (["f0.json,0"], "file,visit", r"header: the columns must be file, .*missing detector"),
        (["f0.json,0,1,2"], "file,visit,detector,band", r"header: .*unexpected band"),
        (["f0.json,0,1", "", "f1.json,1,1", ".,2,1"], None, r"line 5: file .* is not a regular file"),
    ],
)
def test_a_bad_row_is_reported_by_line_and_nothing_is_ingested(
    repo: Path, data: Path, rows: list[str], header: str | None, message: str
) -> None:
    table = writeCsv(data / "files.csv", rows, **({"header": header} if header else {}))
    line = oneLineError(invoke("ingest-files", repo, "raw", table, "--run", "night1"))
    assert "nothing was ingested" in line and "[IngestError]" in line
    assert re.search(message, line), line
    assert count(repo) == 0
    assert sorted(p.name for p in (repo).rglob("*.json")) == []


def test_a_conflict_with_a_stored_dataset_ingests_nothing(repo: Path, data: Path) -> None:
    ingestFiles(repo, "raw", writeCsv(data / "one.csv", ["f0.json,0,1"]), "night1")
    table = writeCsv(data / "files.csv", ["f1.json,1,1", "f2.json,0,1"])
    line = oneLineError(invoke("ingest-files", repo, "raw", table, "--run", "night1"))
    assert "ConflictingDatasetError" in line
    assert count(repo) == 1


def test_ecsv_and_parquet_tables(repo: Path, data: Path) -> None:
    astropyTable = pytest.importorskip("astropy.table")
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    ecsv = data / "files.ecsv"
    astropyTable.Table({"file": ["f0.json", "f1.json"], "visit": [0, 1], "detector": [1, 1]}).write(ecsv)
    assert len(ingestFiles(repo, "raw", ecsv, "a").refs) == 2
    parquet = data / "files.parquet"
    pq.write_table(pa.table({"file": ["f2.json", "f3.json"], "visit": [2, 3], "detector": [1, 1]}), parquet)
    assert len(ingestFiles(repo, "raw", parquet, "b").refs) == 2
    with Butler(repo, collections=["a", "b"]) as butler:
        assert butler.get("raw", visit=3, detector=1) == {"i": 3}


def test_bad_ecsv_and_parquet_rows_name_their_line_or_row(repo: Path, data: Path) -> None:
    astropyTable = pytest.importorskip("astropy.table")
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    ecsv = data / "files.ecsv"
    astropyTable.Table({"file": ["f0.json", "gone.json"], "visit": [0, 1], "detector": [1, 1]}).write(ecsv)
    lines = ecsv.read_text().splitlines()
    goneLine = next(i for i, text in enumerate(lines, start=1) if "gone.json" in text)
    with pytest.raises(IngestError, match=rf"line {goneLine}: file .*gone.json' does not exist"):
        ingestFiles(repo, "raw", ecsv, "a")
    parquet = data / "files.parquet"
    columns = {"file": ["f0.json", "f1.json"], "visit": ["0", "x"], "detector": [1, 1]}
    pq.write_table(pa.table(columns), parquet)
    with pytest.raises(IngestError, match=r"files.parquet, row 2: .*visit='x' is not an integer"):
        ingestFiles(repo, "raw", parquet, "b")
    assert count(repo) == 0


def test_unreadable_tables_are_one_line_errors(repo: Path, data: Path) -> None:
    assert "is not .csv, .ecsv or .parquet" in oneLineError(
        invoke("ingest-files", repo, "raw", data / "f0.json", "--run", "r")
    )
    assert "does not exist" in oneLineError(
        invoke("ingest-files", repo, "raw", data / "none.csv", "--run", "r")
    )
    (data / "broken.parquet").write_bytes(b"not parquet at all")
    assert "Cannot read Parquet table" in oneLineError(
        invoke("ingest-files", repo, "raw", data / "broken.parquet", "--run", "r")
    )
    (data / "empty.csv").write_text("")
    assert "is empty" in oneLineError(invoke("ingest-files", repo, "raw", data / "empty.csv", "--run", "r"))
    assert "MissingDatasetTypeError" in oneLineError(
        invoke("ingest-files", repo, "nope", writeCsv(data / "t.csv", ["f0.json,0,1"]), "--run", "r")
    )
    assert count(repo) == 0


def test_a_progress_bar_when_asked_or_on_a_terminal(repo: Path, data: Path) -> None:
    table = writeCsv(data / "files.csv", [f"f{i}.json,{i},1" for i in range(3)])
    shown = invoke("ingest-files", repo, "raw", table, "--run", "a", "--progress")
    assert shown.exit_code == 0, shown.output
    assert "Ingesting 3 file(s)" in shown.stderr and "3/3" in shown.stderr
    quiet = invoke("ingest-files", repo, "raw", table, "--run", "b")  # CliRunner: not a terminal
    assert quiet.exit_code == 0 and quiet.stderr == ""
