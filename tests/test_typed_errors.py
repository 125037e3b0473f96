"""Hostile input gets a typed `DatabutlerError` naming what was wrong, never a traceback (issue 9).

Through the API and through the CLI, which prints one ``Error: ...`` line and exits with status 1.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from databutler import (
    ArgumentTypeError,
    Butler,
    DatabutlerError,
    DataIdError,
    DatasetFileMissingError,
    DatasetIntegrityError,
    DatasetNotFoundError,
    DatasetRef,
    DatasetTypeError,
    RunNameError,
    SqlRegistry,
    UnsafePathError,
    script,
)
from databutler.cli import cli
from databutler.testing.registry_support import dropNamespace, newNamespace, postgresUrl

SURROGATE = "caf\udce9"  # what the bytes b"caf\xe9" (Latin-1, not UTF-8) become in sys.argv


def userError(*args: str | Path) -> str:
    """Run a command that must fail cleanly: exit 1, one ``Error:`` line on stderr, no traceback."""
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not an uncaught error
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    script.createRepo(root)
    script.registerDatasetType(root, "metrics", "StructuredDataDict", ("visit", "band"))
    return root


@pytest.fixture
def butler(repo: Path) -> Butler:
    with Butler(repo, run="run1") as opened:
        yield opened


@pytest.fixture
def metricsFile(tmp_path: Path) -> Path:
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"seeing": 0.7}))
    return path


# -- text that cannot be stored ----------------------------------------------------------------


@pytest.mark.parametrize(("value", "message"), [(SURROGATE, "lone surrogate"), ("r\x00g", "NUL character")])
def test_unstorable_data_id_text_is_a_data_id_error(butler: Butler, value: str, message: str) -> None:
    with pytest.raises(DataIdError, match=rf"band=.*{message}"):
        butler.put({"a": 1}, "metrics", visit=1, band=value)
    with pytest.raises(DataIdError, match=message):
        butler.queryDatasets("metrics", where={"band": [value]})
    with pytest.raises(DataIdError, match=message):
        butler.findDataset("metrics", visit=1, band=value)
    assert butler.queryDatasets("metrics") == []


@pytest.mark.parametrize(
    ("run", "message"),
    [
        (SURROGATE, "lone surrogate"),
        ("run\x00", "NUL character"),
        ("x" * 129, "129 characters; a registry stores at most 128"),
        ("", "cannot be empty"),
    ],
)
def test_unstorable_run_name_is_refused_before_anything_is_registered(
    repo: Path, butler: Butler, run: str, message: str
) -> None:
    with pytest.raises(RunNameError, match=message):
        Butler(repo, run=run)
    with pytest.raises(RunNameError, match=message):
        butler.registry.registerRun(run)
    if run:
        with pytest.raises(RunNameError, match=message):
            butler.put({"a": 1}, "metrics", visit=1, band="r", run=run)
        with pytest.raises(RunNameError, match=message):
            butler.queryDatasets("metrics", collections=[run])
    assert butler.registry.queryRuns() == ["run1"]
    assert butler.queryDatasets("metrics") == []


@pytest.mark.parametrize("run", ["../../outside", "/absolute", "a/../..", "night1/.hidden", "a//b"])
def test_run_name_no_path_can_hold_is_refused_before_it_is_registered(
    tmp_path: Path, repo: Path, butler: Butler, run: str
) -> None:
    # The default template starts with {run}: such a name would be refused at the first put, so
    # it is refused before the registry ever lists it (by Butler(run=), put(run=), putMany and
    # transferFrom alike).
    with pytest.raises(UnsafePathError, match="Run name"):
        Butler(repo, run=run)
    with pytest.raises(UnsafePathError, match="Run name"):
        butler.put({"a": 1}, "metrics", visit=1, band="r", run=run)
    with pytest.raises(UnsafePathError, match="Run name"):
        butler.putMany([({"a": 1}, "metrics", {"visit": 2, "band": "r"})], run=run)
    other = tmp_path / "other"
    Butler.makeRepo(other)
    with Butler(other) as target:
        ref = DatasetRef(butler.getDatasetType("metrics"), {"visit": 1, "band": "r"}, run=run)
        with pytest.raises(UnsafePathError, match="Run name"):
            target.transferFrom(butler, [ref])
        assert target.registry.queryRuns() == []
    assert butler.registry.queryRuns() == ["run1"]
    assert butler.queryDatasets("metrics") == []


def test_run_name_with_slashes_is_kept_when_every_part_is_safe(repo: Path) -> None:
    with Butler(repo, run="u/alice/test") as opened:
        ref = opened.put({"a": 1}, "metrics", visit=1, band="r")
        assert opened.get(ref) == {"a": 1}
        assert opened.registry.queryRuns() == ["u/alice/test"]


def test_run_name_error_is_also_the_builtins_it_replaced(butler: Butler) -> None:
    for bad in ("x" * 200, 17):
        with pytest.raises(TypeError):
            butler.registry.registerRun(bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            butler.registry.registerRun(bad)  # type: ignore[arg-type]


def test_transfer_with_an_unstorable_run_registers_nothing(tmp_path: Path, butler: Butler) -> None:
    other = tmp_path / "other"
    Butler.makeRepo(other)
    with Butler(other) as target:
        ref = DatasetRef(butler.getDatasetType("metrics"), {"visit": 1, "band": "r"}, run="x" * 200)
        with pytest.raises(RunNameError, match="200 characters"):
            target.transferFrom(butler, [ref])
        assert target.registry.queryDatasetTypes() == [] and target.registry.queryRuns() == []


def test_where_value_beyond_64_bits_is_a_data_id_error(butler: Butler) -> None:
    butler.put({"a": 1}, "metrics", visit=1, band="r")
    with pytest.raises(DataIdError, match=r"visit=1180591620717411303424 .*64-bit"):
        butler.queryDatasets("metrics", where={"visit": [1, 2**70]})
    with pytest.raises(DataIdError, match="64-bit"):
        butler.queryDatasets("metrics", where={"visit": -(2**63) - 1})
    assert len(butler.queryDatasets("metrics", where={"visit": [1, 2**63 - 1]})) == 1


def test_cli_unstorable_text_and_long_run(repo: Path, metricsFile: Path) -> None:
    line = userError("put", repo, "metrics", metricsFile, "visit=1", f"band={SURROGATE}", "--run", "r")
    assert "lone surrogate" in line and "[DataIdError]" in line and "\\udce9" in line
    line = userError("put", repo, "metrics", metricsFile, "visit=1", "band=r", "--run", "x" * 200)
    assert "200 characters" in line and "[RunNameError]" in line
    line = userError("put", repo, "metrics", metricsFile, "visit=1", "band=r", "--run", SURROGATE)
    assert "[RunNameError]" in line
    line = userError("query-datasets", repo, "metrics", "-c", SURROGATE)
    assert "[RunNameError]" in line
    line = userError("query-datasets", repo, "metrics", "-w", f"band={SURROGATE}")
    assert "[DataIdError]" in line
    with Butler(repo) as butler:  # the Butler of the first put registered its (good) run
        assert butler.registry.queryRuns() == ["r"] and butler.queryDatasets() == []


def test_installed_command_with_bytes_that_are_not_utf8(repo: Path, metricsFile: Path) -> None:
    command = Path(sys.executable).with_name("databutler")
    argv = [os.fsencode(str(command)), b"put", os.fsencode(str(repo)), b"metrics"]
    argv += [os.fsencode(str(metricsFile)), b"visit=1", b"band=caf\xe9", b"--run", b"night\xff"]
    result = subprocess.run(argv, capture_output=True, env={**os.environ, "LC_ALL": "C.UTF-8"})
    assert result.returncode == 1, result.stderr
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: Run name 'night\\udcff'"), lines
    assert "Traceback" not in result.stderr.decode()


def test_nul_and_surrogates_on_postgresql(tmp_path: Path) -> None:
    url = postgresUrl()
    namespace = newNamespace()
    root = tmp_path / "repo"
    Butler.makeRepo(root, config={"registry": {"db": url, "namespace": namespace}})
    try:
        with Butler(root, run="run1") as butler:
            butler.registerDatasetType("metrics", ("visit", "band"), "StructuredDataDict")
            for value, message in (("r\x00g", "NUL character"), (SURROGATE, "lone surrogate")):
                with pytest.raises(DataIdError, match=message):
                    butler.put({"a": 1}, "metrics", visit=1, band=value)
                with pytest.raises(DataIdError, match=message):
                    butler.queryDatasets("metrics", where={"band": value})
                with pytest.raises(RunNameError, match=message):
                    butler.registry.registerRun(f"run{value}")
                with pytest.raises(RunNameError, match=message):
                    butler.put({"a": 1}, "metrics", visit=1, band="r", run=f"run{value}")
            with pytest.raises(DataIdError, match="64-bit"):
                butler.queryDatasets("metrics", where={"visit": [1, 2**70]})
            ref = butler.put({"a": 1}, "metrics", visit=1, band="r")  # the registry still works
            assert butler.queryDatasets("metrics") == [ref]
            assert butler.registry.queryRuns() == ["run1"]
        with SqlRegistry(url, namespace=namespace) as registry:
            assert registry.queryRuns() == ["run1"]
    finally:
        dropNamespace(url, namespace)


# -- arguments of the wrong type -----------------------------------------------------------------


def test_put_with_a_dataset_type_that_is_not_a_name(butler: Butler) -> None:
    with pytest.raises(ArgumentTypeError, match="not int 123"):
        butler.put({"a": 1}, 123, visit=1, band="r")  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="not dict"):
        butler.get({}, visit=1, band="r")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        butler.getDatasetType(None)  # type: ignore[arg-type]


def test_remove_datasets_of_things_that_are_not_refs(butler: Butler) -> None:
    ref = butler.put({"a": 1}, "metrics", visit=1, band="r")
    with pytest.raises(ArgumentTypeError, match="not str 'x'; nothing was removed"):
        butler.removeDatasets(["x"])  # type: ignore[list-item]
    with pytest.raises(ArgumentTypeError, match="not str 'x'"):
        butler.removeDatasets([ref, "x"])  # type: ignore[list-item]
    with pytest.raises(ArgumentTypeError, match="iterable of DatasetRefs"):
        butler.removeDatasets("metrics")  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="iterable of DatasetRefs"):
        butler.removeDatasets(ref)  # type: ignore[arg-type]
    assert butler.get(ref) == {"a": 1}


@pytest.mark.parametrize("collections", [123, [1, 2], {"run1": 1}, b"run1"])
def test_collections_that_are_not_names(repo: Path, butler: Butler, collections: object) -> None:
    with pytest.raises(ArgumentTypeError, match="collections are a run name or a list of run names"):
        Butler(repo, collections=collections)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError):
        butler.collections = collections  # type: ignore[assignment]
    with pytest.raises(ArgumentTypeError):
        butler.queryDatasets("metrics", collections=collections)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError):
        butler.findDataset("metrics", visit=1, band="r", collections=collections)  # type: ignore[arg-type]
    assert Butler(repo, collections=("run1",)).collections == ("run1",)


def test_bare_string_dimensions_are_refused(butler: Butler, repo: Path) -> None:
    with pytest.raises(DatasetTypeError, match="not the bare str 'visit'"):
        butler.registerDatasetType("t", "visit", "StructuredDataDict")
    assert [t.name for t in butler.registry.queryDatasetTypes()] == ["metrics"]
    butler.registerDatasetType("t", iter(["visit"]), "StructuredDataDict")  # any other iterable works
    assert butler.getDatasetType("t").dimensions == ("visit",)


def test_every_new_error_is_a_databutler_error() -> None:
    from databutler import exceptions

    for name in exceptions.__all__:
        assert issubclass(getattr(exceptions, name), DatabutlerError)


# -- what a damaged datastore gives back ---------------------------------------------------------


def _fileOf(root: Path, ref: DatasetRef) -> Path:
    return next(p for p in root.rglob("*.json") if str(ref.id) in p.name)


def test_record_naming_an_abstract_formatter_class(repo: Path) -> None:
    with Butler(repo, run="run1") as butler:
        butler.put({"a": 1}, "metrics", visit=1, band="r")
    with contextlib.closing(sqlite3.connect(repo / "registry.sqlite3")) as db, db:
        db.execute("UPDATE fileDatastoreRecords SET formatter = 'databutler.formatters.base.Formatter'")
    with Butler(repo) as butler, pytest.raises(DatabutlerError, match="abstract Formatter"):
        butler.get("metrics", visit=1, band="r")
    line = userError("get", repo, "metrics", "visit=1", "band=r")
    assert "abstract Formatter" in line


def test_verify_reports_a_file_replaced_by_a_directory_and_goes_on(repo: Path) -> None:
    with Butler(repo, run="run1") as butler:
        first = butler.put({"a": 1}, "metrics", visit=1, band="r")
        second = butler.put({"a": 2}, "metrics", visit=2, band="r")
    path = _fileOf(repo, first)
    path.unlink()
    path.mkdir()
    report = script.verifyDatasets(repo)
    assert report.checked == 2 and list(report.corrupted) == [first] and not report.missing
    assert "a directory is there instead" in report.corrupted[first]
    with Butler(repo) as butler:
        with pytest.raises(DatasetIntegrityError, match="a directory is there instead"):
            butler.get(first)
        assert butler.get(second) == {"a": 2}
    result = CliRunner().invoke(cli, ["verify", str(repo)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "CORRUPTED" in result.stderr and "1 of 2 dataset(s) failed verification" in result.stderr


def test_a_missing_file_error_names_the_file(repo: Path) -> None:
    with Butler(repo, run="run1") as butler:
        ref = butler.put({"a": 1}, "metrics", visit=1, band="r")
    path = _fileOf(repo, ref)
    path.unlink()
    with Butler(repo) as butler:  # a new process's Butler: the memory tier does not have it
        with pytest.raises(DatasetFileMissingError, match=rf"{path.name}.*no longer exists"):
            butler.get(ref)
        with pytest.raises(DatasetNotFoundError):  # still the error it was
            butler.get("metrics", visit=1, band="r")
    line = userError("get", repo, "metrics", "visit=1", "band=r")
    assert path.name in line and "no longer exists" in line
