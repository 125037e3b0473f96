"""The SQL registry: which dataset types, runs and datasets exist, and where they are stored.

`SqlRegistry` is the registry; `RegistryConfig` its ``registry`` configuration section.
"""

from .databases import RegistryConfig
from .sql_registry import SqlRegistry

__all__ = ["RegistryConfig", "SqlRegistry"]
