"""Butler.ingest / FileDatastore.ingest: every transfer mode, one commit, nothing left on failure."""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from databutler import (
    ArgumentTypeError,
    Butler,
    ConflictingDatasetError,
    DatasetRef,
    FileDataset,
    IngestError,
    UnsafePathError,
    script,
)
from databutler.cli import cli
from databutler.datastores.file import FileDatastore, _ingest
from databutler.datastores.file._io import newHasher
from databutler.formatters.json import JsonFormatter
from databutler.testing.registry_support import dropNamespace, newNamespace, postgresUrl

PLACING_MODES = ["auto", "copy", "move", "link", "hardlink", "symlink", "relsymlink"]
"""The modes that place an entry in the root."""
MODES = [*PLACING_MODES, "direct"]


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
        assert butler.datastore.verify(r)
        if mode == "direct":
            assert butler.getUri(r) == files[i].as_uri()
            continue
        assert stored.is_relative_to(butler.root)
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


@pytest.fixture(params=["sqlite", "postgresql"])
def anyButler(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Butler]:
    """A butler on a SQLite registry, then on a real PostgreSQL one."""
    config: dict[str, Any] = {}
    namespace = None
    if request.param == "postgresql":
        url = postgresUrl()
        namespace = newNamespace()
        config = {"registry": {"db": url, "namespace": namespace}}
    Butler.makeRepo(tmp_path / "repo", config)
    try:
        with Butler(tmp_path / "repo", run="raw") as b:
            b.registerDatasetType("metrics", ("visit",), "StructuredDataDict")
            yield b
    finally:
        if namespace is not None:
            dropNamespace(url, namespace)


@pytest.mark.parametrize("mode", MODES)
def test_a_missing_file_half_way_leaves_nothing(anyButler: Butler, tmp_path: Path, mode: str) -> None:
    butler = anyButler
    files = sources(tmp_path / "in", 6)
    files[4].unlink()  # the fifth is missing: the four before it must be undone
    datasets = [FileDataset(p, ref(butler, i)) for i, p in enumerate(files)]
    with pytest.raises(IngestError, match="does not exist"):
        butler.ingest(*datasets, transfer=mode)
    assert repoFiles(butler) == []
    assert butler.queryDatasets("metrics").count() == 0
    assert [p.read_text() for i, p in enumerate(files) if i != 4] == [
        json.dumps({"i": i}) for i in (0, 1, 2, 3, 5)
    ]
    # and the repository still works: the same files ingest afterwards
    files[4].write_text(json.dumps({"i": 4}))
    butler.ingest(*datasets, transfer=mode)
    assert butler.get("metrics", visit=4) == {"i": 4}
    assert len(repoFiles(butler)) == (0 if mode == "direct" else 6)


