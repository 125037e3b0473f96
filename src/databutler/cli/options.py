"""Arguments and options shared by several commands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import click

from .utils import parseCollections, parseWhere

__all__ = [
    "Selection",
    "collectionsOption",
    "readOnlyOption",
    "repoArgument",
    "selectionOptions",
    "whereOption",
]

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


class Selection(NamedTuple):
    """Which datasets a command acts on, as `selectionOptions` parses ``-c`` and ``-w``.

    The fields are named as the ``script`` functions' keyword arguments, so that a command
    passes them on with ``**selection._asdict()``.
    """

    collections: list[str] | None
    """The runs to search, in order; `None`: every run."""
    where: dict[str, list[int | str]] | None
    """Accepted values per data-ID key; `None`: no constraint."""


def selectionOptions(command: Callable[..., None]) -> Callable[..., None]:
    """Add ``-c/--collections`` and ``-w/--where KEY=VALUE``; ``command`` gets ``selection``.

    The options are parsed when the command runs (a bad ``-w`` is a usage error then, as
    before), and handed to ``command`` as one `Selection` keyword argument.
    """

    @functools.wraps(command)
    def withSelection(
        *args: Any, collections: tuple[str, ...], where: tuple[str, ...], **kwargs: Any
    ) -> None:
        command(
            *args, selection=Selection(parseCollections(collections), parseWhere(where) or None), **kwargs
        )

    return collectionsOption(whereOption(withSelection))
