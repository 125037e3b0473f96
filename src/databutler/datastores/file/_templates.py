"""File templates: where in a FileDatastore's root each dataset's file goes.

A template is a Python format string of path segments separated by ``/``, e.g.
``{run}/{datasetType}/{datasetType}_{visit:06d}_{detector}``. Fields:

``run``
    The ref's run; its ``/``-separated parts become folders.
``datasetType``
    The dataset type name (a component is always stored with, or beside, its composite).
``id``
    The dataset's UUID.
``dataId``
    Every data ID entry as ``key-value``, joined by ``_`` (keys sorted).
any dimension name
    That data ID value; an optional format spec applies (``{visit:06d}``).

Data ID values and run names are free text, so every rendered value is checked before it
becomes part of a path: only letters, digits and ``-_.+=,@~`` are allowed, it must not start
with a dot, must be NFKC-normal (no full-width slashes or look-alike dots) and at most
`MAX_SEGMENT` characters. Anything else raises `UnsafePathError`; nothing is silently
rewritten, so two different values can never map to the same file.
"""

from __future__ import annotations

import functools
import string
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ...dataset_ref import DatasetRef
from ...exceptions import FileTemplateError, UnsafePathError

__all__ = ["DEFAULT_TEMPLATE", "MAX_SEGMENT", "FileTemplate", "FileTemplates", "checkRelativePath"]

DEFAULT_TEMPLATE = "{run}/{datasetType}/{datasetType}_{dataId}_{id}"
"""Used when no template is configured for a dataset type or storage class."""

MAX_SEGMENT = 200
"""Longest path segment allowed, in characters (file systems allow 255 bytes)."""

_ALLOWED_PUNCTUATION = frozenset("-_.+=,@~")

_MAX_RENDERERS = 1024
"""Most (dataset type, run) pairs whose renderers `FileTemplates` keeps; then it starts again."""


@functools.lru_cache(maxsize=4096)
def _unsafeReason(value: str) -> str | None:
    """Return why ``value`` is not safe as (part of) one path segment, or `None` if it is.

    Memoized: the same runs and data ID values recur in put after put.
    """
    if not value:
        return "it is empty"
    if len(value) > MAX_SEGMENT:
        return f"it is longer than {MAX_SEGMENT} characters"
    if unicodedata.normalize("NFKC", value) != value:
        return "it is not in Unicode NFKC form (it may hold look-alike characters)"
    for char in value:
        if char in _ALLOWED_PUNCTUATION:
            continue
        if unicodedata.category(char)[0] not in "LN":
            return f"it contains {unicodedata.name(char, repr(char))} ({char!r})"
    if value.startswith("."):
        return "it starts with '.'"
    return None


def _checkValue(value: Any, what: str, ref: DatasetRef | None) -> str:
    """Return ``value`` as text; raise `UnsafePathError` unless it is safe as (part of) one path segment."""
    if type(value) is int:
        return str(value)  # digits and perhaps '-': always safe
    text = str(value)
    reason = _unsafeReason(text)
    if reason is not None:
        where = f" of {ref}" if ref is not None else ""
        raise UnsafePathError(
            f"{what} {text!r}{where} cannot be used in a file path: {reason}. Use letters, digits "
            f"and '-_.+=,@~', or a file template that does not use this field."
        )
    return text


def checkRelativePath(path: str) -> str:
    """Return ``path`` if it is a normalized relative POSIX path with no ``..`` parts.

    Raises
    ------
    UnsafePathError
        It is absolute, empty, not normalized or climbs out with ``..``.
    """
    parts = path.split("/")
    # With no empty, "." or ".." part and no leading "/", the path is already normalized.
    if (
        not path
        or path[0] == "/"
        or "\\" in path
        or "\x00" in path
        or "" in parts
        or "." in parts
        or ".." in parts
    ):
        raise UnsafePathError(f"Path {path!r} is not a safe relative path inside the datastore root.")
    return path


