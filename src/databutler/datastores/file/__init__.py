"""FileDatastore: datasets as files under a root, on any fsspec file system.

The package's private modules, each one concern of the file datastore:

- ``_datastore``: `FileDatastore`, the `Datastore` verbs;
- ``_access``: reading and writing one dataset's files (atomic writes, set-aside removes);
- ``_io``: byte-level file operations and checksums;
- ``_layout``: which template and formatter a dataset gets;
- ``_templates``: file templates and path safety;
- ``_records``: `StoredFileInfo` and the records table.
"""

from ._datastore import RECORDS_FILE, FileDatastore
from ._records import StoredFileInfo

__all__ = ["RECORDS_FILE", "FileDatastore", "StoredFileInfo"]
