"""A reviewer's attacks on speed changes: ingest, export/import, the query statement cache and chain lookups.

Each test is an attempt to break a shortcut those changes took (folder checks cached per call,
links made after every record, no FIFO checks on export, one read per imported file, statements
reused by their arguments) and asserts the safe behaviour.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import yaml

from databutler import (
    Butler,
    DatabutlerError,
    DatasetIntegrityError,
    DatasetRef,
    ExportError,
    FileDataset,
    IngestError,
    UnsafePathError,
)
from databutler.datastores.file import FileDatastore
from databutler.testing.registry_support import dropNamespace, newNamespace, postgresUrl

LINKS = ["symlink", "relsymlink", "hardlink"]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The registry part of a repository config: SQLite (none), then a real PostgreSQL namespace."""
    if request.param == "sqlite":
        return {}
    url, namespace = postgresUrl(), newNamespace()
    request.addfinalizer(lambda: dropNamespace(url, namespace))
    return {"registry": {"db": url, "namespace": namespace}}


def openRepo(root: Path, config: dict[str, Any] | None = None, run: str = "raw") -> Butler:
    """A new repository with a ``metrics(visit)`` dataset type, opened with ``run``."""
    Butler.makeRepo(root, config or {})
    butler = Butler(root, run=run)
    butler.registerDatasetType("metrics", ("visit",), "StructuredDataDict")
    return butler


@pytest.fixture
def butler(tmp_path: Path) -> Iterator[Butler]:
    with openRepo(tmp_path / "repo") as b:
        yield b


def writeSources(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"in{i}.json" for i in range(count)]
    for i, path in enumerate(paths):
        path.write_text(f'{{"i": {i}}}')
    return paths


def metricsRef(butler: Butler, visit: int, run: str = "raw") -> DatasetRef:
    return DatasetRef(butler.getDatasetType("metrics"), {"visit": visit}, run=run)


def placedFiles(butler: Butler) -> list[Path]:
    """Dataset files and links under the root (not the repository's own files)."""
    return sorted(
        p
        for p in butler.root.rglob("*")
        if (p.is_symlink() or p.is_file()) and ".json" in p.name and p.name != "butler.yaml"
    )


class Deadline:
    """Fail (instead of hanging the suite) if the block blocks, e.g. opening a FIFO."""

    def __enter__(self) -> None:
        def expired(signum: int, frame: FrameType | None) -> None:
            raise TimeoutError("blocked: a FIFO was opened for reading")

        signal.signal(signal.SIGALRM, expired)
        signal.alarm(10)

    def __exit__(self, *exc: object) -> None:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)


# -- ingest --


@pytest.mark.parametrize("mode", ["copy", *LINKS])
@pytest.mark.parametrize("kind", ["fifo", "folder", "linkToFolder"])
def test_ingest_refuses_a_fifo_or_folder_source(butler: Butler, tmp_path: Path, mode: str, kind: str) -> None:
    good = writeSources(tmp_path / "in", 1)[0]
    bad = tmp_path / "bad.json"
    if kind == "fifo":
        os.mkfifo(bad)
    elif kind == "folder":
        bad.mkdir()
    else:
        (tmp_path / "folder").mkdir()
        bad.symlink_to(tmp_path / "folder", target_is_directory=True)
    with Deadline(), pytest.raises(IngestError, match="not a regular file"):
        butler.ingest(
            FileDataset(good, metricsRef(butler, 0)), FileDataset(bad, metricsRef(butler, 1)), transfer=mode
        )
    assert placedFiles(butler) == []
    assert butler.queryDatasets("metrics").count() == 0


@pytest.mark.parametrize("run", ["../escaped", "a/../../escaped", "/abs", "a//b", "."])
def test_a_run_name_that_would_escape_the_root_is_refused(butler: Butler, tmp_path: Path, run: str) -> None:
    (source,) = writeSources(tmp_path / "in", 1)
    with pytest.raises(DatabutlerError):
        butler.ingest(FileDataset(source, metricsRef(butler, 0, run="raw")), run=run, transfer="symlink")
    assert not (tmp_path / "escaped").exists()
    assert placedFiles(butler) == []


