"""A repository a team can share: read-only access (a real read-only mount and a real
unprivileged user), readers that never wait for a writer (two real processes), a registry that
belongs to one repository, URI roots refused, configuration keys validated, ephemeral datasets
not outliving their process, getUri the same whichever tier holds a dataset, stats counting
datasets' files. Registry-dependent tests run on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner

from databutler import (
    Butler,
    ConfigError,
    DatasetRef,
    ForeignRegistryError,
    ReadOnlyRepositoryError,
    script,
)
from databutler.cli.main import cli
from databutler.testing.registry_support import dropNamespace, newNamespace, postgresUrl

BIN = Path(sys.executable).parent
DATABUTLER = str(BIN / "databutler")
NOBODY = "65534"
"""The unprivileged user (and group) readers run as: uid and gid of nobody/nogroup."""


# -- repositories on both back ends --


@pytest.fixture(params=["sqlite", "postgresql"])
def registryConfig(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """A config for makeRepo: the default SQLite registry, or a fresh PostgreSQL namespace."""
    if request.param == "sqlite":
        yield {}
        return
    url, namespace = postgresUrl(), newNamespace()
    yield {"registry": {"db": url, "namespace": namespace}}
    dropNamespace(url, namespace)


def _fill(root: Path, config: dict[str, Any] | None = None) -> None:
    Butler.makeRepo(root, config or None)
    with Butler(root, run="night1") as butler:
        butler.registerDatasetType("metrics", ("visit",), "StructuredDataDict")
        for visit in (1, 2):
            butler.put({"visit": visit}, "metrics", visit=visit)


def _openFolder() -> Path:
    """A folder every user can enter (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="databutler-shared-", dir="/tmp"))
    folder.chmod(0o755)
    return folder


def _runPython(code: str, *, user: str | None = None, cwd: Path | None = None) -> Any:
    """Run ``code`` in a new interpreter (as ``user`` if given); return what it prints as JSON."""
    command = [sys.executable, "-c", textwrap.dedent(code)]
    if user is not None:
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _runCli(*args: str, user: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [DATABUTLER, *args]
    if user is not None:
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]
    env = {**os.environ, "HOME": "/tmp"}
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=cwd, env=env)


_READER = """
import json
from databutler import Butler
with Butler({root!r}, writeable=False) as butler:
    refs = butler.queryDatasets("metrics")
    print(json.dumps(sorted(butler.get(ref)["visit"] for ref in refs)))
"""


# -- read-only --


def test_read_only_butler_refuses_every_write(tmp_path: Path, registryConfig: dict[str, Any]) -> None:
    root = tmp_path / "repo"
    _fill(root, registryConfig)
    files = [p for p in root.rglob("*") if p.is_file() and "-wal" not in p.name and "-shm" not in p.name]
    before = {p: p.read_bytes() for p in files}
    with Butler(root, writeable=False, collections=["night1"]) as reader:
        assert not reader.isWriteable and "writeable=False" in repr(reader)
        assert reader.get("metrics", visit=1) == {"visit": 1}
        ref = reader.findDataset("metrics", visit=2)
        assert ref is not None
        with pytest.raises(ReadOnlyRepositoryError, match="opened read-only") as info:
            reader.put({"visit": 3}, "metrics", visit=3, run="night1")
        assert isinstance(info.value, PermissionError)
        with pytest.raises(ReadOnlyRepositoryError):
            reader.removeDatasets([ref])
        with pytest.raises(ReadOnlyRepositoryError):
            reader.registerDatasetType("other", ("visit",), "StructuredDataDict")
        with pytest.raises(ReadOnlyRepositoryError), reader.transaction():
            pass
        with pytest.raises(ReadOnlyRepositoryError, match="opened read-only"):
            reader.registry.registerRun("sneaky")  # the registry itself refuses too
        # The datastore used directly: its records live in the read-only registry, so it refuses
        # before any file is moved into place or deleted.
        newRef = DatasetRef(ref.datasetType, {"visit": 4}, run="night1")
        with pytest.raises(ReadOnlyRepositoryError):
            reader.datastore.put({"visit": 4}, newRef)
        with pytest.raises(ReadOnlyRepositoryError):
            reader.datastore.remove(ref)
        assert not reader.datastore.exists(newRef) and reader.get(ref) == {"visit": 2}
    Butler.makeRepo(tmp_path / "source")
    with Butler(tmp_path / "source", run="r") as source, Butler(root, writeable=False) as reader:
        source.registerDatasetType("metrics", ("visit",), "StructuredDataDict")
        source.put({"visit": 9}, "metrics", visit=9)
        with pytest.raises(ReadOnlyRepositoryError):
            reader.transferFrom(source, source.queryDatasets())
    # Not a byte changed (SQLite may make the empty -wal/-shm a reader needs in a writable folder).
    assert {p: p.read_bytes() for p in files} == before
    assert {p for p in root.rglob("*") if p.is_file()} - set(files) <= {
        root / "registry.sqlite3-wal",
        root / "registry.sqlite3-shm",
    }
    with Butler(root, collections=["night1"]) as writer:  # nothing changed
        assert sorted(r.dataId["visit"] for r in writer.queryDatasets("metrics")) == [1, 2]
        assert writer.registry.queryRuns() == ["night1"]


