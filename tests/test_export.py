"""Butler.export and ``databutler export``: the manifest, the files, zip exports and refusals."""

from __future__ import annotations

import datetime
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from databutler import ArgumentTypeError, Butler, ExportError, InvalidQueryError
from databutler.cli.main import cli
from databutler.datastores.file._io import newHasher
from databutler.export import readManifest

UTC = datetime.UTC


def makeSource(root: Path, count: int = 3) -> Butler:
    Butler.makeRepo(root)
    butler = Butler(root, run="night1")
    registry = butler.registry
    registry.insertDimensionData("instrument", {"instrument": "HSC", "visitMax": 99, "detectorMax": 9})
    registry.insertDimensionData(
        "physical_filter", {"instrument": "HSC", "physical_filter": "HSC-R", "band": "r"}
    )
    start = datetime.datetime(2024, 1, 1, tzinfo=UTC)
    for visit in range(1, count + 1):
        registry.insertDimensionData(
            "visit",
            {
                "instrument": "HSC",
                "visit": visit,
                "physical_filter": "HSC-R",
                "timespan": (start, start + datetime.timedelta(minutes=visit)),
            },
        )
    registry.insertDimensionData("visit", {"instrument": "HSC", "visit": 500, "physical_filter": "HSC-R"})
    butler.registerDatasetType("metrics", ("instrument", "visit"), "StructuredDataDict")
    butler.registerDatasetType("other", ("instrument",), "StructuredDataDict")
    for visit in range(1, count + 1):
        butler.put({"visit": visit, "seeing": 0.5 + visit}, "metrics", instrument="HSC", visit=visit)
    butler.put({"x": 1}, "other", instrument="HSC", run="night2")
    registry.setCollectionChain("all", ["night1", "night2"])
    return butler


def hashOf(path: Path, algorithm: str) -> str:
    hasher = newHasher(algorithm)
    hasher.update(path.read_bytes())
    return f"{algorithm}:{hasher.hexdigest()}"


def test_directory_export_has_manifest_and_identical_files(tmp_path: Path) -> None:
    butler = makeSource(tmp_path / "repo")
    target = tmp_path / "out"
    manifest = butler.export(target, collections=["all"], manifestFormat="yaml")
    data = yaml.safe_load((target / "export.yaml").read_text())
    assert data["databutlerExport"] == 1
    assert {t["name"] for t in data["datasetTypes"]} == {"metrics", "other"}
    assert data["collections"] == [
        {"name": "night1", "type": "RUN"},
        {"name": "night2", "type": "RUN"},
        {"name": "all", "type": "CHAINED", "children": ["night1", "night2"]},
    ]
    # the records the data IDs use (not visit 500), and those their records imply
    visits = [r["visit"] for r in data["dimensionRecords"]["visit"]]
    assert visits == [1, 2, 3]
    assert data["dimensionRecords"]["physical_filter"] == [
        {"instrument": "HSC", "physical_filter": "HSC-R", "band": "r"}
    ]
    assert data["dimensionRecords"]["visit"][0]["timespan"] == [
        "2024-01-01T00:00:00+00:00",
        "2024-01-01T00:01:00+00:00",
    ]
    refs = {ref.id: ref for ref in butler.queryDatasets(collections=["night1", "night2"])}
    assert {d.id for d in manifest.datasets} == set(refs)
    for dataset in manifest.datasets:
        assert dataset.dataId == dict(refs[dataset.id].dataId)
        (exported,) = dataset.files
        file = target / exported.path
        assert file.is_file()
        assert file.stat().st_size == exported.fileSize
        assert exported.checksum is not None
        assert hashOf(file, exported.checksum.split(":")[0]) == exported.checksum
        assert file.read_bytes() == Path(butler.getUri(refs[dataset.id]).removeprefix("file://")).read_bytes()
    reread = readManifest((target / "export.yaml").read_bytes(), "yaml", "export.yaml")
    assert reread.datasets == manifest.datasets


