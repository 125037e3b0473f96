"""Reading user files into Python objects for ``put`` and writing them back out for ``get``.

The file's extension chooses the formatter (`databutler.formatters.extensions`, configured in
``fileFormats.yaml``: ``.json``, ``.yaml``, ``.npy``, ``.parquet``, ``.fits``); the dataset
type's storage class chooses the Python type it is read as, so the same ``.parquet`` file
becomes a pyarrow Table, a pandas DataFrame or an astropy Table as needed. Each formatter's
`~databutler.formatters.Formatter.importFile` and ``exportFile`` do the reading and writing;
optional libraries are imported only when a file needs them.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from ..exceptions import FormatterError
from ..formatters.extensions import FormatterRegistry
from ..storage_class import StorageClass

__all__ = ["SUPPORTED_EXTENSIONS", "fileFormats", "readDataFile", "summarize", "writeDataFile"]


@functools.cache
def fileFormats() -> FormatterRegistry:
    """Return the formatters by extension of the config search path (read once)."""
    return FormatterRegistry.fromDefaults()


SUPPORTED_EXTENSIONS = FormatterRegistry.fromDefaults().extensions
"""File extensions that ``put`` reads and ``get`` writes, as configured when first imported."""


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
    formatter = fileFormats().formatterFor(file)
    if not file.is_file():
        raise FileNotFoundError(f"Input file {str(file)!r} does not exist.")
    try:
        obj = formatter.importFile(file, storageClass)
    except (ImportError, FileNotFoundError):
        raise
    except Exception as exc:
        raise FormatterError(f"Could not read {str(file)!r} as {storageClass.name}: {exc}") from exc
    if storageClass.name == "StructuredDataList" and isinstance(obj, tuple):
        obj = list(obj)
    return obj


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
    formats = fileFormats()
    formatter = formats.formatterFor(file)
    try:
        formatter.exportFile(obj, file)
    except ImportError:
        raise
    except Exception as exc:
        raise FormatterError(
            f"Could not write {type(obj).__qualname__} to {str(file)!r}: {exc}. "
            f"Try another extension ({', '.join(formats.extensions)}) or get a component."
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
