"""Arguments and options shared by several commands."""

from __future__ import annotations

import click

__all__ = ["collectionsOption", "readOnlyOption", "repoArgument", "whereOption"]

repoArgument = click.argument("repo", type=click.Path(file_okay=False))
"""The data repository folder."""

collectionsOption = click.option(
    "-c",
    "--collections",
    multiple=True,
    metavar="RUN[,RUN...]",
    help="Runs to search, in order (repeatable). Default: every run.",
)
"""Runs to search."""

whereOption = click.option(
    "-w",
    "--where",
    multiple=True,
    metavar="KEY=VALUE[,VALUE...]",
    help="Only data IDs with one of these values (repeatable), e.g. -w visit=1,2 -w detector=3.",
)
"""Constraints on data-ID values."""

readOnlyOption = click.option(
    "--read-only/--writeable",
    "readOnly",
    default=True,
    show_default=True,
    help="Open the repository read-only (nothing written; works on a read-only mount).",
)
"""How a reading command opens the repository: read-only unless --writeable."""
