"""Reading user files into Python objects for ``put`` and writing them back out for ``get``.

The file's extension chooses the reader (``.json``, ``.yaml``, ``.npy``, ``.parquet``,
``.fits``); the dataset type's storage class chooses the Python type it is read as, so the same
``.parquet`` file becomes a pyarrow Table, a pandas DataFrame or an astropy Table as needed.
Optional libraries are imported only when a file needs them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..exceptions import FormatterError
from ..storage_class import StorageClass

__all__ = ["SUPPORTED_EXTENSIONS", "readDataFile", "summarize", "writeDataFile"]

SUPPORTED_EXTENSIONS = (".json", ".yaml", ".yml", ".npy", ".parquet", ".fits")
"""File extensions that ``put`` reads and ``get`` writes."""


def _extension(path: Path) -> str:
    ext = path.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise FormatterError(
            f"Cannot handle {str(path)!r}: its extension {ext or '(none)'!r} is not one of "
            f"{', '.join(SUPPORTED_EXTENSIONS)}."
        )
    return ext


def _readYaml(path: Path) -> Any:
    import yaml

    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _readNpy(path: Path) -> Any:
    import numpy as np

    return np.load(path, allow_pickle=False)


def _readParquet(path: Path, storageClass: StorageClass) -> Any:
    if storageClass.name == "AstropyTable":
        from astropy.table import Table

        return Table.read(path, format="parquet")
    import pyarrow.parquet as pq

    # No Arrow thread pool: its threads can abort the process at exit (apache/arrow#34314).
    table = pq.read_table(path, use_threads=False)
    return table.to_pandas(use_threads=False) if storageClass.name == "DataFrame" else table


def _readFits(path: Path, storageClass: StorageClass) -> Any:
    if storageClass.name == "NumpyArray":
        from astropy.io import fits

        return fits.getdata(path)
    from astropy.table import Table

    table = Table.read(path)
    return table.to_pandas() if storageClass.name == "DataFrame" else table


def readDataFile(path: str | os.PathLike[str], storageClass: StorageClass) -> Any:
    """Read ``path`` as an object of ``storageClass``'s Python type.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    FormatterError
        The extension is not supported, or the file cannot be read as that storage class.
    MissingOptionalDependencyError
        Reading it needs an optional library that is not installed.
    """
    file = Path(path)
    ext = _extension(file)
    if not file.is_file():
        raise FileNotFoundError(f"Input file {str(file)!r} does not exist.")
    readers: dict[str, Callable[[], Any]] = {
        ".json": lambda: json.loads(file.read_text(encoding="utf-8")),
        ".yaml": lambda: _readYaml(file),
        ".yml": lambda: _readYaml(file),
        ".npy": lambda: _readNpy(file),
        ".parquet": lambda: _readParquet(file, storageClass),
        ".fits": lambda: _readFits(file, storageClass),
    }
    try:
        obj = readers[ext]()
    except (ImportError, FileNotFoundError):
        raise
    except Exception as exc:
        raise FormatterError(f"Could not read {str(file)!r} as {storageClass.name}: {exc}") from exc
    if storageClass.name == "StructuredDataList" and isinstance(obj, tuple):
        obj = list(obj)
    return obj


def _jsonDefault(obj: Any) -> Any:
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _isTable(obj: Any) -> bool:
    kind = type(obj).__module__.split(".")[0]
    return (
        (kind == "pandas" and getattr(obj, "ndim", 0) == 2)
        or (kind == "pyarrow" and hasattr(obj, "schema") and hasattr(obj, "column_names"))
        or (kind == "astropy" and hasattr(obj, "colnames"))
    )


def _writeTable(obj: Any, file: Path, ext: str) -> None:
    kind = type(obj).__module__.split(".")[0]
    if kind == "pyarrow" and ext == ".parquet":
        import pyarrow.parquet as pq

        pq.write_table(obj, file)
        return
    if kind == "pandas" and ext == ".parquet":
        obj.to_parquet(file)
        return
    from astropy.table import Table

    table = obj if kind == "astropy" else (Table.from_pandas(obj) if kind == "pandas" else None)
    if table is None:  # a pyarrow Table to FITS goes through pandas
        table = Table.from_pandas(obj.to_pandas(use_threads=False))
    table.write(file, format="fits" if ext == ".fits" else "parquet", overwrite=True)


def writeDataFile(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``obj`` to ``path`` in the format its extension names.

    Returns
    -------
    path : Path
        The file written.

    Raises
    ------
    FormatterError
        The extension is not supported, or ``obj`` cannot be written in that format.
    """
    file = Path(path)
    ext = _extension(file)
    kind = type(obj).__module__.split(".")[0]
    try:
        if ext == ".json":
            file.write_text(json.dumps(obj, default=_jsonDefault, indent=2) + "\n", encoding="utf-8")
        elif ext in (".yaml", ".yml"):
            import yaml

            plain = json.loads(json.dumps(obj, default=_jsonDefault))
            file.write_text(yaml.safe_dump(plain, sort_keys=False), encoding="utf-8")
        elif ext == ".npy":
            import numpy as np

            np.save(file, np.asarray(obj), allow_pickle=False)
        elif _isTable(obj):
            _writeTable(obj, file, ext)
        elif ext == ".fits" and kind == "numpy":
            from astropy.io import fits

            fits.writeto(file, obj, overwrite=True)
        else:
            raise TypeError(f"a {type(obj).__name__} has no {ext} form")
    except ImportError:
        raise
    except Exception as exc:
        raise FormatterError(
            f"Could not write {type(obj).__qualname__} to {str(file)!r}: {exc}. "
            f"Try another extension ({', '.join(SUPPORTED_EXTENSIONS)}) or get a component."
        ) from exc
    return file


def summarize(obj: Any) -> dict[str, str]:
    """Describe ``obj`` in a few lines for the screen: its type, shape, columns or contents."""
    out = {"type": f"{type(obj).__module__}.{type(obj).__qualname__}"}
    shape = getattr(obj, "shape", None)
    if shape is not None:
        out["shape"] = str(tuple(shape))
    dtype = getattr(obj, "dtype", None)
    if dtype is not None and not callable(dtype):
        out["dtype"] = str(dtype)
    columns = getattr(obj, "column_names", None) or getattr(obj, "colnames", None)
    if columns is None and hasattr(obj, "columns") and shape is not None:
        columns = [str(c) for c in obj.columns]
    if columns is not None:
        out["columns"] = ", ".join(map(str, columns))
        out["rows"] = str(len(obj))
    elif shape is None:
        text = repr(obj)
        out["value"] = text if len(text) <= 400 else text[:400] + " …"
    return out
