"""SqlRegistry runs the registry contract on SQLite (a temporary file) and on PostgreSQL.

The PostgreSQL server is started by `make test` (scripts/postgres.sh); its tests skip without
one, except under CI, where they fail.
"""

from __future__ import annotations

import gc
import inspect
import sqlite3
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from databutler import (
    ConfigError,
    DatasetType,
    MissingOptionalDependencyError,
    MissingRegistryError,
    RegistryError,
    SqlRegistry,
)
from databutler.dimensions import DimensionUniverse
from databutler.registry import Registry, RegistryConfig, schema
from databutler.registry.sql_registry import _Verb
from databutler.registry.types_runs import DatasetTypeManager
from databutler.testing.registry_support import POSTGRES_URL_ENV, dropNamespace, newNamespace, postgresUrl
from databutler.testing.registry_tests import RegistryTests


class TestSqliteRegistry(RegistryTests):
    def makeRegistry(self, tmpPath: Path) -> SqlRegistry:
        return SqlRegistry(f"sqlite:///{tmpPath}/registry.sqlite3", create=True)


class TestPostgresRegistry(RegistryTests):
    def makeRegistry(self, tmpPath: Path) -> SqlRegistry:
        return SqlRegistry(postgresUrl(), namespace=newNamespace(), create=True)

    def cleanupRegistry(self, registry: SqlRegistry) -> None:
        assert registry.namespace is not None
        dropNamespace(registry.url, registry.namespace)


# -- SQLite specifics --


def test_sqlite_settings(tmp_path: Path) -> None:
    with SqlRegistry(f"sqlite:///{tmp_path}/r.sqlite3", create=True) as registry:
        registry.registerRun("run")
    connection = sqlite3.connect(tmp_path / "r.sqlite3")
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        records = {f"dimension_{name}" for name in DimensionUniverse.default()}
        chains = {"collection_chain", "collection_chain_name", "collection", "collection_tag"}
        chains.add("collection_calibration")
        assert tables == set(schema.metadata.tables) | records | chains
    finally:
        connection.close()


def test_dimension_value_indexes_are_partial_on_both_databases(tmp_path: Path) -> None:
    """The PostgreSQL WHERE is given at create time (schema.createAll), not in the module."""
    with SqlRegistry(f"sqlite:///{tmp_path}/r.sqlite3", create=True):
        pass
    connection = sqlite3.connect(tmp_path / "r.sqlite3")
    try:
        sqls = [row[0] for row in connection.execute("SELECT sql FROM sqlite_master WHERE type = 'index'")]
    finally:
        connection.close()
    assert sum("WHERE int_value IS NOT NULL" in (sql or "") for sql in sqls) == 1
    assert sum("WHERE str_value IS NOT NULL" in (sql or "") for sql in sqls) == 1
    namespace = newNamespace()
    url = postgresUrl()
    try:
        with SqlRegistry(url, namespace=namespace, create=True) as registry, registry._db.read() as pg:
            query = (
                "SELECT indexdef FROM pg_indexes WHERE schemaname = :s AND tablename = 'dataset_dimension'"
            )
            definitions = pg.execute(sa.text(query), {"s": namespace}).scalars().all()
    finally:
        dropNamespace(url, namespace)
    assert sum("WHERE (int_value IS NOT NULL)" in d for d in definitions) == 1
    assert sum("WHERE (str_value IS NOT NULL)" in d for d in definitions) == 1


def test_open_missing_sqlite_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "registry.sqlite3"
    with pytest.raises(MissingRegistryError, match="create=True") as info:
        SqlRegistry(f"sqlite:///{path}")
    assert isinstance(info.value, FileNotFoundError)
    assert not path.exists() and not path.parent.exists()


def test_open_empty_sqlite_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite3"
    sqlite3.connect(path).close()
    with pytest.raises(MissingRegistryError, match="holds no databutler registry"):
        SqlRegistry(f"sqlite:///{path}")


def test_create_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/deeper/registry.sqlite3"
    with SqlRegistry(url, create=True) as registry:
        registry.registerRun("run")
    with SqlRegistry(url, create=True) as registry:
        assert registry.queryRuns() == ["run"]


