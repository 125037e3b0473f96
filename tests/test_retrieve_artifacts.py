"""Butler.retrieveArtifacts / ``databutler retrieve-artifacts``: the stored files, as they are."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from databutler import (
    ArtifactError,
    ArtifactExistsError,
    Butler,
    DatasetIntegrityError,
    DatasetRef,
    FileDataset,
    UnsafePathError,
)
from databutler.cli import cli

# YAML as a person writes it: comments and spacing that re-encoding would lose.
HANDWRITTEN = "# written by hand\ni:   {n}   # the value\n"


@pytest.fixture
def butler(tmp_path: Path) -> Iterator[Butler]:
    Butler.makeRepo(tmp_path / "repo")
    with Butler(tmp_path / "repo", run="night1") as b:
        b.registerDatasetType("metrics", ("visit",), "StructuredDataDict")
        yield b


@pytest.fixture
def refs(butler: Butler, tmp_path: Path) -> list[DatasetRef]:
    folder = tmp_path / "in"
    folder.mkdir()
    datasets = []
    for i in range(3):
        path = folder / f"m{i}.yaml"
        path.write_text(HANDWRITTEN.format(n=i))
        datasets.append(FileDataset(path, DatasetRef(butler.getDatasetType("metrics"), {"visit": i})))
    out = butler.ingest(*datasets, transfer="copy")
    butler.put({"i": 9}, "metrics", visit=9)  # and one written by a put
    return [*out, butler.registry.findDataset("metrics", {"visit": 9}, collections=["night1"])]


def storedPath(butler: Butler, ref: DatasetRef) -> Path:
    return Path(butler.getUri(ref).removeprefix("file://"))


def test_copies_keep_their_template_paths_and_bytes(
    butler: Butler, refs: list[DatasetRef], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    paths = butler.retrieveArtifacts(refs, out)
    assert paths == [out / storedPath(butler, r).relative_to(butler.root) for r in refs]
    for ref, path in zip(refs, paths, strict=True):
        assert path.read_bytes() == storedPath(butler, ref).read_bytes()
        assert not path.is_symlink() and os.stat(path).st_ino != os.stat(storedPath(butler, ref)).st_ino
    assert paths[1].read_text() == HANDWRITTEN.format(n=1)  # not decoded and written again
    assert paths[0].relative_to(out).parts[:2] == ("night1", "metrics")


def test_flat_puts_every_file_in_the_destination(
    butler: Butler, refs: list[DatasetRef], tmp_path: Path
) -> None:
    paths = butler.retrieveArtifacts(refs, tmp_path / "flat", preserve=False)
    assert [p.parent for p in paths] == [tmp_path / "flat"] * 4
    assert sorted(p.name for p in (tmp_path / "flat").iterdir()) == sorted(p.name for p in paths)


def test_an_existing_file_is_kept_unless_asked(
    butler: Butler, refs: list[DatasetRef], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = butler.retrieveArtifacts(refs[:1], out)[0]
    first.write_text("mine")
    with pytest.raises(ArtifactExistsError, match="already there"):
        butler.retrieveArtifacts(refs, out)
    assert first.read_text() == "mine"
    assert sorted(p for p in out.rglob("*") if p.is_file()) == [first]  # nothing else was written
    assert isinstance(ArtifactExistsError("x"), FileExistsError)
    paths = butler.retrieveArtifacts(refs, out, overwrite=True)
    assert first.read_text() == HANDWRITTEN.format(n=0) and len(paths) == 4


@pytest.mark.parametrize("mode", ["link", "hardlink", "symlink", "relsymlink"])
def test_link_modes(butler: Butler, refs: list[DatasetRef], tmp_path: Path, mode: str) -> None:
    (path,) = butler.retrieveArtifacts(refs[:1], tmp_path / "out", transfer=mode)
    stored = storedPath(butler, refs[0])
    assert path.read_bytes() == stored.read_bytes()
    if mode in ("link", "hardlink"):
        assert os.stat(path).st_ino == os.stat(stored).st_ino
    else:
        assert path.is_symlink() and os.path.isabs(os.readlink(path)) == (mode == "symlink")
        assert path.resolve() == stored.resolve()


def test_a_symlinked_ingest_is_retrieved_as_the_file_it_points_to(butler: Butler, tmp_path: Path) -> None:
    source = tmp_path / "src.yaml"
    source.write_text(HANDWRITTEN.format(n=5))
    (ref,) = butler.ingest(
        FileDataset(source, DatasetRef(butler.getDatasetType("metrics"), {"visit": 5})), transfer="symlink"
    )
    (copied,) = butler.retrieveArtifacts([ref], tmp_path / "out")
    assert not copied.is_symlink() and copied.read_text() == HANDWRITTEN.format(n=5)
    (linked,) = butler.retrieveArtifacts([ref], tmp_path / "links", transfer="symlink")
    assert Path(os.readlink(linked)) == source.resolve()  # not a link to a link in the repository


def test_a_direct_ingest_is_retrieved_under_its_template_path(butler: Butler, tmp_path: Path) -> None:
    source = tmp_path / "elsewhere.yaml"
    source.write_text(HANDWRITTEN.format(n=6))
    (ref,) = butler.ingest(
        FileDataset(source, DatasetRef(butler.getDatasetType("metrics"), {"visit": 6})), transfer="direct"
    )
    (path,) = butler.retrieveArtifacts([ref], tmp_path / "out")
    assert path.parent == tmp_path / "out" / "night1" / "metrics" and path.suffix == ".yaml"
    assert path.read_text() == HANDWRITTEN.format(n=6)


def test_a_changed_stored_file_is_refused_and_nothing_is_left(
    butler: Butler, refs: list[DatasetRef], tmp_path: Path
) -> None:
    stored = storedPath(butler, refs[2])
    stored.write_text(stored.read_text().replace("2", "7"))  # same size, other bytes
    with pytest.raises(DatasetIntegrityError, match="changed on disk"):
        butler.retrieveArtifacts(refs, tmp_path / "out")
    assert [p for p in (tmp_path / "out").rglob("*") if not p.is_dir()] == []


def test_a_link_planted_in_the_destination_cannot_lead_a_file_out(
    butler: Butler, refs: list[DatasetRef], tmp_path: Path
) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "night1").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="outside the destination"):
        butler.retrieveArtifacts(refs, out)
    assert list(outside.rglob("*")) == []


def test_a_hostile_record_path_cannot_escape_the_destination(
    butler: Butler, refs: list[DatasetRef], tmp_path: Path
) -> None:
    butler.close()
    with contextlib.closing(sqlite3.connect(butler.root / "registry.sqlite3")) as db, db:
        db.execute(
            "UPDATE fileDatastoreRecords SET path = ? WHERE datasetId = ?",
            ("../../escaped.yaml", str(refs[0].id)),
        )
    with (
        Butler(butler.root, writeable=False) as reopened,
        pytest.raises(UnsafePathError, match="would leave the destination"),
    ):
        reopened.retrieveArtifacts(refs, tmp_path / "deep" / "out")
    assert not (tmp_path / "escaped.yaml").exists() and not (tmp_path / "deep" / "out").exists()


def test_a_memory_only_datastore_has_no_artifacts(tmp_path: Path) -> None:
    config = {"datastore": {"cls": "databutler.datastores.memory.InMemoryDatastore", "name": "mem"}}
    Butler.makeRepo(tmp_path / "repo", config)
    with Butler(tmp_path / "repo", run="r") as butler:
        butler.registerDatasetType("metrics", ("visit",), "StructuredDataDict")
        ref = butler.put({"i": 1}, "metrics", visit=1)
        with pytest.raises(ArtifactError, match="does not keep files"):
            butler.retrieveArtifacts([ref], tmp_path / "out")


def test_an_unknown_mode_writes_nothing(butler: Butler, refs: list[DatasetRef], tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="Unknown transfer mode 'move'"):
        butler.retrieveArtifacts(refs, tmp_path / "out", transfer="move")
    assert not (tmp_path / "out").exists()


def test_the_cli_copies_refuses_to_clobber_and_clobbers_when_asked(
    butler: Butler, refs: list[DatasetRef], tmp_path: Path
) -> None:
    butler.close()
    out = tmp_path / "out"
    runner = CliRunner()
    done = runner.invoke(
        cli, ["retrieve-artifacts", str(butler.root), str(out), "metrics", "-w", "visit=1,2"]
    )
    assert done.exit_code == 0, done.output
    assert "Retrieved 2 file(s)" in done.stdout
    assert len([p for p in out.rglob("*") if p.is_file()]) == 2
    again = runner.invoke(cli, ["retrieve-artifacts", str(butler.root), str(out)])
    assert again.exit_code == 1 and "Traceback" not in again.output
    (line,) = again.stderr.strip().splitlines()
    assert line.startswith("Error: ") and "--clobber" in line and "[ArtifactExistsError]" in line
    assert len([p for p in out.rglob("*") if p.is_file()]) == 2
    clobbered = runner.invoke(
        cli, ["retrieve-artifacts", str(butler.root), str(out), "--clobber", "-t", "hardlink"]
    )
    assert clobbered.exit_code == 0 and "Retrieved 4 file(s)" in clobbered.stdout
    none = runner.invoke(cli, ["retrieve-artifacts", str(butler.root), str(out), "-w", "visit=77"])
    assert none.exit_code == 1 and "nothing was retrieved" in none.stderr
