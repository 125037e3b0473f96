"""The collection commands: associate, certify-calibrations and the remove-* commands.

Each is a thin shim over a function in `databutler.script`: remove-runs, remove-collections
and remove-dataset-type.
"""

from __future__ import annotations

import click

from .options import repoArgument
from .utils import DatabutlerCommand

__all__ = ["associate", "certifyCalibrations", "removeCollections", "removeDatasetType", "removeRuns"]


@click.command("associate", cls=DatabutlerCommand)
@repoArgument
@click.argument("collection")
@click.argument("name", metavar="DATASET_TYPE")
@click.option(
    "--collections",
    "-c",
    "collections",
    multiple=True,
    required=True,
    help="Collections searched, in order (repeat); the first dataset of each data ID is tagged.",
)
@click.option("--where", "-w", default=None, help="A condition in the query language, e.g. 'visit > 100'.")
def associate(repo: str, collection: str, name: str, collections: tuple[str, ...], where: str | None) -> None:
    """Tag datasets of DATASET_TYPE in TAGGED COLLECTION (registered if new).

    Examples
    --------
      databutler associate repo best calexp -c night2 -c night1 -w "visit > 100"
    """
    from .. import script

    count = script.associateDatasets(repo, collection, name, collections, where)
    click.echo(f"Associated {count} dataset(s) with {collection}.")


@click.command("certify-calibrations", cls=DatabutlerCommand)
@repoArgument
@click.argument("source", metavar="INPUT_COLLECTION")
@click.argument("target", metavar="OUTPUT_COLLECTION")
@click.argument("name", metavar="DATASET_TYPE")
@click.option(
    "--begin-date", "beginDate", default=None, help="Start of validity (ISO 8601, UTC); none: unbounded."
)
@click.option("--end-date", "endDate", default=None, help="End of validity, exclusive; none: unbounded.")
def certifyCalibrations(
    repo: str,
    source: str,
    target: str,
    name: str,
    beginDate: str | None,
    endDate: str | None,
) -> None:
    """Certify the DATASET_TYPE datasets of INPUT_COLLECTION in CALIBRATION OUTPUT_COLLECTION.

    Examples
    --------
      databutler certify-calibrations repo calib/run1 calib bias --begin-date 2024-01-01 --end-date 2024-02-01
    """
    from .. import script

    begin = script.parseTime(beginDate, "--begin-date")
    end = script.parseTime(endDate, "--end-date")
    count = script.certifyCalibrations(repo, source, target, name, begin, end)
    click.echo(
        f"Certified {count} {name} dataset(s) in {target} from {beginDate or 'the start'} to {endDate or 'no end'}."
    )


@click.command("remove-runs", cls=DatabutlerCommand)
@repoArgument
@click.argument("runs", nargs=-1, required=True)
@click.option(
    "--no-unstore",
    "keepFiles",
    is_flag=True,
    help="Forget the datasets but leave their files (`databutler verify` then lists them as orphans).",
)
def removeRuns(repo: str, runs: tuple[str, ...], keepFiles: bool) -> None:
    """Remove RUNS with every dataset in them and their files.

    Examples
    --------
      databutler remove-runs repo u/alice/test1 u/alice/test2
    """
    from .. import script

    removed = script.removeRuns(repo, runs, unstore=not keepFiles)
    for name, count in removed.items():
        click.echo(f"Removed run {name} ({count} dataset(s)).")


@click.command("remove-collections", cls=DatabutlerCommand)
@repoArgument
@click.argument("names", nargs=-1, required=True)
def removeCollections(repo: str, names: tuple[str, ...]) -> None:
    """Remove TAGGED, CALIBRATION or CHAINED collections; their datasets stay in their runs.

    Examples
    --------
      databutler remove-collections repo best all
    """
    from .. import script

    kinds = script.removeCollections(repo, names)
    for name, kind in zip(names, kinds, strict=True):
        click.echo(f"Removed {kind} collection {name}.")


@click.command("remove-dataset-type", cls=DatabutlerCommand)
@repoArgument
@click.argument("name")
def removeDatasetType(repo: str, name: str) -> None:
    """Remove dataset type NAME (refused while datasets of it exist).

    Examples
    --------
      databutler remove-dataset-type repo oldCatalog
    """
    from .. import script

    if script.removeDatasetType(repo, name):
        click.echo(f"Removed dataset type {name}.")
    else:
        click.echo(f"Dataset type {name} is not registered; nothing removed.")