def test_schema_version_mismatch(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/registry.sqlite3"
    SqlRegistry(url, create=True).close()
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.update(schema.attributeTable).values(value="0"))
    engine.dispose()
    with pytest.raises(RegistryError, match="schema version '0'"):
        SqlRegistry(url)


def test_in_memory_sqlite() -> None:
    with SqlRegistry("sqlite://", create=True) as registry:
        registry.registerDatasetType(DatasetType("raw", ("exposure",), "StructuredDataDict"))
        registry.registerRun("run")
        ref = registry.addDataset("raw", {"exposure": 1}, "run")
        assert registry.findDataset("raw", {"exposure": 1}, "run") == ref


# -- configuration and URLs --


def test_from_config_fills_in_the_root(tmp_path: Path) -> None:
    config = {"registry": {"db": "sqlite:///<butlerRoot>/registry.sqlite3"}, "datastore": {"cls": "x"}}
    with SqlRegistry.fromConfig(config, root=tmp_path, create=True) as registry:
        assert registry.url.database == f"{tmp_path.as_posix()}/registry.sqlite3"
        registry.registerRun("run")
    assert (tmp_path / "registry.sqlite3").is_file()
    with SqlRegistry.fromConfig(RegistryConfig(), root=tmp_path) as registry:  # the packaged default
        assert registry.queryRuns() == ["run"]
    with pytest.raises(ConfigError, match="root="):
        SqlRegistry.fromConfig(config)


def test_registry_config_defaults() -> None:
    config = RegistryConfig({"registry": {"db": "sqlite:///x.sqlite3"}})
    assert config["db"] == "sqlite:///x.sqlite3"
    assert config["busyTimeout"] == 30 and config["namespace"] is None


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("not a url", "not a database URL"),
        ("mysql://localhost/db", "supports 'sqlite' and 'postgresql'"),
        ("postgresql+psycopg2://localhost/db", "psycopg"),
    ],
)
def test_bad_urls(url: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SqlRegistry(url)


def test_namespace_is_for_postgresql(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="namespace"):
        SqlRegistry(f"sqlite:///{tmp_path}/r.sqlite3", namespace="x", create=True)


def test_repr_hides_the_password() -> None:
    with SqlRegistry("sqlite://", create=True) as registry:
        assert "sqlite://" in repr(registry)
    from databutler.registry.databases import parseUrl

    url = parseUrl("postgres://user:secret@host:5432/db")
    assert url.drivername == "postgresql+psycopg" and "secret" not in url.render_as_string()


# -- PostgreSQL specifics --


def test_postgres_needs_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed
    with pytest.raises(MissingOptionalDependencyError, match=r"databutler\[postgres\]"):
        SqlRegistry("postgresql://localhost/db")


def test_postgres_missing_namespace_is_an_error() -> None:
    with pytest.raises(MissingRegistryError, match="holds no databutler registry"):
        SqlRegistry(postgresUrl(), namespace=newNamespace())


def test_postgres_unreachable_is_an_error() -> None:
    url = sa.make_url(postgresUrl()).set(database="no_such_database")
    with pytest.raises(RegistryError, match="Could not open registry"):
        SqlRegistry(url)


def test_postgres_statistics_refreshed_after_bulk_load() -> None:
    namespace = newNamespace()
    try:
        with SqlRegistry(postgresUrl(), namespace=namespace, create=True) as registry:
            registry.registerDatasetType(DatasetType("raw", ("exposure",), "StructuredDataDict"))
            registry.registerRun("run")
            registry.addDatasets("raw", [{"exposure": i} for i in range(10_000)], "run")
            query = sa.text(
                "SELECT c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = :namespace AND c.relname = :table"
            )
            with registry._db.engine.connect() as connection:
                for table in ("dataset", "dataset_dimension"):
                    rows = connection.execute(query, {"namespace": namespace, "table": table}).scalar_one()
                    assert rows >= 10_000, f"{table} was not analyzed"
    finally:
        dropNamespace(postgresUrl(), namespace)


def test_postgres_from_config() -> None:
    namespace = newNamespace()
    config = {"registry": {"db": postgresUrl().replace("+psycopg", ""), "namespace": namespace}}
    try:
        with SqlRegistry.fromConfig(config, create=True) as registry:
            assert registry.url.drivername == "postgresql+psycopg" and registry.namespace == namespace
            registry.registerRun("run")
        with SqlRegistry.fromConfig(config) as registry:
            assert registry.queryRuns() == ["run"]
    finally:
        dropNamespace(postgresUrl(), namespace)


# -- the PostgreSQL test server switch --


def test_postgres_tests_fail_in_ci_without_a_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(POSTGRES_URL_ENV, raising=False)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the PostgreSQL"):
        postgresUrl()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="No PostgreSQL server"):
        postgresUrl()
    monkeypatch.setenv(POSTGRES_URL_ENV, "postgresql://somewhere/db")
    assert postgresUrl() == "postgresql://somewhere/db"


