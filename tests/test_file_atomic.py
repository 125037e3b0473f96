"""Atomic writes: a process killed in the middle of a put leaves no partial file and no record.

Each test runs the put in a child process, waits until it is provably in the middle of
writing (it signals through a file), kills it with SIGKILL and then inspects the root.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from databutler import DatasetRef, DatasetType, FileDatastore

IMAGE = DatasetType("image", ("visit",), "NumpyArray")
NAMESPACE = uuid.UUID("5f0c4d7e-3f5e-4f43-9a53-0f6c1f1d2a10")

CHILD = r"""
import sys, time, uuid
import numpy as np
from databutler import DatasetRef, DatasetType, FileDatastore
from databutler.formatters.npy import NpyFormatter

root, mode, signalPath = sys.argv[1:4]
NAMESPACE = uuid.UUID("5f0c4d7e-3f5e-4f43-9a53-0f6c1f1d2a10")
IMAGE = DatasetType("image", ("visit",), "NumpyArray")


def stall():
    open(signalPath, "w").close()
    time.sleep(120)


class StallingFormatter(NpyFormatter):
    def write(self, inMemoryDataset, stream, storageClass):
        stream.write(b"\x93NUMPY" + b"\0" * 100_000)  # the start of a file...
        stream.flush()
        stall()  # ...and then the process dies


formatters = {"NumpyArray": "__main__.StallingFormatter"} if mode == "formatter" else {}
store = FileDatastore({"datastore": {"cls": "databutler.FileDatastore", "root": root, "formatters": formatters}})
if mode == "rename":
    store.files.rename = lambda *args, **kwargs: stall()  # record inserted, transaction not committed
if mode == "loop":
    open(signalPath, "w").close()
    for visit in range(10_000):
        ref = DatasetRef(IMAGE, {"visit": visit}, id=uuid.uuid5(NAMESPACE, str(visit)), run="run")
        store.put(np.full(2_000_000, float(visit)), ref)
else:
    store.put(np.arange(1000.0), DatasetRef(IMAGE, {"visit": 1}, id=uuid.uuid5(NAMESPACE, "1"), run="run"))
