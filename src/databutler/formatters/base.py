"""The `Formatter` contract: read and write one Python type to one file format.

A formatter is chosen by fully-qualified class name in a datastore's ``formatters`` config. It
writes to a binary stream and reads either from a buffer (the whole file, already in memory and
checksum-verified) or from a stream (a file opened for reading, so that a format with random
access, like Parquet, can read only the parts asked for). Each formatter implements `write`
and at least one of `readBuffer` and `readStream`; the other is derived from it.
"""

from __future__ import annotations

import dataclasses
import io
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import IO, Any, ClassVar

from ..exceptions import DatasetTypeMismatchError
from ..storage_class import StorageClass

__all__ = ["Formatter", "checkPlain", "fromPlain", "toPlain"]

_PLAIN_TYPES = (dict, list, str, int, float, bool, type(None))


class Formatter(ABC):
    """Reads and writes datasets of one family of Python types in one file format.

    Subclasses set `extension`, implement `write`, and override `readBuffer` or `readStream`
    (or both). A minimal one::

        class TextFormatter(Formatter):
            extension = ".txt"

            def write(self, inMemoryDataset, stream, storageClass):
                stream.write(inMemoryDataset.encode())

            def readBuffer(self, buffer, storageClass, parameters):
                return bytes(buffer).decode()

    selected for a storage class by::

        datastore:
          formatters:
            String: mypackage.TextFormatter

    Errors raised by a formatter are turned into `FormatterError` by the datastore, naming the
    file and the formatter.
    """

    extension: ClassVar[str] = ""
    """File name extension, with its dot (``".json"``)."""

    canRunCode: ClassVar[bool] = False
    """Whether reading a file could run code from it (pickle). Such a formatter reads only
    when the datastore's own configuration names it, never because a record says so."""

    pushdownParameters: ClassVar[frozenset[str]] = frozenset()
    """Read parameters this formatter applies itself while reading (e.g. Parquet ``columns``).

    The datastore passes these to `readBuffer`/`readStream`; any other parameter is applied
    afterwards by the storage class delegate.
    """

    prefersStream: ClassVar[bool] = False
    """Whether reading from an open file beats reading the whole file into memory first.

    Only used when checksums are not verified: a verified read always has the whole file.
    """

    @property
    def name(self) -> str:
        """The fully-qualified class name, as written in config and in stored records."""
        cls = type(self)
        return f"{cls.__module__}.{cls.__qualname__}"

    @abstractmethod
    def write(self, inMemoryDataset: Any, stream: IO[bytes], storageClass: StorageClass) -> None:
        """Write ``inMemoryDataset`` to the binary ``stream``.

        Raises
        ------
        Exception
            Anything; the datastore reports it as a `FormatterError` and stores nothing.
        """

    def newBuffer(self, size: int) -> memoryview:
        """Return a writeable buffer of ``size`` bytes for the datastore to read a file into.

        The default is a `bytearray`; a formatter whose library has a faster allocator (NumPy,
        Arrow) overrides this so that big files are not zero-filled before they are read.
        """
        return memoryview(bytearray(size))

    def readBuffer(
        self, buffer: memoryview, storageClass: StorageClass, parameters: Mapping[str, Any]
    ) -> Any:
        """Return the dataset held in ``buffer`` (the whole file), with pushed-down ``parameters``.

        The buffer is writeable and owned by the caller's result: a formatter may return
        objects that share its memory.

        Raises
        ------
        InvalidParameterError
            A pushed-down parameter has a bad value.
        """
        if type(self).readStream is Formatter.readStream:
            raise NotImplementedError(f"{self.name} implements neither readBuffer nor readStream.")
        return self.readStream(io.BytesIO(buffer), storageClass, parameters)

    def readStream(self, stream: IO[bytes], storageClass: StorageClass, parameters: Mapping[str, Any]) -> Any:
        """Return the dataset read from the binary ``stream``, with pushed-down ``parameters``.

        Raises
        ------
        InvalidParameterError
            A pushed-down parameter has a bad value.
        """
        if type(self).readBuffer is Formatter.readBuffer:
            raise NotImplementedError(f"{self.name} implements neither readBuffer nor readStream.")
        return self.readBuffer(memoryview(bytearray(stream.read())), storageClass, parameters)

    def __repr__(self) -> str:
        """Show the formatter class."""
        return f"{type(self).__name__}()"


