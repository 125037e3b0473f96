"""The query commands: query-datasets, query-data-ids, query-dimension-records, query-collections, query-dataset-types.

Each takes ``--format table|json|csv``. A name that does not exist (dataset type, dimension,
field) is an error with exit status 1; an empty result prints why it is empty on stderr.
"""

from __future__ import annotations

import csv
import datetime
import functools
import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import click

from .options import collectionsOption, readOnlyOption, repoArgument
from .utils import DatabutlerCommand, makeConsole, makeTable, parseCollections, plainTable

__all__ = [
    "collectionChain",
    "queryCollections",
    "queryDataIds",
    "queryDatasetTypes",
    "queryDatasets",
    "queryDimensionRecords",
]

_PAIR = re.compile(r"^\s*([A-Za-z_]\w*)=([^\s=<>!()']+)\s*$")
_RANGE = re.compile(r"^[+-]?\d+\.\.[+-]?\d+(:\d+)?$")
_INT = re.compile(r"^[+-]?\d+$")

formatOption = click.option(
    "--format",
    "outputFormat",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="How to print the results.",
)
whereExpressionOption = click.option(
    "-w",
    "--where",
    multiple=True,
    metavar="EXPR",
    help='A condition such as "visit > 100 AND detector IN (1..8)", or KEY=VALUE[,VALUE...] '
    "(values may be ranges: visit=101..103); several are ANDed.",
)
bindOption = click.option(
    "--bind", "binds", multiple=True, metavar="KEY=VALUE[,VALUE...]", help="A value for :KEY in --where."
)


class QueryCondition(NamedTuple):
    """A query's condition, as `queryWhereOptions` parses ``--where`` and ``--bind``.

    The fields are named as the ``script`` functions' keyword arguments, so that a command
    passes them on with ``**condition._asdict()``.
    """

    where: str | None
    """The expression (``--where`` terms ANDed); `None`: no condition."""
    bind: dict[str, Any]
    """The values of its ``:name`` placeholders."""


def queryWhereOptions(command: Callable[..., None]) -> Callable[..., None]:
    """Add ``-w/--where EXPR`` and ``--bind KEY=VALUE``; ``command`` gets them as ``condition``.

    They are parsed (`whereFromOptions`) when the command runs and handed to ``command`` as
    one `QueryCondition` keyword argument.
    """

    @functools.wraps(command)
    def withWhere(*args: Any, where: tuple[str, ...], binds: tuple[str, ...], **kwargs: Any) -> None:
        command(*args, condition=QueryCondition(*whereFromOptions(where, binds)), **kwargs)

    return whereExpressionOption(bindOption(withWhere))


def whereFromOptions(wheres: Iterable[str], binds: Iterable[str]) -> tuple[str | None, dict[str, Any]]:
    """Return (the expression, the bind values) of the ``--where`` and ``--bind`` options.

    ``KEY=VALUE[,VALUE...]`` becomes ``KEY IN (...)``: integers and ranges as written, other
    values as bind parameters (never pasted into the expression).

    Raises
    ------
    click.BadParameter
        A ``--bind`` is not ``KEY=VALUE``.
    """
    bind: dict[str, Any] = {}
    for item in binds:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE (e.g. visits=1,2).", param_hint="--bind")
        parts = [v.strip() for v in value.split(",")]
        bind[key.strip()] = parts if len(parts) > 1 else parts[0]
    terms = []
    for index, text in enumerate(wheres):
        match = _PAIR.match(text)
        if match is None:
            terms.append(f"({text})")
            continue
        key, values = match.groups()
        items = []
        for position, value in enumerate(v for v in values.split(",") if v):
            if _INT.match(value) or _RANGE.match(value):
                items.append(value)
            else:
                name = f"_w{index}_{position}"
                bind[name] = value
                items.append(f":{name}")
        terms.append(f"{key} IN ({', '.join(items)})")
    return (" AND ".join(terms) or None), bind


