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
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import IO, Any, ClassVar

from ..exceptions import DatasetTypeMismatchError, UnstorableDatasetError
from ..storage_class import StorageClass

__all__ = [
    "MAX_PLAIN_DEPTH",
    "Formatter",
    "checkPlain",
    "fromPlain",
    "isPrevalidated",
    "prevalidated",
    "toCheckedPlain",
    "toPlain",
]

_PLAIN_TYPES = (dict, list, str, int, float, bool, type(None))


_PREVALIDATED: ContextVar[frozenset[int]] = ContextVar("databutlerPrevalidated", default=frozenset())


@contextmanager
def prevalidated(*inMemoryDatasets: Any) -> Iterator[None]:
    """Within this block, writes of these objects themselves may skip `Formatter.validate`.

    For a caller that has just validated the objects (a `Butler` put or putMany, after
    `Datastore.checkPut`) and does not change them before the write, so the check is not done
    twice. Only these objects, by identity (the caller keeps them alive for the block), in
    this thread or task; their components are still checked when written.
    """
    token = _PREVALIDATED.set(frozenset(map(id, inMemoryDatasets)))
    try:
        yield
    finally:
        _PREVALIDATED.reset(token)


def isPrevalidated(inMemoryDataset: Any) -> bool:
    """Return whether ``inMemoryDataset`` was validated by the enclosing `prevalidated` block."""
    return id(inMemoryDataset) in _PREVALIDATED.get()


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

    def validate(self, inMemoryDataset: Any, storageClass: StorageClass) -> None:
        """Refuse ``inMemoryDataset`` if this format cannot store it exactly.

        Called before anything is written or registered (a Butler calls it before it takes
        the registry's write lock), and by `write` itself. What would come back changed (a
        value, a dtype, a mask, metadata, the type) must be refused here, never written. The
        default accepts everything; a formatter overrides it.

        Raises
        ------
        UnstorableDatasetError
            The format cannot hold the object exactly; the message says what and what to do.
        DatasetTypeMismatchError
            The formatter does not write this type at all.
        """
        return None

    @abstractmethod
    def write(self, inMemoryDataset: Any, stream: IO[bytes], storageClass: StorageClass) -> None:
        """Write ``inMemoryDataset`` to the binary ``stream``, after `validate` accepted it.

        A formatter calls `validate` itself unless `isPrevalidated` says its caller just did.

        Raises
        ------
        UnstorableDatasetError
            The format would change the object (as `validate` says).
        DatasetTypeMismatchError
            The object is not of a type this formatter writes.
        Exception
            Anything else; the datastore reports it as a `FormatterError` and stores nothing.
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
        self._checkReadsSomething()
        return self.readStream(io.BytesIO(buffer), storageClass, parameters)

    def readStream(self, stream: IO[bytes], storageClass: StorageClass, parameters: Mapping[str, Any]) -> Any:
        """Return the dataset read from the binary ``stream``, with pushed-down ``parameters``.

        Raises
        ------
        InvalidParameterError
            A pushed-down parameter has a bad value.
        """
        self._checkReadsSomething()
        return self.readBuffer(memoryview(bytearray(stream.read())), storageClass, parameters)

    def _checkReadsSomething(self) -> None:
        """Refuse a formatter that overrides neither read (each default calls the other)."""
        cls = type(self)
        if cls.readBuffer is Formatter.readBuffer and cls.readStream is Formatter.readStream:
            raise NotImplementedError(f"{self.name} implements neither readBuffer nor readStream.")

    # -- files outside any datastore (``databutler put`` and ``get -o``) --

    def importFile(self, path: Path, storageClass: StorageClass) -> Any:
        """Read ``path``, a file outside any datastore, as an object of ``storageClass``'s type.

        The default reads the whole file and hands it to `readBuffer`; a formatter overrides
        this to read files that other programs wrote, or as more types than it writes.

        Raises
        ------
        Exception
            Anything; the caller reports it as a `FormatterError` naming the file.
        """
        with open(path, "rb") as fh:
            data = bytearray(fh.read())
        return self.readBuffer(memoryview(data), storageClass, {})

    def exportFile(self, inMemoryDataset: Any, path: Path) -> None:
        """Write ``inMemoryDataset`` to ``path``, a file outside any datastore, for other programs.

        The default writes what `write` would, as a storage class of the object's own type; the
        file is only created once the whole dataset is encoded. A formatter overrides this to
        write more types than it stores (an array as JSON, any table as FITS).

        Raises
        ------
        Exception
            Anything; the caller reports it as a `FormatterError` naming the file.
        """
        memory = io.BytesIO()
        self.write(inMemoryDataset, memory, StorageClass("Exported", type(inMemoryDataset)))
        path.write_bytes(memory.getbuffer())

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


def toCheckedPlain(obj: Any, storageClass: StorageClass, formatName: str, stringKeysOnly: bool) -> Any:
    """Return `toPlain` of ``obj`` after `checkPlain`, refusing what would not come back as ``obj``.

    Besides what `checkPlain` refuses, a dataset that is itself a tuple or exports a dict is
    refused when ``storageClass`` could not make it again from plain data (its ``pytype`` is
    ``object``, or not a tuple type for a tuple).

    Raises
    ------
    UnstorableDatasetError
        ``obj`` would not come back as it is.
    DatasetTypeMismatchError
        ``obj`` is not plain data and exports no dict.
    """
    data = toPlain(obj)
    if data is not obj:
        pytype = storageClass.pytype
        if pytype is object or (isinstance(obj, tuple) and not issubclass(pytype, tuple)):
            raise UnstorableDatasetError(
                f"{formatName} would read this {type(obj).__qualname__} back as a plain "
                f"{type(data).__name__}: storage class {storageClass.name!r} ({storageClass.pytypeName}) "
                f"cannot make it again; use a storage class whose pytype is its type."
            )
    checkPlain(data, formatName, stringKeysOnly)
    return data


MAX_PLAIN_DEPTH = 100
"""Deepest nesting of dicts and lists that the text formats accept; deeper data is refused."""


def checkPlain(data: Any, formatName: str, stringKeysOnly: bool) -> None:
    """Refuse what a text format would silently change on the way back, or could not write at all.

    Refused: a tuple inside the data (it would come back as a list: ``(4, 4) != [4, 4]``); with
    ``stringKeysOnly`` (JSON) a key such as ``1``, which would come back as ``"1"``; a value whose
    type is a subclass of a plain type (an `~collections.OrderedDict`, an `enum.IntEnum`, a
    ``numpy.float64``), which would come back as the plain type; text that is not valid
    Unicode (a lone surrogate); a dict or list that contains itself; nesting deeper than
    `MAX_PLAIN_DEPTH`. The walk visits each container once per path, so it always ends.

    Raises
    ------
    UnstorableDatasetError
        Such a value is found; the message says where and what to do.
    """
    # Depth-first over the containers; scalars are checked where they are met. The containers
    # on the current path are in ``onPath`` (by id), so a container inside itself is found at
    # once; an exit marker (negative depth) takes one off the path and adds its expanded size
    # (what the text would hold: a shared container is written once per reference) to its
    # parent's. A shared container is walked again only when met at a greater depth, so the walk
    # is linear in the distinct containers times the depth bound.
    kind = type(data)
    if kind in _SCALAR_TYPES:
        if kind is str and not data.isascii():
            _checkText(data, formatName, None)
        return
    if kind is not dict and kind is not list:
        raise _misfit(data, formatName, None)
    onPath: set[int] = set()
    walked: dict[int, tuple[int, int]] = {}  # id -> (depth walked at, expanded size)
    sizes: dict[int, int] = {}  # id -> expanded size so far, for the containers on the path
    stack: list[tuple[Any, Any, int, int]] = [(data, None, 0, 0)]
    while stack:
        node, where, depth, parent = stack.pop()
        key = id(node)
        if depth < 0:
            onPath.discard(key)
            size = sizes.pop(key)
            walked[key] = (-depth - 1, size)
            if size > MAX_PLAIN_ITEMS:
                raise _tooBig(formatName, size)
            if parent:
                sizes[parent] += size
            continue
        if key in onPath:
            raise UnstorableDatasetError(
                f"{formatName} cannot write the {type(node).__name__} at {_render(where)}: it contains "
                f"itself (a reference cycle); break the cycle or configure PickleFormatter."
            )
        seen = walked.get(key)
        if seen is not None and seen[0] >= depth:
            if parent:
                sizes[parent] += seen[1]
            continue
        if depth >= MAX_PLAIN_DEPTH:
            raise UnstorableDatasetError(
                f"{formatName}: the data are nested more than {MAX_PLAIN_DEPTH} levels deep at "
                f"{_render(where)}; flatten them or configure PickleFormatter."
            )
        onPath.add(key)
        stack.append((node, where, -depth - 1, parent))
        count = 1
        isDict = type(node) is dict
        children: Iterable[tuple[Any, Any]] = node.items() if isDict else enumerate(node)
        for name, value in children:
            if isDict:
                nameType = type(name)
                if nameType is str:
                    if not name.isascii():
                        _checkText(name, formatName, (where, name), isKey=True)
                elif stringKeysOnly:
                    raise UnstorableDatasetError(
                        f"{formatName} keys must be str, but {_render(where)} has key {name!r} "
                        f"({nameType.__name__}), which it would turn into a string; use YamlFormatter."
                    )
                elif nameType not in _SCALAR_TYPES:
                    raise UnstorableDatasetError(
                        f"{formatName} cannot keep the key {name!r} ({nameType.__qualname__}) at "
                        f"{_render(where)} as it is; use str, int, float, bool or None keys, or "
                        f"configure PickleFormatter."
                    )
            valueType = type(value)
            if valueType in _SCALAR_TYPES:
                count += 1
                if valueType is str and not value.isascii():
                    _checkText(value, formatName, (where, name))
            elif valueType is dict or valueType is list:
                stack.append((value, (where, name), depth + 1, key))
            else:
                raise _misfit(value, formatName, (where, name))
        sizes[key] = count


def _misfit(node: Any, formatName: str, where: Any) -> UnstorableDatasetError:
    """Return the error for a value that is neither a plain scalar nor a dict or list."""
    if type(node) is tuple:
        return UnstorableDatasetError(
            f"{formatName} would read the tuple at {_render(where)} back as a list; store a list, or "
            f"configure a formatter that keeps tuples (PickleFormatter)."
        )
    return _notPlain(node, formatName, _render(where))


def _render(where: Any) -> str:
    """Turn a path chain ``(parentChain, key)`` into ``[key1][key2]`` (or "the top level")."""
    keys = []
    while where is not None:
        where, key = where
        keys.append(f"[{key!r}]")
    return "".join(reversed(keys)) or "the top level"


MAX_PLAIN_ITEMS = 100_000_000
"""Most values a text dataset may hold once shared containers are counted once per reference."""


def _tooBig(formatName: str, size: int) -> UnstorableDatasetError:
    return UnstorableDatasetError(
        f"{formatName}: the data would be written as more than {MAX_PLAIN_ITEMS:,} values ({size:,} "
        f"counting a container shared by several references once per reference); store less, "
        f"or configure PickleFormatter, which keeps sharing."
    )


_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})


def _notPlain(node: Any, formatName: str, where: str) -> UnstorableDatasetError:
    kind = type(node)
    name = f"{kind.__module__}.{kind.__qualname__}"
    for base in (bool, int, float, str, dict, list, tuple):
        if isinstance(node, base):
            return UnstorableDatasetError(
                f"{formatName} would read the {name} at {where} back as a plain {base.__name__}; "
                f"convert it to one before the put, or configure PickleFormatter for this dataset type."
            )
    return UnstorableDatasetError(
        f"{formatName} cannot write the {name} at {where}: it is not plain data (dict, list, str, "
        f"int, float, bool, None); convert it (an array with .tolist()), or configure PickleFormatter."
    )


_CHANGED_CHARACTERS = {"YAML": {"\x85": "NEL, which YAML reads back as a line break"}}
"""Non-ASCII characters that a text format writes but reads back as something else."""


def _checkText(text: str, formatName: str, where: Any, isKey: bool = False) -> None:
    """Refuse non-ASCII ``text`` that ``formatName`` cannot write or would read back changed."""
    what = f"the key {text!r} at {_render(where[0])}" if isKey else f"the text at {_render(where)}"
    for character, why in _CHANGED_CHARACTERS.get(formatName, {}).items():
        if character in text:
            raise UnstorableDatasetError(
                f"{formatName} cannot keep {what}: it holds {character!r} ({why}); remove it or use "
                f"JsonFormatter."
            )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnstorableDatasetError(
            f"{formatName} cannot write {what}: it holds {text[exc.start : exc.end]!r}, "
            f"which is not valid Unicode (a lone surrogate); store bytes or valid text."
        ) from None