def toPlain(obj: Any) -> Any:
    """Return ``obj`` as plain data (dict, list, scalars) for a text format.

    Dicts, lists and scalars are returned as they are; tuples become lists; an object that
    exports a dict is asked for it: ``toDict()``, a namedtuple's ``_asdict()`` or a dataclass's
    fields.

    Raises
    ------
    DatasetTypeMismatchError
        ``obj`` is none of those.
    """
    if isinstance(obj, _PLAIN_TYPES):
        return obj
    toDict = getattr(obj, "toDict", None)
    if callable(toDict):
        return toDict()
    asDict = getattr(obj, "_asdict", None)
    if isinstance(obj, tuple) and callable(asDict):
        return dict(asDict())
    if isinstance(obj, tuple):
        return list(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    raise DatasetTypeMismatchError(
        f"Cannot write a {type(obj).__qualname__} as plain data: it is not a dict, list or scalar "
        f"and has no toDict() method; add one or configure another formatter."
    )


def fromPlain(data: Any, storageClass: StorageClass) -> Any:
    """Turn plain data read from a text format back into ``storageClass.pytype``.

    The reverse of `toPlain`: a list becomes a tuple for tuple types, a dict is handed to
    ``pytype.fromDict`` if there is one, else to ``pytype(**data)``.

    Raises
    ------
    DatasetTypeMismatchError
        The data cannot be turned into the storage class's type.
    """
    pytype = storageClass.pytype
    if pytype is object or (isinstance(data, pytype) and not (pytype is tuple and isinstance(data, list))):
        return data
    fromDict = getattr(pytype, "fromDict", None)
    try:
        if isinstance(data, dict) and callable(fromDict):
            return fromDict(data)
        if isinstance(data, dict):
            return pytype(**data)
        if isinstance(data, list) and issubclass(pytype, tuple | list):
            return pytype(data)
        if pytype is float and isinstance(data, int) and not isinstance(data, bool):
            return float(data)
    except (TypeError, ValueError) as exc:
        raise DatasetTypeMismatchError(
            f"Cannot make a {storageClass.pytypeName} (storage class {storageClass.name!r}) from the "
            f"stored {type(data).__name__}: {exc}"
        ) from exc
    raise DatasetTypeMismatchError(
        f"The stored {type(data).__name__} is not the {storageClass.pytypeName} that storage class "
        f"{storageClass.name!r} expects."
    )


def checkPlain(data: Any, formatName: str, stringKeysOnly: bool) -> None:
    """Refuse what a text format would silently change on the way back.

    A tuple inside the data would come back as a list (``(4, 4) != [4, 4]``), and with
    ``stringKeysOnly`` (JSON) a key such as ``1`` would come back as ``"1"``.

    Raises
    ------
    DatasetTypeMismatchError
        Such a value is found; the message says where.
    """
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, tuple):
            raise DatasetTypeMismatchError(
                f"{formatName} would read the tuple at {where or 'the top level'} back as a list; store a "
                f"list, or configure a formatter that keeps tuples (PickleFormatter)."
            )
        if isinstance(node, dict):
            for key, value in node.items():
                if stringKeysOnly and not isinstance(key, str):
                    raise DatasetTypeMismatchError(
                        f"{formatName} keys must be str, but {where or 'the top level'} has key {key!r} "
                        f"({type(key).__name__}), which it would turn into a string; use YamlFormatter."
                    )
                if isinstance(value, dict | list | tuple):
                    stack.append((value, f"{where}[{key!r}]"))
        elif isinstance(node, list):
            stack.extend(
                (v, f"{where}[{i}]") for i, v in enumerate(node) if isinstance(v, dict | list | tuple)
            )
