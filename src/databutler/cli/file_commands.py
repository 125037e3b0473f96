"""The commands that move files in and out as they are: ingest-files, retrieve-artifacts."""

from __future__ import annotations

import click

from .options import Selection, repoArgument, selectionOptions
from .utils import DatabutlerCommand

__all__ = ["ingestFiles", "retrieveArtifacts"]

TRANSFER_CHOICES = ("auto", "copy", "move", "link", "hardlink", "symlink", "relsymlink", "direct")

progressOption = click.option(
    "--progress/--no-progress", default=None, help="Show a progress bar (default: only on a terminal)."
)


@click.command("ingest-files", cls=DatabutlerCommand)
@repoArgument
@click.argument("name", metavar="DATASET_TYPE")
@click.argument("table", type=click.Path(dir_okay=False))
@click.option("-r", "--run", required=True, help="The run to ingest into (created if new).")
@click.option(
    "-t",
    "--transfer",
    type=click.Choice(TRANSFER_CHOICES),
    default="auto",
    show_default=True,
    help="How the files come in: copied (auto), moved, linked, or left where they are (direct).",
)
@click.option(
    "--file-column", "fileColumn", default="file", show_default=True, help="The column naming the files."
)
@progressOption
def ingestFiles(
    repo: str, name: str, table: str, run: str, transfer: str, fileColumn: str, progress: bool | None
) -> None:
    """Ingest the files TABLE lists into REPO as DATASET_TYPE, all in one commit.

    TABLE is a .csv (or .ecsv, .parquet) with a file column and one column per dimension of
    DATASET_TYPE; relative paths are relative to TABLE's folder. The files are not decoded
    (databutler verify reads them). A bad row is reported with its line; nothing is ingested then.

    Examples
    --------
      databutler ingest-files repo raw files.csv --run night1
      databutler ingest-files repo raw files.csv --run night1 --transfer symlink
    """
    from ..script.ingest import ingestFiles as ingestTable

    result = ingestTable(repo, name, table, run, transfer=transfer, fileColumn=fileColumn, progress=progress)
    click.echo(f"Ingested {len(result.refs)} file(s) as {name!r} into run {run!r} ({transfer}).")


@click.command("retrieve-artifacts", cls=DatabutlerCommand)
@repoArgument
@click.argument("destination", type=click.Path(file_okay=False))
@click.argument("names", metavar="[DATASET_TYPE]...", nargs=-1)
@selectionOptions
@click.option(
    "-t",
    "--transfer",
    type=click.Choice(("copy", "link", "hardlink", "symlink", "relsymlink")),
    default="copy",
    show_default=True,
    help="Copy the files, or link to them.",
)
@click.option(
    "--preserve-path/--flat",
    "preserve",
    default=True,
    show_default=True,
    help="Keep each file's path below the root (its file template), or put all in DESTINATION.",
)
@click.option("--clobber", is_flag=True, help="Replace files already in DESTINATION (refused otherwise).")
def retrieveArtifacts(
    repo: str,
    destination: str,
    names: tuple[str, ...],
    selection: Selection,
    transfer: str,
    preserve: bool,
    clobber: bool,
) -> None:
    """Copy the stored files of REPO's datasets into DESTINATION, as they are (not re-encoded).

    Every dataset type unless some are named. A file already in DESTINATION is refused (nothing
    is written) unless --clobber.

    Examples
    --------
      databutler retrieve-artifacts repo out
      databutler retrieve-artifacts repo out flat -c night1 -w visit=1 --flat
    """
    from ..script.artifacts import retrieveArtifacts as retrieveFiles

    paths = retrieveFiles(
        repo,
        destination,
        names,
        **selection._asdict(),
        transfer=transfer,
        preserve=preserve,
        overwrite=clobber,
    )
    click.echo(f"Retrieved {len(paths)} file(s) into {destination}.")
