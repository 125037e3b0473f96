"""Puts of resolved refs, Butler.putMany and puts inside one transaction: one commit, all or none."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import databutler.formatters._plain
from databutler import (
    ArgumentTypeError,
    Butler,
    ConflictingDatasetError,
    DatasetRef,
    DatasetTypeError,
    FileDatastore,
    RunNameError,
    UnstorableDatasetError,
)
from databutler.formatters.json import JsonFormatter


@pytest.fixture
def butler(tmp_path: Path) -> Iterator[Butler]:
    Butler.makeRepo(tmp_path / "repo")
    with Butler(tmp_path / "repo", run="main") as b:
        b.registerDatasetType("metrics", ("visit",), "StructuredDataDict")
        yield b


def storedFiles(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.json") if p.is_file())


def countCommits(butler: Butler) -> list[int]:
    commits = [0]

    def onCommit(_connection: Any) -> None:
        commits[0] += 1

    db = butler.registry._db
    for engine in {db.baseEngine, db.readerEngine or db.baseEngine}:
        sa.event.listen(engine, "commit", onCommit)
    return commits


def test_put_of_a_resolved_ref_keeps_its_id_and_run(butler: Butler) -> None:
    ref = DatasetRef(butler.getDatasetType("metrics"), {"visit": 1}, id=uuid.uuid4(), run="elsewhere")
    stored = butler.put({"a": 1}, ref)
    assert stored.id == ref.id and stored.run == "elsewhere"
    assert butler.registry.getDataset(ref.id) == ref
    assert butler.get("metrics", visit=1, collections=["elsewhere"]) == {"a": 1}
    assert "elsewhere" in butler.queryCollections()


def test_put_of_a_ref_without_run_goes_to_the_butlers_run(butler: Butler) -> None:
    ref = DatasetRef(butler.getDatasetType("metrics"), {"visit": 2})
    stored = butler.put({"b": 2}, ref)
    assert stored.id == ref.id and stored.run == "main"
    assert butler.get(stored) == {"b": 2}


def test_put_of_a_resolved_ref_refuses_another_run_or_a_data_id(butler: Butler, tmp_path: Path) -> None:
    ref = DatasetRef(butler.getDatasetType("metrics"), {"visit": 3}, run="r1")
    with pytest.raises(RunNameError, match="resolved in run 'r1'"):
        butler.put({"c": 3}, ref, run="r2")
    with pytest.raises(ArgumentTypeError, match="takes no data ID"):
        butler.put({"c": 3}, ref, visit=3)
    butler.registerDatasetType("image", ("visit",), "MaskedImage")
    image = DatasetRef(butler.getDatasetType("image"), {"visit": 3}, run="r1")
    with pytest.raises(DatasetTypeError, match="component"):
        butler.put({}, image.makeComponentRef("metadata"))
    assert butler.registry.getDataset(ref.id) is None
    assert storedFiles(tmp_path / "repo") == []


def test_put_of_a_ref_whose_id_is_taken_writes_nothing(butler: Butler, tmp_path: Path) -> None:
    first = butler.put({"a": 1}, "metrics", visit=1)
    clash = DatasetRef(first.datasetType, {"visit": 2}, id=first.id, run="main")
    with pytest.raises(ConflictingDatasetError, match=str(first.id)):
        butler.put({"b": 2}, clash)
    assert len(storedFiles(tmp_path / "repo")) == 1
    assert butler.get(first) == {"a": 1}


def test_a_datastore_stores_a_resolved_ref_on_its_own(tmp_path: Path, butler: Butler) -> None:
    store = FileDatastore({"datastore": {"cls": "databutler.FileDatastore", "root": str(tmp_path / "s")}})
    ref = DatasetRef(butler.getDatasetType("metrics"), {"visit": 5}, run="somewhere")
    store.put({"x": 5}, ref)
    assert store.get(ref) == {"x": 5}
    assert "somewhere" in store.getUri(ref)
    store.close()


def test_put_many_mixes_data_ids_and_refs_and_commits_once(butler: Butler) -> None:
    datasetType = butler.getDatasetType("metrics")
    resolved = DatasetRef(datasetType, {"visit": 100}, run="other")
    items: list[Any] = [({"i": i}, "metrics", {"visit": i}) for i in range(20)]
    items.append(({"i": 100}, resolved))
    commits = countCommits(butler)
    refs = butler.putMany(items)
    assert commits[0] == 1
    assert [ref.dataId["visit"] for ref in refs] == [*range(20), 100]
    assert refs[-1].id == resolved.id and refs[-1].run == "other"
    assert all(ref.run == "main" for ref in refs[:-1])
    with Butler(butler.root, collections=["main"]) as cold:
        assert [cold.get("metrics", visit=i) for i in range(20)] == [{"i": i} for i in range(20)]
        assert cold.get(resolved) == {"i": 100}


def test_put_many_checks_each_object_once(butler: Butler, monkeypatch: pytest.MonkeyPatch) -> None:
    validations = [0]
    checkedWrites = [0]
    validate = JsonFormatter.validate
    toCheckedPlain = databutler.formatters._plain.toCheckedPlain

    def countingValidate(self: JsonFormatter, obj: Any, storageClass: Any) -> None:
        validations[0] += 1
        validate(self, obj, storageClass)

    def countingCheckedPlain(*args: Any, **kwargs: Any) -> Any:
        checkedWrites[0] += 1
        return toCheckedPlain(*args, **kwargs)

    monkeypatch.setattr(JsonFormatter, "validate", countingValidate)
    butler.putMany([({"i": i}, "metrics", {"visit": i}) for i in range(10)])
    monkeypatch.setattr(databutler.formatters._plain, "toCheckedPlain", countingCheckedPlain)
    butler.putMany([({"i": i}, "metrics", {"visit": i}) for i in range(10, 15)])
    assert validations[0] == 15
    assert checkedWrites[0] == 5  # one per object, by its check: the writes trusted it


@pytest.mark.parametrize("where", ["unstorable", "conflict", "duplicate"])
def test_put_many_failing_half_way_writes_nothing(butler: Butler, tmp_path: Path, where: str) -> None:
    butler.put({"old": True}, "metrics", visit=999)
    items: list[Any] = [({"i": i}, "metrics", {"visit": i}) for i in range(10)]
    if where == "unstorable":
        items[5] = ({1: "int key"}, "metrics", {"visit": 5})
        expected: type[Exception] = UnstorableDatasetError
    elif where == "conflict":
        items[5] = ({"i": 5}, "metrics", {"visit": 999})
        expected = ConflictingDatasetError
    else:
        items[7] = ({"i": 7}, "metrics", {"visit": 3})
        expected = ConflictingDatasetError
    with pytest.raises(expected):
        butler.putMany(items)
    assert len(storedFiles(tmp_path / "repo")) == 1
    assert [ref.dataId["visit"] for ref in butler.queryDatasets("metrics")] == [999]
    assert butler.putMany([({"i": 0}, "metrics", {"visit": 0})])[0].dataId["visit"] == 0


def test_put_many_refuses_what_is_not_an_item(butler: Butler) -> None:
    with pytest.raises(ArgumentTypeError, match="item 1"):
        butler.putMany([({"a": 1}, "metrics", {"visit": 1}), {"a": 2}])  # type: ignore[list-item]
    with pytest.raises(ArgumentTypeError, match="iterable of"):
        butler.putMany("metrics")  # type: ignore[arg-type]
    assert butler.putMany([]) == []
    assert butler.queryDatasets("metrics").count() == 0


def test_puts_inside_a_transaction_commit_once_and_a_failed_one_is_undone_alone(
    butler: Butler, tmp_path: Path
) -> None:
    commits = countCommits(butler)
    with butler.transaction():
        for i in range(10):
            butler.put({"i": i}, "metrics", visit=i)
        with pytest.raises(ConflictingDatasetError):
            butler.put({"again": True}, "metrics", visit=3)
        with pytest.raises(RuntimeError), butler.transaction():
            butler.put({"inner": True}, "metrics", visit=50)
            raise RuntimeError("undo the inner block")
        butler.put({"i": 10}, "metrics", visit=10)
    assert commits[0] == 1
    assert sorted(ref.dataId["visit"] for ref in butler.queryDatasets("metrics")) == list(range(11))
    assert len(storedFiles(tmp_path / "repo")) == 11
    assert butler.get("metrics", visit=3) == {"i": 3}


def test_put_many_failing_in_the_datastore_half_way_leaves_no_file(
    butler: Butler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write = JsonFormatter.write
    calls = [0]

    def failingSixth(self: JsonFormatter, obj: Any, stream: Any, storageClass: Any) -> None:
        calls[0] += 1
        if calls[0] == 6:
            raise OSError("disk trouble")
        write(self, obj, stream, storageClass)

    monkeypatch.setattr(JsonFormatter, "write", failingSixth)
    with pytest.raises(Exception, match="disk trouble"):
        butler.putMany([({"i": i}, "metrics", {"visit": i}) for i in range(10)])
    assert calls[0] == 6
    assert storedFiles(tmp_path / "repo") == []
    assert butler.queryDatasets("metrics").count() == 0