def test_export_by_query_chooses_types_and_data_ids(tmp_path: Path) -> None:
    butler = makeSource(tmp_path / "repo", count=5)
    manifest = butler.export(tmp_path / "out", datasetTypes="met*", where="visit > :low", bind={"low": 3})
    assert sorted(d.dataId["visit"] for d in manifest.datasets) == [4, 5]
    assert [t["name"] for t in manifest.datasetTypes] == ["metrics"]
    assert [c["name"] for c in manifest.collections] == ["night1"]
    with pytest.raises(InvalidQueryError):
        butler.export(tmp_path / "bad", where="visit >")
    assert not (tmp_path / "bad").exists()


def test_export_of_given_refs_and_json_manifest(tmp_path: Path) -> None:
    butler = makeSource(tmp_path / "repo")
    refs = butler.queryDatasets("metrics", where={"visit": 2})
    manifest = butler.export(tmp_path / "out", refs)  # JSON by default
    data = json.loads((tmp_path / "out" / "export.json").read_text())
    assert [r["id"] for g in data["datasets"] for r in g["refs"]] == [str(refs[0].id)]
    assert len(manifest.datasets) == 1
    with pytest.raises(ArgumentTypeError, match="refs or a query"):
        butler.export(tmp_path / "other", refs, where="visit = 1")


def test_zip_export_holds_manifest_and_files(tmp_path: Path) -> None:
    butler = makeSource(tmp_path / "repo")
    manifest = butler.export(tmp_path / "out.zip", format="zip")
    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        names = set(archive.namelist())
        assert names == {"export.json", *manifest.paths()}
        for dataset in manifest.datasets:
            (exported,) = dataset.files
            assert archive.getinfo(exported.path).file_size == exported.fileSize
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export-")]  # no temporary left


def test_export_refuses_an_existing_destination(tmp_path: Path) -> None:
    butler = makeSource(tmp_path / "repo")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not an empty folder"):
        butler.export(tmp_path / "full")
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]
    (tmp_path / "taken.zip").write_text("x")
    with pytest.raises(ExportError, match="exists"):
        butler.export(tmp_path / "taken.zip", format="zip")
    assert (tmp_path / "taken.zip").read_text() == "x"
    with pytest.raises(ExportError, match="format"):
        butler.export(tmp_path / "new", format="tar")
    (tmp_path / "empty").mkdir()
    assert len(butler.export(tmp_path / "empty").datasets) == 3  # an empty folder is fine (night1 only)


def test_export_of_a_missing_file_leaves_no_export(tmp_path: Path) -> None:
    butler = makeSource(tmp_path / "repo")
    ref = butler.queryDatasets("metrics", where={"visit": 2})[0]
    Path(butler.getUri(ref).removeprefix("file://")).unlink()
    with pytest.raises(FileNotFoundError):
        butler.export(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_export_and_its_one_line_errors(tmp_path: Path) -> None:
    makeSource(tmp_path / "repo").close()
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["export", str(tmp_path / "repo"), str(tmp_path / "out.zip"), "metrics", "-w", "visit < 3", "--zip"],
    )
    assert result.exit_code == 0, result.output
    assert "Exported 2 dataset(s)" in result.output
    assert zipfile.is_zipfile(tmp_path / "out.zip")
    again = runner.invoke(cli, ["export", str(tmp_path / "repo"), str(tmp_path / "out.zip")])
    assert again.exit_code == 1
    assert again.output.count("\n") == 1 and "Traceback" not in again.output
    assert "ExportError" in again.output


