"""Copy modes: who owns a stored object, decided per dataset type and applied on put and get.

See `databutler.storage_class.CopyMode`. The storage class's ``copyMode`` is the default;
a datastore's ``copyMode`` config overrides it — a dataset type name wins over a storage class
name, which wins over a single mode for everything.

`CopyPolicy.own` is the one place an object is taken in: it returns what to store, the mode
it is held in and how to hand it out, and every verb that reads hands out with `handOut`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...config import Config
from ...dataset_type import DatasetType
from ...exceptions import ConfigError, StorageClassError
from ...storage_class import COPY_MODES, CopyMode, StorageClassDelegate

__all__ = ["COPY", "DEEPCOPY", "FREEZE", "REFERENCE", "CopyPolicy", "Owned", "handOut"]

# The members as module constants: reading one is a global lookup, not an attribute of the enum
# class (several times slower, and these are compared on every put).
REFERENCE, COPY, DEEPCOPY, FREEZE = CopyMode


Owned = tuple[Any, CopyMode, Callable[[Any], Any] | None]
"""What a store keeps for an object it took in: ``(stored object, mode held in, hand-out)``.

The hand-out gives a reader its own copy or read-only view of the stored object; `None` means
the stored object itself. The mode is ``deepcopy`` for an object of a freezing type that
cannot be frozen.
"""


def handOut(owned: Any, copier: Callable[[Any], Any] | None) -> Any:
    """Return what a reader gets of a stored object ``owned`` with hand-out function ``copier``."""
    return owned if copier is None else copier(owned)


class CopyPolicy:
    """Decides the copy mode of each dataset type, and applies modes to objects.

    Parameters
    ----------
    configured : str, mapping or None
        The datastore's ``copyMode`` config: one mode, or ``{name: mode}`` where a name is a
        dataset type or storage class name.

    Raises
    ------
    ConfigError
        A mode is not one of `COPY_MODES`, or the value is neither a str nor a mapping.
    """

    def __init__(self, configured: Any = None) -> None:
        if isinstance(configured, Config):
            configured = configured.toDict()
        if configured is None:
            configured = {}
        modes = {"*": configured} if isinstance(configured, str) else configured
        if not isinstance(modes, dict):
            raise ConfigError(
                f"datastore.copyMode must be a mode or a mapping of name to mode, not {configured!r}."
            )
        for name, mode in modes.items():
            if mode not in COPY_MODES:
                raise ConfigError(
                    f"datastore.copyMode for {name!r} is {mode!r}; choose one of {', '.join(COPY_MODES)}."
                )
        self._global: CopyMode | None = CopyMode(configured) if isinstance(configured, str) else None
        self._byName: dict[str, CopyMode] = (
            {} if isinstance(configured, str) else {k: CopyMode(v) for k, v in configured.items()}
        )
        self._modes: dict[DatasetType, CopyMode] = {}

    def modeFor(self, datasetType: DatasetType) -> CopyMode:
        """Return the copy mode for datasets of ``datasetType``.

        Raises
        ------
        StorageClassError
            ``freeze`` is named for a storage class that cannot be frozen. (A single global
            ``freeze`` falls back to ``deepcopy`` for such classes instead.)
        """
        mode = self._modes.get(datasetType)
        if mode is not None:
            return mode
        storageClass = datasetType.storageClass
        canFreeze = storageClass.delegate().canFreeze
        if self._global is not None:
            mode = self._global if (self._global != CopyMode.FREEZE or canFreeze) else CopyMode.DEEPCOPY
        else:
            mode = CopyMode(
                self._byName.get(datasetType.name)
                or self._byName.get(storageClass.name)
                or storageClass.copyMode
            )
            if mode == CopyMode.FREEZE and not canFreeze:
                raise StorageClassError(
                    f"copyMode 'freeze' is set for dataset type {datasetType.name!r}, but its storage class "
                    f"{storageClass.name!r} cannot be frozen; use 'copy' or 'deepcopy'."
                )
        self._modes[datasetType] = mode
        return mode

    @staticmethod
    def own(obj: Any, delegate: StorageClassDelegate, mode: CopyMode, adopt: bool = False) -> Owned:
        """Return ``(stored object, mode held in, hand-out)`` for ``obj`` under ``mode`` (see `Owned`).

        An object of a freezing type that cannot itself be frozen (a NumPy object array, a
        tuple holding mutable objects) is held in ``deepcopy`` mode instead. With ``adopt`` the
        object is one nobody else holds (just decoded from a file): it is stored as it is in
        every mode but ``freeze``, which must still make its read-only copy.
        """
        if mode == REFERENCE:
            return obj, mode, None
        if mode == COPY:
            return obj if adopt else delegate.copy(obj), mode, delegate.copy
        if mode == FREEZE and delegate.canFreezeInstance(obj):
            return delegate.freeze(obj), mode, delegate.frozenView
        if adopt:
            return obj, DEEPCOPY, delegate.deepcopier(obj)
        stored, copier = delegate.deepcopyWithCopier(obj)
        return stored, DEEPCOPY, copier

    @staticmethod
    def handOutPart(obj: Any, delegate: StorageClassDelegate, mode: CopyMode) -> Any:
        """Return what to give a reader of a part of a stored object (a component or a slice)."""
        if mode == REFERENCE:
            return obj
        if mode == COPY:
            return delegate.copy(obj)
        if mode == DEEPCOPY:
            return delegate.deepcopy(obj)
        return delegate.frozenView(obj) if delegate.canFreeze else delegate.deepcopy(obj)
