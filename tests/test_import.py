"""Butler.import_ and ``databutler import``: ids kept, idempotent, verified, all or nothing, hostile exports."""

from __future__ import annotations

import datetime
import json
import shutil
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from databutler import (
    Butler,
    CollectionError,
    ConflictingDatasetError,
    ConflictingRecordError,
    DatasetExistsError,
    DatasetIntegrityError,
    DatasetTypeConflictError,
    ExportError,
    FormatterError,
    IngestError,
    ManifestError,
    MaskedImage,
    UnknownStorageClassError,
    UnsafePathError,
)
from databutler.cli.main import cli
from databutler.testing.registry_support import dropNamespace, newNamespace, postgresUrl

UTC = datetime.UTC


def makeSource(root: Path, count: int = 4) -> Butler:
    Butler.makeRepo(root)
    butler = Butler(root, run="night1")
    registry = butler.registry
    registry.insertDimensionData("instrument", {"instrument": "HSC", "visitMax": 99, "detectorMax": 9})
    start = datetime.datetime(2024, 1, 1, tzinfo=UTC)
    for visit in range(count):
        registry.insertDimensionData(
            "visit",
            {"instrument": "HSC", "visit": visit, "timespan": (start, start + datetime.timedelta(minutes=1))},
        )
    butler.registerDatasetType("metrics", ("instrument", "visit"), "StructuredDataDict")
    for visit in range(count):
        butler.put({"visit": visit, "seeing": 0.5 + visit}, "metrics", instrument="HSC", visit=visit)
    butler.registry.setCollectionChain("all", ["night1"])
    return butler


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    with makeSource(tmp_path / "source") as butler:
        butler.export(tmp_path / "exported", collections=["all"], manifestFormat="yaml")
    return tmp_path / "exported"


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Butler]:
    """An empty repository on a SQLite registry, then on a real PostgreSQL one."""
    config: dict[str, Any] = {}
    namespace = None
    if request.param == "postgresql":
        url = postgresUrl()
        namespace = newNamespace()
        config = {"registry": {"db": url, "namespace": namespace}}
    Butler.makeRepo(tmp_path / "target", config)
    try:
        with Butler(tmp_path / "target") as b:
            yield b
    finally:
        if namespace is not None:
            dropNamespace(url, namespace)


@pytest.fixture
def sqliteTarget(tmp_path: Path) -> Iterator[Butler]:
    Butler.makeRepo(tmp_path / "target")
    with Butler(tmp_path / "target") as b:
        yield b


def datasetFiles(butler: Butler) -> list[Path]:
    """Every file under the root but the repository's own (config, registry, records)."""
    own = {"butler.yaml", "gen3.sqlite3", "registry.sqlite3"}
    return sorted(
        p
        for p in butler.root.rglob("*")
        if (p.is_file() or p.is_symlink())
        and p.name not in own
        and not p.name.startswith("registry")
        and not p.name.endswith((".sqlite3", ".sqlite3-wal", ".sqlite3-shm", ".reserve"))
    )


def assertEmpty(butler: Butler) -> None:
    """Nothing of an import is left: no dataset, type, run, chain, record or file."""
    assert butler.registry.queryDatasetTypes() == []
    assert butler.registry.queryCollections() == []
    assert butler.registry.queryDimensionRecords("visit") == []
    assert datasetFiles(butler) == []


def editManifest(folder: Path, change: Any) -> None:
    path = folder / "export.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


def firstFile(data: dict[str, Any]) -> dict[str, Any]:
    return data["datasets"][0]["refs"][0]["files"][0]


# -- round trips --


def test_import_keeps_ids_content_records_and_chains(exported: Path, target: Butler, tmp_path: Path) -> None:
    result = target.import_(exported)
    assert len(result.imported) == 4 and result.skipped == []
    with Butler(tmp_path / "source", writeable=False) as source:
        expected = {ref.id: source.get(ref) for ref in source.queryDatasets("metrics")}
    got = {ref.id: target.get(ref) for ref in target.queryDatasets("metrics", collections=["night1"])}
    assert got == expected
    assert target.registry.getCollectionChain("all") == ["night1"]
    records = target.registry.queryDimensionRecords("visit")
    assert [r.visit for r in records] == [0, 1, 2, 3]
    assert records[0].timespan.begin == datetime.datetime(2024, 1, 1, tzinfo=UTC)
    assert target.datastore.verify(result.imported[0])


