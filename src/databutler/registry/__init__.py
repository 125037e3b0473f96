"""The registry: which dataset types, runs and datasets exist, and where they are stored.

`Registry` is the interface; `SqlRegistry` its SQL implementation (SQLite, PostgreSQL), and
`RegistryConfig` its ``registry`` configuration section.
"""

from .databases import RegistryConfig
from .interface import Registry
from .sql_registry import SqlRegistry

__all__ = ["Registry", "RegistryConfig", "SqlRegistry"]