@dataclass(frozen=True, slots=True)
class FileTemplate:
    """One parsed file template.

    Parameters
    ----------
    template : str
        The format string.

    Raises
    ------
    FileTemplateError
        The template is not a valid format string, is absolute, has an empty or ``..``
        segment, uses positional or attribute fields, or its literal text is unsafe.
    """

    template: str

    def __post_init__(self) -> None:
        template = self.template
        if not isinstance(template, str) or not template.strip():
            raise FileTemplateError(f"File template must be a non-empty string, not {template!r}.")
        if template.startswith("/") or "\\" in template:
            raise FileTemplateError(f"File template {template!r} must be a relative path using '/'.")
        for segment in template.split("/"):
            try:
                parsed = list(string.Formatter().parse(segment))
            except ValueError as exc:
                raise FileTemplateError(
                    f"File template {template!r} is not a valid format string: {exc}"
                ) from exc
            literal = "".join(text for text, _, _, _ in parsed)
            fields = [field for _, field, _, _ in parsed if field is not None]
            if not fields and literal in ("", ".", ".."):
                raise FileTemplateError(f"File template {template!r} has an empty, '.' or '..' segment.")
            for field in fields:
                if not field.isidentifier():
                    raise FileTemplateError(
                        f"File template {template!r}: field {{{field}}} must be a plain name such as "
                        f"{{visit}}; positional, indexed and attribute fields are not allowed."
                    )
            badChars = [
                c for c in literal if c not in _ALLOWED_PUNCTUATION and unicodedata.category(c)[0] not in "LN"
            ]
            if badChars or segment.startswith(".") or unicodedata.normalize("NFKC", literal) != literal:
                raise FileTemplateError(
                    f"File template {template!r}: literal text {literal!r} may only use letters, digits "
                    f"and '-_.+=,@~', and a segment may not start with '.'."
                )

    @property
    def fields(self) -> frozenset[str]:
        """The names of the fields the template uses."""
        return frozenset(
            field
            for segment in self.template.split("/")
            for _, field, _, _ in string.Formatter().parse(segment)
            if field
        )

    def render(self, ref: DatasetRef) -> str:
        """Return the relative path for ``ref`` (without a file extension).

        The template is compiled once (`_compiled`): each field becomes a function of the ref.

        Raises
        ------
        UnsafePathError
            A data ID value or the run is not safe in a path.
        FileTemplateError
            The template names a field the ref does not have (a dimension of another dataset
            type, or ``run`` for a ref without one).
        """
        return self.rendererFor(ref)(ref)

    def rendererFor(self, ref: DatasetRef) -> Callable[[DatasetRef], str]:
        """Return a function that does `render` for refs of ``ref``'s dataset type and run.

        The fields that depend on nothing else (``run``, ``datasetType``) are rendered and
        checked once, now, for ``ref``; the function renders the rest for each ref it is given
        and checks the whole path as `render` does.

        Raises
        ------
        UnsafePathError
            The run or the dataset type name is not safe in a path.
        FileTemplateError
            The template uses ``{run}`` and ``ref`` has none.
        """
        segments: list[str | tuple[_Piece, ...]] = []
        for segment in _compiled(self.template):
            pieces: list[_Piece] = []
            for field, piece in segment:
                rendered = piece(ref) if field in _PER_RUN_AND_TYPE and callable(piece) else piece
                last = pieces[-1] if pieces else None
                if isinstance(rendered, str) and isinstance(last, str):
                    pieces[-1] = last + rendered
                elif rendered != "":
                    pieces.append(rendered)
            if len(pieces) == 1 and isinstance(pieces[0], str):
                segments.append(pieces[0])
            elif pieces:
                segments.append(tuple(pieces))
        return functools.partial(_renderSegments, self.template, tuple(segments))


_PER_RUN_AND_TYPE = frozenset({"run", "datasetType"})
"""The fields whose text depends only on a ref's run and dataset type (see `FileTemplate.rendererFor`)."""


def _renderSegments(template: str, segments: tuple[str | tuple[_Piece, ...], ...], ref: DatasetRef) -> str:
    parts = []
    for segment in segments:
        if type(segment) is str:
            parts.append(segment)
            continue
        text = "".join([piece if isinstance(piece, str) else piece(ref) for piece in segment])
        if text:
            parts.append(text)
    path = "/".join(parts)
    try:
        return checkRelativePath(path)
    except UnsafePathError as exc:
        raise UnsafePathError(f"File template {template!r} renders an unsafe path for {ref}: {exc}") from None


_Piece = str | Callable[[DatasetRef], str]
"""Literal text of a template, or the function rendering one of its fields for a ref."""


@functools.lru_cache(maxsize=256)
def _compiled(template: str) -> tuple[tuple[tuple[str | None, _Piece], ...], ...]:
    """Return each ``/``-separated segment of ``template`` as its pieces: ``(field, renderer)``, ``(None, literal)``."""
    segments = []
    for segment in template.split("/"):
        pieces: list[tuple[str | None, _Piece]] = []
        for literal, field, spec, conversion in string.Formatter().parse(segment):
            if literal:
                pieces.append((None, literal))
            if field is not None:
                pieces.append((field, _fieldRenderer(template, field, spec or "", conversion)))
        segments.append(tuple(pieces))
    return tuple(segments)


