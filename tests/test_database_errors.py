"""Failures of the registry database are typed errors that say what to do (issue 9).

A lock held past the busy timeout (SQLite: by another process, which SQLite cannot name;
PostgreSQL: the session is named), a damaged registry file, a full disk (and removals that
still run on it), a value the database refuses. Through the API and the CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from databutler import (
    Butler,
    Config,
    DatabaseDamagedError,
    DatabaseLockedError,
    DatabaseValueError,
    RegistryError,
    SqlRegistry,
)
from databutler.cli import cli
from databutler.registry.reserve import SpaceReserve
from databutler.testing.registry_support import dropNamespace, newNamespace, postgresUrl

CHILD = Path(__file__).with_name("_disk_full_child.py")
COMMAND = Path(sys.executable).with_name("databutler")


def cliError(*args: str | Path) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    Butler.makeRepo(root, config=Config({"registry": {"busyTimeout": 0.3}}))
    with Butler(root, run="run1") as butler:
        butler.registerDatasetType("metrics", ("visit",), "StructuredDataDict")
        butler.put({"a": 1}, "metrics", visit=1)
    return root


def holdLock(repo: Path) -> subprocess.Popen[str]:
    """Start another process that holds the registry's write lock until its stdin closes."""
    code = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
        "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(repo / "registry.sqlite3")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def release(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    holder.stdin.close()
    assert holder.wait(timeout=30) == 0


# -- locks -------------------------------------------------------------------------------------


def test_sqlite_lock_timeout_is_typed_and_says_what_to_do(repo: Path) -> None:
    with Butler(repo, run="run1") as butler:
        holder = holdLock(repo)
        try:
            assert butler.get("metrics", visit=1) == {"a": 1}  # a reader is not blocked
            with pytest.raises(
                DatabaseLockedError, match=r"registry\.sqlite3.*locked: another writer"
            ) as info:
                butler.put({"a": 2}, "metrics", visit=2)
            message = str(info.value)
            assert "0.3 s" in message and "registry.busyTimeout" in message and "Retry" in message
            assert isinstance(info.value, TimeoutError) and isinstance(info.value, RegistryError)
            line = cliError("register-dataset-type", repo, "flat", "NumpyArray", "visit")
            assert "locked: another writer" in line and "[DatabaseLockedError]" in line
        finally:
            release(holder)
        assert butler.put({"a": 2}, "metrics", visit=2).run == "run1"  # and works once it is free
        assert butler.queryDatasets("metrics", where={"visit": 2}) != []


def test_postgresql_lock_timeout_names_the_session_holding_it(tmp_path: Path) -> None:
    url = postgresUrl()
    namespace = newNamespace()
    root = tmp_path / "repo"
    config = {"registry": {"db": url, "namespace": namespace, "busyTimeout": 0.5}}
    Butler.makeRepo(root, config=config)
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    try:
        with Butler(root) as butler, engine.connect() as other:
            other.execute(sa.text(f"INSERT INTO \"{namespace}\".run (name) VALUES ('night1')"))
            otherPid = other.execute(sa.text("SELECT pg_backend_pid()")).scalar()
            # `other` now holds the new row's lock, uncommitted: registering the same run waits.
            with pytest.raises(DatabaseLockedError, match=r"lock not granted for 0\.5 s") as info:
                butler.registry.registerRun("night1")
            assert f"pid {otherPid}" in str(info.value), str(info.value)
            assert "in a transaction for" in str(info.value)
            other.rollback()
            assert butler.registry.registerRun("night1") is True
    finally:
        engine.dispose()
        dropNamespace(url, namespace)


