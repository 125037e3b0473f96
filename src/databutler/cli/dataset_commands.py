"""The dataset commands: put, get, remove, transfer."""

from __future__ import annotations

import click

from .options import Selection, collectionsOption, readOnlyOption, repoArgument, selectionOptions
from .utils import (
    DatabutlerCommand,
    makeConsole,
    makeTable,
    parseCollections,
    parseDataId,
    parseParameters,
    parseWhere,
)

__all__ = ["get", "put", "remove", "transfer"]


@click.command(cls=DatabutlerCommand)
@repoArgument
@click.argument("name", metavar="DATASET_TYPE")
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("pairs", metavar="[KEY=VALUE]...", nargs=-1)
@click.option("-r", "--run", required=True, help="The run to put the dataset in (created if new).")
def put(repo: str, name: str, file: str, pairs: tuple[str, ...], run: str) -> None:
    """Put FILE (.json, .yaml, .npy, .parquet or .fits) into REPO as DATASET_TYPE.

    The data ID follows as KEY=VALUE pairs, one per dimension.

    Examples
    --------
      databutler put repo flat flat.npy visit=1 detector=2 --run night1
      databutler put repo sourceTable sources.parquet visit=1 --run night1
    """
    from .. import script

    ref = script.putDataset(repo, name, file, parseDataId(pairs), run)
    click.echo(f"Put {ref} in run {ref.run}.")


@click.command(cls=DatabutlerCommand)
@repoArgument
@click.argument("name", metavar="DATASET_TYPE")
@click.argument("pairs", metavar="[KEY=VALUE]...", nargs=-1)
@collectionsOption
@click.option("-p", "--parameter", "parameters", multiple=True, metavar="KEY=VALUE", help="A read parameter.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Write it to this file instead of a summary ('-': standard output).",
)
@click.option("--overwrite", is_flag=True, help="Replace the --output file if it exists (refused otherwise).")
@click.option(
    "-f",
    "--format",
    "fileFormat",
    metavar="EXT",
    help="The format of -o - (json, yaml, npy, parquet, fits); default: that of the stored file.",
)
@readOnlyOption
def get(
    repo: str,
    name: str,
    pairs: tuple[str, ...],
    collections: tuple[str, ...],
    parameters: tuple[str, ...],
    output: str | None,
    overwrite: bool,
    fileFormat: str | None,
    readOnly: bool,
) -> None:
    """Get DATASET_TYPE (or TYPE.COMPONENT) with a data ID: show a summary or write a file.

    Examples
    --------
      databutler get repo flat visit=1 detector=2
      databutler get repo flat visit=1 detector=2 -p slice=0:2,0:3 -o corner.npy
      databutler get repo calexp.metadata visit=1 detector=2 -o metadata.yaml
      databutler get repo sourceTable visit=1 -p columns=ra,dec -o radec.parquet
      databutler get repo metrics visit=1 detector=2 -o - | jq .
    """
    from .. import script

    if fileFormat is not None and output != "-":
        raise click.UsageError("--format is for -o - (a file's format is its extension).")
    result = script.getDataset(
        repo,
        name,
        parseDataId(pairs),
        collections=parseCollections(collections),
        parameters=parseParameters(parameters),
        output=output,
        overwrite=overwrite,
        writeable=not readOnly,
        fileFormat=fileFormat,
    )
    if output == "-":
        return  # standard output holds the dataset, nothing else
    if result.output is not None:
        click.echo(f"Wrote {result.ref} to {result.output}.")
        return
    table = makeTable(title=str(result.ref), show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("run", str(result.ref.run))
    for key, value in result.summary.items():
        table.add_row(key, value)
    makeConsole().print(table)


@click.command(cls=DatabutlerCommand)
@repoArgument
@click.argument("name", metavar="DATASET_TYPE")
@click.argument("pairs", metavar="[KEY=VALUE[,VALUE...]]...", nargs=-1)
@collectionsOption
@click.option("-n", "--dry-run", "dryRun", is_flag=True, help="Only list what would be removed.")
def remove(repo: str, name: str, pairs: tuple[str, ...], collections: tuple[str, ...], dryRun: bool) -> None:
    """Remove the datasets of DATASET_TYPE whose data IDs match, from registry and datastore.

    Without KEY=VALUE pairs every dataset of the type (in the collections) is removed.

    Examples
    --------
      databutler remove repo flat visit=1 detector=2
      databutler remove repo flat visit=1,2 -c night1 --dry-run
    """
    from .. import script

    where = parseWhere(pairs) or None
    colls = parseCollections(collections)
    if dryRun:
        refs = script.queryDatasets(repo, name, collections=colls, where=where)
        verb = "Would remove"
    else:
        refs = script.removeDatasets(repo, name, collections=colls, where=where)  # type: ignore[assignment]
        verb = "Removed"
    for ref in refs:
        click.echo(f"{verb} {ref} (run {ref.run}).")
    click.echo(f"{verb} {len(refs)} dataset(s).")


@click.command(cls=DatabutlerCommand)
@click.argument("source", type=click.Path(file_okay=False))
@click.argument("target", type=click.Path(file_okay=False))
@click.argument("names", metavar="[DATASET_TYPE]...", nargs=-1)
@selectionOptions
@click.option(
    "--progress/--no-progress", default=None, help="Show a progress bar (default: only on a terminal)."
)
def transfer(
    source: str, target: str, names: tuple[str, ...], selection: Selection, progress: bool | None
) -> None:
    """Copy datasets from repository SOURCE into TARGET, keeping their ids and runs.

    Every dataset type unless some are named; datasets already in TARGET are skipped.

    Examples
    --------
      databutler transfer repo backup
      databutler transfer repo backup flat calexp -c night1 -w visit=1
    """
    from .. import script

    result = script.transferDatasets(
        source,
        target,
        names,
        **selection._asdict(),
        progress=progress,
    )
    click.echo(
        f"Transferred {len(result.transferred)} dataset(s) from {source} to {target}"
        f" ({result.skipped} already there)."
    )
