"""The ``databutler`` command: thin click shims over the plain functions in `databutler.script`.

Each command parses its arguments, calls one function and prints what it returns. User errors
are shown as one line (``Error: ...``) with exit status 1; see `DatabutlerGroup`. The
repository commands live here, the dataset commands in `databutler.cli.dataset_commands`.
Commands import `databutler.script` (and so the Butler and SQLAlchemy) when they run, so
``databutler --help`` answers at once.
"""

from __future__ import annotations

import click

from .collection_commands import (
    associate,
    certifyCalibrations,
    removeCollections,
    removeDatasetType,
    removeRuns,
)
from .dataset_commands import get, put, remove, transfer
from .exchange_commands import export, importExport
from .file_commands import ingestFiles, retrieveArtifacts
from .options import Selection, readOnlyOption, repoArgument, selectionOptions
from .query_commands import (
    collectionChain,
    queryCollections,
    queryDataIds,
    queryDatasets,
    queryDatasetTypes,
    queryDimensionRecords,
)
from .utils import DatabutlerGroup, makeConsole, makeTable

__all__ = ["cli"]


@click.group(cls=DatabutlerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="databutler")
def cli() -> None:
    """Store and find datasets by what they are: a dataset type plus a data ID.

    Examples
    --------
      databutler create repo
      databutler register-dataset-type repo flat NumpyArray visit detector
      databutler put repo flat flat.npy visit=1 detector=2 --run night1
      databutler query-datasets repo
      databutler get repo flat visit=1 detector=2 -p slice=0:2,0:3 -o corner.npy
      databutler transfer repo other-repo flat
      databutler verify other-repo
    """


@cli.command()
@repoArgument
@click.option(
    "--config", "configFile", type=click.Path(dir_okay=False, exists=True), help="YAML over the defaults."
)
@click.option(
    "--registry-db", "registryDb", metavar="URL", help="Registry database URL (default: SQLite in REPO)."
)
def create(repo: str, configFile: str | None, registryDb: str | None) -> None:
    """Create a data repository in folder REPO.

    By default: an SQLite registry in REPO and a memory tier in front of a file tier.

    Examples
    --------
      databutler create repo
      databutler create shared --registry-db postgresql+psycopg://me@dbhost/butler
    """
    from .. import script
    from ..config import Config

    config = Config(configFile) if configFile else Config()
    if registryDb:
        config["registry.db"] = registryDb
    script.createRepo(repo, config)
    click.echo(f"Created data repository {repo} ({repo}/butler.yaml).")


@cli.command("config-dump")
@repoArgument
@click.option("-s", "--subset", metavar="KEY", help="Only this (dotted) key, e.g. datastore or registry.db.")
def configDump(repo: str, subset: str | None) -> None:
    """Print the configuration of REPO as YAML.

    Examples
    --------
      databutler config-dump repo
      databutler config-dump repo --subset datastore
    """
    from .. import script

    click.echo(script.dumpConfig(repo, subset), nl=False)


@cli.command("config-validate")
@repoArgument
def configValidate(repo: str) -> None:
    """Check REPO's butler.yaml: every key accepted by its component, every class importable.

    Exits with status 1 and names the first problem found.

    Examples
    --------
      databutler config-validate repo
    """
    from .. import script

    script.validateConfig(repo)
    click.echo(f"Configuration of {repo} is valid.")


@cli.command("register-dataset-type")
@repoArgument
@click.argument("name")
@click.argument("storage", metavar="STORAGE_CLASS")
@click.argument("dimensions", nargs=-1)
def registerDatasetType(repo: str, name: str, storage: str, dimensions: tuple[str, ...]) -> None:
    """Register dataset type NAME with a STORAGE_CLASS and data-ID DIMENSIONS.

    Storage classes include StructuredDataDict, StructuredDataList, NumpyArray, ArrowTable,
    DataFrame, AstropyTable and MaskedImage.

    Examples
    --------
      databutler register-dataset-type repo flat NumpyArray visit detector
      databutler register-dataset-type repo sourceTable ArrowTable visit
    """
    from .. import script

    inserted = script.registerDatasetType(repo, name, storage, dimensions)
    state = "Registered" if inserted else "Already registered:"
    click.echo(f"{state} dataset type {name} ({storage}; dimensions: {', '.join(sorted(dimensions))}).")


