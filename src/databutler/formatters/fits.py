"""`FitsFormatter`: astropy Tables and NumPy images as FITS files, via astropy."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import IO, Any

import numpy as np
from astropy.io import fits
from astropy.table import Table

from ..exceptions import DatasetTypeMismatchError
from ..storage_class import StorageClass
from .base import Formatter

__all__ = ["FitsFormatter"]


def _native(array: Any) -> Any:
    """Return ``array`` in native byte order (FITS stores big-endian)."""
    if array.dtype.byteorder not in ("=", "|"):
        return array.astype(array.dtype.newbyteorder("="))
    return array


class FitsFormatter(Formatter):
    """Writes an `astropy.table.Table` as a binary-table extension, or an array as the primary image.

    What is read back is decided by the storage class: a Table type reads the first table
    extension (units and table metadata are kept in the header; columns keep FITS's big-endian
    dtypes), an array type reads the primary image, converted to native byte order.
    """

    extension = ".fits"

    def write(self, inMemoryDataset: Any, stream: IO[bytes], storageClass: StorageClass) -> None:
        """Write a Table as a binary-table extension or an array as the primary image.

        Raises
        ------
        DatasetTypeMismatchError
            The object is neither a Table nor an array, or the array holds Python objects.
        """
        if isinstance(inMemoryDataset, Table):
            hdus = fits.HDUList([fits.PrimaryHDU(), fits.table_to_hdu(inMemoryDataset)])
        elif isinstance(inMemoryDataset, np.ndarray):
            if inMemoryDataset.dtype.hasobject:
                raise DatasetTypeMismatchError(f"FITS cannot hold an array of dtype {inMemoryDataset.dtype}.")
            hdus = fits.HDUList([fits.PrimaryHDU(data=inMemoryDataset)])
        else:
            raise DatasetTypeMismatchError(
                f"FitsFormatter writes astropy.table.Table or numpy.ndarray, not "
                f"{type(inMemoryDataset).__qualname__}."
            )
        memory = io.BytesIO()  # astropy seeks while writing; the datastore's stream only appends
        hdus.writeto(memory)
        stream.write(memory.getbuffer())

    def readBuffer(
        self, buffer: memoryview, storageClass: StorageClass, parameters: Mapping[str, Any]
    ) -> Any:
        """Read the first table extension for a Table storage class, else the primary image.

        Raises
        ------
        ValueError
            The file has no table extension (Table) or no primary image (array).
        """
        with fits.open(io.BytesIO(buffer), memmap=False, lazy_load_hdus=False) as hdus:
            if issubclass(storageClass.pytype, Table):
                for hdu in hdus:
                    if isinstance(hdu, fits.BinTableHDU | fits.TableHDU):
                        return Table.read(hdu)
                raise ValueError("the FITS file has no table extension")
            data = hdus[0].data
            if data is None:
                raise ValueError("the FITS file has no primary image")
            return _native(np.array(data))
