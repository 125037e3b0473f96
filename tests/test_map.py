"""Butler.map: registry-free units on a real Dask LocalCluster (2 worker processes), one merge."""

from __future__ import annotations

import multiprocessing
import pickle
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from databutler import Butler
from databutler.dataset_ref import DatasetRef
from databutler.exceptions import ArgumentTypeError, ConflictingDatasetError, MapUnitError
from databutler.testing.map_support import KillDuringWrite, KillFirst, RaiseFor, calibrate, getInChild
from databutler.testing.registry_support import dropNamespace, newNamespace, postgresUrl
from databutler.workers import UnitManifest, WorkerButler, fileDatastoreOf, planUnits

pytest.importorskip("s3fs")
from test_file_datastore_s3 import BUCKET, _options, s3Endpoint  # noqa: F401 (a fixture)

distributed = pytest.importorskip("distributed")

DIMS = ("visit", "detector")
UNITS = [{"visit": v, "detector": d} for v in range(20) for d in range(10)]  # 200 units


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    import dask

    # One retry after a worker dies, so that the kill test sees a unit fail for good quickly.
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 1}),
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",
            silence_logs=50,
        ) as cluster,
        distributed.Client(cluster) as daskClient,
    ):
        yield daskClient


def _prepare(root: Path, config: dict[str, Any] | None = None, units: list[dict[str, int]] = UNITS) -> Butler:
    Butler.makeRepo(root, config)
    butler = Butler(root, run="raw")
    for name in ("raw", "calexp", "src"):
        butler.registerDatasetType(name, DIMS, "StructuredDataDict")
    with butler.transaction():
        for dataId in units:
            butler.put({"value": dataId["visit"] * 100 + dataId["detector"]}, "raw", dataId)
    return butler


