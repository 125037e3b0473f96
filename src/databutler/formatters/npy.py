"""`NpyFormatter`: NumPy arrays as ``.npy`` files, written and read without extra copies."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.lib import format as npformat

from ..delegates.numpy_array import checkPlainArray
from ..exceptions import DatasetTypeMismatchError
from ..storage_class import StorageClass
from .base import Formatter, isPrevalidated

__all__ = ["NpyFormatter"]


class _BufferReader:
    """The ``read`` that numpy's header parser needs, over a memoryview, without copying it."""

    def __init__(self, buffer: memoryview) -> None:
        self.buffer = buffer
        self.pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.buffer) if size < 0 else self.pos + size
        chunk = bytes(self.buffer[self.pos : end])
        self.pos += len(chunk)
        return chunk


class NpyFormatter(Formatter):
    """Writes an array as ``.npy`` (the format of `numpy.save`), refusing object arrays.

    On write the header is followed by the array's own memory (no copy for contiguous arrays);
    on read the array is a view of the file's bytes, which the reader owns, so it is writeable
    and shares nothing with any other reader.
    """

    extension = ".npy"

    def validate(self, inMemoryDataset: Any, storageClass: StorageClass) -> None:
        """Refuse anything but a plain `numpy.ndarray` of a dtype ``.npy`` holds without pickle.

        Raises
        ------
        UnstorableDatasetError
            A masked array, a matrix or another subclass.
        DatasetTypeMismatchError
            Not an array, or an array holding Python objects.
        """
        checkPlainArray(inMemoryDataset, ".npy")
        if inMemoryDataset.dtype.hasobject:
            raise DatasetTypeMismatchError(
                f"Cannot write an array of dtype {inMemoryDataset.dtype} as .npy without pickle; "
                f"configure PickleFormatter for it or store a numeric dtype."
            )

    def write(self, inMemoryDataset: Any, stream: IO[bytes], storageClass: StorageClass) -> None:
        """Write the ``.npy`` header, then the array's memory (copied only if not contiguous).

        Raises
        ------
        UnstorableDatasetError
            The array is a subclass (see `validate`).
        DatasetTypeMismatchError
            The array holds Python objects, which ``.npy`` stores only with pickle.
        """
        if not isPrevalidated(inMemoryDataset):
            self.validate(inMemoryDataset, storageClass)
        array = inMemoryDataset
        if not (array.flags.c_contiguous or array.flags.f_contiguous):
            array = np.ascontiguousarray(array)
        header = npformat.header_data_from_array_1_0(array)
        try:
            npformat.write_array_header_1_0(stream, header)
        except ValueError:  # header too long for format 1.0
            npformat.write_array_header_2_0(stream, header)
        if array.size:
            data = array.T if header["fortran_order"] else array
            # As bytes through a uint8 view: the buffer protocol has no code for datetime64
            # and timedelta64, so ``.data.cast("B")`` refuses them.
            stream.write(np.ascontiguousarray(data).reshape(-1).view(np.uint8).data)

    def exportFile(self, inMemoryDataset: Any, path: Path) -> None:
        """Write ``numpy.save``'s format; anything array-like is written as an array."""
        np.save(path, np.asarray(inMemoryDataset), allow_pickle=False)

    def newBuffer(self, size: int) -> memoryview:
        """Return an uninitialized byte buffer that the array read from it can own."""
        return np.empty(size, dtype=np.uint8).data

    def readBuffer(
        self, buffer: memoryview, storageClass: StorageClass, parameters: Mapping[str, Any]
    ) -> Any:
        """Return the array as a writeable view of ``buffer`` (no copy), after checking the header.

        Raises
        ------
        DatasetTypeMismatchError
            The file holds an object array, which would need pickle.
        ValueError
            The file is shorter or longer than its header says.
        """
        reader = _BufferReader(buffer)
        version = npformat.read_magic(reader)
        if version == (1, 0):
            shape, fortranOrder, dtype = npformat.read_array_header_1_0(reader)
        else:
            shape, fortranOrder, dtype = npformat.read_array_header_2_0(reader)
        if dtype.hasobject:
            raise DatasetTypeMismatchError(
                "The .npy file holds an object array, which needs pickle; refusing."
            )
        count = int(np.prod(shape, dtype=np.int64))
        expected = reader.pos + count * dtype.itemsize
        if len(buffer) != expected:
            raise ValueError(f"the .npy data is {len(buffer)} bytes, but its header promises {expected}")
        flat = np.frombuffer(buffer, dtype=dtype, count=count, offset=reader.pos)
        return flat.reshape(shape, order="F" if fortranOrder else "C")