def test_a_second_import_adds_nothing(exported: Path, target: Butler) -> None:
    first = target.import_(exported)
    files = datasetFiles(target)
    second = target.import_(exported)
    assert second.imported == [] and sorted(second.skipped) == sorted(first.imported)
    assert datasetFiles(target) == files
    assert target.queryDatasets("metrics", collections=["night1"]).count() == 4
    with pytest.raises(ConflictingDatasetError, match="skipExisting"):
        target.import_(exported, skipExisting=False)


def test_zip_import_with_a_json_manifest(tmp_path: Path, sqliteTarget: Butler) -> None:
    with makeSource(tmp_path / "source") as butler:
        butler.export(tmp_path / "out.zip", format="zip")  # a JSON manifest
    result = sqliteTarget.import_(tmp_path / "out.zip")
    assert len(result.imported) == 4
    assert sqliteTarget.get("metrics", instrument="HSC", visit=2, collections=["night1"])["visit"] == 2
    assert not [p for p in sqliteTarget.root.rglob(".import-*")]  # the scratch folder is gone
    assert sqliteTarget.import_(tmp_path / "out.zip").imported == []


@pytest.mark.parametrize("mode", ["copy", "move", "hardlink", "symlink", "relsymlink", "link"])
def test_each_transfer_mode_imports_readable_datasets(
    exported: Path, sqliteTarget: Butler, mode: str
) -> None:
    result = sqliteTarget.import_(exported, transfer=mode)
    for ref in result.imported:
        assert sqliteTarget.get(ref)["visit"] == ref.dataId["visit"]
    moved = [p for p in exported.rglob("*.json")]
    assert (moved == []) == (mode == "move")


def test_a_composite_stored_as_several_files_round_trips(tmp_path: Path, sqliteTarget: Butler) -> None:
    Butler.makeRepo(tmp_path / "source")
    with Butler(tmp_path / "source", run="r") as source:
        source.registerDatasetType("image", ("visit",), "MaskedImage")
        image = MaskedImage(
            image=np.arange(6.0).reshape(2, 3), mask=np.zeros((2, 3), np.int32), metadata={"a": 1}
        )
        ref = source.put(image, "image", visit=1)
        manifest = source.export(tmp_path / "out")
    assert len(manifest.datasets[0].files) == 3  # disassembled: one file per component
    (imported,) = sqliteTarget.import_(tmp_path / "out").imported
    assert imported.id == ref.id
    np.testing.assert_array_equal(sqliteTarget.get(imported).image, image.image)
    assert sqliteTarget.get("image.metadata", visit=1, collections=["r"]) == {"a": 1}


# -- refusals, each leaving nothing behind --


def test_a_conflicting_dataset_type_is_refused(exported: Path, target: Butler) -> None:
    target.registerDatasetType("metrics", ("instrument", "visit"), "StructuredDataList")
    with pytest.raises(DatasetTypeConflictError, match="metrics"):
        target.import_(exported)
    assert target.registry.queryCollections() == []
    assert datasetFiles(target) == []


def test_a_different_dataset_at_the_same_id_is_refused(exported: Path, target: Butler) -> None:
    target.import_(exported)
    editManifest(exported, lambda d: d["datasets"][0]["refs"][0]["dataId"].update(visit=3))
    editManifest(exported, lambda d: d["datasets"][0].update(run="night9"))
    with pytest.raises(ConflictingDatasetError, match="already uses for another dataset"):
        target.import_(exported)
    assert "night9" not in target.registry.queryCollections()


def test_a_checksum_mismatch_half_way_leaves_nothing(exported: Path, target: Butler) -> None:
    files = sorted(exported.rglob("*.json"))
    victim = files[-1]
    data = bytearray(victim.read_bytes())
    data[-2] ^= 1  # same size, other bytes
    victim.write_bytes(bytes(data))
    with pytest.raises(DatasetIntegrityError, match="checksum"):
        target.import_(exported)
    assertEmpty(target)


def test_a_size_mismatch_is_refused_before_anything_is_written(exported: Path, target: Butler) -> None:
    victim = sorted(exported.rglob("*.json"))[1]
    victim.write_bytes(victim.read_bytes() + b" ")
    with pytest.raises(DatasetIntegrityError, match="bytes"):
        target.import_(exported)
    assertEmpty(target)


