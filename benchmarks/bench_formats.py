"""What refusing unfaithful data costs: each formatter's checked write against its library alone.

For every format, the time of ``validate`` and of ``write`` (which validates again) is printed
beside the time the library itself takes to write the same dataset (``json.dumps``,
``yaml.safe_dump``, ``numpy.save``, ``pyarrow.parquet.write_table``, astropy's FITS writer),
measured in the same run; the ratio columns are formatter time / library time. A Butler put
validates once before it takes the registry's write lock and then writes without validating
again (`databutler.formatters.base.prevalidated`): its cost is the validate column plus the
library's own time (for FITS, plus one decode).

Usage: ``python benchmarks/bench_formats.py [--quick]``.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from astropy.io import fits
from astropy.table import Table

from databutler import (
    FitsFormatter,
    JsonFormatter,
    NpyFormatter,
    ParquetFormatter,
    StorageClassFactory,
    YamlFormatter,
)


def best(func: Callable[[], Any], repeats: int) -> float:
    """Return the fastest of ``repeats`` runs of ``func``, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    """Print one row per format: library write, validate, write, and their ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller datasets, fewer repeats")
    args = parser.parse_args()
    n, repeats = (2_000, 3) if args.quick else (20_000, 5)
    factory = StorageClassFactory.fromDefaults()
    metrics = {f"k{i}": [i, float(i), "value", {"a": i}] for i in range(n)}
    image = np.random.default_rng(1).random((n // 10, 100))
    arrow = pa.table({"a": np.arange(n * 10), "b": np.random.default_rng(2).random(n * 10)})
    table = Table(
        {"a": np.arange(n * 10), "b": np.random.default_rng(3).random(n * 10)}, meta={"EXPTIME": 30.0}
    )

    def fitsWrite() -> None:
        fits.HDUList([fits.PrimaryHDU(), fits.table_to_hdu(table)]).writeto(io.BytesIO())

    cases: list[tuple[str, Any, Any, str, Callable[[], Any]]] = [
        ("JSON dict", JsonFormatter(), metrics, "StructuredDataDict", lambda: json.dumps(metrics)),
        ("YAML dict", YamlFormatter(), metrics, "StructuredDataDict", lambda: yaml.safe_dump(metrics)),
        ("npy array", NpyFormatter(), image, "NumpyArray", lambda: np.save(io.BytesIO(), image)),
        (
            "Parquet table",
            ParquetFormatter(),
            arrow,
            "ArrowTable",
            lambda: pq.write_table(arrow, io.BytesIO()),
        ),
        ("FITS table", FitsFormatter(), table, "AstropyTable", fitsWrite),
    ]
    print(
        f"{'format':<14} {'library ms':>11} {'validate ms':>12} {'write ms':>9} {'validate/lib':>13} {'write/lib':>10}"
    )
    for name, formatter, obj, scName, library in cases:
        storageClass = factory.getStorageClass(scName)
        floor = best(library, repeats)
        check = best(lambda f=formatter, o=obj, s=storageClass: f.validate(o, s), repeats)
        write = best(lambda f=formatter, o=obj, s=storageClass: f.write(o, io.BytesIO(), s), repeats)
        print(
            f"{name:<14} {floor * 1e3:>11.2f} {check * 1e3:>12.2f} {write * 1e3:>9.2f} "
            f"{check / floor:>13.2f} {write / floor:>10.2f}"
        )


if __name__ == "__main__":
    main()
