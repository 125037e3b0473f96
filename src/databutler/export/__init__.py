"""Moving datasets between repositories as files: an export (manifest + files) and its import."""

from .exporting import EXPORT_FORMATS, exportDatasets, fileDatastoreOf
from .importing import ImportResult, importDatasets
from .manifest import FORMAT_VERSION, MANIFEST_NAMES, Manifest, readManifest

__all__ = [
    "EXPORT_FORMATS",
    "FORMAT_VERSION",
    "MANIFEST_NAMES",
    "ImportResult",
    "Manifest",
    "exportDatasets",
    "fileDatastoreOf",
    "importDatasets",
    "readManifest",
]