def test_sqlite_read_connections_per_thread(tmp_path: Path) -> None:
    registry = SqlRegistry(f"sqlite:///{tmp_path}/r.sqlite3", create=True)
    registry.registerDatasetType(DatasetType("raw", ("exposure",), "StructuredDataDict"))
    registry.registerRun("run")
    readers = registry._db._readerFinalizers
    seen: list[object] = []

    def read() -> None:
        seen.append(registry.queryRuns())

    thread = threading.Thread(target=read)
    thread.start()
    thread.join()
    del thread
    gc.collect()
    assert seen == [["run"]]
    assert sum(f.alive for f in registry._db._readerFinalizers) == 1  # the ended thread's is closed
    ref = registry.addDataset("raw", {"exposure": 1}, "run")  # written on another connection...
    assert registry.getDataset(ref.id) == ref  # ...and seen at once by this thread's reader
    registry.close()
    assert not any(f.alive for f in readers | registry._db._readerFinalizers)


def test_a_verb_a_manager_implements_is_its_method() -> None:
    """Such a verb is documented once, in Registry, and a call goes straight to the manager."""
    registry = SqlRegistry("sqlite://", create=True)
    try:
        assert registry.queryDatasets == registry.datasets.queryDatasets
        assert registry.queryDimensionRecords == registry.dimensionRecords.query
        assert SqlRegistry.queryRuns.__doc__ == Registry.queryRuns.__doc__
        assert inspect.signature(SqlRegistry.queryDatasets) == inspect.signature(Registry.queryDatasets)
        assert "EXPLAIN QUERY PLAN" in (SqlRegistry.explainQuery.__doc__ or "")
        assert registry.registerRun("run1") and registry.queryRuns() == ["run1"]
        assert SqlRegistry.queryRuns(registry) == ["run1"]  # read from the class: a function
    finally:
        registry.close()


def test_a_verb_must_be_named_for_the_registry_verb() -> None:
    with pytest.raises((TypeError, RuntimeError)) as caught:

        class Misnamed(SqlRegistry):
            runs = _Verb(Registry.queryRuns).of("datasetTypes", DatasetTypeManager.queryRuns)

    assert "Misnamed.runs must be _Verb(Registry.runs)" in str(caught.value) + str(caught.value.__cause__)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_insert_values_takes_rows_in_the_order_of_their_keys(tmp_path: Path, backend: str) -> None:
    """`ConnectionManager.insertValues`: tuples in any key order land in the right columns."""
    namespace = None
    if backend == "sqlite":
        registry = SqlRegistry(f"sqlite:///{tmp_path}/r.sqlite3", create=True)
    else:
        namespace = newNamespace()
        registry = SqlRegistry(postgresUrl(), namespace=namespace, create=True)
    table = schema.attributeTable
    try:
        db = registry._db
        with db.write() as connection:
            db.insertValues(connection, table.insert(), ("value", "name"), [("one", "a"), ("two", "b")])
            db.insertValues(connection, table.insert(), ("name", "value"), [("c", "three")])
        if backend == "sqlite":  # a statement with parameters the rows do not give
            statement = table.insert().values(value=sa.bindparam("other"))
            with pytest.raises(TypeError, match="other parameters"), db.write() as connection:
                db.insertValues(connection, statement, ("name",), [("d",)])
        with db.read() as connection:
            rows = dict(connection.execute(sa.select(table.c.name, table.c.value)).all())
        assert {name: rows[name] for name in "abc"} == {"a": "one", "b": "two", "c": "three"}
        assert "d" not in rows
    finally:
        registry.close()
        if namespace is not None:
            dropNamespace(postgresUrl(), namespace)