def test_read_only_postgresql_session_refuses_writes_at_the_server(tmp_path: Path) -> None:
    url, namespace = postgresUrl(), newNamespace()
    try:
        _fill(tmp_path / "repo", {"registry": {"db": url, "namespace": namespace}})
        with Butler(tmp_path / "repo", writeable=False) as reader:
            engine = reader.registry._db.engine
            with engine.connect() as connection, pytest.raises(sa.exc.InternalError, match="read-only"):
                connection.execute(sa.text(f'CREATE TABLE "{namespace}".intruder (x integer)'))
    finally:
        dropNamespace(url, namespace)


@pytest.fixture
def readOnlyMount(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A filled repository and a real read-only bind mount of it: (writable source, mount)."""
    source, mount = tmp_path / "source", tmp_path / "mount"
    _fill(source / "repo")
    mount.mkdir()
    subprocess.run(["mount", "--bind", str(source), str(mount)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(mount)], check=True)
        with pytest.raises(OSError, match="Read-only file system"):
            (mount / "probe").write_text("x")
        yield source / "repo", mount / "repo"
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_repository_on_a_read_only_mount_opens_and_reads(readOnlyMount: tuple[Path, Path]) -> None:
    source, repo = readOnlyMount
    assert not (repo / "registry.sqlite3-wal").exists()  # nobody has it open: read immutable
    with Butler(repo, writeable=False, collections=["night1"]) as reader:
        assert [reader.get(r)["visit"] for r in reader.queryDatasets("metrics")] == [1, 2]
        assert reader.getUri("metrics", visit=1).startswith("file://")
        with pytest.raises(ReadOnlyRepositoryError):
            reader.put({"visit": 5}, "metrics", visit=5, run="night1")
    with pytest.raises(ReadOnlyRepositoryError, match=r"cannot be written.*writeable=False"):
        Butler(repo)  # opened for writing: refused with what to do instead
    refused = _runCli("put", str(repo), "metrics", str(source / "butler.yaml"), "visit=4", "--run", "night1")
    assert refused.returncode == 1 and "ReadOnlyRepositoryError" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert script.repoStats(repo).datasets == 2
    assert script.verifyDatasets(repo).isOk
    listed = _runCli("query-datasets", str(repo))
    assert listed.returncode == 0, listed.stderr
    assert "2 dataset(s)" in listed.stdout
    got = _runCli("get", str(repo), "metrics", "visit=2")
    assert got.returncode == 0 and "metrics" in got.stdout, got.stderr
    target = source.parent.parent / "copy"
    Butler.makeRepo(target)
    assert len(script.transferDatasets(repo, target).transferred) == 2  # copied off the mount
    # A writer has the database open (its -wal and -shm exist): readers use them, read-only.
    with Butler(source, run="night1") as writer:
        writer.put({"visit": 3}, "metrics", visit=3)
        assert (repo / "registry.sqlite3-shm").exists()
        assert _runPython(_READER.format(root=str(repo))) == [1, 2, 3]


def test_repository_without_write_permission_opens_and_reads_as_another_user() -> None:
    folder = _openFolder()
    try:
        root = folder / "repo"
        _fill(root)
        for path in [root, *root.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        probe = subprocess.run(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "touch", str(root / "x")],
            capture_output=True,
            text=True,
        )
        assert probe.returncode != 0 and "Permission denied" in probe.stderr  # really not writable
        assert _runPython(_READER.format(root=str(root)), user=NOBODY) == [1, 2]
        listed = _runCli("query-datasets", str(root), user=NOBODY, cwd=folder)
        assert listed.returncode == 0 and "2 dataset(s)" in listed.stdout, listed.stderr
        written = _runPython(
            f"""
            import json
            from databutler import Butler, ReadOnlyRepositoryError
            with Butler({str(root)!r}, writeable=False) as butler:
                try:
                    butler.put({{"visit": 7}}, "metrics", visit=7, run="night1")
                except ReadOnlyRepositoryError as exc:
                    print(json.dumps(str(exc)))
            """,
            user=NOBODY,
        )
        assert "opened read-only" in written
    finally:
        shutil.rmtree(folder)


# -- readers never wait --

_HOLDER = """
import sys
from databutler import Butler
with Butler(sys.argv[1], run="night1") as butler, butler.transaction():
    butler.put({"visit": 99}, "metrics", visit=99)   # the write lock is held from here
    print("holding", flush=True)
    sys.stdin.readline()                              # until the test says so
"""


def test_readers_never_wait_for_an_open_write_transaction(
    tmp_path: Path, registryConfig: dict[str, Any]
) -> None:
    """A writer holds an open write transaction until the readers have finished: a reader that
    waited for its lock would hang until its busy timeout and fail."""
    root = tmp_path / "repo"
    _fill(root, registryConfig)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(root)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        assert _runPython(_READER.format(root=str(root))) == [1, 2]  # uncommitted 99 not seen
        listed = _runCli("query-datasets", str(root))
        assert listed.returncode == 0 and "2 dataset(s)" in listed.stdout, listed.stderr
        got = _runCli("get", str(root), "metrics", "visit=1")
        assert got.returncode == 0, got.stderr
        assert holder.poll() is None  # the transaction was open all along
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        assert holder.wait(timeout=60) == 0
    assert _runPython(_READER.format(root=str(root))) == [1, 2, 99]


# -- a registry belongs to one repository --


def test_a_registry_belongs_to_one_repository(tmp_path: Path, registryConfig: dict[str, Any]) -> None:
    shared = registryConfig or {"registry": {"db": f"sqlite:///{tmp_path}/shared.sqlite3"}}
    _fill(tmp_path / "a", shared)
    with pytest.raises(ForeignRegistryError, match="already belongs to the data repository made at"):
        Butler.makeRepo(tmp_path / "b", shared)
    assert not (tmp_path / "b" / "butler.yaml").exists()
    # A butler.yaml pointed at another repository's registry is refused at open.
    Butler.makeRepo(tmp_path / "c")
    config = yaml.safe_load((tmp_path / "a" / "butler.yaml").read_text())
    config["repositoryId"] = yaml.safe_load((tmp_path / "c" / "butler.yaml").read_text())["repositoryId"]
    (tmp_path / "c" / "butler.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ForeignRegistryError, match=r"wrong registry\.db"):
        Butler(tmp_path / "c")
    with Butler(tmp_path / "a", collections=["night1"]) as owner:
        assert len(owner.queryDatasets("metrics")) == 2
        # A registry in use by a repository made before repository ids is not claimed either.
        table = sa.table("butler_attribute", sa.column("name"), schema=owner.registry.namespace)
        with owner.registry._db.baseEngine.begin() as connection:
            connection.execute(sa.delete(table).where(table.c.name.in_(["repositoryId", "repositoryRoot"])))
    with pytest.raises(ForeignRegistryError, match="already holds runs or dataset types"):
        Butler.makeRepo(tmp_path / "d", shared)


def test_cli_create_with_a_used_registry_db_is_refused(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/shared.sqlite3"
    runner = CliRunner()
    first = runner.invoke(cli, ["create", str(tmp_path / "a"), "--registry-db", db])
    assert first.exit_code == 0, first.output
    second = runner.invoke(cli, ["create", str(tmp_path / "b"), "--registry-db", db])
    assert second.exit_code == 1 and "ForeignRegistryError" in second.output
    assert "Traceback" not in second.output


# -- nothing silent: URI roots, configuration --


@pytest.mark.parametrize("uri", ["s3://bucket/repo", "memory://x"])
def test_uri_roots_are_refused_and_nothing_is_written(
    tmp_path: Path, uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="a repository root is a local folder"):
        Butler.makeRepo(uri)
    done = CliRunner().invoke(cli, ["create", uri])
    assert done.exit_code == 1 and "local folder" in done.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"registy": {"db": "sqlite://"}}, "registy"),
        ({"registry": {"db": "sqlite:///<butlerRoot>/r.sqlite3", "timeout": 3}}, "timeout"),
        ({"datastore": {"templatse": {"default": "{id}"}}}, "templatse"),
        ({"datastore": {"constraints": {"reject": ["raw"]}}}, "constraints"),
        (
            {
                "datastore": {
                    "cls": "databutler.datastores.chained.ChainedDatastore",
                    "constraints": {"reject": ["raw"]},
                    "datastores": [{"datastore": {"cls": "databutler.datastores.memory.InMemoryDatastore"}}],
                }
            },
            "constraints",
        ),
        (
            {
                "datastore": {
                    "cls": "databutler.datastores.chained.ChainedDatastore",
                    "readThru": True,
                    "datastores": [{"datastore": {"cls": "databutler.datastores.memory.InMemoryDatastore"}}],
                }
            },
            "readThru",
        ),
        (
            {
                "datastore": {
                    "cls": "databutler.datastores.chained.ChainedDatastore",
                    "datastores": [
                        {"datastore": {"cls": "databutler.datastores.memory.InMemoryDatastore", "maxByte": 1}}
                    ],
                }
            },
            "maxByte",
        ),
        (
            {
                "datastore": {
                    "cls": "databutler.datastores.chained.ChainedDatastore",
                    "datastores": [
                        {
                            "datastore": {"cls": "databutler.datastores.memory.InMemoryDatastore"},
                            "constraints": {"reject": ["raw"]},
                        }
                    ],
                }
            },
            "constraints",
        ),
    ],
)
def test_unknown_config_keys_are_refused_by_name(tmp_path: Path, config: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"{key}.*accept") as info:
        Butler.makeRepo(tmp_path / "repo", config)
    assert "accept" in str(info.value)
    assert not (tmp_path / "repo" / "butler.yaml").exists()


def test_templates_formatters_and_root_take_effect_on_a_default_repository(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    config = Butler.makeRepo(
        tmp_path / "repo",
        {
            "datastore": {
                "readThrough": False,
                "root": str(elsewhere),
                "templates": {"metrics": "{run}/m/metrics_{visit:03d}"},
                "formatters": {"metrics": "databutler.formatters.yaml.YamlFormatter"},
            }
        },
    )
    assert config["datastore.readThrough"] is False
    with Butler(tmp_path / "repo", run="night1") as butler:
        butler.registerDatasetType("metrics", ("visit",), "StructuredDataDict")
        ref = butler.put({"a": 1}, "metrics", visit=7)
        uri = butler.getUri(ref)
    assert uri == (elsewhere / "night1" / "m" / "metrics_007.yaml").as_uri()
    assert yaml.safe_load((elsewhere / "night1" / "m" / "metrics_007.yaml").read_text()) == {"a": 1}


def test_config_validate_command(tmp_path: Path) -> None:
    Butler.makeRepo(tmp_path / "repo")
    runner = CliRunner()
    ok = runner.invoke(cli, ["config-validate", str(tmp_path / "repo")])
    assert ok.exit_code == 0 and "is valid" in ok.output
    path = tmp_path / "repo" / "butler.yaml"
    config = yaml.safe_load(path.read_text())
    config["datastore"]["datastores"][1]["datastore"]["templatse"] = {"default": "{id}"}
    path.write_text(yaml.safe_dump(config))
    bad = runner.invoke(cli, ["config-validate", str(tmp_path / "repo")])
    assert bad.exit_code == 1 and "templatse" in bad.output and "templates" in bad.output
    with pytest.raises(ConfigError, match="templatse"):
        script.validateConfig(tmp_path / "repo")


# -- ephemeral datasets, getUri, stats --

_MEMORY_ONLY = {"datastore": {"cls": "databutler.datastores.memory.InMemoryDatastore", "name": "mem"}}


def test_memory_only_datasets_do_not_outlive_their_process(
    tmp_path: Path, registryConfig: dict[str, Any]
) -> None:
    root = tmp_path / "repo"
    Butler.makeRepo(root, {**registryConfig, **_MEMORY_ONLY})
    _runPython(
        f"""
        import json
        from databutler import Butler
        with Butler({str(root)!r}, run="night1") as butler:
            butler.registerDatasetType("metrics", ("visit",), "StructuredDataDict")
            butler.put({{"visit": 1}}, "metrics", visit=1)
            print(json.dumps(len(butler.queryDatasets("metrics"))))
        """
    )
    with Butler(root, run="night1") as butler:
        assert butler.queryDatasets("metrics") == []  # that process and its memory are gone
        assert butler.findDataset("metrics", visit=1) is None
        assert not butler.exists("metrics", visit=1)
        ref = butler.put({"visit": 2}, "metrics", visit=2)
        assert butler.queryDatasets("metrics") == [ref]  # what this process holds is reported
    listed = _runCli("query-datasets", str(root))
    assert listed.returncode == 0 and "0 dataset(s)" in listed.stdout, listed.stderr


def test_get_uri_is_the_same_whichever_tier_holds_the_dataset(tmp_path: Path) -> None:
    _fill(tmp_path / "repo")
    with Butler(tmp_path / "repo", collections=["night1"]) as fresh:
        ref = fresh.findDataset("metrics", visit=1)
        assert ref is not None
        before = fresh.getUri(ref)
        memory = fresh.datastore.datastores[0]
        assert not memory.exists(ref)
        fresh.get(ref)  # read through: the memory tier now holds it too
        assert memory.exists(ref)
        assert fresh.getUri(ref) == before and before.startswith("file://")


def test_stats_counts_the_datasets_files_only(tmp_path: Path) -> None:
    _fill(tmp_path / "repo")
    stats = script.repoStats(tmp_path / "repo")
    files = [p for p in (tmp_path / "repo" / "night1").rglob("*") if p.is_file()]
    assert stats.datasets == 2 and stats.files == 2 == len(files)
    assert stats.bytesOnDisk == sum(p.stat().st_size for p in files)
    shown = CliRunner().invoke(cli, ["stats", str(tmp_path / "repo")])
    assert shown.exit_code == 0 and f"2 ({stats.bytesOnDisk:,} bytes)" in shown.output


def test_reading_commands_are_read_only_unless_asked(tmp_path: Path) -> None:
    _fill(tmp_path / "repo")
    runner = CliRunner()
    for command in (["query-datasets"], ["stats"], ["verify"], ["get"]):
        args = [*command, str(tmp_path / "repo"), *(["metrics", "visit=1"] if command == ["get"] else [])]
        shown = runner.invoke(cli, [*command, "--help"])
        assert "--read-only / --writeable" in shown.output
        for flag in ("--read-only", "--writeable"):
            done = runner.invoke(cli, [*args, flag])
            assert done.exit_code == 0, done.output
    with Butler(tmp_path / "repo", run="night1") as writer, writer.transaction():
        writer.put({"visit": 3}, "metrics", visit=3)  # holds the write lock
        readOnly = _runCli("query-datasets", str(tmp_path / "repo"))
        assert readOnly.returncode == 0 and "2 dataset(s)" in readOnly.stdout, readOnly.stderr