"""


def refFor(visit: int) -> DatasetRef:
    return DatasetRef(IMAGE, {"visit": visit}, id=uuid.uuid5(NAMESPACE, str(visit)), run="run")


def startChild(root: Path, mode: str, signalPath: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(root), mode, str(signalPath)])


def waitForSignal(child: subprocess.Popen[bytes], signalPath: Path) -> None:
    deadline = time.monotonic() + 120
    while not signalPath.exists():
        assert child.poll() is None, f"child exited early with {child.returncode}"
        assert time.monotonic() < deadline, "child never reached the point to kill it at"
        time.sleep(0.01)


def kill(child: subprocess.Popen[bytes]) -> None:
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL


def visibleFiles(root: Path) -> list[Path]:
    return [
        p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".") and "sqlite3" not in p.name
    ]


@pytest.mark.parametrize("mode", ["formatter", "rename"])
def test_killed_mid_put_leaves_no_partial_file_and_no_record(tmp_path: Path, mode: str) -> None:
    root = tmp_path / "root"
    signalPath = tmp_path / "signal"
    child = startChild(root, mode, signalPath)
    try:
        waitForSignal(child, signalPath)
    finally:
        kill(child)
    store = FileDatastore({"datastore": {"cls": "databutler.FileDatastore", "root": str(root)}})
    ref = refFor(1)
    finalPath = Path(store.getUri(ref, predict=True).removeprefix("file://").removesuffix("#predicted"))
    assert not store.exists(ref)
    assert len(store) == 0
    assert not finalPath.exists()
    assert visibleFiles(root) == []
    leftovers = [p.name for p in finalPath.parent.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(f".{finalPath.name}.tmp-")  # only the temp file
    # The datastore is fully usable afterwards, and the leftover can be cleaned up.
    store.put(np.arange(3.0), ref)
    np.testing.assert_array_equal(store.get(ref), np.arange(3.0))
    assert store.removeLeftoverFiles() == []  # too young: it could belong to a put in progress
    removed = store.removeLeftoverFiles(olderThan=0)
    assert [Path(uri.removeprefix("file://")).name for uri in removed] == leftovers
    assert sorted(p.name for p in finalPath.parent.iterdir()) == [finalPath.name]
    np.testing.assert_array_equal(store.get(ref), np.arange(3.0))


@pytest.mark.parametrize("delay", [0.25, 0.6, 1.1])
def test_killed_at_any_moment_never_leaves_a_partial_file(tmp_path: Path, delay: float) -> None:
    root = tmp_path / "root"
    signalPath = tmp_path / "signal"
    child = startChild(root, "loop", signalPath)
    try:
        waitForSignal(child, signalPath)
        time.sleep(delay)
    finally:
        kill(child)
    store = FileDatastore({"datastore": {"cls": "databutler.FileDatastore", "root": str(root)}})
    stored = 0
    for path in visibleFiles(root):  # every file at a final path is complete
        array = np.load(path)
        assert array.shape == (2_000_000,) and np.all(array == array[0])
    for visit in range(10_000):
        ref = refFor(visit)
        if not store.exists(ref):
            break
        np.testing.assert_array_equal(store.get(ref), np.full(2_000_000, float(visit)))  # checksum verified
        stored += 1
    assert not any(store.exists(refFor(v)) for v in range(stored, stored + 5))
    assert len(store) == stored
    assert len(visibleFiles(root)) in (stored, stored + 1)  # +1: renamed, not yet committed
    print(f"killed after {stored} complete puts")


def test_temporary_names_are_fresh_hidden_and_recognised_as_leftovers() -> None:
    from databutler.datastores.file._access import _LEFTOVER
    from databutler.datastores.file._io import asidePathFor, tempPathFor

    names = {tempPathFor("/r/run/a.npy") for _ in range(1000)}
    assert len(names) == 1000
    for name in [*list(names)[:10], asidePathFor("/r/run/a.npy")]:
        folder, base = os.path.split(name)
        assert folder == "/r/run" and base.startswith(".a.npy.") and _LEFTOVER.match(base)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_repeat_its_parents_temporary_names() -> None:
    import random

    from databutler.datastores.file._io import tempPathFor

    state = random.getstate()
    random.seed(0)  # a user seeding the global generator must not matter either
    try:
        readFd, writeFd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            os.write(writeFd, tempPathFor("/r/a").encode())
            os._exit(0)
    finally:
        random.setstate(state)
    os.close(writeFd)
    os.waitpid(pid, 0)
    with os.fdopen(readFd, "rb") as pipe:
        childName = pipe.read().decode()
    assert childName != tempPathFor("/r/a")


def test_a_temporary_file_is_created_exclusively_and_an_existing_one_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fsspec

    from databutler.datastores.file import _io as file_io

    taken = tmp_path / ".a.npy.tmp-0"
    taken.write_bytes(b"someone else's")
    monkeypatch.setattr(file_io, "tempPathFor", lambda path: str(taken))
    with pytest.raises(FileExistsError):
        file_io.writeTemp(fsspec.filesystem("file"), str(tmp_path / "a.npy"), lambda s: None, None)
    assert taken.read_bytes() == b"someone else's"


def test_local_writes_use_the_builtin_open_and_make_new_folders(tmp_path: Path) -> None:
    store = FileDatastore({"datastore": {"cls": "databutler.FileDatastore", "root": str(tmp_path)}})

    def noFsspecOpen(*args: object, **kwargs: object) -> None:
        raise AssertionError("a local write went through fsspec's open")

    store.fs.open = noFsspecOpen
    try:
        ref = DatasetRef(IMAGE, {"visit": 1}, run="new/deeply/nested")
        store.put(np.arange(5.0), ref)
    finally:
        del store.fs.open
    np.testing.assert_array_equal(store.get(ref), np.arange(5.0))
    assert not [p for p in tmp_path.rglob(".*") if ".tmp-" in p.name]
    store.close()


BUTLER_CHILD = r"""
import sys, time
import numpy as np
from databutler import Butler
from databutler.formatters.npy import NpyFormatter

root, signalPath = sys.argv[1:3]


class StallingFormatter(NpyFormatter):
    def write(self, inMemoryDataset, stream, storageClass):
        stream.write(b"\x93NUMPY" + b"\0" * 100_000)
        stream.flush()
        open(signalPath, "w").close()
        time.sleep(120)  # encoding, before the registry transaction: killed here


with Butler(root, run="run") as butler:
    butler.datastore.layout.formatterNames["NumpyArray"] = "__main__.StallingFormatter"
    butler.put(np.arange(1000.0), "image", visit=1)
"""


def test_a_butler_killed_while_encoding_a_put_leaves_only_a_temporary_file(tmp_path: Path) -> None:
    from databutler import Butler

    root = tmp_path / "repo"
    config = {"datastore": {"cls": "databutler.datastores.file.FileDatastore", "root": "<butlerRoot>"}}
    Butler.makeRepo(root, config)
    with Butler(root, run="run") as butler:
        butler.registerDatasetType("image", ("visit",), "NumpyArray")
    signalPath = tmp_path / "signal"
    child = subprocess.Popen([sys.executable, "-c", BUTLER_CHILD, str(root), str(signalPath)])
    try:
        waitForSignal(child, signalPath)
        # The child is encoding: the registry is not locked, another writer goes ahead.
        with Butler(root, run="other") as other:
            other.put(np.zeros(3), "image", visit=2)
    finally:
        kill(child)
    with Butler(root, run="run") as butler:
        assert butler.registry.queryDatasets("image", collections="run") == []
        store = butler.datastore
        assert store.findOrphanFiles() == []  # hidden temporary files are the leftover cleanup's
        assert store.removeLeftoverFiles() == []  # too young: it could belong to a put in progress
        removed = store.removeLeftoverFiles(olderThan=0)
        assert len(removed) == 1 and ".tmp-" in removed[0]
        assert [p.name for p in root.rglob(".*") if p.is_file()] == []
        butler.put(np.arange(3.0), "image", visit=1)
        np.testing.assert_array_equal(butler.get("image", visit=1, collections="run"), np.arange(3.0))
