"""Copy modes: who owns a stored object, decided per dataset type and applied on put and get.

See `databutler.storage_class.COPY_MODES`. The storage class's ``copyMode`` is the default;
a datastore's ``copyMode`` config overrides it — a dataset type name wins over a storage class
name, which wins over a single mode for everything.
"""

from __future__ import annotations

from typing import Any

from ...config import Config
from ...dataset_type import DatasetType
from ...exceptions import ConfigError, StorageClassError
from ...storage_class import COPY_MODES, StorageClassDelegate

__all__ = ["COPY", "DEEPCOPY", "FREEZE", "REFERENCE", "CopyPolicy"]

REFERENCE, COPY, DEEPCOPY, FREEZE = COPY_MODES


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
        self._global: str | None = configured if isinstance(configured, str) else None
        self._byName: dict[str, str] = {} if isinstance(configured, str) else dict(configured)
        self._modes: dict[DatasetType, str] = {}

    def modeFor(self, datasetType: DatasetType) -> str:
        """Return the copy mode for datasets of ``datasetType`` (one of the `COPY_MODES` objects).

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
            mode = self._global if (self._global != FREEZE or canFreeze) else DEEPCOPY
        else:
            mode = (
                self._byName.get(datasetType.name)
                or self._byName.get(storageClass.name)
                or storageClass.copyMode
            )
            if mode == FREEZE and not canFreeze:
                raise StorageClassError(
                    f"copyMode 'freeze' is set for dataset type {datasetType.name!r}, but its storage class "
                    f"{storageClass.name!r} cannot be frozen; use 'copy' or 'deepcopy'."
                )
        mode = COPY_MODES[COPY_MODES.index(mode)]  # the module's own str object, so `is` tests hold
        self._modes[datasetType] = mode
        return mode

    @staticmethod
    def own(obj: Any, delegate: StorageClassDelegate, mode: str) -> tuple[Any, str]:
        """Return what to store for a caller's ``obj`` under ``mode``, and the mode it is held in.

        An object of a freezing type that cannot itself be frozen (a NumPy object array, a
        tuple holding mutable objects) is held in ``deepcopy`` mode instead.
        """
        if mode is REFERENCE:
            return obj, mode
        if mode is COPY:
            return delegate.copy(obj), mode
        if mode is DEEPCOPY or not delegate.canFreezeInstance(obj):
            return delegate.deepcopy(obj), DEEPCOPY
        return delegate.freeze(obj), mode

    @staticmethod
    def handOut(obj: Any, delegate: StorageClassDelegate, mode: str) -> Any:
        """Return what to give a reader of stored ``obj`` (or of a part of it) under ``mode``."""
        if mode is REFERENCE:
            return obj
        if mode is COPY:
            return delegate.copy(obj)
        if mode is DEEPCOPY:
            return delegate.deepcopy(obj)
        return delegate.frozenView(obj) if delegate.canFreeze else delegate.deepcopy(obj)
