"""Butler.ingest / FileDatastore.ingest: every transfer mode, one commit, nothing left on failure."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from databutler import (
    ArgumentTypeError,
    Butler,
    ConflictingDatasetError,
    DatasetRef,
    FileDataset,
    IngestError,
    UnsafePathError,
)
from databutler.datastores.file import FileDatastore

MODES = ["auto", "copy", "move", "link", "hardlink", "symlink", "relsymlink"]


@pytest.fixture
def butler(tmp_path: Path) -> Iterator[Butler]:
    Butler.makeRepo(tmp_path / "repo")
    with Butler(tmp_path / "repo", run="raw") as b:
        b.registerDatasetType("metrics", ("visit",), "StructuredDataDict")
        b.registerDatasetType("label", ("visit",), "String")
        yield b


def sources(folder: Path, n: int, suffix: str = ".json") -> list[Path]:
    folder.mkdir(exist_ok=True)
    out = []
    for i in range(n):
        path = folder / f"file{i}{suffix}"
        path.write_text(json.dumps({"i": i}) if suffix == ".json" else yaml.safe_dump({"i": i}))
        out.append(path)
    return out


def ref(butler: Butler, visit: int, name: str = "metrics") -> DatasetRef:
    return DatasetRef(butler.getDatasetType(name), {"visit": visit})


def repoFiles(butler: Butler) -> list[Path]:
    found = butler.root.rglob("*")
    return sorted(
        p for p in found if p.name != "butler.yaml" and (p.suffix in (".json", ".yaml") or p.is_symlink())
    )


@pytest.mark.parametrize("mode", MODES)
def test_each_transfer_mode_ingests_readable_datasets(butler: Butler, tmp_path: Path, mode: str) -> None:
    files = sources(tmp_path / "in", 3)
    refs = butler.ingest(*[FileDataset(p, ref(butler, i)) for i, p in enumerate(files)], transfer=mode)
    assert [r.run for r in refs] == ["raw"] * 3
    for i, r in enumerate(refs):
        assert butler.get("metrics", visit=i) == {"i": i}
        stored = Path(butler.getUri(r).removeprefix("file://"))
        assert stored.is_relative_to(butler.root)
        assert butler.datastore.verify(r) if hasattr(butler.datastore, "verify") else True
        if mode in ("symlink", "relsymlink"):
            assert stored.is_symlink()
            target = os.readlink(stored)
            assert os.path.isabs(target) == (mode == "symlink")
            assert stored.resolve() == files[i].resolve()
        elif mode in ("link", "hardlink"):
            assert not stored.is_symlink()
            assert os.stat(stored).st_ino == os.stat(files[i]).st_ino
        else:
            assert not stored.is_symlink()
    assert all(p.exists() for p in files) == (mode != "move")
    with Butler(butler.root, collections=["raw"]) as cold:
        assert cold.get("metrics", visit=2) == {"i": 2}


def test_a_removed_symlinked_dataset_leaves_its_source(butler: Butler, tmp_path: Path) -> None:
    (source,) = sources(tmp_path / "in", 1)
    (stored,) = butler.ingest(FileDataset(source, ref(butler, 0)), transfer="symlink")
    butler.removeDatasets([stored])
    assert source.read_text() == '{"i": 0}'
    assert not butler.exists("metrics", visit=0)


def test_formatter_is_inferred_from_the_extension_or_given(butler: Butler, tmp_path: Path) -> None:
    yamlFile = tmp_path / "one.yaml"
    yamlFile.write_text("i: 7\n")
    (stored,) = butler.ingest(FileDataset(yamlFile, ref(butler, 7)), transfer="copy")
    assert butler.get(stored) == {"i": 7}
    assert butler.getUri(stored).endswith(".yaml")
    oddName = tmp_path / "data.txt"
    oddName.write_text('{"i": 8}')
    with pytest.raises(Exception, match="extension"):
        butler.ingest(FileDataset(oddName, ref(butler, 8)))
    (given,) = butler.ingest(
        FileDataset(oddName, ref(butler, 8), formatter="databutler.formatters.json.JsonFormatter")
    )
    assert butler.get(given) == {"i": 8}


def test_the_file_is_not_decoded_and_verify_finds_a_bad_one(butler: Butler, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\x00 not json")
    (stored,) = butler.ingest(FileDataset(bad, ref(butler, 1)), transfer="copy")
    info = butler.datastore.getStoredItemInfo(stored)
    assert info.fileSize == len(b"\x00 not json") and info.checksum
    with pytest.raises(Exception, match=r"failed to read|cannot read"):
        butler.get(stored)


def test_a_failure_half_way_leaves_nothing(butler: Butler, tmp_path: Path) -> None:
    files = sources(tmp_path / "in", 6)
    files[4].unlink()  # the fifth is missing: the four before it must be undone
    datasets = [FileDataset(p, ref(butler, i)) for i, p in enumerate(files)]
    for mode in ("copy", "move", "hardlink", "symlink"):
        with pytest.raises(IngestError, match="does not exist"):
            butler.ingest(*datasets, transfer=mode)
        assert repoFiles(butler) == []
        assert butler.queryDatasets("metrics").count() == 0
        assert all(p.exists() for i, p in enumerate(files) if i != 4)


def test_a_conflict_half_way_leaves_nothing(butler: Butler, tmp_path: Path) -> None:
    files = sources(tmp_path / "in", 4)
    butler.put({"old": 1}, "metrics", visit=2)
    with pytest.raises(ConflictingDatasetError):
        butler.ingest(*[FileDataset(p, ref(butler, i)) for i, p in enumerate(files)], transfer="move")
    assert all(p.exists() for p in files)
    assert [r.dataId["visit"] for r in butler.queryDatasets("metrics")] == [2]
    assert len(repoFiles(butler)) == 1


def test_refs_keep_their_ids_and_runs(butler: Butler, tmp_path: Path) -> None:
    (source,) = sources(tmp_path / "in", 1)
    resolved = DatasetRef(butler.getDatasetType("metrics"), {"visit": 5}, run="night1")
    (stored,) = butler.ingest(FileDataset(source, resolved))
    assert stored.id == resolved.id and stored.run == "night1"
    assert butler.get("metrics", visit=5, collections=["night1"]) == {"i": 0}


def test_bad_arguments_are_refused(butler: Butler, tmp_path: Path) -> None:
    (source,) = sources(tmp_path / "in", 1)
    with pytest.raises(IngestError, match="Unknown transfer mode"):
        butler.ingest(FileDataset(source, ref(butler, 0)), transfer="teleport")
    with pytest.raises(ArgumentTypeError):
        butler.ingest(str(source))  # type: ignore[arg-type]
    with pytest.raises(IngestError, match="not a regular file"):
        butler.ingest(FileDataset(tmp_path, ref(butler, 0)))
    with pytest.raises(IngestError, match="2 datasets"):
        butler.ingest(FileDataset(source, [ref(butler, 0), ref(butler, 1)]))
    assert butler.queryDatasets("metrics").count() == 0
    assert butler.ingest() == []


def test_a_symlink_planted_in_the_root_is_refused(butler: Butler, tmp_path: Path) -> None:
    (source,) = sources(tmp_path / "in", 1)
    outside = tmp_path / "outside"
    outside.mkdir()
    (butler.root / "raw").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="outside the root"):
        butler.ingest(FileDataset(source, ref(butler, 0)), transfer="copy")
    assert list(outside.rglob("*")) == []
    assert butler.queryDatasets("metrics").count() == 0


def test_a_file_datastore_on_its_own_ingests(tmp_path: Path, butler: Butler) -> None:
    store = FileDatastore({"datastore": {"cls": "databutler.FileDatastore", "root": str(tmp_path / "s")}})
    (source,) = sources(tmp_path / "in", 1)
    theRef = DatasetRef(butler.getDatasetType("metrics"), {"visit": 3}, run="r")
    store.ingest([(str(source), theRef, None)], transfer="hardlink")
    assert store.get(theRef) == {"i": 0}
    store.close()