@pytest.mark.parametrize("size", [0, 1, 4096, (1 << 20) + 7])
@pytest.mark.parametrize("sendfile", ["works", "refused"])
def test_copy_local_file_copies_every_byte_and_never_replaces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int, sendfile: str
) -> None:
    import errno
    import os

    from databutler.export.exporting import copyLocalFile

    if sendfile == "refused":  # a file system sendfile cannot copy between: read and write instead

        def refused(*args: object) -> int:
            raise OSError(errno.EINVAL, "Invalid argument")

        monkeypatch.setattr(os, "sendfile", refused)
    data = os.urandom(size)
    (tmp_path / "source").write_bytes(data)
    copyLocalFile(str(tmp_path / "source"), str(tmp_path / "copy"))
    assert (tmp_path / "copy").read_bytes() == data
    (tmp_path / "taken").write_bytes(b"mine")
    with pytest.raises(FileExistsError):
        copyLocalFile(str(tmp_path / "source"), str(tmp_path / "taken"))
    assert (tmp_path / "taken").read_bytes() == b"mine"
    with pytest.raises(FileNotFoundError):
        copyLocalFile(str(tmp_path / "missing"), str(tmp_path / "other"))
    assert not (tmp_path / "other").exists()


def test_an_export_whose_file_is_gone_leaves_nothing(tmp_path: Path) -> None:
    from databutler import DatasetNotFoundError

    with makeSource(tmp_path / "source") as butler:
        refs = butler.queryDatasets("metrics", collections=["night1"])
        Path(butler.getUri(refs[-1]).removeprefix("file://")).unlink()
        with pytest.raises(DatasetNotFoundError, match="the file is gone"):
            butler.export(tmp_path / "out", refs)
    assert not (tmp_path / "out").exists()


def storedPaths(butler: Butler, refs: list[Any]) -> list[Path]:
    return [Path(butler.getUri(ref).removeprefix("file://")) for ref in refs]


def test_a_hardlink_export_links_the_stored_files_and_imports_like_a_copy(tmp_path: Path) -> None:
    with makeSource(tmp_path / "repo") as butler:
        refs = butler.queryDatasets("metrics", collections=["night1"])
        manifest = butler.export(tmp_path / "out", refs, transfer="hardlink")
        stored = storedPaths(butler, refs)
    exported = [tmp_path / "out" / path for path in manifest.paths()]
    assert [p.stat().st_ino for p in exported] == [p.stat().st_ino for p in stored]  # no byte copied
    assert all(p.stat().st_nlink == 2 for p in stored)
    Butler.makeRepo(tmp_path / "other")
    with Butler(tmp_path / "other") as other:
        result = other.import_(tmp_path / "out", transfer="hardlink")
        assert [other.get(ref) for ref in result.imported] == [
            {"visit": v, "seeing": 0.5 + v} for v in (1, 2, 3)
        ]
        assert all(p.stat().st_nlink == 3 for p in stored)  # the export, and the second repository


def test_link_falls_back_to_copies_and_hardlink_refuses_where_no_link_can_be_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    def crossDevice(source: str, target: str) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    with makeSource(tmp_path / "repo") as butler:
        refs = butler.queryDatasets("metrics", collections=["night1"])
        monkeypatch.setattr(os, "link", crossDevice)
        manifest = butler.export(tmp_path / "copied", refs, transfer="link")
        stored = storedPaths(butler, refs)
        copies = [tmp_path / "copied" / path for path in manifest.paths()]
        assert [p.read_bytes() for p in copies] == [p.read_bytes() for p in stored]
        assert all(p.stat().st_nlink == 1 for p in stored)
        with pytest.raises(ExportError, match="hard-link"):
            butler.export(tmp_path / "linked", refs, transfer="hardlink")
        assert not (tmp_path / "linked").exists()  # nothing was exported
        with pytest.raises(ExportError, match="zip export holds copies"):
            butler.export(tmp_path / "out.zip", refs, format="zip", transfer="hardlink")
        with pytest.raises(ExportError, match="Unknown export transfer"):
            butler.export(tmp_path / "other", refs, transfer="symlink")


def test_cli_export_with_hard_links(tmp_path: Path) -> None:
    makeSource(tmp_path / "repo").close()
    result = CliRunner().invoke(
        cli, ["export", str(tmp_path / "repo"), str(tmp_path / "out"), "metrics", "--transfer", "hardlink"]
    )
    assert result.exit_code == 0, result.output
    manifest = readManifest((tmp_path / "out" / "export.json").read_bytes(), "json", "x")
    assert all((tmp_path / "out" / path).stat().st_nlink == 2 for path in manifest.paths())
