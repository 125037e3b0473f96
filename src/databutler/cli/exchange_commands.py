"""The commands that move datasets between repositories as files: export, import."""

from __future__ import annotations

import click

from .options import collectionsOption, repoArgument
from .query_commands import bindOption, whereExpressionOption, whereFromOptions
from .utils import DatabutlerCommand, parseCollections

__all__ = ["export"]


@click.command(cls=DatabutlerCommand)
@repoArgument
@click.argument("destination", metavar="DEST", type=click.Path())
@click.argument("names", metavar="[DATASET_TYPE]...", nargs=-1)
@whereExpressionOption
@bindOption
@collectionsOption
@click.option("--zip", "asZip", is_flag=True, help="Write one zip file DEST instead of a folder.")
@click.option("--json", "asJson", is_flag=True, help="Write the manifest as JSON (default: YAML).")
def export(
    repo: str,
    destination: str,
    names: tuple[str, ...],
    where: tuple[str, ...],
    binds: tuple[str, ...],
    collections: tuple[str, ...],
    asZip: bool,
    asJson: bool,
) -> None:
    """Export datasets of REPO, with their files, to a new folder (or zip file) DEST.

    Every dataset type unless some are named (glob patterns work). DEST holds a manifest and
    the files; `databutler import` reads it into another repository.

    Examples
    --------
      databutler export repo exported
      databutler export repo night1.zip flat calexp -c night1 --where "visit > 100" --zip
    """
    from .. import script

    expression, bind = whereFromOptions(where, binds)
    manifest = script.exportRepo(
        repo,
        destination,
        names,
        where=expression,
        bind=bind,
        collections=parseCollections(collections),
        zip=asZip,
        manifestFormat="json" if asJson else "yaml",
    )
    click.echo(
        f"Exported {len(manifest.datasets)} dataset(s) ({len(manifest.paths())} file(s)) from {repo} to {destination}."
    )