def test_a_checksum_mismatch_is_found_with_another_algorithm_here(exported: Path, tmp_path: Path) -> None:
    Butler.makeRepo(tmp_path / "b2", {"datastore": {"datastores": [
        {"datastore": {"cls": "databutler.datastores.memory.InMemoryDatastore"}},
        {"datastore": {"cls": "databutler.datastores.file.FileDatastore", "root": "<butlerRoot>", "checksum": "blake2b"}},
    ]}})  # fmt: skip
    victim = sorted(exported.rglob("*.json"))[0]
    data = bytearray(victim.read_bytes())
    data[1] ^= 1
    victim.write_bytes(bytes(data))
    with Butler(tmp_path / "b2") as butler, pytest.raises(DatasetIntegrityError, match="checksum"):
        butler.import_(exported)


def test_a_conflicting_dimension_record_leaves_nothing(exported: Path, sqliteTarget: Butler) -> None:
    sqliteTarget.registry.insertDimensionData(
        "instrument", {"instrument": "HSC", "visitMax": 5, "detectorMax": 9}
    )
    with pytest.raises(ConflictingRecordError):
        sqliteTarget.import_(exported)
    assert sqliteTarget.registry.queryDatasetTypes() == []
    assert datasetFiles(sqliteTarget) == []


def test_a_chain_that_differs_here_is_refused(exported: Path, sqliteTarget: Butler) -> None:
    sqliteTarget.registry.registerRun("mine")
    sqliteTarget.registry.setCollectionChain("all", ["mine"])
    with pytest.raises(CollectionError, match="chain 'all'"):
        sqliteTarget.import_(exported)
    assert sqliteTarget.registry.queryDatasetTypes() == []


def test_a_dimension_this_repository_lacks_is_refused(tmp_path: Path, sqliteTarget: Butler) -> None:
    config = {"registry": {"dimensions": {"ccd": {"type": "str"}}}}
    Butler.makeRepo(tmp_path / "ccdRepo", config)
    with Butler(tmp_path / "ccdRepo", run="r") as source:
        source.registerDatasetType("raw", ("ccd",), "StructuredDataDict")
        source.put({"a": 1}, "raw", ccd="S1")
        source.export(tmp_path / "out")
    with pytest.raises(ExportError, match="dimension 'ccd'"):
        sqliteTarget.import_(tmp_path / "out")
    assertEmpty(sqliteTarget)


# -- hostile exports --


@pytest.mark.parametrize("path", ["../outside.json", "/tmp/outside.json", "night1/../../outside.json"])
def test_paths_that_escape_are_refused(exported: Path, sqliteTarget: Butler, path: str) -> None:
    editManifest(exported, lambda d: firstFile(d).update(path=path))
    with pytest.raises(UnsafePathError):
        sqliteTarget.import_(exported)
    assertEmpty(sqliteTarget)


