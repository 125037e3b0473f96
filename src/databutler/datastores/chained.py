"""ChainedDatastore: an ordered list of datastores acting as one.

``put`` writes to every child that accepts the dataset (all or none, except that an ephemeral
child too small for the dataset is skipped), ``get`` reads from the first child that has it.
The headline use is a bounded memory tier in front of a file tier: a
dataset the memory tier has evicted is read from the file tier.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from typing_extensions import override

from ..config import Config
from ..dataset_ref import DatasetRef
from ..dataset_type import DatasetType
from ..datastore.base import ArtifactRequest, Datastore, DatastoreConfigLike
from ..datastore.bridge import DatasetLocationRegistry, RecordStorage, RecordStorageProvider
from ..datastore.constraints import Constraints
from ..datastore.transaction import DatastoreTransaction
from ..exceptions import (
    ConfigError,
    DatasetExistsError,
    DatasetFileMissingError,
    DatasetNotFoundError,
    DatasetTooLargeError,
    DatasetTypeNotSupportedError,
    IngestError,
    StoredItemInfoNotFoundError,
)
from .memory import InMemoryDatastore

__all__ = ["ChainedDatastore"]

log = logging.getLogger(__name__)


def _childConfigs(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, Config):
        value = value.toDict()
    if not isinstance(value, list) or not value:
        raise ConfigError(
            f"ChainedDatastore needs datastore.datastores: a non-empty list of child configs, not {value!r}."
        )
    children = []
    for i, child in enumerate(value):
        if isinstance(child, Config):
            child = child.toDict()
        if not isinstance(child, dict):
            raise ConfigError(f"datastore.datastores[{i}] must be a mapping with a cls, not {child!r}.")
        section = child.get("datastore", child)
        if not isinstance(section, dict) or "cls" not in section:
            raise ConfigError(f"datastore.datastores[{i}] has no cls: {child!r}.")
        children.append(section)
    return children


class _ChainRelay:
    """Passes the children's location news to the real registry under the chain's name.

    The chain holds a dataset while any child does: a child's add is the chain's add only when
    no other child has it already (so a read-through copy into a cache tier writes nothing to
    the registry), and a child's removal (including an eviction) is the chain's only when no
    child has it any more. While the chain itself puts a dataset it tells the registry once,
    after every child has stored it, so the children's adds of that dataset are not passed on.
    """

    def __init__(self, chain: ChainedDatastore, registry: DatasetLocationRegistry) -> None:
        self.chain = chain
        self.registry = registry
        self._putting = threading.local()

    @property
    def dropping(self) -> bool:
        """Whether this thread's chain is dropping cached copies, whose removals tell the registry nothing."""
        return getattr(self._putting, "dropping", False)

    @dropping.setter
    def dropping(self, value: bool) -> None:
        self._putting.dropping = value

    @property
    def putting(self) -> DatasetRef | None:
        """The dataset this thread's chain `put` is storing, whose adds wait for the chain."""
        return getattr(self._putting, "ref", None)

    @putting.setter
    def putting(self, ref: DatasetRef | None) -> None:
        self._putting.ref = ref

    @property
    def recordStorage(self) -> RecordStorage | None:
        """Return the registry's storage for datastore records, if it offers one (else `None`)."""
        registry = self.registry
        return registry.recordStorage if isinstance(registry, RecordStorageProvider) else None

    def addDatasetLocations(self, datastoreName: str, refs: Iterable[DatasetRef]) -> None:
        putting = self.putting
        new = list(refs) if putting is None else [ref for ref in refs if ref != putting]
        for child in self.chain.datastores:
            if not new:
                return
            if child.name != datastoreName:
                held = child.knowsMany(new)
                new = [ref for ref in new if not held.get(ref, False)]
        if new:
            self.registry.addDatasetLocations(self.chain.name, new)

    def removeDatasetLocations(self, datastoreName: str, refs: Iterable[DatasetRef]) -> None:
        if self.dropping:  # a persistent child still holds them (or their rows are gone with them)
            return
        gone = [ref for ref in refs if not self.chain.knows(ref)]
        if gone:
            self.registry.removeDatasetLocations(self.chain.name, gone)


