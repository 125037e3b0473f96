"""The commands that move datasets between repositories as files: export, import."""

from __future__ import annotations

import click

from .options import collectionsOption, repoArgument
from .query_commands import QueryCondition, queryWhereOptions
from .utils import DatabutlerCommand, parseCollections

__all__ = ["export", "importExport"]


@click.command(cls=DatabutlerCommand)
@repoArgument
@click.argument("destination", metavar="DEST", type=click.Path())
@click.argument("names", metavar="[DATASET_TYPE]...", nargs=-1)
@queryWhereOptions
@collectionsOption
@click.option("--zip", "asZip", is_flag=True, help="Write one zip file DEST instead of a folder.")
@click.option("--yaml", "asYaml", is_flag=True, help="Write the manifest as YAML (default: JSON).")
@click.option(
    "-t",
    "--transfer",
    type=click.Choice(["copy", "hardlink", "link"]),
    default="copy",
    show_default=True,
    help="How files go into a folder: copies, hard links to the stored files (never edit them), "
    "or hard links where possible.",
)
def export(
    repo: str,
    destination: str,
    names: tuple[str, ...],
    condition: QueryCondition,
    collections: tuple[str, ...],
    asZip: bool,
    asYaml: bool,
    transfer: str,
) -> None:
    """Export datasets of REPO, with their files, to a new folder (or zip file) DEST.

    Every dataset type unless some are named (glob patterns work). DEST holds a manifest and
    the files; `databutler import` reads it into another repository.

    Examples
    --------
      databutler export repo exported
      databutler export repo night1.zip flat calexp -c night1 --where "visit > 100" --zip
      databutler export repo linked --transfer hardlink
    """
    from .. import script

    manifest = script.exportRepo(
        repo,
        destination,
        names,
        **condition._asdict(),
        collections=parseCollections(collections),
        zip=asZip,
        manifestFormat="yaml" if asYaml else "json",
        transfer=transfer,
    )
    click.echo(
        f"Exported {len(manifest.datasets)} dataset(s) ({len(manifest.paths())} file(s)) from {repo} to {destination}."
    )


@click.command("import", cls=DatabutlerCommand)
@repoArgument
@click.argument("source", metavar="SRC", type=click.Path())
@click.option(
    "-t",
    "--transfer",
    type=click.Choice(["copy", "move", "hardlink", "link", "symlink", "relsymlink"]),
    default="copy",
    show_default=True,
    help="How files leave a folder export (a zip's are always extracted).",
)
@click.option(
    "--skip-existing/--no-skip-existing",
    "skipExisting",
    default=True,
    show_default=True,
    help="Skip datasets already in REPO (else refuse the import).",
)
def importExport(repo: str, source: str, transfer: str, skipExisting: bool) -> None:
    """Import the export SRC (a folder or zip file from databutler export) into REPO.

    Dataset ids are kept; datasets already in REPO are skipped, so importing twice adds
    nothing. Every file is checked against its recorded size and checksum; if anything is
    wrong, nothing is imported.

    Examples
    --------
      databutler import other-repo exported
      databutler import other-repo night1.zip
    """
    from .. import script

    result = script.importRepo(repo, source, transfer=transfer, skipExisting=skipExisting)
    click.echo(
        f"Imported {len(result.imported)} dataset(s) from {source} into {repo} "
        f"({len(result.skipped)} already there)."
    )