def test_a_symlink_in_the_export_is_refused(exported: Path, sqliteTarget: Butler, tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    victim = sorted(exported.rglob("*.json"))[0]
    secret.write_bytes(victim.read_bytes())  # same size and checksum: only the link gives it away
    victim.unlink()
    victim.symlink_to(secret)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        sqliteTarget.import_(exported)
    assertEmpty(sqliteTarget)
    # a linked folder on the way is refused too
    folder = victim.parent
    shutil.move(folder, tmp_path / "elsewhere")
    folder.symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere" / victim.name).unlink()
    shutil.copy(secret, tmp_path / "elsewhere" / victim.name)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        sqliteTarget.import_(exported)
    assertEmpty(sqliteTarget)


@pytest.mark.parametrize("size", [-1, 1 << 62, "12"])
def test_absurd_sizes_are_refused(exported: Path, sqliteTarget: Butler, size: Any) -> None:
    editManifest(exported, lambda d: firstFile(d).update(fileSize=size))
    with pytest.raises(ManifestError, match="fileSize"):
        sqliteTarget.import_(exported)
    assertEmpty(sqliteTarget)


def test_a_wrong_recorded_checksum_is_refused(exported: Path, sqliteTarget: Butler) -> None:
    editManifest(exported, lambda d: firstFile(d).update(checksum="xxh3_128:" + "0" * 32))
    with pytest.raises(DatasetIntegrityError, match="checksum"):
        sqliteTarget.import_(exported)
    assertEmpty(sqliteTarget)


def test_malformed_manifests_are_refused(exported: Path, sqliteTarget: Butler) -> None:
    (exported / "export.yaml").write_text("databutlerExport: 1\ndatasets: [unclosed\n")
    with pytest.raises(ManifestError, match="not valid YAML"):
        sqliteTarget.import_(exported)
    (exported / "export.yaml").unlink()
    (exported / "export.json").write_text('{"databutlerExport": 1, "datasets": {')
    with pytest.raises(ManifestError, match="not valid JSON"):
        sqliteTarget.import_(exported)
    (exported / "export.json").unlink()
    with pytest.raises(ExportError, match="one manifest"):
        sqliteTarget.import_(exported)
    assertEmpty(sqliteTarget)


def test_an_unknown_storage_class_is_refused(exported: Path, sqliteTarget: Butler) -> None:
    editManifest(exported, lambda d: d["datasetTypes"][0].update(storageClass="EvilClass"))
    with pytest.raises(UnknownStorageClassError, match="EvilClass"):
        sqliteTarget.import_(exported)
    assertEmpty(sqliteTarget)


def test_a_pickle_or_foreign_formatter_is_refused_and_nothing_unpickled(
    exported: Path, sqliteTarget: Butler, tmp_path: Path
) -> None:
    for formatter in ("databutler.formatters.pickle.PickleFormatter", "os.system"):
        editManifest(exported, lambda d, f=formatter: firstFile(d).update(formatter=f))
        with pytest.raises(FormatterError):
            sqliteTarget.import_(exported)
        assertEmpty(sqliteTarget)


def makeZip(
    path: Path, manifest: dict[str, Any], entries: dict[str, bytes], links: dict[str, str] | None = None
) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("export.json", json.dumps(manifest))
        for name, data in entries.items():
            archive.writestr(name, data)
        for name, linkTarget in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, linkTarget)


def test_zip_slip_entries_never_land_outside(exported: Path, sqliteTarget: Butler, tmp_path: Path) -> None:
    manifest = yaml.safe_load((exported / "export.yaml").read_text())
    entries = {str(p.relative_to(exported)): p.read_bytes() for p in exported.rglob("*.json")}
    evil = {"../../zip-slip.txt": b"escaped", "/tmp/zip-slip-abs.txt": b"escaped"}
    makeZip(tmp_path / "slip.zip", manifest, {**entries, **evil})
    assert len(sqliteTarget.import_(tmp_path / "slip.zip").imported) == 4  # the extra entries are ignored
    assert (
        not (tmp_path / "zip-slip.txt").exists() and not (sqliteTarget.root.parent / "zip-slip.txt").exists()
    )
    assert not Path("/tmp/zip-slip-abs.txt").exists()
    # a manifest naming such an entry is refused outright
    firstFile(manifest)["path"] = "../../zip-slip.txt"
    makeZip(tmp_path / "slip2.zip", manifest, {**entries, **evil})
    with pytest.raises(UnsafePathError):
        sqliteTarget.import_(tmp_path / "slip2.zip")


def test_a_symlink_entry_in_a_zip_is_refused(exported: Path, tmp_path: Path, sqliteTarget: Butler) -> None:
    manifest = yaml.safe_load((exported / "export.yaml").read_text())
    entries = {str(p.relative_to(exported)): p.read_bytes() for p in exported.rglob("*.json")}
    linked = firstFile(manifest)["path"]
    del entries[linked]
    makeZip(tmp_path / "link.zip", manifest, entries, links={linked: "/etc/passwd"})
    with pytest.raises(UnsafePathError, match="symbolic link"):
        sqliteTarget.import_(tmp_path / "link.zip")
    assertEmpty(sqliteTarget)


def test_a_zip_entry_bigger_than_recorded_is_refused(
    exported: Path, tmp_path: Path, sqliteTarget: Butler
) -> None:
    manifest = yaml.safe_load((exported / "export.yaml").read_text())
    entries = {str(p.relative_to(exported)): p.read_bytes() for p in exported.rglob("*.json")}
    entries[firstFile(manifest)["path"]] += b" " * 10_000
    makeZip(tmp_path / "big.zip", manifest, entries)
    with pytest.raises(DatasetIntegrityError, match="bytes"):
        sqliteTarget.import_(tmp_path / "big.zip")
    assertEmpty(sqliteTarget)