def _check(butler: Butler, run: str, units: list[dict[str, int]]) -> None:
    """0 missing, 0 duplicates, 0 orphans, and every output what calibrate makes."""
    for name in ("calexp", "src"):
        refs = butler.registry.queryDatasets(name, collections=[run])
        assert len(refs) == len(units)
        assert len({tuple(sorted(r.dataId.items())) for r in refs}) == len(units)
    assert fileDatastoreOf(butler.datastore).findOrphanFiles() == []
    for dataId in units[:: max(1, len(units) // 10)]:
        value = dataId["visit"] * 100 + dataId["detector"]
        expected = calibrate(dataId, {"raw": {"value": value}})
        assert butler.get("calexp", dataId, collections=[run]) == expected["calexp"]
        assert butler.get("src", dataId, collections=[run]) == expected["src"]


def test_map_of_200_units_on_a_local_cluster(client: Any, tmp_path: Path) -> None:
    butler = _prepare(tmp_path / "repo")
    result = butler.map(
        calibrate, UNITS, inputs=["raw"], outputs=["calexp", "src"], run="proc", executor=client
    )
    assert (result.unitsRun, result.merged, result.skipped, result.transactions) == (200, 400, 0, 1)
    assert result.failures == []
    _check(butler, "proc", UNITS)
    # The ids are the ones the driver predicted before any worker ran.
    ref = butler.findDataset("src", visit=3, detector=4, collections=["proc"])
    assert ref is not None and ref.id == butler.predictDatasetId("src", {"visit": 3, "detector": 4}, "proc")
    again = butler.map(
        calibrate, UNITS, inputs=["raw"], outputs=["calexp", "src"], run="proc", executor=client
    )
    assert (again.unitsRun, again.unitsSkipped, again.merged, again.transactions) == (0, 200, 0, 0)


def test_in_process_map_needs_no_executor(tmp_path: Path) -> None:
    units = UNITS[:30]
    butler = _prepare(tmp_path / "repo", units=units)
    result = butler.map(calibrate, units, inputs=["raw"], outputs=["calexp", "src"], run="proc")
    assert (result.unitsRun, result.merged) == (30, 60)
    _check(butler, "proc", units)


def test_a_unit_that_raises_is_reported_and_not_merged(client: Any, tmp_path: Path) -> None:
    units = UNITS[:40]
    butler = _prepare(tmp_path / "repo", units=units)
    bad, unstorable = {"visit": 1, "detector": 3}, {"visit": 2, "detector": 5}
    fn = RaiseFor(bad, unstorable)
    with pytest.raises(MapUnitError, match=r"failed \(and 1 more\)") as caught:
        butler.map(fn, units, inputs=["raw"], outputs=["calexp", "src"], run="proc", executor=client)
    failures = {tuple(sorted(f.dataId.items())): f for f in caught.value.failures}
    assert set(failures) == {tuple(sorted(bad.items())), tuple(sorted(unstorable.items()))}
    raised = failures[tuple(sorted(bad.items()))]
    assert "ValueError: bad pixels" in raised.error and "raise ValueError" in raised.traceback
    assert "UnstorableDatasetError" in failures[tuple(sorted(unstorable.items()))].error
    assert caught.value.result.merged == 2 * 38
    for dataId in (bad, unstorable):  # the calexp written before src failed is gone too
        assert butler.findDataset("calexp", dataId, collections=["proc"]) is None
    assert fileDatastoreOf(butler.datastore).findOrphanFiles() == []
    # The same map with a fixed function runs only the two missing units.
    result = butler.map(
        calibrate, units, inputs=["raw"], outputs=["calexp", "src"], run="proc", executor=client
    )
    assert (result.unitsRun, result.unitsSkipped, result.merged) == (2, 38, 4)
    _check(butler, "proc", units)


def test_worker_killed_during_the_map_then_rerun(client: Any, tmp_path: Path) -> None:
    butler = _prepare(tmp_path / "repo")
    markers = tmp_path / "markers"
    markers.mkdir()
    victim = {"visit": 7, "detector": 7}
    fn = KillFirst(victim, str(markers), times=2)  # allowed-failures=1: two deaths fail the unit
    with pytest.raises(MapUnitError) as caught:
        butler.map(fn, UNITS, inputs=["raw"], outputs=["calexp", "src"], run="proc", executor=client)
    failed = caught.value.failures
    # The victim, and perhaps units that were running beside it when its processes died.
    assert victim in [f.dataId for f in failed]
    assert "KilledWorker" in next(f.error for f in failed if f.dataId == victim)
    assert caught.value.result.merged == 2 * (200 - len(failed))
    assert len(list(markers.iterdir())) == 2  # two worker processes really died
    client.wait_for_workers(2, timeout=60)
    result = butler.map(fn, UNITS, inputs=["raw"], outputs=["calexp", "src"], run="proc", executor=client)
    assert (result.unitsRun, result.merged, result.skipped) == (len(failed), 2 * len(failed), 0)
    _check(butler, "proc", UNITS)  # 0 duplicates, 0 orphans, 0 missing


def test_two_maps_into_different_runs_at_once(client: Any, tmp_path: Path) -> None:
    units = UNITS[:60]
    _prepare(tmp_path / "repo", units=units).close()
    results: dict[str, Any] = {}

    def mapInto(run: str) -> None:
        with Butler(tmp_path / "repo", collections=["raw"]) as butler:
            results[run] = butler.map(
                calibrate, units, inputs=["raw"], outputs=["calexp", "src"], run=run, executor=client
            )

    threads = [threading.Thread(target=mapInto, args=(run,)) for run in ("procA", "procB")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {run: r.merged for run, r in results.items()} == {"procA": 120, "procB": 120}
    with Butler(tmp_path / "repo") as butler:
        _check(butler, "procA", units)
        _check(butler, "procB", units)
        a = butler.findDataset("src", visit=1, detector=1, collections=["procA"])
        b = butler.findDataset("src", visit=1, detector=1, collections=["procB"])
        assert a is not None and b is not None and a.id != b.id


def test_map_with_an_s3_datastore(client: Any, s3Endpoint: str, tmp_path: Path) -> None:  # noqa: F811
    s3 = s3Endpoint
    bucketRoot = f"s3://{BUCKET}/{uuid.uuid4().hex}"
    butler = _prepare(tmp_path / "repo", {"datastore": {"root": bucketRoot, "storageOptions": _options(s3)}})
    result = butler.map(
        calibrate, UNITS, inputs=["raw"], outputs=["calexp", "src"], run="proc", executor=client
    )
    assert (result.merged, result.transactions) == (400, 1)
    assert butler.getUri("src", visit=2, detector=3, collections=["proc"]).startswith(bucketRoot + "/proc/")
    _check(butler, "proc", UNITS)
    assert not list((tmp_path / "repo").rglob("*.json"))  # every file went to the bucket


def test_map_merges_into_a_postgresql_registry(client: Any, tmp_path: Path) -> None:
    url = postgresUrl()
    namespace = newNamespace()
    try:
        butler = _prepare(tmp_path / "repo", {"registry": {"db": url, "namespace": namespace}})
        assert butler.registry.url.get_backend_name() == "postgresql"
        result = butler.map(
            calibrate, UNITS, inputs=["raw"], outputs=["calexp", "src"], run="proc", executor=client
        )
        assert (result.merged, result.transactions) == (400, 1)
        _check(butler, "proc", UNITS)
        butler.close()
    finally:
        dropNamespace(url, namespace)


def test_merge_refuses_other_content_at_an_existing_id(tmp_path: Path) -> None:
    units = UNITS[:5]
    butler = _prepare(tmp_path / "repo", units=units)
    butler.map(calibrate, units, inputs=["raw"], outputs=["calexp", "src"], run="proc")
    butler.registry.registerRun("other")
    planned, _ = planUnits(butler, units, ["raw"], ["calexp", "src"], "other", ["raw"])
    manifest = WorkerButler.forUnit(planned[0]).run(calibrate, planned[0])
    # Same ids, other content: pretend an earlier map wrote different bytes under these ids.
    from databutler.workers import MapResult, UnitManifest, mergeManifests

    assert isinstance(manifest, UnitManifest)
    mergeManifests(butler, [manifest], MapResult())
    same = MapResult()
    mergeManifests(butler, [manifest], same)
    assert (same.merged, same.skipped) == (0, 2)  # the same content again is skipped
    ref, records = manifest.written[0]
    changed = UnitManifest(manifest.dataId, [(ref, [{**records[0], "checksum": "xxh3_128:0"}])])
    with pytest.raises(ConflictingDatasetError, match=str(ref.id)):
        mergeManifests(butler, [changed], MapResult())


def test_a_pickled_butler_reopens_in_another_process(tmp_path: Path) -> None:
    butler = _prepare(tmp_path / "repo", units=UNITS[:2])
    butler.collections = ["raw"]
    restored = pickle.loads(pickle.dumps(butler))
    assert (restored.root, restored.run, restored.collections) == (butler.root, "raw", ("raw",))
    readOnly = pickle.loads(pickle.dumps(Butler(tmp_path / "repo", writeable=False)))
    assert readOnly.isWriteable is False
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        pid, value, run, collections = pool.apply(getInChild, (butler, "raw", {"visit": 0, "detector": 1}))
    assert pid != multiprocessing.current_process().pid
    assert (value, run, collections) == ({"value": 1}, "raw", ["raw"])


def test_dataset_ids_are_uuid5_of_run_type_and_data_id(tmp_path: Path) -> None:
    butler = _prepare(tmp_path / "a", units=UNITS[:1])
    ref = butler.findDataset("raw", visit=0, detector=0)
    assert ref is not None and ref.id.version == 5
    assert butler.predictDatasetId("raw", {"visit": "0", "detector": 0}, "raw") == ref.id
    assert butler.predictDatasetId("raw", {"visit": 0, "detector": 0}, "other") != ref.id
    other = _prepare(tmp_path / "b", units=UNITS[:1])  # another repository, another namespace
    otherRef = other.findDataset("raw", visit=0, detector=0)
    assert otherRef is not None and otherRef.id != ref.id
    # Removed and put again: the same id, stored again.
    butler.removeDatasets([ref])
    assert butler.put({"value": 5}, "raw", visit=0, detector=0).id == ref.id
    assert butler.get("raw", visit=0, detector=0) == {"value": 5}


def test_a_repository_without_a_recorded_id_keeps_random_ids(tmp_path: Path) -> None:
    import yaml

    _prepare(tmp_path / "repo", units=UNITS[:1]).close()
    path = tmp_path / "repo" / "butler.yaml"
    config = yaml.safe_load(path.read_text())
    del config["repositoryId"]
    path.write_text(yaml.safe_dump(config))
    with Butler(tmp_path / "repo", run="raw") as butler:
        assert butler.predictDatasetId("raw", {"visit": 0, "detector": 1}) is None
        ref = butler.put({"value": 1}, "raw", visit=0, detector=1)
        assert ref.id.version == 7
        assert butler.get("raw", visit=0, detector=0) == {"value": 0}  # the uuid5 one still reads
        dataIds = [{"visit": 0, "detector": 1}]
        result = butler.map(calibrate, dataIds, inputs=["raw"], outputs=["calexp", "src"], run="p")
        assert result.merged == 2
        assert butler.findDataset("src", dataIds[0], collections=["p"]).id.version == 7


def test_progress_is_shown_on_stderr(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    units = UNITS[:30]
    butler = _prepare(tmp_path / "repo", units=units)
    capfd.readouterr()
    butler.map(calibrate, units, inputs=["raw"], outputs=["calexp", "src"], run="proc", progress=True)
    out, err = capfd.readouterr()
    assert "map into proc" in err and "30/30 units" in err
    assert "map into" not in out
    butler.map(calibrate, units, inputs=["raw"], outputs=["calexp", "src"], run="quiet", progress=False)
    assert "map into" not in capfd.readouterr().err


def test_a_worker_killed_mid_write_leaves_nothing_the_merge_picks_up(client: Any, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from databutler.cli.main import cli

    units = UNITS[:40]
    root = tmp_path / "repo"
    butler = _prepare(root, units=units)
    markers = tmp_path / "markers"
    markers.mkdir()
    victim = {"visit": 2, "detector": 2}
    fn = KillDuringWrite(victim, str(markers), times=2)  # allowed-failures=1: two deaths fail it
    with pytest.raises(MapUnitError) as caught:
        butler.map(fn, units, inputs=["raw"], outputs=["calexp", "src"], run="proc", executor=client)
    assert len(list(markers.iterdir())) == 2
    failed = [f.dataId for f in caught.value.failures]
    assert victim in failed
    # No record of the victim: its calexp was renamed into place, its src was a temporary file.
    for name in ("calexp", "src"):
        assert butler.findDataset(name, victim, collections=["proc"]) is None
    calexp = butler.getDatasetType("calexp")
    victimCalexp = DatasetRef(calexp, victim, butler.predictDatasetId(calexp, victim, "proc"), "proc")
    calexpUri = (
        fileDatastoreOf(butler.datastore).getUri(victimCalexp, predict=True).removesuffix("#predicted")
    )
    leftovers = [p for p in (root / "proc").rglob(".*") if p.is_file()]
    assert leftovers and all(".tmp-" in p.name for p in leftovers)
    # `databutler verify` shows what the killed worker left; no record names any of it.
    verify = CliRunner().invoke(cli, ["verify", str(root)])
    assert verify.exit_code == 0, verify.output
    orphans = {line.split()[1] for line in verify.output.splitlines() if line.startswith("ORPHAN")}
    assert calexpUri in orphans
    assert {p.as_uri() for p in leftovers} <= orphans
    fileStore = fileDatastoreOf(butler.datastore)
    registered = {fileStore.getUri(ref) for ref in butler.queryDatasets(collections=["proc", "raw"])}
    assert len(registered) == 3 * len(units) - 2 * len(failed)
    assert not registered & orphans
    # The rerun completes only the failed units; then cleanup leaves 0 orphans and verify is clean.
    client.wait_for_workers(2, timeout=60)
    result = butler.map(fn, units, inputs=["raw"], outputs=["calexp", "src"], run="proc", executor=client)
    assert (result.unitsRun, result.merged) == (len(failed), 2 * len(failed))
    _check(butler, "proc", units)
    cleanup = CliRunner().invoke(cli, ["cleanup", str(root), "--older-than", "0"])
    assert cleanup.exit_code == 0, cleanup.output
    assert not [p for p in (root / "proc").rglob(".*") if p.is_file()]
    verify = CliRunner().invoke(cli, ["verify", str(root)])
    assert verify.exit_code == 0 and "ORPHAN" not in verify.output
    assert f"Verified {len(units) * 3} dataset(s)" in verify.output


def test_the_merge_commits_once_per_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlalchemy as sa

    from databutler import workers

    units = UNITS[:60]
    butler = _prepare(tmp_path / "repo", units=units)
    butler.registry.registerRun("proc")
    monkeypatch.setattr(workers, "MERGE_CHUNK", 50)
    commits: list[object] = []

    def onCommit(connection: object) -> None:
        commits.append(connection)

    engines = [e for e in (butler.registry._db.baseEngine, butler.registry._db.readerEngine) if e is not None]
    for engine in engines:
        sa.event.listen(engine, "commit", onCommit)
    try:
        result = butler.map(calibrate, units, inputs=["raw"], outputs=["calexp", "src"], run="proc")
    finally:
        for engine in engines:
            sa.event.remove(engine, "commit", onCommit)
    # 120 datasets in chunks of at most 50: 50 merged after 25 units, 50 after 50, then 20.
    assert (result.merged, result.transactions) == (120, 3)
    assert len(commits) == 3  # planning and running commit nothing
    _check(butler, "proc", units)


def test_a_worker_butler_needs_no_registry(tmp_path: Path) -> None:
    units = UNITS[:3]
    root = tmp_path / "repo"
    butler = _prepare(root, units=units)
    butler.registry.registerRun("proc")
    planned, _ = planUnits(butler, units, ["raw"], ["calexp", "src"], "proc", ["raw"])
    butler.close()
    (root / "registry.sqlite3").rename(tmp_path / "elsewhere.sqlite3")  # no registry to reach
    worker = WorkerButler(planned[1].datastoreConfig, planned[1].storageClasses)
    manifest = worker.run(calibrate, planned[1])
    assert isinstance(manifest, UnitManifest), manifest
    assert [ref for ref, _ in manifest.written] == list(planned[1].outputs.values())
    assert not (root / "registry.sqlite3").exists()
    for ref, records in manifest.written:
        (record,) = records
        path = root / record["path"]
        assert record["fileSize"] == path.stat().st_size > 0
        assert record["checksum"].startswith("xxh3_128:")
        assert str(ref.id) in record["path"]
    assert manifest.size == sum(r["fileSize"] for _, rs in manifest.written for r in rs)


def test_a_rerun_writes_only_missing_outputs_and_never_replaces_a_registered_file(tmp_path: Path) -> None:
    units = UNITS[:4]
    butler = _prepare(tmp_path / "repo", units=units)
    mine = butler.put({"mine": True}, "calexp", units[1], run="proc")  # registered before the map
    path = Path(fileDatastoreOf(butler.datastore).getUri(mine).removeprefix("file://"))
    before = path.read_bytes()
    result = butler.map(calibrate, units, inputs=["raw"], outputs=["calexp", "src"], run="proc")
    assert (result.unitsRun, result.merged, result.skipped) == (4, 7, 0)
    assert path.read_bytes() == before
    assert butler.get("calexp", units[1], collections=["proc"]) == {"mine": True}
    assert (
        butler.get("src", units[1], collections=["proc"]) == calibrate(units[1], {"raw": {"value": 1}})["src"]
    )
    assert fileDatastoreOf(butler.datastore).findOrphanFiles() == []


def test_an_output_path_another_dataset_holds_is_refused_before_anything_runs(tmp_path: Path) -> None:
    units = UNITS[:3]
    config = {
        "datastore": {
            "cls": "databutler.datastores.file.FileDatastore",
            "records": {"db": "registry"},
            "templates": {"default": "{datasetType}/{visit}_{detector}"},  # no {run}, no {id}
        }
    }
    butler = _prepare(tmp_path / "repo", config, units=units)
    butler.map(calibrate, units, inputs=["raw"], outputs=["calexp", "src"], run="procA")
    path = tmp_path / "repo" / "calexp" / "0_1.json"
    before = path.read_bytes()
    with pytest.raises(ConflictingDatasetError, match=r"calexp/0_0\.json.*which dataset"):
        butler.map(calibrate, units, inputs=["raw"], outputs=["calexp", "src"], run="procB")
    assert path.read_bytes() == before
    assert butler.registry.queryDatasets("calexp", collections=["procB"]) == []
    _check(butler, "procA", units)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_units_per_task_must_be_a_positive_whole_number(tmp_path: Path, bad: Any) -> None:
    butler = _prepare(tmp_path / "repo", units=UNITS[:1])
    with pytest.raises(ArgumentTypeError, match="unitsPerTask"):
        butler.map(calibrate, UNITS[:1], inputs=["raw"], outputs=["calexp"], run="p", unitsPerTask=bad)


def test_units_travel_in_batches_on_dask(client: Any, tmp_path: Path) -> None:
    from databutler.workers import defaultUnitsPerTask

    assert [defaultUnitsPerTask(n, 2) for n in (1, 16, 17, 200, 2000)] == [1, 1, 2, 13, 125]
    units = UNITS[:50]
    butler = _prepare(tmp_path / "repo", units=units)
    fn = RaiseFor({"visit": 3, "detector": 3}, {"visit": -1, "detector": -1})
    with pytest.raises(MapUnitError) as caught:
        butler.map(
            fn, units, inputs=["raw"], outputs=["calexp", "src"], run="p", executor=client, unitsPerTask=7
        )
    # A unit that raises fails alone: the others of its batch are merged.
    assert [f.dataId for f in caught.value.failures] == [{"visit": 3, "detector": 3}]
    assert caught.value.result.merged == 2 * 49


def test_the_map_demo_says_what_it_did() -> None:
    import subprocess
    import sys

    demo = Path(__file__).parent.parent / "examples" / "map_demo.py"
    done = subprocess.run(
        [sys.executable, str(demo), "--in-process"], capture_output=True, text=True, timeout=300, check=True
    )
    out = done.stdout
    assert "failed: unit {'visit': 2, 'detector': 5}: ValueError: negative bias level -3" in out
    assert "merged the others: 94 datasets in 1 registry transaction(s)" in out
    assert "ran 1 unit, skipped 47 already done, merged 2 datasets" in out
    assert "predicted before any worker ran: True" in out
    assert "verify: 144 datasets checked, 0 missing, 0 corrupted, 0 orphan files" in out
