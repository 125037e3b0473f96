"""The module path repositories made before the ``memory`` package name in their config.

``databutler.datastores.in_memory.InMemoryDatastore`` keeps working in an existing
``butler.yaml``; new configs name ``databutler.datastores.memory.InMemoryDatastore``.
"""

from .memory import InMemoryDatastore, InMemoryDatastoreStats

__all__ = ["InMemoryDatastore", "InMemoryDatastoreStats"]