# -- a damaged registry ----------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_damaged_registry_file_is_typed(repo: Path, damage: str) -> None:
    database = repo / "registry.sqlite3"
    for sidecar in (repo / "registry.sqlite3-wal", repo / "registry.sqlite3-shm"):
        sidecar.unlink(missing_ok=True)
    if damage == "garbage":
        database.write_bytes(b"not a database " * 500)
    else:
        data = database.read_bytes()
        database.write_bytes(data[:100] + b"\xff" * (len(data) - 100))
    with pytest.raises(DatabaseDamagedError, match=r"registry\.sqlite3.*damaged.*Restore it from a backup"):
        Butler(repo)
    with pytest.raises(RegistryError):
        SqlRegistry(f"sqlite:///{database}")
    line = cliError("query-datasets", repo)
    assert "damaged" in line and "[DatabaseDamagedError]" in line


# -- a value the database refuses --------------------------------------------------------------


def test_value_the_database_refuses_is_typed(tmp_path: Path) -> None:
    url = postgresUrl()
    namespace = newNamespace()
    try:
        with SqlRegistry(url, namespace=namespace, create=True) as registry:
            with pytest.raises(DatabaseValueError, match="refused a value"), registry._db.write() as c:
                c.execute(sa.text(f'INSERT INTO "{namespace}".run (name) VALUES (:n)'), {"n": "x" * 300})
            assert registry.queryRuns() == []
    finally:
        dropNamespace(url, namespace)


# -- a full disk -------------------------------------------------------------------------------


def test_space_reserve_is_made_released_and_remade(tmp_path: Path) -> None:
    reserve = SpaceReserve(tmp_path / "registry.sqlite3", size=100_000)
    assert not reserve.exists() and reserve.ensure() and reserve.exists()
    assert reserve.path.stat().st_size == 100_000 and reserve.path.stat().st_blocks * 512 >= 100_000
    assert reserve.release() is True and not reserve.exists() and reserve.release() is False
    assert reserve.ensure() is True
    assert [p.name for p in tmp_path.iterdir()] == ["registry.sqlite3.reserve"]  # no temp file left
    (tmp_path / "ro").mkdir(mode=0o500)
    unwritable = SpaceReserve(tmp_path / "ro" / "registry.sqlite3")
    if os.geteuid() != 0:  # root writes anywhere
        assert unwritable.ensure() is False


def test_a_repository_keeps_a_reserve_beside_its_sqlite_registry(repo: Path) -> None:
    assert (repo / "registry.sqlite3.reserve").stat().st_size == 2 * 1024 * 1024
    (repo / "registry.sqlite3.reserve").unlink()
    with Butler(repo, writeable=False):
        assert not (repo / "registry.sqlite3.reserve").exists()  # a reader writes nothing
    with Butler(repo):
        assert (repo / "registry.sqlite3.reserve").exists()  # made again by a writer


@pytest.mark.skipif(sys.platform != "linux", reason="a small tmpfs in a private mount namespace is Linux's")
def test_full_disk_errors_are_typed_and_removals_still_free_space(tmp_path: Path) -> None:
    """On a real full file system: a 4 MB tmpfs mounted in a private mount namespace."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    script = f"mount -t tmpfs -o size=4m tmpfs {mount} && {sys.executable} {CHILD} {mount} {COMMAND}"
    unshare = shutil.which("unshare")
    assert unshare is not None, "needs util-linux's unshare"
    prefix = [unshare, "--mount"] if os.geteuid() == 0 else [unshare, "--user", "--map-root-user", "--mount"]
    done = subprocess.run([*prefix, "sh", "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["reserveAtOpen"] is True
    assert report["errors"][-1] == "DatabaseFullError", report  # the registry's commit, typed
    assert set(report["errors"]) <= {"FormatterError", "DatabaseFullError"}, report
    assert "registry.sqlite3" in report["fullMessage"] and "removeDatasets" in report["fullMessage"]
    assert report["freeAfterRemove"] > report["freeBeforeRemove"] + 400_000, report
    assert report["removedGone"] == [False, False, False] and report["keptReadable"] is True
    assert report["cliRemove"][0] == 0 and report["cliRemove"][1] == ["Removed 2 dataset(s)."], report
    assert report["left"] == report["putBeforeFull"] - 5
    assert report["verify"][0] == 0, report