@pytest.mark.parametrize("value", ["..", ".", "a/b", "a\\b", "/abs", " ", "..."])
def test_a_hostile_value_in_a_named_template_field_is_refused(tmp_path: Path, value: str) -> None:
    """The default template prefixes each value with its key (``group-..``); a template naming
    the field alone renders the value as a whole path segment, through the compiled renderer."""
    config = {"datastore": {"templates": {"default": "{run}/{group}/{datasetType}_{id}"}}}
    Butler.makeRepo(tmp_path / "repo", config)
    with Butler(tmp_path / "repo", run="raw") as butler:
        butler.registerDatasetType("grouped", ("group",), "StructuredDataDict")
        groups = butler.getDatasetType("grouped")
        (source,) = writeSources(tmp_path / "in", 1)
        with pytest.raises(UnsafePathError, match=r"Value of \{group\}"):
            butler.ingest(FileDataset(source, DatasetRef(groups, {"group": value})), transfer="symlink")
        assert placedFiles(butler) == [] and butler.queryDatasets("grouped").count() == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "repo"]


@pytest.mark.parametrize("mode", ["copy", *LINKS])
def test_two_datasets_of_one_call_at_one_path_are_refused(tmp_path: Path, mode: str) -> None:
    """A template without the data ID renders two datasets to one path: neither is ingested."""
    config = {"datastore": {"templates": {"default": "{run}/{datasetType}"}}}
    with openRepo(tmp_path / "repo", config) as butler:
        files = writeSources(tmp_path / "in", 2)
        with pytest.raises(DatabutlerError):
            butler.ingest(
                *[FileDataset(p, metricsRef(butler, i)) for i, p in enumerate(files)], transfer=mode
            )
        assert placedFiles(butler) == []
        assert butler.queryDatasets("metrics").count() == 0
        assert [p.read_text() for p in files] == ['{"i": 0}', '{"i": 1}']


@pytest.mark.parametrize("mode", ["copy", *LINKS])
def test_a_folder_swapped_for_an_outside_link_during_a_call_places_nothing_outside(
    butler: Butler, tmp_path: Path, mode: str
) -> None:
    """`FileDatastore.ingest` consumes its datasets as it goes: between two files of one folder
    (and after the last one) the folder becomes a link out of the root. The folder check
    cached for the call must not let a file land outside."""
    files = writeSources(tmp_path / "in", 2)
    outside = tmp_path / "outside"
    store = FileDatastore({"datastore": {"cls": "databutler.FileDatastore", "root": str(tmp_path / "s")}})
    folder = tmp_path / "s" / "raw" / "metrics"

    def datasets() -> Iterator[tuple[str, DatasetRef, None]]:
        for i, path in enumerate(files):
            yield str(path), metricsRef(butler, i), None
            if folder.is_symlink():
                continue
            if folder.exists():
                folder.rename(outside)  # what is in the folder already goes with it
            else:
                folder.parent.mkdir(parents=True, exist_ok=True)
                outside.mkdir()
            folder.symlink_to(outside, target_is_directory=True)

    with pytest.raises(UnsafePathError, match="outside the root"):
        store.ingest(datasets(), transfer=mode)
    assert sorted(outside.iterdir()) == []
    assert [p.read_text() for p in files] == ['{"i": 0}', '{"i": 1}']
    store.close()


# -- export and import --


def makeExport(tmp_path: Path, count: int = 3, exportFormat: str = "directory") -> tuple[Path, Butler]:
    """A source repository of ``count`` metrics, exported; return the export and the source."""
    source = openRepo(tmp_path / "source")
    for i in range(count):
        source.put({"i": i}, "metrics", visit=i)
    destination = tmp_path / ("export.zip" if exportFormat == "zip" else "export")
    source.export(destination, collections=["raw"], format=exportFormat, manifestFormat="yaml")
    return destination, source


def exportedFiles(export: Path) -> list[Path]:
    return sorted(p for p in export.rglob("*.json") if p.is_file())


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Butler]:
    Butler.makeRepo(tmp_path / "target")
    with Butler(tmp_path / "target") as b:
        yield b


def assertNothingImported(target: Butler) -> None:
    assert target.registry.queryDatasetTypes() == []
    assert [p for p in target.root.rglob("*.json")] == []


@pytest.mark.parametrize("exportFormat", ["directory", "zip"])
def test_export_of_a_stored_file_replaced_by_a_fifo_fails_without_blocking(
    tmp_path: Path, exportFormat: str
) -> None:
    source = openRepo(tmp_path / "source")
    ref = source.put({"i": 0}, "metrics", visit=0)
    stored = Path(source.getUri(ref).removeprefix("file://"))
    stored.unlink()
    os.mkfifo(stored)
    with Deadline(), pytest.raises(ExportError, match="not a regular file"):
        source.export(tmp_path / "export", collections=["raw"], format=exportFormat)
    assert not (tmp_path / "export").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["source"]