def test_not_an_export_is_refused(tmp_path: Path, sqliteTarget: Butler) -> None:
    (tmp_path / "plain.txt").write_text("hello")
    with pytest.raises(ExportError, match="neither a folder nor a zip"):
        sqliteTarget.import_(tmp_path / "plain.txt")
    with pytest.raises(ExportError, match="no such"):
        sqliteTarget.import_(tmp_path / "missing")


# -- the command --


def test_cli_import_round_trip_and_one_line_errors(exported: Path, tmp_path: Path) -> None:
    Butler.makeRepo(tmp_path / "cliTarget")
    runner = CliRunner()
    result = runner.invoke(cli, ["import", str(tmp_path / "cliTarget"), str(exported)])
    assert result.exit_code == 0, result.output
    assert "Imported 4 dataset(s)" in result.output and "(0 already there)" in result.output
    again = runner.invoke(cli, ["import", str(tmp_path / "cliTarget"), str(exported)])
    assert "Imported 0 dataset(s)" in again.output and "(4 already there)" in again.output
    (exported / "export.yaml").write_text("{{{{")
    bad = runner.invoke(cli, ["import", str(tmp_path / "cliTarget"), str(exported)])
    assert bad.exit_code == 1
    assert bad.output.count("\n") == 1 and "Traceback" not in bad.output
    assert "ManifestError" in bad.output


def test_a_failure_after_files_are_placed_leaves_nothing(
    exported: Path, target: Butler, monkeypatch: pytest.MonkeyPatch
) -> None:
    from databutler.datastores.file._access import FileAccess

    real = FileAccess.rename
    calls = []

    def failingRename(self: FileAccess, source: str, destination: str) -> None:
        calls.append(destination)
        if len(calls) == 3:  # two files are in place already
            raise OSError(28, "No space left on device")
        real(self, source, destination)

    realPlace = FileAccess.placeNew

    def failingPlace(self: FileAccess, source: str, destination: str, moved: list[str]) -> bool:
        if len(calls) == 2:  # two files are in place already
            calls.append(destination)
            raise OSError(28, "No space left on device")
        placed = realPlace(self, source, destination, moved)
        if placed:  # else the rename it falls back to counts it
            calls.append(destination)
        return placed

    monkeypatch.setattr(FileAccess, "rename", failingRename)
    monkeypatch.setattr(FileAccess, "placeNew", failingPlace)  # the link into place, inside a transaction
    with pytest.raises(IngestError, match="No space left"):
        target.import_(exported)
    assert len(calls) == 3
    assertEmpty(target)
    monkeypatch.setattr(FileAccess, "rename", real)
    monkeypatch.setattr(FileAccess, "placeNew", realPlace)
    assert len(target.import_(exported).imported) == 4  # and the repository still works


def test_a_taken_path_half_way_leaves_nothing(exported: Path, tmp_path: Path) -> None:
    # A template without {run} or {id}: a dataset already here holds the path of the third one.
    templates = {"templates": {"default": "{datasetType}/{instrument}_{visit}"}}
    config = {"datastore": {"datastores": [
        {"datastore": {"cls": "databutler.datastores.memory.InMemoryDatastore"}},
        {"datastore": {"cls": "databutler.datastores.file.FileDatastore", "root": "<butlerRoot>", **templates}},
    ]}}  # fmt: skip
    Butler.makeRepo(tmp_path / "narrow", config)
    with Butler(tmp_path / "narrow", run="other") as butler:
        butler.registerDatasetType("metrics", ("instrument", "visit"), "StructuredDataDict")
        mine = butler.put({"mine": True}, "metrics", instrument="HSC", visit=2)
        before = datasetFiles(butler)
        with pytest.raises(DatasetExistsError, match="nothing was stored"):
            butler.import_(exported)
        assert datasetFiles(butler) == before
        assert butler.queryDatasets("metrics", collections=["other"]) == [mine]
        assert "night1" not in butler.registry.queryCollections()
        assert butler.get(mine) == {"mine": True}
