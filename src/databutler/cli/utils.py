"""Helpers shared by the click commands: argument parsing, clean errors, rich output."""

from __future__ import annotations

import inspect
import json
import re
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

from ..exceptions import DatabutlerError

__all__ = [
    "DatabutlerCommand",
    "DatabutlerGroup",
    "makeConsole",
    "makeTable",
    "parseCollections",
    "parseDataId",
    "parseParameters",
    "parseWhere",
]

_INT_RE = re.compile(r"^[+-]?\d+$")


def _splitPair(text: str, what: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise click.BadParameter(f"{text!r} is not KEY=VALUE (e.g. visit=12).", param_hint=what)
    return key.strip(), value.strip()


def _scalar(value: str) -> int | str:
    return int(value) if _INT_RE.match(value) else value


def parseDataId(pairs: Iterable[str]) -> dict[str, int | str]:
    """Turn ``["visit=12", "band=r"]`` into ``{"visit": 12, "band": "r"}`` (integers become int).

    Raises
    ------
    click.BadParameter
        An item is not ``KEY=VALUE`` or a key is given twice.
    """
    out: dict[str, int | str] = {}
    for pair in pairs:
        key, value = _splitPair(pair, "data ID")
        if key in out:
            raise click.BadParameter(f"{key!r} is given twice.", param_hint="data ID")
        out[key] = _scalar(value)
    return out


def parseWhere(pairs: Iterable[str]) -> dict[str, list[int | str]]:
    """Turn ``["visit=1,2", "band=r"]`` into ``{"visit": [1, 2], "band": ["r"]}``.

    Raises
    ------
    click.BadParameter
        An item is not ``KEY=VALUE[,VALUE...]``.
    """
    out: dict[str, list[int | str]] = {}
    for pair in pairs:
        key, value = _splitPair(pair, "where")
        out.setdefault(key, []).extend(_scalar(v.strip()) for v in value.split(",") if v.strip())
    return out


def _sliceValue(value: str) -> Any:
    parts = [p.strip() for p in value.split(",")]
    if all(":" in p for p in parts):
        slices = tuple(slice(*(int(n) if n.strip() else None for n in p.split(":"))) for p in parts)
        return slices[0] if len(slices) == 1 else slices
    return value


def parseParameters(pairs: Iterable[str]) -> dict[str, Any]:
    """Turn ``["columns=ra,dec", "slice=0:2,0:3"]`` into read parameters.

    A value that is valid JSON is used as such (``columns=["ra","dec"]``, ``slice=[0,10]``); a
    ``slice`` of ``start:stop`` parts becomes slices (one per axis); any other value with commas
    becomes a list of strings.

    Raises
    ------
    click.BadParameter
        An item is not ``KEY=VALUE`` or a slice is malformed.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, value = _splitPair(pair, "parameter")
        try:
            out[key] = json.loads(value)
            continue
        except ValueError:
            pass
        if key == "slice":
            try:
                out[key] = _sliceValue(value)
            except (TypeError, ValueError) as exc:
                raise click.BadParameter(f"slice {value!r}: {exc}", param_hint="parameter") from exc
        elif "," in value:
            out[key] = [v.strip() for v in value.split(",") if v.strip()]
        else:
            out[key] = value
    return out


def parseCollections(values: Sequence[str]) -> list[str] | None:
    """Flatten ``-c a -c b,c`` into ``["a", "b", "c"]``; `None` when none are given."""
    out = [part.strip() for value in values for part in value.split(",") if part.strip()]
    return out or None


def makeConsole(stderr: bool = False) -> Console:
    """Return a rich console for the current stdout (or stderr); wide when not a terminal.

    rich is imported here, by the commands that print tables, not when the command starts.
    """
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    isTerminal = stream.isatty()
    return Console(file=stream, width=None if isTerminal else 200, highlight=False, soft_wrap=not isTerminal)


def plainTable(title: str, columns: Sequence[str], cells: Sequence[Sequence[str]]) -> str | None:
    """Return the table rich would print off a terminal, or `None` if only rich can draw it.

    This is rich's default look (a title line, heavy head, light body), for printable ASCII
    cells: written directly it costs a few µs a row, where importing rich and laying out its
    table costs tens of ms per command. A cell with anything else (wide or combining
    characters, control characters, ``[`` which rich reads as markup) gets `None`.
    """
    texts = [*columns, title] + [cell for line in cells for cell in line]
    if not all(text.isascii() and text.isprintable() and "[" not in text for text in texts):
        return None
    widths = [max([len(column), *(len(line[i]) for line in cells)]) for i, column in enumerate(columns)]

    def rule(left: str, fill: str, middle: str, right: str) -> str:
        return left + middle.join(fill * (w + 2) for w in widths) + right

    def row(edge: str, values: Sequence[str]) -> str:
        return edge + edge.join(f" {v:<{w}} " for v, w in zip(values, widths, strict=True)) + edge

    out = [title] if title else []
    out += [rule("┏", "━", "┳", "┓"), row("┃", columns), rule("┡", "━", "╇", "┩")]
    out += [row("│", line) for line in cells]
    out.append(rule("└", "─", "┴", "┘"))
    return "\n".join(out) + "\n"


def makeTable(*columns: str, **options: Any) -> Table:
    """Return a rich table with these columns (rich is imported on first use)."""
    from rich.table import Table

    table = Table(**options)
    for column in columns:
        table.add_column(column)
    return table


def _formatHelpText(command: click.Command, formatter: click.HelpFormatter) -> None:
    """Write a command's docstring as help, keeping paragraphs with indented lines as written.

    click rewraps every paragraph unless it opens with a line holding only its backspace marker;
    databutler's docstrings stay plain numpydoc instead, and this adds the marker to each
    paragraph with indented lines (the command lines of an ``Examples`` section).
    """
    text = inspect.cleandoc(command.help or "").partition("\f")[0]
    if not text:
        return
    paragraphs = text.split("\n\n")
    kept = ["\b\n" + p if any(line[:1].isspace() for line in p.splitlines()) else p for p in paragraphs]
    formatter.write_paragraph()
    with formatter.indentation():
        formatter.write_text("\n\n".join(kept))


class DatabutlerCommand(click.Command):
    """A click command whose help keeps the indented example lines of its docstring."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Write the docstring as help, examples line by line."""
        _formatHelpText(self, formatter)


class DatabutlerGroup(click.Group):
    """A click group that shows databutler's user errors as one line, without a traceback.

    Errors in the `DatabutlerError` tree and operating-system errors (a missing input file,
    a folder that cannot be written) become `click.ClickException`: ``Error: <message>`` on
    stderr and exit status 1. Anything else is a bug and keeps its traceback. Its own help and
    that of its commands (`DatabutlerCommand`) keep the indented example lines of the docstrings.
    """

    command_class = DatabutlerCommand

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Write the docstring as help, examples line by line."""
        _formatHelpText(self, formatter)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a `DatabutlerError` or `OSError` becomes a one-line `click.ClickException`."""
        try:
            return super().invoke(ctx)
        except (DatabutlerError, OSError) as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            # Text from the command line may hold lone surrogates (bytes that are not UTF-8):
            # printed as escapes, so that writing the message cannot fail in turn.
            message = message.encode("utf-8", "backslashreplace").decode("utf-8")
            raise click.ClickException(f"{message} [{type(exc).__name__}]") from exc
