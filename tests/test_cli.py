"""The databutler command line: the plain functions in databutler.script, the click commands
over them (through CliRunner) and the installed entry point."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import click
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from astropy.io import fits
from astropy.table import Table
from click.testing import CliRunner, Result

from databutler import (
    Butler,
    ConfigFileNotFoundError,
    DatasetNotFoundError,
    FormatterError,
    MissingDatasetTypeError,
    RepositoryExistsError,
    script,
)
from databutler.cli import cli
from databutler.cli.utils import parseCollections, parseDataId, parseParameters, parseWhere
from databutler.testing.registry_support import dropNamespace, newNamespace, postgresUrl

TYPES = [
    ("metrics", "StructuredDataDict", ("visit", "detector")),
    ("flat", "NumpyArray", ("visit", "detector")),
    ("sourceTable", "ArrowTable", ("visit",)),
    ("objectFrame", "DataFrame", ("tract",)),
    ("objectTable", "AstropyTable", ("tract",)),
    ("calexp", "MaskedImage", ("visit", "detector")),
]


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def ok(*args: str | Path) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result.output


def userError(*args: str | Path) -> str:
    """Invoke a command that must fail cleanly: exit 1, one line on stderr, no traceback."""
    result = invoke(*args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    script.createRepo(root)
    for name, storageClass, dims in TYPES:
        script.registerDatasetType(root, name, storageClass, dims)
    return root


@pytest.fixture
def files(tmp_path: Path) -> Path:
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps({"seeing": 0.7, "nSources": 12}))
    (folder / "metrics.yaml").write_text("seeing: 0.8\nnSources: 13\n")
    np.save(folder / "flat.npy", np.arange(20.0).reshape(4, 5))
    pq.write_table(
        pa.table({"ra": [1.0, 2.0], "dec": [3.0, 4.0], "flux": [5.0, 6.0]}), folder / "sources.parquet"
    )
    Table({"objectId": [1, 2], "mag": [20.5, 21.0]}).write(folder / "objects.fits")
    fits.writeto(folder / "image.fits", np.ones((3, 3), dtype=np.float32))
    (folder / "notes.txt").write_text("not a dataset")
    return folder


# -- the plain functions --


def test_create_repo_and_dump_config(tmp_path: Path) -> None:
    config = script.createRepo(tmp_path / "r", {"registry": {"busyTimeout": 5}})
    assert config["registry.busyTimeout"] == 5
    text = script.dumpConfig(tmp_path / "r")
    assert "registry.sqlite3" in text and "FileDatastore" in text
    assert script.dumpConfig(tmp_path / "r", "registry.db").startswith("registry.db:")
    with pytest.raises(RepositoryExistsError):
        script.createRepo(tmp_path / "r")
    with pytest.raises(ConfigFileNotFoundError, match="No data repository"):
        script.dumpConfig(tmp_path / "elsewhere")


def test_put_and_get_every_file_format(repo: Path, files: Path) -> None:
    cases = [
        ("metrics", "metrics.json", {"visit": 1, "detector": 2}),
        ("metrics", "metrics.yaml", {"visit": 1, "detector": 3}),
        ("flat", "flat.npy", {"visit": 1, "detector": 2}),
        ("flat", "image.fits", {"visit": 1, "detector": 3}),
        ("sourceTable", "sources.parquet", {"visit": 1}),
        ("objectFrame", "sources.parquet", {"tract": 1}),
        ("objectTable", "objects.fits", {"tract": 1}),
    ]
    for name, file, dataId in cases:
        ref = script.putDataset(repo, name, files / file, dataId, "run1")
        assert ref.run == "run1" and dict(ref.dataId) == dataId
    assert script.getDataset(repo, "metrics", {"visit": 1, "detector": 3}).obj == {
        "seeing": 0.8,
        "nSources": 13,
    }
    assert script.getDataset(repo, "flat", {"visit": 1, "detector": 3}).obj.shape == (3, 3)
    assert isinstance(script.getDataset(repo, "objectFrame", {"tract": 1}).obj, pd.DataFrame)
    assert script.getDataset(repo, "objectTable", {"tract": 1}).obj.colnames == ["objectId", "mag"]
    radec = script.getDataset(repo, "sourceTable", {"visit": 1}, parameters={"columns": ["ra", "dec"]})
    assert radec.obj.column_names == ["ra", "dec"]
    assert radec.summary["columns"] == "ra, dec" and radec.summary["rows"] == "2"


def test_get_to_files_round_trips(repo: Path, files: Path, tmp_path: Path) -> None:
    script.putDataset(repo, "flat", files / "flat.npy", {"visit": 1, "detector": 2}, "run1")
    script.putDataset(repo, "sourceTable", files / "sources.parquet", {"visit": 1}, "run1")
    script.putDataset(repo, "metrics", files / "metrics.json", {"visit": 1, "detector": 2}, "run1")
    out = script.getDataset(
        repo,
        "flat",
        {"visit": 1, "detector": 2},
        parameters={"slice": (slice(0, 2), slice(0, 3))},
        output=tmp_path / "c.npy",
    )
    assert out.output == tmp_path / "c.npy"
    assert np.load(tmp_path / "c.npy").tolist() == [[0.0, 1.0, 2.0], [5.0, 6.0, 7.0]]
    script.getDataset(repo, "sourceTable", {"visit": 1}, output=tmp_path / "s.fits")
    assert Table.read(tmp_path / "s.fits").colnames == ["ra", "dec", "flux"]
    script.getDataset(repo, "metrics", {"visit": 1, "detector": 2}, output=tmp_path / "m.yaml")
    assert "seeing: 0.7" in (tmp_path / "m.yaml").read_text()
    with pytest.raises(FormatterError, match="extension"):
        script.getDataset(repo, "flat", {"visit": 1, "detector": 2}, output=tmp_path / "c.txt")


def test_get_refuses_to_overwrite_unless_asked(repo: Path, files: Path, tmp_path: Path) -> None:
    script.putDataset(repo, "metrics", files / "metrics.json", {"visit": 1, "detector": 2}, "run1")
    out = tmp_path / "m.yaml"
    out.write_text("precious: user data\n")
    with pytest.raises(FileExistsError, match=r"already exists.*--overwrite"):
        script.getDataset(repo, "metrics", {"visit": 1, "detector": 2}, output=out)
    assert out.read_text() == "precious: user data\n"
    error = userError("get", repo, "metrics", "visit=1", "detector=2", "-o", out)
    assert "already exists" in error and "--overwrite" in error and "FileExistsError" in error
    assert out.read_text() == "precious: user data\n"
    ok("get", repo, "metrics", "visit=1", "detector=2", "-o", out, "--overwrite")
    assert "seeing: 0.7" in out.read_text()
    script.getDataset(repo, "metrics", {"visit": 1, "detector": 2}, output=out, overwrite=True)


def test_put_errors(repo: Path, files: Path) -> None:
    with pytest.raises(FormatterError, match=r"'\.txt' is not one of"):
        script.putDataset(repo, "metrics", files / "notes.txt", {"visit": 1, "detector": 2}, "run1")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        script.putDataset(repo, "metrics", files / "absent.json", {"visit": 1, "detector": 2}, "run1")
    with pytest.raises(MissingDatasetTypeError, match="'bias'"):
        script.putDataset(repo, "bias", files / "flat.npy", {"visit": 1}, "run1")


def test_query_remove_and_transfer(repo: Path, files: Path, tmp_path: Path) -> None:
    for visit in (1, 2, 3):
        script.putDataset(repo, "metrics", files / "metrics.json", {"visit": visit, "detector": 1}, "run1")
    script.putDataset(repo, "sourceTable", files / "sources.parquet", {"visit": 1}, "run2")
    assert len(script.queryDatasets(repo)) == 4
    assert [r.run for r in script.queryDatasets(repo, collections=["run2"])] == ["run2"]
    assert len(script.queryDatasets(repo, "metrics", where={"visit": [1, 3]})) == 2
    removed = script.removeDatasets(repo, "metrics", where={"visit": [3]})
    assert [r.dataId["visit"] for r in removed] == [3]
    with pytest.raises(DatasetNotFoundError, match="nothing was removed"):
        script.removeDatasets(repo, "metrics", where={"visit": [3]})
    script.createRepo(tmp_path / "copy")
    result = script.transferDatasets(repo, tmp_path / "copy", progress=False)
    assert len(result.transferred) == 3 and result.skipped == 0
    again = script.transferDatasets(repo, tmp_path / "copy", ["metrics"], progress=False)
    assert again.transferred == [] and again.skipped == 2
    assert script.getDataset(tmp_path / "copy", "sourceTable", {"visit": 1}).obj.num_rows == 2


def test_stats_and_verify(repo: Path, files: Path) -> None:
    refs = [
        script.putDataset(repo, "flat", files / "flat.npy", {"visit": v, "detector": 1}, "run1")
        for v in (1, 2, 3)
    ]
    stats = script.repoStats(repo)
    assert stats.datasets == 3 and stats.datasetTypes["flat"] == 3 and stats.runs == {"run1": 3}
    assert stats.datasetTypes["metrics"] == 0 and stats.bytesOnDisk > 0
    assert stats.files == 3  # the datasets' files, not butler.yaml or the registry's
    assert script.verifyDatasets(repo).isOk
    with Butler(repo) as butler:  # newly opened, its memory tier is empty: URIs are the files
        paths = [Path(urlparse(butler.getUri(ref)).path) for ref in refs]
    paths[0].write_bytes(paths[0].read_bytes()[:-8] + b"corrupt!")
    paths[1].unlink()
    report = script.verifyDatasets(repo, "flat")
    assert report.checked == 3 and not report.isOk
    assert [r.id for r in report.corrupted] == [refs[0].id]
    assert [r.id for r in report.missing] == [refs[1].id]
    result = invoke("verify", repo)
    assert result.exit_code == 1 and "2 of 3 dataset(s) failed verification" in result.stderr
    assert "CORRUPTED flat@" in result.stderr and "MISSING   flat@" in result.stderr


def test_verify_with_mixed_checksum_algorithms(repo: Path, files: Path) -> None:
    """Files recorded with xxh3_128 (the default), blake2b, and unprefixed (legacy) blake2b
    checksums are each verified with their own algorithm."""
    refs = [
        script.putDataset(repo, "flat", files / "flat.npy", {"visit": v, "detector": 1}, "run1")
        for v in (1, 2, 3)
    ]
    with Butler(repo) as butler:
        paths = [Path(urlparse(butler.getUri(ref)).path) for ref in refs]
    digests = [hashlib.blake2b(p.read_bytes(), digest_size=32).hexdigest() for p in paths]
    with contextlib.closing(sqlite3.connect(repo / "registry.sqlite3")) as db, db:  # records live there
        (recorded,) = db.execute(
            "SELECT checksum FROM fileDatastoreRecords WHERE datasetId = ?", (str(refs[0].id),)
        ).fetchone()
        for ref, checksum in ((refs[1], f"blake2b:{digests[1]}"), (refs[2], digests[2])):
            db.execute(
                "UPDATE fileDatastoreRecords SET checksum = ? WHERE datasetId = ?", (checksum, str(ref.id))
            )
    assert recorded.startswith("xxh3_128:")
    assert script.verifyDatasets(repo).isOk
    assert "Verified 3 dataset(s): all present and intact" in ok("verify", repo)
    for path in (paths[0], paths[2]):  # an xxh3_128 and a legacy blake2b file
        data = bytearray(path.read_bytes())
        data[-1] ^= 1
        path.write_bytes(bytes(data))
    report = script.verifyDatasets(repo, "flat")
    assert sorted(str(r.id) for r in report.corrupted) == sorted(str(r.id) for r in (refs[0], refs[2]))
    assert (
        "xxh3_128 checksum" in report.corrupted[refs[0]] and "blake2b checksum" in report.corrupted[refs[2]]
    )
    result = invoke("verify", repo, "flat")
    assert result.exit_code == 1 and "2 of 3 dataset(s) failed verification" in result.stderr


# -- the click commands --


def test_cli_session(tmp_path: Path, files: Path) -> None:
    root, copy = tmp_path / "repo", tmp_path / "copy"
    assert "Created data repository" in ok("create", root)
    assert "FileDatastore" in ok("config-dump", root)
    assert "registry" in ok("config-dump", root, "--subset", "registry")
    assert "Registered dataset type flat" in ok(
        "register-dataset-type", root, "flat", "NumpyArray", "visit", "detector"
    )
    assert "Already registered" in ok(
        "register-dataset-type", root, "flat", "NumpyArray", "visit", "detector"
    )
    ok("register-dataset-type", root, "sourceTable", "ArrowTable", "visit")
    assert "in run night1" in ok(
        "put", root, "flat", files / "flat.npy", "visit=1", "detector=2", "--run", "night1"
    )
    ok("put", root, "sourceTable", files / "sources.parquet", "visit=1", "-r", "night1")
    table = ok("query-datasets", root)
    assert "2 dataset(s)" in table and "sourceTable" in table and "night1" in table and "visit=1" in table
    assert "1 dataset(s)" in ok("query-datasets", root, "flat", "-c", "night1", "-w", "visit=1,5")
    summary = ok("get", root, "flat", "visit=1", "detector=2")
    assert "(4, 5)" in summary and "float64" in summary
    assert "ra, dec" in ok("get", root, "sourceTable", "visit=1", "-p", "columns=ra,dec")
    ok("get", root, "flat", "visit=1", "detector=2", "-p", "slice=1:3,0:2", "-o", tmp_path / "c.npy")
    assert np.load(tmp_path / "c.npy").tolist() == [[5.0, 6.0], [10.0, 11.0]]
    ok("create", copy)
    assert "Transferred 2 dataset(s)" in ok("transfer", root, copy, "--no-progress")
    assert "(2 already there)" in ok("transfer", root, copy)
    assert "Verified 2 dataset(s)" in ok("verify", copy)
    stats = ok("stats", copy)
    assert "night1" in stats and "sourceTable" in stats
    assert "Would remove" in ok("remove", copy, "flat", "visit=1", "--dry-run")
    assert "Removed 1 dataset(s)" in ok("remove", copy, "flat", "visit=1")
    assert "0 dataset(s)" in ok("query-datasets", copy, "flat")


def test_cli_transfer_progress_bar_goes_to_stderr(repo: Path, files: Path, tmp_path: Path) -> None:
    script.putDataset(repo, "metrics", files / "metrics.json", {"visit": 1, "detector": 1}, "run1")
    script.createRepo(tmp_path / "copy")
    result = invoke("transfer", repo, tmp_path / "copy", "--progress")
    assert result.exit_code == 0 and "Transferring 1 datasets" in result.stderr


def test_cli_user_errors_are_one_clean_line(repo: Path, files: Path, tmp_path: Path) -> None:
    assert "No data repository" in userError("query-datasets", tmp_path / "nowhere")
    assert "already holds a data repository" in userError("create", repo)
    assert "'bias'" in userError("get", repo, "bias", "visit=1")
    assert "missing ['detector']" in userError("get", repo, "flat", "visit=1")
    assert "unexpected ['band']" in userError("get", repo, "sourceTable", "visit=1", "band=r")
    assert "No dataset 'flat'" in userError("get", repo, "flat", "visit=1", "detector=9")
    assert "does not exist" in userError(
        "put", repo, "flat", files / "absent.npy", "visit=1", "detector=1", "-r", "r"
    )
    assert "'.txt'" in userError("put", repo, "flat", files / "notes.txt", "visit=1", "detector=1", "-r", "r")
    ok("put", repo, "flat", files / "flat.npy", "visit=1", "detector=1", "-r", "r")
    assert "already exists" in userError(
        "put", repo, "flat", files / "flat.npy", "visit=1", "detector=1", "-r", "r"
    )
    assert "UnknownStorageClass" in userError("register-dataset-type", repo, "x", "NoSuchClass", "visit")
    assert "nothing was removed" in userError("remove", repo, "flat", "visit=99")
    assert "no config key 'nope'" in userError("config-dump", repo, "--subset", "nope")
    (tmp_path / "bad.yaml").write_text("registry: [unclosed\n")
    assert "not valid YAML" in userError("create", tmp_path / "new", "--config", tmp_path / "bad.yaml")
    assert "StructuredDataDict" in userError(
        "put", repo, "metrics", files / "flat.npy", "visit=1", "detector=1", "-r", "r"
    )
    usage = invoke("get", repo, "flat", "visit")
    assert usage.exit_code == 2 and "KEY=VALUE" in usage.output


def test_every_command_has_help_with_examples() -> None:
    top = ok("--help")
    commands = ["create", "config-dump", "register-dataset-type", "put", "get", "query-datasets", "remove"]
    commands += ["transfer", "stats", "verify", "export", "import"]
    for command in commands:
        assert command in top
        assert "Example" in ok(command, "--help"), command


def test_help_keeps_example_lines_and_wraps_prose() -> None:
    # Docstrings are numpydoc without click's backspace marker; the help keeps each indented
    # example on its own line and still wraps the prose paragraphs to the terminal width.
    lines = ok("create", "--help").splitlines()
    assert "    databutler create repo" in lines
    assert "    databutler create shared --registry-db postgresql+psycopg://me@dbhost/butler" in lines
    assert "\b" not in "\n".join(lines)
    assert max(len(line) for line in lines if "databutler create" not in line) <= 80
    top = ok("--help").splitlines()
    assert "    databutler verify other-repo" in top


def test_installed_entry_point_runs(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("databutler")
    result = subprocess.run([str(exe), "create", str(tmp_path / "r")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    result = subprocess.run([str(exe), "stats", str(tmp_path / "absent")], capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr.startswith("Error: No data repository")


# -- argument parsing --


def test_parse_data_id_where_collections_and_parameters() -> None:
    assert parseDataId(["visit=12", "band=r", "detector=-1"]) == {"visit": 12, "band": "r", "detector": -1}
    with pytest.raises(click.BadParameter, match="KEY=VALUE"):
        parseDataId(["visit"])
    with pytest.raises(click.BadParameter, match="twice"):
        parseDataId(["visit=1", "visit=2"])
    assert parseWhere(["visit=1,2", "band=r"]) == {"visit": [1, 2], "band": ["r"]}
    assert parseCollections(["a", "b,c"]) == ["a", "b", "c"] and parseCollections([]) is None
    assert parseParameters(["slice=0:2,1:3"]) == {"slice": (slice(0, 2), slice(1, 3))}
    assert parseParameters(["slice=2:5"]) == {"slice": slice(2, 5)}
    assert parseParameters(["columns=ra,dec"]) == {"columns": ["ra", "dec"]}
    assert parseParameters(['columns=["ra"]', "slice=[0, 4]"]) == {"columns": ["ra"], "slice": [0, 4]}
    with pytest.raises(click.BadParameter, match="slice"):
        parseParameters(["slice=a:b"])


def test_cli_create_with_a_postgresql_registry(tmp_path: Path, files: Path) -> None:
    url = postgresUrl()
    namespace = newNamespace()
    (tmp_path / "ns.yaml").write_text(f"registry:\n  namespace: {namespace}\n")
    root = tmp_path / "pg-repo"
    try:
        ok("create", root, "--registry-db", url, "--config", tmp_path / "ns.yaml")
        assert "postgresql" in ok("config-dump", root, "--subset", "registry.db")
        ok("register-dataset-type", root, "flat", "NumpyArray", "visit", "detector")
        ok("put", root, "flat", files / "flat.npy", "visit=1", "detector=2", "--run", "night1")
        assert "1 dataset(s)" in ok("query-datasets", root)
        assert "Verified 1 dataset(s)" in ok("verify", root)
    finally:
        dropNamespace(url, namespace)


def test_get_to_standard_output(repo: Path, files: Path) -> None:
    script.putDataset(repo, "flat", files / "flat.npy", {"visit": 1, "detector": 2}, "night1")
    script.putDataset(repo, "metrics", files / "metrics.json", {"visit": 1, "detector": 2}, "night1")
    result = invoke("get", repo, "metrics", "visit=1", "detector=2", "-o", "-")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout_bytes) == json.loads((files / "metrics.json").read_text())
    asYaml = invoke("get", repo, "metrics", "visit=1", "detector=2", "-o", "-", "--format", "yaml")
    assert asYaml.exit_code == 0 and yaml.safe_load(asYaml.stdout_bytes) == json.loads(
        (files / "metrics.json").read_text()
    )
    array = invoke("get", repo, "flat", "visit=1", "detector=2", "-o", "-", "-p", "slice=0:2")
    assert array.exit_code == 0, array.output
    assert np.array_equal(np.load(io.BytesIO(array.stdout_bytes)), np.load(files / "flat.npy")[0:2])
    assert not (Path.cwd() / "-").exists()
    line = userError("get", repo, "flat", "visit=1", "detector=2", "-o", "-", "--format", "txt")
    assert "pass --format" in line and "[FormatterError]" in line
    out = io.BytesIO()
    script.getDataset(repo, "flat", {"visit": 1, "detector": 2}, output="-", stream=out)
    assert np.array_equal(np.load(io.BytesIO(out.getvalue())), np.load(files / "flat.npy"))


@pytest.mark.parametrize("rows", [[], [["metrics", "run/a", "visit=1, detector=2"], ["m", "", "x"]]])
def test_plain_table_is_what_rich_prints_off_a_terminal(rows: list[list[str]]) -> None:
    """Piped output skips rich for plain ASCII cells; it must look exactly as rich's would."""
    import io

    from rich.console import Console

    from databutler.cli.utils import makeTable, plainTable

    columns = ["datasetType", "run", "dataId"]
    table = makeTable(title="2 dataset(s) in repo")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console = Console(file=io.StringIO(), width=200, highlight=False, soft_wrap=True)
    console.print(table)
    assert plainTable("2 dataset(s) in repo", columns, rows) == console.file.getvalue()
    assert plainTable("t", columns, [["[bold]x", "", ""]]) is None  # rich markup: rich draws it
    assert plainTable("t", columns, [["détecteur", "", ""]]) is None  # not ASCII: rich measures it
