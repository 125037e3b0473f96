"""`FitsFormatter`: astropy Tables and NumPy images as FITS files, via astropy."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
from astropy.io import fits
from astropy.table import Column, MaskedColumn, Table
from astropy.utils.exceptions import AstropyWarning
from typing_extensions import override

from ..delegates.numpy_array import checkPlainArray
from ..exceptions import DatasetTypeMismatchError, UnstorableDatasetError
from ..storage_class import StorageClass
from .base import Formatter, isPrevalidated

__all__ = ["FitsFormatter"]

_ADVICE = (
    "convert it to what FITS holds, or store the table with a formatter that keeps it "
    "(PickleFormatter, configured for this dataset type)"
)


_BIG_ENDIAN = "DBBIGEND"
"""Header keyword naming what was big-endian when written (column numbers from 0, or ``T`` for an
image); everything else is read back in native byte order."""


def _isBigEndian(dtype: np.dtype[Any]) -> bool:
    return dtype.byteorder == ">" or (dtype.byteorder == "=" and np.little_endian is False)


def _tableHdu(table: Table) -> fits.BinTableHDU:
    hdu = fits.table_to_hdu(table)
    bigEndian = [str(i) for i, name in enumerate(table.colnames) if _isBigEndian(table[name].dtype)]
    if bigEndian:
        hdu.header[_BIG_ENDIAN] = ",".join(bigEndian)
    return hdu


def _imageHdu(array: Any) -> fits.PrimaryHDU:
    hdu = fits.PrimaryHDU(data=array)
    if _isBigEndian(array.dtype):
        hdu.header[_BIG_ENDIAN] = True
    return hdu


def _native(array: Any) -> Any:
    """Return ``array`` in native byte order (FITS stores big-endian)."""
    if array.dtype.byteorder not in ("=", "|"):
        return array.astype(array.dtype.newbyteorder("="))
    return array


def _refuse(what: str) -> UnstorableDatasetError:
    why = ""
    if what.endswith(")") and " (" in what:
        what, why = what.rsplit(" (", 1)
        why = f" ({why}"
    return UnstorableDatasetError(f"FITS cannot hold {what} exactly{why}; nothing was written: {_ADVICE}.")


def _sameValue(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (``1 != True`` here, NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, Mapping):
        return list(a) == list(b) and all(_sameValue(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_sameValue(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b or (a != a and b != b)
    return bool(a == b)


def _checkColumn(name: str, original: Any, back: Any) -> None:
    """Refuse unless column ``back`` (read from FITS) is ``original`` exactly."""
    where = f"column {name!r}"
    if type(original) is not type(back):
        if type(original) is MaskedColumn and not original.mask.any():
            raise _refuse(f"{where} as a MaskedColumn with nothing masked (it would read back as a Column)")
        raise _refuse(
            f"{where} as a {type(original).__name__} (it would read back as a {type(back).__name__}; FITS "
            f"keeps masks only of integer columns)"
        )
    if original.dtype != back.dtype:
        hint = "; FITS has no signed bytes, store it as int16" if original.dtype == np.int8 else ""
        raise _refuse(f"{where} of dtype {original.dtype} (it would read back as {back.dtype}{hint})")
    if original.shape != back.shape:
        raise _refuse(f"{where} of shape {original.shape} (it would read back as {back.shape})")
    if isinstance(original, MaskedColumn) and not np.array_equal(original.mask, back.mask):
        raise _refuse(f"the mask of {where} (a value equal to the null value would read back masked)")
    data, backData = np.asarray(original.data), np.asarray(back.data)
    if isinstance(original, MaskedColumn):
        keep = ~np.asarray(original.mask)
        data, backData = data[keep], backData[keep]
    if not np.array_equal(data, backData, equal_nan=data.dtype.kind in "fc"):
        detail = " (FITS drops trailing spaces and holds ASCII only)" if data.dtype.kind == "U" else ""
        raise _refuse(f"the values of {where}{detail}")
    for attribute in ("unit", "description", "format"):
        if getattr(original, attribute) != getattr(back, attribute):
            raise _refuse(
                f"the {attribute} {getattr(original, attribute)!r} of {where} (it would read back as "
                f"{getattr(back, attribute)!r})"
            )
    if original.meta:
        raise _refuse(f"the metadata of {where} ({dict(original.meta)!r})")


def _checkTable(original: Table, back: Table) -> None:
    if original.colnames != back.colnames:
        raise _refuse(f"the column names {original.colnames} (they would read back as {back.colnames})")
    for name in original.colnames:
        column = original[name]
        if type(column) not in (Column, MaskedColumn):
            raise _refuse(f"column {name!r}, a {type(column).__qualname__} (a mixin column)")
        _checkColumn(name, column, back[name])
    for key, value in original.meta.items():
        if key not in back.meta:
            near = [k for k in back.meta if isinstance(key, str) and k.lower() == key.lower()]
            change = f" (it would read back as {near[0]!r})" if near else " (it would be dropped)"
            raise _refuse(f"the table metadata key {key!r}{change}")
        if not _sameValue(value, back.meta[key]):
            raise _refuse(
                f"the table metadata {key!r}: {value!r} (it would read back as {back.meta[key]!r}; FITS "
                f"headers hold ASCII text without trailing spaces, numbers and bools)"
            )
    extra = [k for k in back.meta if k not in original.meta]
    if extra:
        raise _refuse(f"this table: it would read back with metadata {extra} it did not have")


class FitsFormatter(Formatter):
    """Writes an `astropy.table.Table` as a binary-table extension, or an array as the primary image.

    What is read back is decided by the storage class: a Table type reads the first table
    extension, an array type reads the primary image; both come back in the byte order they had
    (big-endian columns are noted in a ``DBBIGEND`` header card, the rest read back native).

    Nothing is written that would not read back exactly: each dataset is encoded, decoded and
    compared, and a difference is refused with `UnstorableDatasetError` naming the column or
    metadata key. FITS keeps column units, integer-column masks and flat table metadata with
    upper-case keys (at most 8 characters, or ``HIERARCH`` ones) whose values are ASCII text
    without trailing spaces, numbers or bools. It refuses, among others, int8 and float16
    columns, bytes columns, masks of float, text or bool columns, mixin columns, nested or
    lower-case metadata, text with trailing spaces or non-ASCII characters, big-endian input,
    and bool or float16 images.
    """

    extension = ".fits"

    @override
    def validate(self, inMemoryDataset: Any, storageClass: StorageClass) -> None:
        """Encode, decode and compare: refuse what would not read back exactly.

        Raises
        ------
        UnstorableDatasetError
            Names the column, metadata key or dtype that FITS would change.
        DatasetTypeMismatchError
            The object is neither a Table nor an array.
        """
        self._encode(inMemoryDataset, storageClass)

    @override
    def write(self, inMemoryDataset: Any, stream: IO[bytes], storageClass: StorageClass) -> None:
        """Write a Table as a binary-table extension or an array as the primary image, once checked."""
        stream.write(self._encode(inMemoryDataset, storageClass, check=not isPrevalidated(inMemoryDataset)))

    def _encode(self, inMemoryDataset: Any, storageClass: StorageClass, check: bool = True) -> bytes:
        """Return the FITS bytes of ``inMemoryDataset``, checked to read back as it is if ``check``."""
        if type(inMemoryDataset) is Table:
            if any(str(key).upper() == _BIG_ENDIAN for key in inMemoryDataset.meta):
                raise _refuse(f"the table metadata key {_BIG_ENDIAN!r} (this formatter uses it itself)")
            makeHdus: Callable[[], fits.HDUList] = lambda: fits.HDUList(  # noqa: E731
                [fits.PrimaryHDU(), _tableHdu(inMemoryDataset)]
            )
        elif isinstance(inMemoryDataset, Table):
            raise _refuse(f"a {type(inMemoryDataset).__qualname__} (it would read back as a Table)")
        elif isinstance(inMemoryDataset, np.ndarray):
            checkPlainArray(inMemoryDataset, "FITS")
            if inMemoryDataset.dtype.hasobject or inMemoryDataset.dtype.names:
                raise _refuse(f"an image of dtype {inMemoryDataset.dtype}")
            makeHdus = lambda: fits.HDUList([_imageHdu(inMemoryDataset)])  # noqa: E731
        else:
            raise DatasetTypeMismatchError(
                f"FitsFormatter writes astropy.table.Table or numpy.ndarray, not "
                f"{type(inMemoryDataset).__qualname__}."
            )
        memory = io.BytesIO()  # astropy seeks while writing; the datastore's stream only appends
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", AstropyWarning)  # what it drops is found below
                makeHdus().writeto(memory)
        except (KeyError, ValueError, TypeError, UnicodeError) as exc:
            raise _refuse(f"this {type(inMemoryDataset).__qualname__} ({type(exc).__name__}: {exc})") from exc
        encoded = memory.getvalue()
        if not check:
            return encoded
        back = self._decode(memoryview(encoded), isinstance(inMemoryDataset, Table))
        if isinstance(inMemoryDataset, Table):
            _checkTable(inMemoryDataset, back)
        elif back.dtype != inMemoryDataset.dtype or not np.array_equal(
            back, inMemoryDataset, equal_nan=back.dtype.kind in "fc"
        ):
            raise _refuse(
                f"an image of dtype {inMemoryDataset.dtype} and shape {inMemoryDataset.shape} (it would "
                f"read back as {back.dtype}, shape {back.shape})"
            )
        return encoded

    @staticmethod
    def _decode(buffer: memoryview, asTable: bool) -> Any:
        with fits.open(io.BytesIO(buffer), memmap=False, lazy_load_hdus=False) as hdus:
            if asTable:
                for hdu in hdus:
                    if isinstance(hdu, fits.BinTableHDU | fits.TableHDU):
                        # A NaN stays a NaN: only integer columns with a null value come back masked.
                        table = Table.read(hdu, mask_invalid=False)
                        bigEndian = str(table.meta.pop(_BIG_ENDIAN, "")).split(",")
                        for i, name in enumerate(table.colnames):
                            column = table[name]
                            if str(i) not in bigEndian and column.dtype.byteorder not in ("=", "|"):
                                table[name] = column.astype(column.dtype.newbyteorder("="))
                        return table
                raise ValueError("the FITS file has no table extension")
            data = hdus[0].data
            if data is None:
                raise ValueError("the FITS file has no primary image")
            return np.array(data) if hdus[0].header.get(_BIG_ENDIAN) else _native(np.array(data))

    @override
    def importFile(self, path: Path, storageClass: StorageClass) -> Any:
        """Read any FITS file: the primary image for an array type, else the first table.

        A table is read by astropy as it stands (FITS's big-endian dtypes, NaN as masked) and
        handed over as a DataFrame for a pandas storage class.
        """
        if issubclass(storageClass.pytype, np.ndarray):
            return fits.getdata(path)
        table = Table.read(path)
        return table.to_pandas() if storageClass.pytype.__module__.split(".")[0] == "pandas" else table

    @override
    def exportFile(self, inMemoryDataset: Any, path: Path) -> None:
        """Write an array as the primary image, or any table (astropy, pandas, pyarrow) as a table."""
        kind = type(inMemoryDataset).__module__.split(".")[0]
        if isinstance(inMemoryDataset, np.ndarray):
            fits.writeto(path, inMemoryDataset, overwrite=True)
            return
        if kind == "astropy" and isinstance(inMemoryDataset, Table):
            table = inMemoryDataset
        elif kind == "pandas" and getattr(inMemoryDataset, "ndim", 0) == 2:
            table = Table.from_pandas(inMemoryDataset)
        elif kind == "pyarrow" and hasattr(inMemoryDataset, "column_names"):
            table = Table.from_pandas(inMemoryDataset.to_pandas(use_threads=False))
        else:
            raise TypeError(f"a {type(inMemoryDataset).__name__} has no .fits form")
        table.write(path, format="fits", overwrite=True)

    @override
    def readBuffer(
        self, buffer: memoryview, storageClass: StorageClass, parameters: Mapping[str, Any]
    ) -> Any:
        """Read the first table extension for a Table storage class, else the primary image.

        Raises
        ------
        ValueError
            The file has no table extension (Table) or no primary image (array).
        """
        return self._decode(buffer, issubclass(storageClass.pytype, Table))
