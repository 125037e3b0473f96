"""TAGGED and CALIBRATION collections and removal through the Butler and the CLI; old registries."""

from __future__ import annotations

import datetime
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from databutler import Butler, CollectionError, DataIdError, SqlRegistry, script
from databutler.cli.main import cli
from databutler.dimensions import Timespan
from databutler.registry import sql_registry

UTC = datetime.UTC


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def day(n: int) -> datetime.datetime:
    return datetime.datetime(2024, 1, n, tzinfo=UTC)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with raws of visits 1..5 in run1, biases in calib/a and calib/b, visit records."""
    root = tmp_path / "repo"
    Butler.makeRepo(root)
    with Butler(root, run="run1") as butler:
        butler.registerDatasetType("raw", ("instrument", "visit", "detector"), "StructuredDataDict")
        butler.registerDatasetType("bias", ("instrument", "detector"), "StructuredDataDict")
        for visit in range(1, 6):
            butler.put({"visit": visit}, "raw", instrument="HSC", visit=visit, detector=1)
        butler.put({"bias": "a"}, "bias", instrument="HSC", detector=1, run="calib/a")
        butler.put({"bias": "b"}, "bias", instrument="HSC", detector=1, run="calib/b")
        butler.registry.insertDimensionData(
            "visit",
            [
                {"instrument": "HSC", "visit": v, "timespan": (day(v * 3), day(v * 3 + 1))}
                for v in range(1, 6)
            ],
        )
    return root


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.suffix in (".json", ".yaml")]


def test_butler_get_through_calibration_collection_by_time_or_visit(repo: Path) -> None:
    assert (
        invoke("certify-calibrations", repo, "calib/a", "calib", "bias", "--end-date", "2024-01-10").exit_code
        == 0
    )
    result = invoke("certify-calibrations", repo, "calib/b", "calib", "bias", "--begin-date", "2024-01-10")
    assert result.exit_code == 0 and "Certified 1 bias dataset(s) in calib" in result.output
    with Butler(repo, collections=["calib"], writeable=False) as butler:
        assert butler.get("bias", instrument="HSC", detector=1, timespan=day(2)) == {"bias": "a"}
        assert butler.get("bias", instrument="HSC", detector=1, timespan=day(20)) == {"bias": "b"}
        assert butler.get("bias", instrument="HSC", detector=1, visit=2) == {"bias": "a"}  # Jan 6
        assert butler.get("bias", instrument="HSC", detector=1, visit=4) == {"bias": "b"}  # Jan 12
        found = butler.findDataset("bias", instrument="HSC", detector=1, visit=1)
        assert found is not None and found.run == "calib/a"
        with pytest.raises(DataIdError, match="no 'visit' record with a timespan"):
            butler.get("bias", instrument="HSC", detector=1, visit=99)
        with pytest.raises(CollectionError, match="without a time"):
            butler.get("bias", instrument="HSC", detector=1)
    result = invoke("certify-calibrations", repo, "calib/b", "calib", "bias", "--begin-date", "2024-01-05")
    assert (
        result.exit_code == 1 and "overlaps" in result.output and len(result.output.strip().splitlines()) == 1
    )
    result = invoke("certify-calibrations", repo, "calib/b", "calib", "bias", "--begin-date", "Jan 5")
    assert result.exit_code == 1 and "not an ISO 8601 date" in result.output


def test_cli_associate_and_remove_collections(repo: Path) -> None:
    result = invoke("associate", repo, "best", "raw", "-c", "run1", "-w", "visit > 3")
    assert result.exit_code == 0 and "Associated 2 dataset(s) with best." in result.output
    invoke("collection-chain", repo, "chain", "best")
    with Butler(repo, writeable=False) as butler:
        assert sorted(r.dataId["visit"] for r in butler.queryDatasets("raw", collections="best")) == [4, 5]
        assert butler.get("raw", instrument="HSC", visit=4, detector=1, collections=["chain"]) == {"visit": 4}
        assert butler.registry.queryCollections("TAGGED") == ["best"]
    result = invoke("remove-collections", repo, "best")
    assert result.exit_code == 1 and "chain(s) ['chain'] list it" in result.output
    result = invoke("remove-collections", repo, "chain", "best")
    assert result.exit_code == 0 and "Removed TAGGED collection best." in result.output
    result = invoke("remove-collections", repo, "run1")
    assert result.exit_code == 1 and "remove-runs" in result.output
    with Butler(repo, writeable=False) as butler:
        assert butler.registry.queryCollections() == ["calib/a", "calib/b", "run1"]
        assert len(butler.queryDatasets("raw", collections="run1")) == 5  # the datasets stay


def test_remove_runs_in_chunks_deletes_files_and_run(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sql_registry, "REMOVAL_CHUNK", 2)  # 5 datasets: three chunks
    before = len(_files(repo))
    invoke("collection-chain", repo, "chain", "run1")
    result = invoke("remove-runs", repo, "calib/a", "run1")
    assert result.exit_code == 1 and "chain(s) ['chain'] list it" in result.output
    with Butler(repo, writeable=False) as butler:
        assert butler.registry.queryRuns() == ["calib/a", "calib/b", "run1"]  # nothing removed
    invoke("remove-collections", repo, "chain")
    result = invoke("remove-runs", repo, "run1")
    assert result.exit_code == 0 and "Removed run run1 (5 dataset(s))." in result.output
    assert len(_files(repo)) == before - 5
    with Butler(repo) as butler:
        assert butler.registry.queryRuns() == ["calib/a", "calib/b"]
        butler.removeRuns(["calib/a"], unstore=False)  # files kept, then orphans
        assert butler.registry.queryRuns() == ["calib/b"]
    assert len(_files(repo)) == before - 5
    assert any("calib/a" in uri for uri in script.findOrphans(repo))
    result = invoke("remove-runs", repo, "nope")
    assert result.exit_code == 1 and "'nope' is not registered" in result.output


def test_cli_remove_dataset_type(repo: Path) -> None:
    result = invoke("remove-dataset-type", repo, "raw")
    assert result.exit_code == 1 and "5 dataset(s) of it exist" in result.output
    invoke("remove-runs", repo, "run1")
    result = invoke("remove-dataset-type", repo, "raw")
    assert result.exit_code == 0 and "Removed dataset type raw." in result.output
    assert "not registered" in invoke("remove-dataset-type", repo, "raw").output
    with Butler(repo, writeable=False) as butler:
        assert [t.name for t in butler.registry.queryDatasetTypes()] == ["bias"]


def test_registry_made_without_the_collection_tables_opens_and_works(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    with SqlRegistry(f"sqlite:///{path}", create=True) as registry:
        registry.registerRun("run1")
    connection = sqlite3.connect(path)  # what the previous release made: no such tables
    for table in ("collection_calibration", "collection_tag", "collection"):
        connection.execute(f"DROP TABLE {table}")
    connection.commit()
    connection.close()
    path.chmod(0o444)
    with SqlRegistry(f"sqlite:///{path}", readOnly=True) as registry:  # read-only: nothing to create
        assert registry.queryCollections() == ["run1"]
        assert registry.queryCollections("TAGGED") == []
    path.chmod(0o644)
    with SqlRegistry(f"sqlite:///{path}") as registry:  # writeable: the tables are made on open
        assert registry.registerCollection("calib", "CALIBRATION") is True
        assert registry.queryCollections() == ["calib", "run1"]
        registry.certify("calib", [], Timespan(day(1), None))