class ChainedDatastore(Datastore[object]):
    """Datastores in order, used as one.

    Parameters
    ----------
    config : DatastoreConfig, Config, mapping or str
        ``datastores``: a list of child configs (each ``{datastore: {cls: ..., ...}}`` or the
        section itself), each optionally with ``constraints: {accept: [...], reject: [...]}``.
        ``readThrough: true`` copies a dataset read from a later child into the earlier
        ephemeral children that accept it.
    registry : DatasetLocationRegistry, optional
        Told, under the chain's name, which datasets the chain holds: from a child's put on, until
        no child has the dataset any more (removed, rolled back or evicted everywhere).

    Raises
    ------
    ConfigError
        ``datastores`` is missing or malformed, or a child's config is invalid.

    Attributes
    ----------
    datastores : list of Datastore
        The children, in order.
    constraints : list of Constraints
        What each child accepts.
    isEphemeral : bool
        On an instance: true only if every child is ephemeral. The class attribute is `False`.
    """

    defaultConfigFile = "datastores/chainedDatastore.yaml"
    """Path to configuration defaults, relative to the config search path."""

    isEphemeral = False
    """A chain is ephemeral only if all its children are; each instance says which."""

    configKeys = frozenset({"cls", "name", "datastores", "readThrough", "storageClasses"})
    """The keys of its section; ``constraints`` belong on a child, not on the chain."""

    @override
    @classmethod
    def validateConfig(cls, config: Config | Mapping[str, Any]) -> None:
        """Check the chain's own keys, then each child's against its own class.

        Raises
        ------
        ConfigError
            A key is not accepted (``constraints`` on the chain itself included), or a child
            list item has keys beside its ``datastore`` section.
        """
        super().validateConfig(config)
        section = config.get("datastore", config) if "cls" not in config else config
        children = section.get("datastores")
        if isinstance(children, Config):
            children = children.toDict()
        if not isinstance(children, list):
            return
        for i, item in enumerate(children):
            if isinstance(item, Mapping) and "datastore" in item and len(item) > 1:
                extra = sorted(set(item) - {"datastore"})
                raise ConfigError(
                    f"datastore.datastores[{i}] has key(s) {extra} beside its datastore section; a chain "
                    "item accepts only 'datastore': put them inside it (constraints go under datastore:)."
                )
        for i, child in enumerate(_childConfigs(children)):
            Datastore.classFromConfig(child["cls"], f"datastore.datastores[{i}].cls").validateConfig(child)

    def __init__(self, config: DatastoreConfigLike, registry: DatasetLocationRegistry | None = None) -> None:
        super().__init__(config, registry)
        readThrough = self.config.get("readThrough", False)
        if not isinstance(readThrough, bool):
            raise ConfigError(f"datastore.readThrough must be true or false, not {readThrough!r}.")
        self.readThrough = readThrough
        self.datastores: list[Datastore] = []
        self.constraints: list[Constraints] = []
        relay = _ChainRelay(self, registry) if registry is not None else None
        self._relay = relay
        for section in _childConfigs(self.config.get("datastores")):
            self.constraints.append(Constraints.fromConfig(section.get("constraints")))
            self.datastores.append(Datastore.fromConfig({"datastore": section}, registry=relay))
        self.__dict__["isEphemeral"] = all(child.isEphemeral for child in self.datastores)

    @override
    def __repr__(self) -> str:
        """Show the chain's name and its child datastores."""
        return f"ChainedDatastore(name={self.name!r}, datastores={self.datastores!r})"

    @override
    @property
    def children(self) -> Sequence[Datastore]:
        """The child datastores, in order (the same list as `datastores`)."""
        return self.datastores

    @override
    def close(self) -> None:
        """Close every child."""
        for child in self.datastores:
            child.close()

    def _accepting(self, ref: DatasetRef) -> list[Datastore]:
        return [
            c
            for c, k in zip(self.datastores, self.constraints, strict=True)
            if k.isAcceptable(ref.datasetType)
        ]

    @override
    def checkRun(self, run: str) -> None:
        """Ask every child (see `Datastore.checkRun`)."""
        for child in self.datastores:
            child.checkRun(run)

    @override
    def checkPut(self, inMemoryDataset: Any, datasetType: DatasetType) -> None:
        """Ask every child that accepts ``datasetType`` (see `Datastore.checkPut`)."""
        for child, constraints in zip(self.datastores, self.constraints, strict=True):
            if constraints.isAcceptable(datasetType):
                child.checkPut(inMemoryDataset, datasetType)

    @override
    @contextmanager
    def prepared(self, pairs: Sequence[tuple[Any, DatasetRef]]) -> Iterator[None]:
        """Let every child prepare the puts of the pairs it accepts (see `Datastore.prepared`)."""
        pairs = list(pairs)
        with ExitStack() as stack:
            for child, constraints in zip(self.datastores, self.constraints, strict=True):
                accepted = [(obj, ref) for obj, ref in pairs if constraints.isAcceptable(ref.datasetType)]
                if accepted:
                    stack.enter_context(child.prepared(accepted))
            yield

    # -- transactions --

    @override
    @contextmanager
    def transaction(self, deferCommitActions: bool = False) -> Iterator[DatastoreTransaction]:
        """Open a transaction on every child and on the chain; a failure rolls all of them back.

        With ``deferCommitActions`` the children's deferred on-commit actions are collected into
        the chain's transaction, so its ``runCommitActions`` runs them all.
        """
        childTransactions: list[DatastoreTransaction] = []
        with ExitStack() as stack:
            for child in self.datastores:
                childTransactions.append(
                    stack.enter_context(child.transaction(deferCommitActions=deferCommitActions))
                )
            with super().transaction(deferCommitActions=deferCommitActions) as tx:
                yield tx
        for childTransaction in childTransactions:
            tx.takeCommitActions(childTransaction)

    # -- put, get, exists, remove --

    @override
    def put(self, inMemoryDataset: Any, ref: DatasetRef) -> None:
        """Write ``inMemoryDataset`` to every child that accepts ``ref``; all or none.

        The exception: an ephemeral child (a cache tier) that raises `DatasetTooLargeError` is
        skipped, as long as another child stores the dataset.

        Raises
        ------
        DatasetExistsError
            A child already has ``ref``; no child is changed.
        DatasetTypeNotSupportedError
            No child accepts the dataset type or storage class.
        DatasetTooLargeError
            Every accepting child is an ephemeral one too small for the dataset; nothing is
            stored. An ephemeral child that is too small is otherwise skipped (logged at INFO)
            while the others store the dataset.
        """
        accepting = self._accepting(ref)
        if not accepting:
            raise DatasetTypeNotSupportedError(
                f"No datastore in chain {self.name!r} accepts {ref} (dataset type {ref.datasetType.name!r}, "
                f"storage class {ref.datasetType.storageClass.name!r}); check the children's constraints."
            )
        relay = self._relay
        with ExitStack() as stack:  # a failure in one child rolls back the puts in the others
            for child in accepting:
                stack.enter_context(child.transaction())
            if relay is not None:
                relay.putting = ref
                stack.callback(setattr, relay, "putting", None)
            stored = 0
            tooLarge: list[DatasetTooLargeError] = []
            for child in accepting:
                try:
                    child.put(inMemoryDataset, ref)
                except DatasetTooLargeError as exc:
                    if not child.isEphemeral:
                        raise
                    # A cache tier too small for this dataset is skipped; the others still store it.
                    log.info("Put of %s into ephemeral %s skipped: %s", ref, child.name, exc)
                    tooLarge.append(exc)
                    continue
                stored += 1
            if not stored:
                raise tooLarge[-1]
            if relay is not None:  # once, not once per child; if it fails the children are undone
                relay.registry.addDatasetLocations(self.name, [ref])

    @override
    def ingest(self, datasets: Iterable[tuple[str, DatasetRef, Any]], transfer: str = "auto") -> None:
        """Ingest the files into the first persistent child (see `FileDatastore.ingest`).

        Raises
        ------
        IngestError
            No child is persistent, or as the child raises.
        """
        for child in self.datastores:
            if not child.isEphemeral:
                child.ingest(datasets, transfer)
                return
        raise IngestError(f"Chain {self.name!r} has no persistent datastore to ingest files into.")

    @override
    def _retrieveArtifacts(self, refs: Iterable[DatasetRef], request: ArtifactRequest) -> list[str]:
        """Retrieve each ref's files from the first persistent child that knows it.

        A ref no persistent child holds is a `DatasetNotFoundError`, and nothing is written;
        the children raise the rest (see `FileDatastore`).
        """
        persistent = [child for child in self.datastores if not child.isEphemeral]
        groups: dict[int, list[DatasetRef]] = {}
        for ref in refs:
            holder = next((i for i, child in enumerate(persistent) if child.knows(ref)), None)
            if holder is None:
                raise DatasetNotFoundError(
                    f"Cannot retrieve the artifacts of {ref}: no persistent datastore of chain {self.name!r} "
                    "holds it; nothing was written."
                )
            groups.setdefault(holder, []).append(ref)
        done: list[str] = []
        try:
            for index, group in groups.items():
                done += persistent[index].retrieveArtifacts(group, *request)
        except BaseException:  # a later child failed: what the earlier ones placed goes too
            for path in done:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            raise
        return done

    @override
    def get(self, ref: DatasetRef, parameters: Mapping[str, Any] | None = None) -> Any:
        """Read ``ref`` from the first child that has it (a `DatasetNotFoundError` if none has)."""
        lost: DatasetFileMissingError | None = None
        for i, child in enumerate(self.datastores):
            if isinstance(child, InMemoryDatastore):  # a miss in the memory tier raises nothing
                found, obj = child.tryGet(ref, parameters)
                if not found:
                    continue
            else:
                try:
                    obj = child.get(ref, parameters)
                except DatasetFileMissingError as exc:  # recorded, but its file is gone: say which
                    lost = exc
                    continue
                except DatasetNotFoundError:
                    continue
            if self.readThrough and i and not parameters and not ref.isComponent():
                obj = self._fillEarlier(i, ref, obj)
            return obj
        if lost is not None:
            raise DatasetFileMissingError(f"Cannot get {ref} from chain {self.name!r}: {lost}") from lost
        raise self._notFound(ref, "get")

    def _fillEarlier(self, found: int, ref: DatasetRef, obj: Any) -> Any:
        """Copy ``obj`` into the earlier ephemeral children that accept ``ref``; best effort.

        ``obj`` was just read, so nobody else holds it: the first in-memory child adopts it
        (`InMemoryDatastore.adopt`: no copy unless its copy mode freezes, sized by its storage
        class, subject to its admission policy) and the reader gets what that child hands out;
        any further child gets an ordinary put. A failure (the child is full or already has it,
        or anything else) is logged and the copy skipped: the read itself has succeeded.

        Returns
        -------
        obj : object
            What the reader gets.
        """
        relay = self._relay
        adopted = False
        for child, constraints in zip(self.datastores[:found], self.constraints[:found], strict=True):
            if child.isEphemeral and constraints.isAcceptable(ref.datasetType):
                try:
                    if not adopted and isinstance(child, InMemoryDatastore):
                        adopted = True  # all or nothing on its own; the chain already holds ref
                        obj = child.adopt(obj, ref, tellRegistry=False)
                        continue
                    with child.transaction():  # a failed copy leaves nothing behind
                        if relay is not None:  # the chain already holds ref: nothing to tell
                            relay.putting = ref
                        try:
                            child.put(obj, ref)
                        finally:
                            if relay is not None:
                                relay.putting = None
                except (DatasetExistsError, DatasetTooLargeError) as exc:
                    log.debug("Read-through of %s into %s skipped: %s", ref, child.name, exc)
                except Exception as exc:  # the read succeeded; the cache copy is optional
                    log.warning("Read-through of %s into %s failed, skipped: %s", ref, child.name, exc)
        return obj

    @override
    def dropCachedCopies(self) -> None:
        """Drop, from each in-memory child, the datasets of types a persistent child accepts.

        Those were put into the persistent child too, or read from it: its current content is
        read (and copied back, with ``readThrough``) next time. What only memory holds stays.
        Nothing is told to the registry (the chain still holds the datasets that remain
        registered) and no transaction undoes it.
        """
        persistent = [k for c, k in zip(self.datastores, self.constraints, strict=True) if not c.isEphemeral]
        if not persistent:
            return
        relay = self._relay
        if relay is not None:
            relay.dropping = True
        try:
            for child in self.datastores:
                if isinstance(child, InMemoryDatastore):
                    child.dropWhere(lambda ref: any(k.isAcceptable(ref.datasetType) for k in persistent))
                else:
                    child.dropCachedCopies()
        finally:
            if relay is not None:
                relay.dropping = False

    def _notFound(self, ref: DatasetRef, verb: str) -> DatasetNotFoundError:
        names = ", ".join(child.name for child in self.datastores)
        return DatasetNotFoundError(
            f"Cannot {verb} {ref}: no datastore in chain {self.name!r} ({names}) has it."
        )

    @override
    def exists(self, ref: DatasetRef) -> bool:
        """Return `True` if any child really has ``ref`` (see `Datastore.exists`)."""
        return any(child.exists(ref) for child in self.datastores)

    @override
    def knows(self, ref: DatasetRef) -> bool:
        """Return `True` if any child has a record of ``ref`` (see `Datastore.knows`)."""
        return any(child.knows(ref) for child in self.datastores)

    @override
    def remove(self, ref: DatasetRef) -> None:
        """Remove ``ref`` from every child that has it; all or none (none has it: `DatasetNotFoundError`)."""
        removed = 0
        with ExitStack() as stack:
            for child in self.datastores:
                stack.enter_context(child.transaction())
            for child in self.datastores:
                try:
                    child.remove(ref)
                except DatasetNotFoundError:
                    continue
                removed += 1
        if not removed:
            raise self._notFound(ref, "remove")

    @override
    def getUri(self, ref: DatasetRef, predict: bool = False) -> str:
        """Return the URI from the first persistent child that has ``ref``, else an ephemeral one.

        A predicted URI comes from the first persistent child that accepts it (else an ephemeral one).

        The answer does not depend on which tier happens to hold a copy: a dataset in the file
        tier has its file URI whether or not the memory tier has read it.
        """
        persistentFirst = sorted(self.datastores, key=lambda child: child.isEphemeral)
        for child in persistentFirst:
            if child.knows(ref):
                return child.getUri(ref)
        accepting = sorted(self._accepting(ref), key=lambda child: child.isEphemeral)
        if predict and accepting:
            return accepting[0].getUri(ref, predict=True)
        raise self._notFound(ref, "get a URI for")

    # -- stored-item info --

    @override
    def addStoredItemInfo(self, ref: DatasetRef, info: object) -> None:
        """Record ``info`` in the first child that accepts ``ref`` (as that child records it).

        Raises
        ------
        DatasetTypeNotSupportedError
            No child accepts ``ref``.
        """
        accepting = self._accepting(ref)
        if not accepting:
            raise DatasetTypeNotSupportedError(f"No datastore in chain {self.name!r} accepts {ref}.")
        accepting[0].addStoredItemInfo(ref, info)

    @override
    def getStoredItemInfo(self, ref: DatasetRef) -> object:
        """Return the information the first child that has ``ref`` recorded."""
        for child in self.datastores:
            try:
                return child.getStoredItemInfo(ref)
            except KeyError:
                continue
        raise StoredItemInfoNotFoundError(
            f"No datastore in chain {self.name!r} has stored-item info for {ref}."
        )

    @override
    def removeStoredItemInfo(self, ref: DatasetRef) -> None:
        """Remove the information about ``ref`` from every child that has it (none has: a `KeyError`)."""
        removed = 0
        for child in self.datastores:
            try:
                child.removeStoredItemInfo(ref)
            except KeyError:
                continue
            removed += 1
        if not removed:
            raise StoredItemInfoNotFoundError(
                f"No datastore in chain {self.name!r} has stored-item info for {ref}."
            )

    @override
    @classmethod
    def setConfigRoot(cls, root: str, config: Config, full: Config) -> None:
        """Give each child its share of a new repository at ``root``.

        The one persistent child keeps ``root`` itself; with several, each gets
        ``<root>/<child name or index>``.

        Parameters
        ----------
        root : str
            Folder or URI of the new repository.
        config : Config
            Updated in place: each child's section, by its own class's ``setConfigRoot``.
        full : Config
            The complete configuration; read only.
        """
        section = config.get("datastore", config)
        children = section.get("datastores")
        if isinstance(children, Config):
            children = children.toDict()
        if not isinstance(children, list):
            return
        classes = [
            Datastore.classFromConfig(child["cls"], f"datastore.datastores[{i}].cls")
            for i, child in enumerate(_childConfigs(children))
        ]
        several = sum(1 for c in classes if not c.isEphemeral) > 1
        newChildren = []
        for i, (child, childClass) in enumerate(zip(_childConfigs(children), classes, strict=True)):
            childConfig = Config({"datastore": child})
            childRoot = f"{root}/{child.get('name') or i}" if several else root
            childClass.setConfigRoot(childRoot, childConfig, Config({"datastore": child}))
            newChildren.append({"datastore": childConfig["datastore"].toDict()})
        section["datastores"] = newChildren