def _fieldRenderer(
    template: str, field: str, spec: str, conversion: str | None
) -> Callable[[DatasetRef], str]:
    """Return the function giving the checked text of ``{field:spec}`` for a ref."""
    if conversion:

        def refused(ref: DatasetRef) -> str:
            raise FileTemplateError(f"File template {template!r}: conversions like !r are not allowed.")

        return refused
    if field == "run":
        return functools.partial(_renderRun, template)
    if field == "dataId":
        return _renderDataId
    if field == "id" and not spec:
        return _renderId
    if field == "datasetType" and not spec:
        return _renderDatasetType

    def value(ref: DatasetRef) -> str:
        found: Any
        if field == "datasetType":
            found = ref.datasetType.nameAndComponent()[0]
        elif field == "id":
            found = str(ref.id)
        elif field in ref.dataId:
            found = ref.dataId[field]
        else:
            raise FileTemplateError(
                f"File template {template!r} uses {{{field}}}, which {ref} does not have "
                f"(its data ID keys are {list(ref.dataId)}); configure a template for dataset type "
                f"{ref.datasetType.nameAndComponent()[0]!r} or its storage class."
            )
        try:
            text = format(found, spec)
        except (ValueError, TypeError) as exc:
            raise FileTemplateError(
                f"File template {template!r}: cannot format {field}={found!r} with {spec!r}: {exc}"
            ) from exc
        if text:
            _checkValue(text, f"Value of {{{field}}}", ref)
        return text

    return value


def _renderDatasetType(ref: DatasetRef) -> str:
    name = ref.datasetType.nameAndComponent()[0]  # a component is stored with its composite
    return _checkValue(name, "Value of {datasetType}", ref) if name else name


def _renderId(ref: DatasetRef) -> str:
    return str(ref.id)  # a UUID's text: hex digits and '-', always safe


def _renderDataId(ref: DatasetRef) -> str:
    return "_".join(
        [
            f"{key}-{value}"
            if type(value) is int
            else f"{key}-{_checkValue(value, f'Data ID value {key}=', ref)}"
            for key, value in ref.dataId.items()
        ]
    )


def _renderRun(template: str, ref: DatasetRef) -> str:
    if ref.run is None:
        raise FileTemplateError(
            f"File template {template!r} uses {{run}}, but {ref} has no run; give the ref a run "
            f"or configure a template without {{run}}."
        )
    for part in ref.run.split("/"):
        _checkValue(part, "Run name part", ref)
    return ref.run


class FileTemplates:
    """Chooses a template per dataset: by dataset type name, then storage class name, then default.

    Parameters
    ----------
    config : mapping of str to str
        ``{name: template}``; the key ``default`` replaces `DEFAULT_TEMPLATE`.

    Raises
    ------
    FileTemplateError
        A template is invalid or the config is not a mapping of strings.
    """

    def __init__(self, config: Mapping[str, Any] | None) -> None:
        if config is None:
            config = {}
        if not isinstance(config, Mapping):
            raise FileTemplateError(f"datastore.templates must map names to templates, not {config!r}.")
        self._templates = {str(name): FileTemplate(template) for name, template in config.items()}
        self.default = self._templates.pop("default", FileTemplate(DEFAULT_TEMPLATE))
        self._renderers: dict[tuple[Any, str | None], Callable[[DatasetRef], str]] = {}
        """`FileTemplate.rendererFor` by dataset type and run, for `render`."""

    def checkRun(self, run: str) -> None:
        """Refuse a run name that a template using ``{run}`` could not put in a path.

        Raises
        ------
        UnsafePathError
            A part of ``run`` (between slashes) is empty, starts with '.' or holds an unsafe
            character, and a template uses ``{run}``.
        """
        if any("run" in template.fields for template in (self.default, *self._templates.values())):
            for part in run.split("/"):
                _checkValue(part, f"Run name {run!r}: part", None)

    def getTemplate(self, ref: DatasetRef) -> FileTemplate:
        """Return the template for ``ref`` (a component ref uses its parent's)."""
        parentName = ref.datasetType.nameAndComponent()[0]
        storageClass = ref.datasetType.parentStorageClass or ref.datasetType.storageClass
        return self._templates.get(parentName) or self._templates.get(storageClass.name) or self.default

    def render(self, ref: DatasetRef) -> str:
        """Return the relative path (without extension) for ``ref``.

        Raises
        ------
        UnsafePathError
            A value in the path is unsafe.
        FileTemplateError
            The chosen template uses a field ``ref`` does not have.
        """
        key = (ref.datasetType, ref.run)
        renderer = self._renderers.get(key)
        if renderer is None:
            renderer = self.getTemplate(ref).rendererFor(ref)
            if len(self._renderers) >= _MAX_RENDERERS:
                self._renderers.clear()
            self._renderers[key] = renderer
        return renderer(ref)
