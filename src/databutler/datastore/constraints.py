"""Constraints: which datasets a datastore (a child of a chain) accepts.

Given in a datastore's config as::

    constraints:
      accept: [calexp, NumpyArray]   # only these (dataset type or storage class names)
      reject: [raw]                   # never these; reject wins over accept

An empty or missing ``accept`` accepts everything not rejected. A component is judged by
its parent dataset type and storage class.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..config import Config
from ..dataset_type import DatasetType
from ..exceptions import ConfigError

__all__ = ["Constraints"]


def _names(value: Any, key: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if (
        isinstance(value, str)
        or not isinstance(value, Iterable)
        or not all(isinstance(v, str) for v in value)
    ):
        raise ConfigError(
            f"constraints.{key} must be a list of dataset type or storage class names, not {value!r}."
        )
    return frozenset(value)


@dataclass(frozen=True, slots=True)
class Constraints:
    """Names of dataset types and storage classes a datastore accepts and rejects.

    Parameters
    ----------
    accept : frozenset of str
        If not empty, only datasets whose dataset type or storage class is named here.
    reject : frozenset of str
        Never datasets whose dataset type or storage class is named here.
    """

    accept: frozenset[str] = frozenset()
    reject: frozenset[str] = frozenset()

    @classmethod
    def fromConfig(cls, config: Mapping[str, Any] | None) -> Constraints:
        """Build from a ``constraints`` config section (or `None` for no constraints).

        Raises
        ------
        ConfigError
            The section has keys other than ``accept`` and ``reject``, or they are not lists of names.
        """
        if config is None:
            return cls()
        if isinstance(config, Config):
            config = config.toDict()
        if not isinstance(config, Mapping):
            raise ConfigError(f"constraints must be a mapping with accept and/or reject, not {config!r}.")
        unknown = set(config) - {"accept", "reject"}
        if unknown:
            raise ConfigError(f"Unknown constraints key(s) {sorted(unknown)}; use accept and reject.")
        return cls(_names(config.get("accept"), "accept"), _names(config.get("reject"), "reject"))

    def isAcceptable(self, datasetType: DatasetType) -> bool:
        """Return `True` if datasets of ``datasetType`` may be stored."""
        parentName = datasetType.nameAndComponent()[0]
        storageClass = datasetType.parentStorageClass or datasetType.storageClass
        names = {parentName, storageClass.name}
        if names & self.reject:
            return False
        return not self.accept or bool(names & self.accept)
