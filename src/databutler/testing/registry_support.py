"""Helpers for the registry tests: the PostgreSQL test server, and multi-process writers.

``make test`` starts a throwaway PostgreSQL server (``scripts/postgres.sh``) and passes its URL
in ``DATABUTLER_TEST_POSTGRES_URL``. Without it the PostgreSQL tests skip, except under CI
(``CI=true``), where a missing server is a failure: CI must prove the PostgreSQL path.

`concurrentWriters` runs `writerProcess` in several processes at once against one registry,
each adding overlapping data IDs, and gathers what each saw.
"""

from __future__ import annotations

import multiprocessing
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ..dataset_type import DatasetType
from ..exceptions import ConflictingDatasetError
from ..registry import Registry, SqlRegistry
from ..registry.databases import makeEngine, parseUrl
from ..storage_class import StorageClassFactory

__all__ = [
    "CALEXP",
    "CATALOG",
    "POSTGRES_URL_ENV",
    "RegistryFixtures",
    "WriterResult",
    "concurrentWriters",
    "dropNamespace",
    "forkedAdds",
    "makeDatasetType",
    "newNamespace",
    "postgresUrl",
    "registrySections",
    "writerProcess",
]

_FACTORY = StorageClassFactory.fromDefaults()

POSTGRES_URL_ENV = "DATABUTLER_TEST_POSTGRES_URL"
"""Environment variable holding the URL of the PostgreSQL server for tests."""


def postgresUrl() -> str:
    """Return the test PostgreSQL URL; skip without one, or fail without one under CI."""
    url = os.environ.get(POSTGRES_URL_ENV)
    if url:
        return url
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(
            f"{POSTGRES_URL_ENV} is not set, but CI must run the PostgreSQL registry tests: "
            "run the suite with `make test`, which starts a server (scripts/postgres.sh)."
        )
    pytest.skip(f"No PostgreSQL server for tests: set {POSTGRES_URL_ENV} or run `make test`.")


def newNamespace() -> str:
    """Return a fresh PostgreSQL schema name, so each test has a registry of its own."""
    return f"test_{uuid.uuid4().hex[:16]}"


def dropNamespace(url: str | sa.URL, namespace: str) -> None:
    """Drop the PostgreSQL schema ``namespace`` and everything in it."""
    engine = makeEngine(parseUrl(url))
    try:
        with engine.begin() as connection:
            connection.execute(sa.schema.DropSchema(namespace, cascade=True, if_exists=True))
    finally:
        engine.dispose()


def registrySections(kind: str) -> Iterator[dict[str, str] | None]:
    """Yield the ``registry`` config section of a new repository on ``kind`` (``"sqlite"``: `None`).

    For a ``"postgresql"`` one, a schema of its own on the test server, dropped afterwards: the
    body of a fixture parametrized over both databases.
    """
    if kind == "sqlite":
        yield None
        return
    url, namespace = postgresUrl(), newNamespace()
    yield {"db": url, "namespace": namespace}
    dropNamespace(url, namespace)


@dataclass(frozen=True)
class WriterResult:
    """What one writer process did: the data IDs it added and those it found taken."""

    added: list[int]
    conflicts: list[int]


def makeDatasetType(name: str, dimensions: tuple[str, ...], storageClassName: str) -> DatasetType:
    """Return a dataset type whose storage class is one of the packaged definitions."""
    return DatasetType(name, dimensions, _FACTORY.getStorageClass(storageClassName))


DATASET_TYPE = makeDatasetType("raw", ("exposure",), "StructuredDataDict")
RUN = "concurrent"


def writerProcess(
    url: str, namespace: str | None, worker: int, count: int, stride: int, barrier: Any, queue: Any
) -> None:
    """Add ``count`` datasets whose exposure numbers start at ``worker * stride``.

    Every writer also registers the same dataset type and run, so those races are tested too.
    Every fifth insert is a batch of one through `addDatasets`, the rest through `addDataset`.
    Puts a `WriterResult`, or the text of an unexpected error, on ``queue``.
    """
    try:
        registry = SqlRegistry(url, namespace=namespace)
        barrier.wait(timeout=120)
        added: list[int] = []
        conflicts: list[int] = []
        with registry:
            registry.registerDatasetType(DATASET_TYPE)
            registry.registerRun(RUN)
            for exposure in range(worker * stride, worker * stride + count):
                try:
                    if exposure % 5 == 0:
                        registry.addDatasets("raw", [{"exposure": exposure}], RUN)
                    else:
                        registry.addDataset("raw", {"exposure": exposure}, RUN)
                except ConflictingDatasetError:
                    conflicts.append(exposure)
                else:
                    added.append(exposure)
        queue.put(WriterResult(added, conflicts))
    except BaseException as exc:  # reported to the parent, which fails the test
        queue.put(f"worker {worker}: {type(exc).__name__}: {exc}")