@cli.command()
@repoArgument
@readOnlyOption
def stats(repo: str, readOnly: bool) -> None:
    """Show what REPO holds: datasets per dataset type and per run, and their files and bytes.

    Examples
    --------
      databutler stats repo
    """
    from .. import script

    result = script.repoStats(repo, writeable=not readOnly)
    console = makeConsole()
    summary = makeTable(title=f"Repository {result.root}", show_header=False)
    summary.add_column("what", style="bold")
    summary.add_column("value")
    summary.add_row("registry", result.registry)
    summary.add_row("datastore", result.datastore)
    summary.add_row("datasets", str(result.datasets))
    summary.add_row("dataset files", f"{result.files} ({result.bytesOnDisk:,} bytes)")
    summary.add_row("orphan files", f"{result.orphans} (no record names them; see databutler cleanup)")
    console.print(summary)
    for title, counts in (("dataset type", result.datasetTypes), ("run", result.runs)):
        table = makeTable()
        table.add_column(title)
        table.add_column("datasets", justify="right")
        for key, count in counts.items():
            table.add_row(key, str(count))
        console.print(table)


@cli.command()
@repoArgument
@click.argument("name", metavar="[DATASET_TYPE]", required=False)
@selectionOptions
@readOnlyOption
@click.option(
    "--decode/--no-decode",
    default=True,
    show_default=True,
    help="Also read each dataset with its formatter (catches ingested files it cannot read).",
)
def verify(repo: str, name: str | None, selection: Selection, readOnly: bool, decode: bool) -> None:
    """Re-check stored datasets: recorded checksums and sizes, and that their formatters read them.

    Exits with status 1 if any dataset is missing or corrupted.

    Examples
    --------
      databutler verify repo
      databutler verify repo flat -w visit=1 --no-decode
    """
    from .. import script

    report = script.verifyDatasets(
        repo,
        name,
        **selection._asdict(),
        writeable=not readOnly,
        decode=decode,
    )
    for ref in report.missing:
        click.echo(f"MISSING   {ref}", err=True)
    for ref, problem in report.corrupted.items():
        click.echo(f"CORRUPTED {ref}: {problem}", err=True)
    for uri in report.orphans:
        click.echo(f"ORPHAN    {uri}", err=True)
    if not report.isOk:
        bad = len(report.missing) + len(report.corrupted)
        raise click.ClickException(f"{bad} of {report.checked} dataset(s) failed verification.")
    orphans = (
        f"; {len(report.orphans)} file(s) no record names (databutler cleanup removes them)"
        if report.orphans
        else ""
    )
    click.echo(f"Verified {report.checked} dataset(s): all present and intact{orphans}.")


@cli.command()
@repoArgument
@click.option(
    "--older-than",
    "olderThan",
    type=click.FloatRange(min=0),
    default=3600.0,
    show_default=True,
    metavar="SECONDS",
    help="Only files at least this old (spares puts in progress elsewhere).",
)
@click.option("--dry-run", "dryRun", is_flag=True, help="Only list what would be removed.")
def cleanup(repo: str, olderThan: float, dryRun: bool) -> None:
    """Remove the files no record names: left by writers killed mid-put or mid-remove.

    Examples
    --------
      databutler cleanup repo --dry-run
      databutler cleanup repo --older-than 0     # only when nothing else writes to REPO
    """
    from .. import script

    report = script.cleanupRepo(repo, olderThan=olderThan, dryRun=dryRun)
    for uri in report.removed:
        click.echo(f"{'WOULD REMOVE' if dryRun else 'REMOVED'} {uri}")
    verb = "Would remove" if dryRun else "Removed"
    kept = f"; {report.kept} younger than {olderThan:g} s kept" if report.kept else ""
    click.echo(f"{verb} {len(report.removed)} file(s) no record names{kept}.")


for _command in (
    put,
    get,
    queryDatasets,
    queryDataIds,
    queryDimensionRecords,
    queryCollections,
    queryDatasetTypes,
    collectionChain,
    remove,
    transfer,
    export,
    importExport,
):
    cli.add_command(_command)

for _command in (associate, certifyCalibrations, removeRuns, removeCollections, removeDatasetType):
    cli.add_command(_command)

for _command in (ingestFiles, retrieveArtifacts):  # files in and out as they are
    cli.add_command(_command)
