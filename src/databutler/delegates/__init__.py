"""Storage-class delegates for common type families.

Each module imports its library at the top, so it is only imported when a storage class that
names it is first used; `StorageClass.delegate` turns a missing library into a clear
`MissingOptionalDependencyError`.
"""