def concurrentWriters(
    registry: Registry, workers: int = 4, count: int = 200, stride: int = 100
) -> list[WriterResult]:
    """Run ``workers`` `writerProcess` processes at once against ``registry``'s database.

    Raises
    ------
    AssertionError
        A writer failed with an unexpected error, or did not finish.
    """
    assert isinstance(registry, SqlRegistry), "writer processes open a SqlRegistry by its URL"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers)
    queue = context.Queue()
    url = registry.url.render_as_string(hide_password=False)
    processes = [
        context.Process(
            target=writerProcess, args=(url, registry.namespace, worker, count, stride, barrier, queue)
        )
        for worker in range(workers)
    ]
    for process in processes:
        process.start()
    results = [queue.get(timeout=300) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    errors = [r for r in results if not isinstance(r, WriterResult)]
    assert not errors, errors
    return [r for r in results if isinstance(r, WriterResult)]


def _forkedAdd(registry: Registry, visit: int, queue: Any) -> None:
    try:
        ref = registry.addDataset("calexp", {"visit": visit, "detector": 0}, "run1")
        queue.put((visit, str(ref.id)))
    except BaseException as exc:  # reported to the parent, which fails the test
        queue.put((visit, f"{type(exc).__name__}: {exc}"))


def forkedAdds(registry: Registry, visits: list[int]) -> dict[int, str]:
    """Add a ``calexp`` for each visit, each from a child forked from this process.

    The children use ``registry`` itself, opened (with pooled connections) before the fork.
    Returns visit → the new dataset id, or the error a child met.
    """
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    processes = [context.Process(target=_forkedAdd, args=(registry, visit, queue)) for visit in visits]
    for process in processes:
        process.start()
    results = dict(queue.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(timeout=60)
    return results


CALEXP = makeDatasetType("calexp", ("visit", "detector"), "MaskedImage")
"""A composite dataset type (image, mask, metadata components) the registry tests use."""
CATALOG = makeDatasetType("catalog", ("visit", "band"), "StructuredDataDict")
"""A dataset type with an int and a str dimension."""


class RegistryFixtures:
    """How to build the registries a registry test uses; subclasses implement `makeRegistry`."""

    def makeRegistry(self, tmpPath: Path) -> Registry:
        """Return a new, empty registry (created); ``tmpPath`` is a folder it may use."""
        raise NotImplementedError("A RegistryTests subclass must say how to build its registry.")

    def cleanupRegistry(self, registry: Registry) -> None:
        """Remove what `makeRegistry` made beyond ``tmpPath`` (called after ``close``)."""

    def reopen(self, registry: Registry, **kwargs: Any) -> Registry:
        """Open another registry on the same database (a `SqlRegistry`'s; override for others)."""
        assert isinstance(registry, SqlRegistry), "override reopen for a registry that is not SQL"
        return SqlRegistry(registry.url, namespace=registry.namespace, **kwargs)

    @pytest.fixture
    def registry(self, tmp_path: Path) -> Iterator[Registry]:
        """Provide a new, empty registry from `makeRegistry` for one test; close and clean it up after."""
        registry = self.makeRegistry(tmp_path)
        try:
            yield registry
        finally:
            registry.close()
            self.cleanupRegistry(registry)

    @pytest.fixture
    def filled(self, registry: Registry) -> Registry:
        """Provide a registry with calexp and catalog types and runs ``run1`` and ``run2``."""
        registry.registerDatasetType(CALEXP)
        registry.registerDatasetType(CATALOG)
        registry.registerRun("run1")
        registry.registerRun("run2")
        return registry