def test_import_of_an_artifact_that_is_a_fifo_fails_without_blocking(tmp_path: Path, target: Butler) -> None:
    export, _ = makeExport(tmp_path)
    last = exportedFiles(export)[-1]
    last.unlink()
    os.mkfifo(last)
    with Deadline(), pytest.raises(DatabutlerError, match="not a regular file"):
        target.import_(export)
    assertNothingImported(target)


@pytest.mark.parametrize("change", ["truncated", "grown", "flipped"])
def test_a_changed_last_artifact_adds_nothing(tmp_path: Path, target: Butler, change: str) -> None:
    export, _ = makeExport(tmp_path)
    last = exportedFiles(export)[-1]
    data = last.read_bytes()
    last.write_bytes({"truncated": data[:-1], "grown": data + b" ", "flipped": data[:-2] + b"9}"}[change])
    with pytest.raises(DatasetIntegrityError):
        target.import_(export)
    assertNothingImported(target)


def test_a_zip_export_with_a_changed_last_artifact_adds_nothing(tmp_path: Path, target: Butler) -> None:
    export, _ = makeExport(tmp_path, exportFormat="zip")
    with zipfile.ZipFile(export) as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}
    last = sorted(name for name in entries if name.endswith(".json"))[-1]
    entries[last] = entries[last].replace(b"2", b"7")  # same size, other bytes
    export.unlink()
    with zipfile.ZipFile(export, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    with pytest.raises(DatasetIntegrityError):
        target.import_(export)
    assertNothingImported(target)


@pytest.mark.parametrize("exportFormat", ["directory", "zip"])
def test_a_symlinked_artifact_is_exported_as_its_bytes(
    tmp_path: Path, target: Butler, exportFormat: str
) -> None:
    """A dataset ingested as a symbolic link travels as the file it points to, never as a link."""
    (source,) = writeSources(tmp_path / "in", 1)
    with openRepo(tmp_path / "source") as butler:
        butler.ingest(FileDataset(source, metricsRef(butler, 0)), transfer="symlink")
        export = tmp_path / ("export.zip" if exportFormat == "zip" else "export")
        butler.export(export, collections=["raw"], format=exportFormat)
    assert not any(p.is_symlink() for p in export.rglob("*"))
    target.import_(export)
    source.write_text('{"i": 5}')  # the import holds its own copy
    assert target.get("metrics", visit=0, collections="raw") == {"i": 0}


def test_an_import_through_a_folder_link_planted_in_the_destination_is_refused(
    tmp_path: Path, target: Butler
) -> None:
    export, _ = makeExport(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (target.root / "raw").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError):
        target.import_(export)
    assert list(outside.rglob("*")) == []
    assert target.registry.queryDatasetTypes() == []


def test_a_hostile_entry_after_primed_folders_is_refused_and_adds_nothing(
    tmp_path: Path, target: Butler
) -> None:
    """Earlier entries make their folder known safe; a later one climbs out of it."""
    export, _ = makeExport(tmp_path)
    manifest = export / "export.yaml"
    data = yaml.safe_load(manifest.read_text())
    refs = data["datasets"][0]["refs"]
    folder = refs[0]["files"][0]["path"].rsplit("/", 1)[0]
    refs[-1]["files"][0]["path"] = f"{folder}/../../../outside.json"
    manifest.write_text(yaml.safe_dump(data))
    with pytest.raises(DatabutlerError):
        target.import_(export)
    assertNothingImported(target)
    assert not (tmp_path / "outside.json").exists()


# -- queries: a cached statement answers as a freshly built one --


def queryVariants(butler: Butler) -> list[Any]:
    """Each query's answer, in an order that makes later ones hit statements cached by earlier ones."""
    answers: list[Any] = []
    binds: list[tuple[str, dict[str, Any] | None]] = [
        ("visit = :v", {"v": 1}),
        ("visit = :v", {"v": "1"}),
        ("visit = :v", {"v": 2}),
        ("visit IN (:v)", {"v": [1, 2]}),
        ("visit IN (:v)", {"v": (2, 3)}),
        ("visit > 0", None),
    ]
    for where, bind in binds:
        answers.append(
            sorted(
                r.dataId["visit"]
                for r in butler.queryDatasets("metrics", where=where, bind=bind, collections="chain")
            )
        )
    for orderBy, limit in [(None, None), ("visit", 2), ("-visit", 2), ("-visit", 1), ("visit", None)]:
        refs = butler.queryDatasets(
            "metrics", collections="chain", findFirst=True, orderBy=orderBy, limit=limit
        )
        answers.append(
            [(r.dataId["visit"], r.run) for r in refs]
            if orderBy
            else sorted((r.dataId["visit"], r.run) for r in refs)
        )
    answers.append(
        sorted(
            d["visit"]
            for d in butler.registry.queryDataIds(
                ["visit"], where="visit >= :v", bind={"v": 2}, datasets="metrics", collections="chain"
            )
        )
    )
    return answers


def test_a_bool_bind_is_not_the_cached_int(butler: Butler) -> None:
    butler.put({"i": 1}, "metrics", visit=1)
    butler.registry.setCollectionChain("chain", ["raw"])
    assert (
        butler.queryDatasets("metrics", where="visit = :v", bind={"v": 1}, collections="chain").count() == 1
    )
    with pytest.raises(DatabutlerError):
        list(butler.queryDatasets("metrics", where="visit = :v", bind={"v": True}, collections="chain"))


CHANGE_THE_CHAIN = r"""
import sys
from databutler import Butler

with Butler(sys.argv[1]) as butler:
    registry = butler.registry
    step = sys.argv[2]
    if step == "prepend":
        butler.put({"r": "new"}, "metrics", visit=1, run="new")
        registry.prependCollectionChain("chain", ["new"])
    elif step == "remake":  # the run out of the chain, removed, made again (a new id), put back
        registry.removeFromCollectionChain("chain", ["new"])
        butler.removeRuns(["new"])
        butler.put({"r": "remade"}, "metrics", visit=1, run="new")
        registry.prependCollectionChain("chain", ["new"])
    elif step == "tag":
        registry.registerCollection("best", "TAGGED")
        registry.associate("best", [butler.findDataset("metrics", visit=1, collections=["b"])])
        registry.prependCollectionChain("chain", ["best"])
    elif step == "untag":
        registry.disassociate("best", [butler.findDataset("metrics", visit=1, collections=["b"])])
    elif step == "runs only":
        registry.setCollectionChain("chain", ["b", "a"])
"""


def test_lookups_through_a_chain_see_another_processs_chain_changes(
    tmp_path: Path, backend: dict[str, Any]
) -> None:
    """A lookup by data ID through a chain of runs reads the chain's version token in its own
    statement: each change another process makes to the chain, its runs or its tagged members
    is seen by the next lookup of a Butler that has looked the same data ID up before."""
    root = tmp_path / "repo"
    with openRepo(root, backend, run="a") as butler:
        butler.put({"r": "a"}, "metrics", visit=1, run="a")
        butler.put({"r": "b"}, "metrics", visit=1, run="b")
        butler.registry.setCollectionChain("chain", ["a", "b"])
        with Butler(root, collections=["chain"], writeable=False) as reader:
            assert reader.get("metrics", visit=1) == {"r": "a"}
            for step, run in [
                ("prepend", "new"),
                ("remake", "new"),
                ("tag", "b"),
                ("untag", "new"),
                ("runs only", "b"),
            ]:
                subprocess.run(
                    [sys.executable, "-c", CHANGE_THE_CHAIN, str(root), step], check=True, timeout=120
                )
                found = [reader.findDataset("metrics", visit=1) for _ in range(2)]
                with Butler(root, collections=["chain"], writeable=False) as fresh:  # nothing cached
                    expected = fresh.findDataset("metrics", visit=1)
                    assert expected is not None and expected.run == run, step
                    assert found == [expected] * 2, step
                    if step == "prepend":  # later the datasets of run "new" reuse their ids (computed)
                        assert reader.get("metrics", visit=1) == {"r": "new"}


def test_cached_queries_see_inserts_removals_and_chain_changes(
    tmp_path: Path, backend: dict[str, Any]
) -> None:
    root = tmp_path / "repo"
    with openRepo(root, backend, run="a") as butler:
        for visit in (1, 2, 3):
            butler.put({"r": "a"}, "metrics", visit=visit, run="a")
        butler.put({"r": "b"}, "metrics", visit=2, run="b")
        butler.registry.setCollectionChain("chain", ["a", "b"])
        steps: list[Callable[[], object]] = [
            lambda: None,
            lambda: butler.put({"r": "b"}, "metrics", visit=4, run="b"),
            lambda: butler.registry.setCollectionChain("chain", ["b", "a"]),
            lambda: butler.removeDatasets(
                list(butler.queryDatasets("metrics", where="visit = 2", collections="b"))
            ),
            lambda: butler.registry.setCollectionChain("chain", ["b"]),
        ]
        for step in steps:
            step()
            cached = queryVariants(butler)
            assert queryVariants(butler) == cached  # asked twice: the second from the cache
            with Butler(root) as fresh:  # a new registry: nothing cached
                assert queryVariants(fresh) == cached
