"""The one progress bar: `progressBar`, used by transfers, ingest and `Butler.map`.

The verbs that move many datasets take ``progress=`` (`None`: only when stderr is a
terminal) and advance the bar; how the bar looks lives here only.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

__all__ = ["Advance", "progressBar"]


class Advance(Protocol):
    """What `progressBar` yields: call it to advance the bar by ``n`` steps."""

    def __call__(self, n: int = 1) -> None:
        """Advance the bar by ``n`` steps (nothing when it is not shown)."""


@contextmanager
def progressBar(
    description: str, total: int, enabled: bool | None = None, unit: str = ""
) -> Iterator[Advance]:
    """Show a rich progress bar on stderr while the body runs; advance it by calling the result.

    On a terminal the bar is cleared at the end; elsewhere (a log file, when asked) its final
    state stays printed.

    Parameters
    ----------
    description : str
        What is in progress.
    total : int
        How many steps make 100 %.
    enabled : bool, optional
        Force the bar on or off; by default it is shown only when stderr is a terminal.
    unit : str, optional
        What a step is (``"units"``), shown after the count.
    """
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield _noAdvance
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    if unit:
        columns.append(TextColumn(unit))
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=console.is_terminal) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            bar.advance(task, n)

        yield advance


def _noAdvance(n: int = 1) -> None:
    """Advance a bar that is not shown."""