def _plain(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def printRows(rows: Sequence[dict[str, Any]], columns: Sequence[str], outputFormat: str, title: str) -> None:
    """Print ``rows`` (dicts with ``columns``) as a rich table, JSON (a list of objects) or CSV."""
    if outputFormat == "json":
        click.echo(json.dumps([{c: _plain(row.get(c)) for c in columns} for row in rows], indent=1))
    elif outputFormat == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else _plain(row.get(c)) for c in columns])
    else:
        cells = [["" if row.get(c) is None else str(_plain(row.get(c))) for c in columns] for row in rows]
        text = None if sys.stdout.isatty() else plainTable(title, columns, cells)
        if text is not None:  # rich's look without rich (see plainTable)
            click.echo(text, nl=False)
            return
        table = makeTable(title=title)
        for column in columns:
            table.add_column(column, no_wrap=column == "id")
        for line in cells:
            table.add_row(*line)
        makeConsole().print(table)


def _explain(reasons: Iterable[str]) -> None:
    for reason in reasons:
        click.echo(f"No results: {reason}", err=True)


@click.command("query-datasets", cls=DatabutlerCommand)
@repoArgument
@click.argument("name", metavar="[DATASET_TYPE]", required=False)
@collectionsOption
@queryWhereOptions
@click.option("--find-first", "findFirst", is_flag=True, help="Only the first match per data ID in -c order.")
@click.option("--limit", type=int, help="At most this many.")
@click.option(
    "--order-by", "orderBy", multiple=True, metavar="DIMENSION", help="Sort by it (-visit: descending)."
)
@click.option("--show-uri", "showUri", is_flag=True, help="Add each dataset's URI.")
@formatOption
@readOnlyOption
def queryDatasets(
    repo: str,
    name: str | None,
    collections: tuple[str, ...],
    condition: QueryCondition,
    findFirst: bool,
    limit: int | None,
    orderBy: tuple[str, ...],
    showUri: bool,
    outputFormat: str,
    readOnly: bool,
) -> None:
    """List the datasets in REPO (of DATASET_TYPE only, if given).

    Examples
    --------
      databutler query-datasets repo
      databutler query-datasets repo flat -c night1 -w "visit > 100 AND detector IN (1..8)"
      databutler query-datasets repo flat -w visit=101..103 --format csv
      databutler query-datasets repo flat -w "band = :b" --bind b=r --find-first -c run2,run1
    """
    from .. import script

    refs = script.queryDatasets(
        repo,
        name,
        collections=parseCollections(collections),
        **condition._asdict(),
        findFirst=findFirst,
        orderBy=list(orderBy) or None,
        limit=limit,
        writeable=not readOnly,
    )
    columns = ["datasetType", "run", "dataId", "storageClass", "id"] + (["uri"] if showUri else [])
    rows = []
    uris: dict[str, str] = {}
    if showUri and refs:
        uris = script.datasetUris(repo, refs)
    for ref in refs:
        dataId = (
            dict(ref.dataId)
            if outputFormat == "json"
            else ", ".join(f"{k}={v}" for k, v in ref.dataId.items())
        )
        rows.append(
            {
                "datasetType": ref.datasetType.name,
                "run": ref.run,
                "dataId": dataId,
                "storageClass": ref.datasetType.storageClass.name,
                "id": str(ref.id),
                "uri": uris.get(str(ref.id)),
            }
        )
    printRows(rows, columns, outputFormat, f"{len(refs)} dataset(s) in {repo}")
    if not refs:
        _explain(refs.explainNoResults())