@pytest.mark.parametrize("mode", PLACING_MODES)
def test_a_transfer_failing_half_way_leaves_nothing(
    anyButler: Butler, tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file system fails on the fourth file (a disk error, a link across file systems)."""
    butler = anyButler
    files = sources(tmp_path / "in", 6)

    def failing(real: Any, onCall: int = 4) -> Any:
        calls = [0]

        def call(*args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            if calls[0] >= onCall:
                raise OSError(errno.EXDEV, "Invalid cross-device link (simulated)")
            return real(*args, **kwargs)

        return call

    if mode in ("auto", "copy", "move"):  # a small file is copied with one os.write
        monkeypatch.setattr(os, "write", failing(os.write))
    elif mode == "link":  # no hard link works: it falls back to symbolic links, the fourth fails
        monkeypatch.setattr(os, "link", failing(os.link, onCall=1))
        monkeypatch.setattr(os, "symlink", failing(os.symlink))
    elif mode == "hardlink":
        monkeypatch.setattr(os, "link", failing(os.link))
    else:
        monkeypatch.setattr(os, "symlink", failing(os.symlink))
    with pytest.raises(Exception, match="simulated"):
        butler.ingest(*[FileDataset(p, ref(butler, i)) for i, p in enumerate(files)], transfer=mode)
    monkeypatch.undo()
    assert repoFiles(butler) == []
    assert list(butler.root.rglob(".*tmp-*")) == []
    assert butler.queryDatasets("metrics").count() == 0
    assert all(p.read_text() == json.dumps({"i": i}) for i, p in enumerate(files))


@pytest.mark.parametrize("mode", ["copy", "move"])
def test_a_streamed_copy_failing_half_way_leaves_nothing(
    anyButler: Butler, tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files too big to copy in one read (here: every file) are streamed; a failure on the fourth leaves nothing."""
    butler = anyButler
    files = sources(tmp_path / "in", 6)
    monkeypatch.setattr(_ingest, "SMALL_COPY", 1)
    calls = [0]
    real = shutil.copyfileobj

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] >= 4:
            raise OSError(errno.EIO, "Input/output error (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(shutil, "copyfileobj", failing)
    with pytest.raises(Exception, match="simulated"):
        butler.ingest(*[FileDataset(p, ref(butler, i)) for i, p in enumerate(files)], transfer=mode)
    monkeypatch.undo()
    assert calls[0] == 4  # the streaming path was the one taken
    assert repoFiles(butler) == []
    assert list(butler.root.rglob(".*tmp-*")) == []
    assert butler.queryDatasets("metrics").count() == 0
    assert all(p.read_text() == json.dumps({"i": i}) for i, p in enumerate(files))


def test_a_failure_after_the_files_are_placed_leaves_nothing(
    anyButler: Butler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry commit itself fails after every link is in place: the links go too."""
    butler = anyButler
    files = sources(tmp_path / "in", 4)
    with pytest.raises(RuntimeError, match="after the files"), butler.transaction():
        butler.ingest(*[FileDataset(p, ref(butler, i)) for i, p in enumerate(files)], transfer="symlink")
        assert len(repoFiles(butler)) == 4
        raise RuntimeError("after the files")
    assert repoFiles(butler) == []
    assert butler.queryDatasets("metrics").count() == 0
    assert all(p.exists() for p in files)


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


def test_a_chain_ingests_into_its_first_persistent_child(tmp_path: Path) -> None:
    fileChild = {"cls": "databutler.datastores.file.FileDatastore", "records": {"db": "registry"}}
    config = {
        "datastore": {
            "cls": "databutler.datastores.chained.ChainedDatastore",
            "name": "chain",
            "datastores": [
                {"datastore": {"cls": "databutler.datastores.memory.InMemoryDatastore", "name": "memory"}},
                {"datastore": {**fileChild, "name": "first", "root": "<butlerRoot>/first"}},
                {"datastore": {**fileChild, "name": "second", "root": "<butlerRoot>/second"}},
            ],
        }
    }
    Butler.makeRepo(tmp_path / "repo", config)
    (source,) = sources(tmp_path / "in", 1)
    with Butler(tmp_path / "repo", run="raw") as butler:
        butler.registerDatasetType("metrics", ("visit",), "StructuredDataDict")
        (stored,) = butler.ingest(FileDataset(source, ref(butler, 0)), transfer="copy")
        memory, first, second = butler.datastore.children
        assert not memory.exists(stored) and first.exists(stored) and not second.exists(stored)
        assert list((tmp_path / "repo" / "first").rglob("*.json")) != []
        assert (
            not (tmp_path / "repo" / "second").exists()
            or list((tmp_path / "repo" / "second").rglob("*.json")) == []
        )
        assert butler.get(stored) == {"i": 0}


def test_a_chain_of_memory_only_refuses_to_ingest(tmp_path: Path) -> None:
    memory = {"cls": "databutler.datastores.memory.InMemoryDatastore"}
    config = {
        "datastore": {
            "cls": "databutler.datastores.chained.ChainedDatastore",
            "name": "chain",
            "datastores": [{"datastore": {**memory, "name": "m1"}}, {"datastore": {**memory, "name": "m2"}}],
        }
    }
    Butler.makeRepo(tmp_path / "repo", config)
    (source,) = sources(tmp_path / "in", 1)
    with Butler(tmp_path / "repo", run="raw") as butler:
        butler.registerDatasetType("metrics", ("visit",), "StructuredDataDict")
        with pytest.raises(IngestError, match="no persistent datastore"):
            butler.ingest(FileDataset(source, ref(butler, 0)))
        assert butler.queryDatasets("metrics").count() == 0


def test_auto_copies_so_the_source_stays_independent(butler: Butler, tmp_path: Path) -> None:
    (source,) = sources(tmp_path / "in", 1)
    (stored,) = butler.ingest(FileDataset(source, ref(butler, 0)))  # transfer="auto"
    path = Path(butler.getUri(stored).removeprefix("file://"))
    assert not path.is_symlink() and os.stat(path).st_ino != os.stat(source).st_ino
    source.write_text('{"i": 99}')  # changing the source does not change the dataset
    assert json.loads(path.read_text()) == {"i": 0}
    assert butler.datastore.verify(stored)


def test_ingest_records_size_and_checksum_without_decoding(
    butler: Butler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (source,) = sources(tmp_path / "in", 1)

    def noRead(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("ingest decoded the file")

    for name in ("read", "readBuffer", "readStream"):
        if hasattr(JsonFormatter, name):
            monkeypatch.setattr(JsonFormatter, name, noRead)
    for mode in ("copy", "symlink"):
        visit = 0 if mode == "copy" else 1
        (stored,) = butler.ingest(FileDataset(source, ref(butler, visit)), transfer=mode)
        info = butler.datastore.getStoredItemInfo(stored)
        data = source.read_bytes()
        algorithm, digest = info.checksum.split(":")
        hasher = newHasher(algorithm)
        hasher.update(data)
        assert info.fileSize == len(data) and digest == hasher.hexdigest()
    monkeypatch.undo()
    assert butler.get("metrics", visit=1) == {"i": 0}


def test_databutler_verify_finds_an_ingested_file_its_formatter_cannot_read(
    butler: Butler, tmp_path: Path
) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text('{"i": 1}')
    bad.write_bytes(b"\x00 not json")
    _, badRef = butler.ingest(
        FileDataset(good, ref(butler, 1)), FileDataset(bad, ref(butler, 2)), transfer="copy"
    )
    butler.close()
    result = CliRunner().invoke(cli, ["verify", str(butler.root)])
    assert result.exit_code == 1, result.output
    assert "1 of 2 dataset(s) failed verification" in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("CORRUPTED")]
    assert line.startswith(f"CORRUPTED {badRef}") and "failed to read" in line
    assert "Traceback" not in result.output
    # bytes only: the checksum matches what was ingested, so it passes
    assert CliRunner().invoke(cli, ["verify", str(butler.root), "--no-decode"]).exit_code == 0
    assert (
        script.verifyDatasets(butler.root).corrupted and script.verifyDatasets(butler.root, decode=False).isOk
    )


def test_a_data_id_that_would_escape_the_root_is_refused(tmp_path: Path, butler: Butler) -> None:
    butler.registerDatasetType("grouped", ("group",), "StructuredDataDict")
    (source,) = sources(tmp_path / "in", 1)
    outside = tmp_path / "escaped"
    for value in ("../../../escaped/x", "/abs/path"):
        with pytest.raises(UnsafePathError):
            butler.ingest(
                FileDataset(source, DatasetRef(butler.getDatasetType("grouped"), {"group": value})),
                transfer="symlink",
            )
    assert not outside.exists()
    assert butler.queryDatasets("grouped").count() == 0


@pytest.mark.parametrize("mode", ["symlink", "relsymlink", "hardlink", "copy"])
def test_a_symlinked_source_or_folder_never_places_a_file_outside_the_root(
    butler: Butler, tmp_path: Path, mode: str
) -> None:
    """The source may be a link (it is followed for reading, never for writing); a planted
    folder link inside the root is refused whatever the mode."""
    (source,) = sources(tmp_path / "in", 1)
    viaLink = tmp_path / "viaLink.json"
    viaLink.symlink_to(source)
    (stored,) = butler.ingest(FileDataset(viaLink, ref(butler, 0)), transfer=mode)
    path = Path(butler.getUri(stored).removeprefix("file://"))
    assert os.path.realpath(path.parent).startswith(os.path.realpath(butler.root))
    assert butler.get(stored) == {"i": 0}
    outside = tmp_path / "outside"
    outside.mkdir()
    (butler.root / "other").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="outside the root"):
        butler.ingest(
            FileDataset(source, DatasetRef(butler.getDatasetType("metrics"), {"visit": 1}, run="other")),
            transfer=mode,
        )
    assert list(outside.rglob("*")) == []
    butler.removeDatasets([stored])
    assert source.read_text() == '{"i": 0}' and not path.exists() and not path.is_symlink()


def test_direct_records_the_file_where_it_is_and_never_deletes_it(anyButler: Butler, tmp_path: Path) -> None:
    butler = anyButler
    files = sources(tmp_path / "outside data", 3)  # a space: the URI is quoted
    refs = butler.ingest(*[FileDataset(p, ref(butler, i)) for i, p in enumerate(files)], transfer="direct")
    assert repoFiles(butler) == []  # nothing was copied or linked into the root
    assert [butler.getUri(r) for r in refs] == [p.as_uri() for p in files]
    assert "%20" in butler.getUri(refs[0])
    with Butler(butler.root, collections=["raw"]) as cold:
        assert cold.get("metrics", visit=1) == {"i": 1}
    assert script.verifyDatasets(butler.root).isOk
    butler.removeDatasets([refs[0]])
    assert not butler.exists("metrics", visit=0)
    assert files[0].read_text() == json.dumps({"i": 0})  # removed, but the file is still there
    with pytest.raises(RuntimeError, match="undo"), butler.transaction():
        butler.removeDatasets([refs[1]])
        raise RuntimeError("undo")
    assert butler.get("metrics", visit=1) == {"i": 1}
    butler.removeDatasets([refs[1], refs[2]])
    assert all(p.exists() for p in files)
    assert script.cleanupRepo(butler.root, olderThan=0.0).removed == []
    assert all(p.exists() for p in files)
    with pytest.raises(IngestError, match="undone"), butler.transaction():  # an undone ingest
        butler.ingest(FileDataset(files[0], ref(butler, 0)), transfer="direct")
        raise IngestError("undone")
    assert all(p.exists() for p in files) and butler.queryDatasets("metrics").count() == 0


def test_direct_refuses_a_file_inside_the_root_and_a_changed_file_fails_verify(
    butler: Butler, tmp_path: Path
) -> None:
    inside = butler.root / "already-here.json"
    inside.write_text('{"i": 1}')
    with pytest.raises(IngestError, match="inside the root"):
        butler.ingest(FileDataset(inside, ref(butler, 1)), transfer="direct")
    (source,) = sources(tmp_path / "in", 1)
    (stored,) = butler.ingest(FileDataset(source, ref(butler, 0)), transfer="direct")
    source.write_text('{"i": 12345}')  # changed behind the repository's back
    report = script.verifyDatasets(butler.root)
    assert list(report.corrupted) == [stored]
    source.unlink()
    assert script.verifyDatasets(butler.root).missing == [stored]


@pytest.mark.parametrize("mode", ["move", "symlink", "relsymlink", "link", "direct"])
@pytest.mark.parametrize(
    "which", ["butler.yaml", "a stored file", "through a folder link", "through a file link"]
)
def test_a_source_the_datastore_owns_is_refused_where_it_would_be_lost(
    butler: Butler, tmp_path: Path, mode: str, which: str
) -> None:
    """``move`` would delete a file under the root; a symbolic link or ``direct`` would rest on it."""
    kept = butler.put({"v": 0}, "metrics", visit=0)
    stored = Path(butler.getUri(kept).removeprefix("file://"))
    if which == "butler.yaml":
        source = butler.root / "butler.yaml"
    elif which == "a stored file":
        source = stored
    elif which == "through a folder link":
        (tmp_path / "into").symlink_to(stored.parent, target_is_directory=True)
        source = tmp_path / "into" / stored.name
    else:
        (tmp_path / "link.json").symlink_to(stored)
        source = tmp_path / "link.json"
    before = source.read_bytes()
    if mode == "move" and which == "through a file link":  # only the link is deleted: allowed
        (moved,) = butler.ingest(FileDataset(source, ref(butler, 1)), transfer=mode)
        assert not source.is_symlink() and butler.get(moved) == {"v": 0}
    else:
        with pytest.raises(IngestError, match="inside the root"):
            butler.ingest(FileDataset(source, ref(butler, 1)), transfer=mode)
        assert source.read_bytes() == before
        assert not butler.exists("metrics", visit=1)
    with Butler(butler.root, writeable=False, collections=["raw"]) as fresh:
        assert fresh.get(kept) == {"v": 0}
    assert script.verifyDatasets(butler.root).isOk


@pytest.mark.parametrize("mode", ["copy", "hardlink"])
def test_a_file_under_the_root_can_be_copied_or_hardlinked_in(butler: Butler, mode: str) -> None:
    """What the refusal above suggests works, and leaves the file the datastore owns as it was."""
    kept = butler.put({"v": 0}, "metrics", visit=0)
    stored = Path(butler.getUri(kept).removeprefix("file://"))
    (copied,) = butler.ingest(FileDataset(stored, ref(butler, 1)), transfer=mode)
    butler.removeDatasets([kept])
    assert butler.get(copied) == {"v": 0}
    assert script.verifyDatasets(butler.root).isOk


def fileTier(butler: Butler) -> FileDatastore:
    store = butler.datastore.children[-1]
    assert isinstance(store, FileDatastore)
    return store


@pytest.mark.parametrize("mode", ["hardlink", "symlink", "relsymlink"])
def test_links_are_made_at_their_final_paths_with_no_rename(
    butler: Butler, tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No temporary name: nothing is renamed, and no hidden entry is ever made beside the links."""
    files = sources(tmp_path / "in", 4)

    def noRename(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a link ingest renamed an entry")

    monkeypatch.setattr(os, "replace", noRename)
    monkeypatch.setattr(os, "rename", noRename)
    refs = butler.ingest(*[FileDataset(p, ref(butler, i)) for i, p in enumerate(files)], transfer=mode)
    monkeypatch.undo()
    assert [butler.get(r) for r in refs] == [{"i": i} for i in range(4)]
    assert list(butler.root.rglob(".*")) == []


def leftByACrash(butler: Butler, n: int) -> tuple[list[DatasetRef], Path]:
    """``n`` resolved refs, and an unrecorded file (as a crash leaves) at the path of the second."""
    refs = [DatasetRef(butler.getDatasetType("metrics"), {"visit": i}, run="raw") for i in range(n)]
    store = fileTier(butler)
    left = Path(store.files.fullPath(store.layout.templates.render(refs[1]) + ".json"))
    left.parent.mkdir(parents=True, exist_ok=True)
    left.write_text('{"left": "by a crash"}')
    return refs, left


@pytest.mark.parametrize("mode", ["hardlink", "symlink"])
def test_an_unrecorded_entry_at_a_link_path_is_replaced(butler: Butler, tmp_path: Path, mode: str) -> None:
    """What a crash left at a path (no record names it) gives way, through a temporary name."""
    files = sources(tmp_path / "in", 2)
    refs, left = leftByACrash(butler, 2)
    stored = butler.ingest(*[FileDataset(p, r) for p, r in zip(files, refs, strict=True)], transfer=mode)
    assert butler.get(stored[1]) == {"i": 1}
    assert left.is_symlink() == (mode == "symlink") and os.path.samefile(left, files[1])
    assert list(butler.root.rglob(".*")) == []


def test_a_copy_moves_into_place_by_hard_link_and_gives_way_to_an_unrecorded_entry(
    butler: Butler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy's temporary file is linked to its final path (never replacing an entry), then unlinked.

    What a crash left at a path (no record names it) is found by the link failing, and replaced.
    """
    files = sources(tmp_path / "in", 3)
    refs, left = leftByACrash(butler, 3)
    linked: list[tuple[str, str]] = []
    realLink = os.link

    def link(source: str, target: str, **kwargs: Any) -> None:
        linked.append((source, target))
        realLink(source, target, **kwargs)

    monkeypatch.setattr(os, "link", link)
    stored = butler.ingest(*[FileDataset(p, r) for p, r in zip(files, refs, strict=True)], transfer="copy")
    monkeypatch.undo()
    assert [butler.get(r) for r in stored] == [{"i": i} for i in range(3)]
    assert all(butler.datastore.verify(r) for r in stored)
    assert len(linked) == 3 and all(os.path.basename(src).startswith(".") for src, _ in linked)
    assert not left.is_symlink() and os.stat(left).st_nlink == 1
    assert list(butler.root.rglob(".*")) == []


@pytest.mark.parametrize("failing", ["link", "unlink"])
def test_a_copy_without_hard_links_or_failing_to_unlink_its_temporary_leaves_nothing_wrong(
    butler: Butler, tmp_path: Path, failing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No hard links on the file system: renamed as before; the unlink failing: nothing ingested, nothing left."""
    files = sources(tmp_path / "in", 3)

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EPERM, "not here")

    datasets = [FileDataset(p, ref(butler, i)) for i, p in enumerate(files)]
    if failing == "link":
        monkeypatch.setattr(os, "link", fail)
        stored = butler.ingest(*datasets, transfer="copy")
        monkeypatch.undo()
        assert [butler.get(r) for r in stored] == [{"i": i} for i in range(3)]
    else:
        realUnlink = os.unlink
        calls = []

        def unlinkThird(path: str, *args: Any, **kwargs: Any) -> None:
            calls.append(path)
            if len(calls) == 3:
                fail()
            realUnlink(path, *args, **kwargs)

        monkeypatch.setattr(os, "unlink", unlinkThird)
        with pytest.raises(OSError, match="not here"):
            butler.ingest(*datasets, transfer="copy")
        monkeypatch.undo()
        assert butler.queryDatasets("metrics").count() == 0
        assert repoFiles(butler) == []
    assert list(butler.root.rglob(".*")) == []
    assert [p.read_text() for p in files] == [json.dumps({"i": i}) for i in range(3)]


def test_a_link_ingest_never_replaces_the_file_of_a_removal_not_yet_committed(tmp_path: Path) -> None:
    """With a template without {id}, a dataset removed in the same transaction keeps its file."""
    Butler.makeRepo(tmp_path / "repo", {"datastore": {"templates": {"default": "{run}/{visit}"}}})
    files = sources(tmp_path / "in", 2)
    with Butler(tmp_path / "repo", run="raw") as butler:
        butler.registerDatasetType("metrics", ("visit",), "StructuredDataDict")
        old = butler.put({"old": 1}, "metrics", visit=1)
        with pytest.raises(Exception, match="removed dataset"), butler.transaction():
            butler.removeDatasets([old])
            butler.ingest(FileDataset(files[0], ref(butler, 1)), transfer="symlink")
        assert butler.get(old) == {"old": 1}
        assert butler.queryDatasets("metrics").count() == 1
        assert list(butler.root.rglob(".*tmp-*")) == []


def test_one_ingest_writes_its_rows_in_one_statement_per_table(
    butler: Butler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = sources(tmp_path / "in", 5)
    calls: dict[str, int] = {"locations": 0, "records": 0}
    registry = butler.registry
    addLocations = registry.addDatasetLocations
    records = fileTier(butler)._records.table
    insertRecords = records.insert

    def countedLocations(*args: Any) -> Any:
        calls["locations"] += 1
        return addLocations(*args)

    def countedRecords(*args: Any) -> Any:
        calls["records"] += 1
        return insertRecords(*args)

    monkeypatch.setattr(registry, "addDatasetLocations", countedLocations)
    monkeypatch.setattr(records, "insert", countedRecords)
    for mode in ("symlink", "copy"):
        calls.update(locations=0, records=0)
        offset = 0 if mode == "symlink" else 10
        butler.ingest(*[FileDataset(p, ref(butler, offset + i)) for i, p in enumerate(files)], transfer=mode)
        assert calls == {"locations": 1, "records": 1}, mode
    assert butler.queryDatasets("metrics").count() == 10


@pytest.mark.parametrize("mode", ["symlink", "copy"])
def test_every_folder_of_a_call_is_checked_for_a_planted_link(
    butler: Butler, tmp_path: Path, mode: str
) -> None:
    """The folder check is cached per folder within a call, never skipped for a new folder."""
    files = sources(tmp_path / "in", 3)
    outside = tmp_path / "outside"
    outside.mkdir()
    (butler.root / "planted").symlink_to(outside, target_is_directory=True)
    metrics = butler.getDatasetType("metrics")
    datasets = [
        FileDataset(files[0], DatasetRef(metrics, {"visit": 0}, run="raw")),
        FileDataset(files[1], DatasetRef(metrics, {"visit": 1}, run="raw")),
        FileDataset(files[2], DatasetRef(metrics, {"visit": 2}, run="planted")),
    ]
    with pytest.raises(UnsafePathError, match="outside the root"):
        butler.ingest(*datasets, transfer=mode)
    assert list(outside.rglob("*")) == []
    assert [p for p in repoFiles(butler) if p.name != "planted"] == []
    assert butler.queryDatasets("metrics", collections=["raw"]).count() == 0


@pytest.mark.parametrize("expected", [None, 0, 10, 3 << 20])
def test_a_source_is_hashed_whole_whatever_size_its_stat_gave(tmp_path: Path, expected: int | None) -> None:
    """The stat's size only sizes the first read: a file that grew or shrank since is still read to its end."""
    from databutler.datastores.file._ingest import hashSource

    data = bytes(range(256)) * (9 << 12)  # 2.25 MiB: more than one read
    path = tmp_path / "big.json"
    path.write_bytes(data)
    hasher = newHasher("xxh3_128")
    hasher.update(data)
    assert hashSource(str(path), "xxh3_128", expected) == (len(data), f"xxh3_128:{hasher.hexdigest()}")
    assert hashSource(str(path), None, expected) == (len(data), None)


def test_a_small_copy_reads_what_is_there_when_the_file_changed_since_its_stat(tmp_path: Path) -> None:
    """`copySmall` records the bytes it read (size and checksum agree), and gives up on a file grown big."""
    source = tmp_path / "in.json"
    source.write_bytes(b"x" * 100)
    target = str(tmp_path / "out" / "a.json")
    for expected in (10, 100, 500):  # grew, same, shrank since the stat
        made = _ingest.copySmall(str(source), target, "xxh3_128", expected)
        assert made is not None
        tempPath, size, checksum = made
        hasher = newHasher("xxh3_128")
        hasher.update(b"x" * 100)
        assert (Path(tempPath).read_bytes(), size) == (b"x" * 100, 100)
        assert checksum == f"xxh3_128:{hasher.hexdigest()}"
        assert Path(tempPath).parent == Path(target).parent and Path(tempPath).name.startswith(".a.json.tmp-")
        os.unlink(tempPath)
    source.write_bytes(b"y" * (_ingest.SMALL_COPY + 1))
    assert _ingest.copySmall(str(source), target, "xxh3_128", 10) is None
    assert os.listdir(tmp_path / "out") == []


def test_a_small_copy_is_whole_when_reads_come_back_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read cut short (a signal, a network or FUSE file system) is not the end: the copy holds every byte."""
    data = bytes(range(256)) * 4
    source = tmp_path / "in.json"
    source.write_bytes(data)
    target = str(tmp_path / "out" / "a.json")
    read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: read(fd, min(n, 100)))
    made = _ingest.copySmall(str(source), target, "xxh3_128", len(data))
    monkeypatch.undo()
    assert made is not None
    tempPath, size, checksum = made
    hasher = newHasher("xxh3_128")
    hasher.update(data)
    assert (Path(tempPath).read_bytes(), size, checksum) == (
        data,
        len(data),
        f"xxh3_128:{hasher.hexdigest()}",
    )
