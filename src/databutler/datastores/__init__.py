"""Datastore implementations, one per module."""

from .in_memory import InMemoryDatastore, InMemoryDatastoreStats

__all__ = ["InMemoryDatastore", "InMemoryDatastoreStats"]