@click.command("query-data-ids", cls=DatabutlerCommand)
@repoArgument
@click.argument("dimensions", nargs=-1, required=True)
@collectionsOption
@queryWhereOptions
@click.option(
    "--datasets", multiple=True, metavar="DATASET_TYPE", help="Only data IDs of these types' datasets."
)
@formatOption
def queryDataIds(
    repo: str,
    dimensions: tuple[str, ...],
    collections: tuple[str, ...],
    condition: QueryCondition,
    datasets: tuple[str, ...],
    outputFormat: str,
) -> None:
    """List the data IDs over DIMENSIONS that datasets in REPO have.

    Examples
    --------
      databutler query-data-ids repo visit detector -w "visit.band = 'r'"
      databutler query-data-ids repo visit --datasets raw -c night1 --format json
    """
    from .. import script

    found = script.queryDataIds(
        repo,
        dimensions,
        **condition._asdict(),
        datasets=datasets,
        collections=parseCollections(collections),
    )
    printRows(found, list(dimensions), outputFormat, f"{len(found)} data ID(s) in {repo}")
    if not found:
        _explain(found.explainNoResults())


@click.command("query-dimension-records", cls=DatabutlerCommand)
@repoArgument
@click.argument("element", metavar="DIMENSION")
@queryWhereOptions
@formatOption
def queryDimensionRecords(repo: str, element: str, condition: QueryCondition, outputFormat: str) -> None:
    """List the records of DIMENSION in REPO.

    Examples
    --------
      databutler query-dimension-records repo visit -w "band = 'r' AND exposureTime > 10"
    """
    from .. import script

    records = script.queryDimensionRecords(repo, element, **condition._asdict())
    rows = [record.toDict() for record in records]
    columns = list(rows[0]) if rows else ["(no records)"]
    printRows(rows, columns, outputFormat, f"{len(rows)} {element} record(s) in {repo}")


@click.command("query-collections", cls=DatabutlerCommand)
@repoArgument
@click.argument("pattern", default="*")
@click.option(
    "-t", "--type", "types", multiple=True, metavar="TYPE", help="RUN, TAGGED, CHAINED or CALIBRATION."
)
@formatOption
def queryCollections(repo: str, pattern: str, types: tuple[str, ...], outputFormat: str) -> None:
    """List the collections in REPO whose names match the glob PATTERN.

    Examples
    --------
      databutler query-collections repo
      databutler query-collections repo "night*" -t RUN --format csv
    """
    from .. import script

    found = script.queryCollections(repo, pattern, types=types or None)
    rows = [{"name": name, "type": kind} for name, kind in found]
    printRows(rows, ["name", "type"], outputFormat, f"{len(rows)} collection(s) in {repo}")


@click.command("query-dataset-types", cls=DatabutlerCommand)
@repoArgument
@click.argument("pattern", default="*")
@formatOption
def queryDatasetTypes(repo: str, pattern: str, outputFormat: str) -> None:
    """List the dataset types in REPO whose names match the glob PATTERN.

    Examples
    --------
      databutler query-dataset-types repo "cal*" --format json
    """
    from .. import script

    rows = [
        {"name": t.name, "dimensions": ", ".join(t.dimensions), "storageClass": t.storageClass.name}
        for t in script.queryDatasetTypes(repo, pattern)
    ]
    printRows(
        rows, ["name", "dimensions", "storageClass"], outputFormat, f"{len(rows)} dataset type(s) in {repo}"
    )


@click.command("collection-chain", cls=DatabutlerCommand)
@repoArgument
@click.argument("parent")
@click.argument("children", nargs=-1)
@click.option(
    "--mode",
    type=click.Choice(["set", "prepend", "extend", "remove"]),
    default="set",
    show_default=True,
    help="Replace the chain, or add CHILDREN at its front or end, or take them out.",
)
def collectionChain(repo: str, parent: str, children: tuple[str, ...], mode: str) -> None:
    """Make PARENT a chain of CHILDREN (runs or chains, searched in order), or change it.

    Examples
    --------
      databutler collection-chain repo all night2 night1
      databutler collection-chain repo all night3 --mode prepend
    """
    from .. import script

    chain = script.collectionChain(repo, parent, children, mode)
    click.echo(f"{parent}: {', '.join(chain) or '(empty)'}")
