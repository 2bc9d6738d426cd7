"""Files: one reader and one writer for jaxagg's formats, every write atomic.

Formats (neither ever uses pickle):

* ``.npz``: named float64 arrays plus one ``metadata`` entry, a JSON string with a ``format``
  tag (``"jaxagg.momdp/1"``, ``"jaxagg.sample/2"``); read with ``allow_pickle=False``.
* ``.json``: UTF-8 JSON; NaN and infinities are written as ``null`` (JSON has no NaN).

Atomic writes: the data goes to a temporary file in the target's folder, is flushed and
fsynced, then ``os.replace`` puts it in place. A crash or kill at any moment leaves either the
old file or the new one, never a truncated mix; the temporary file is removed on any error.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from jaxagg.errors import ValidationError
from jaxagg.validation import json_default

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def output_path(name: str, path: str | os.PathLike, suffixes: tuple[str, ...] | None) -> Path:
    """Check, before any work, that ``path`` can be written: a known suffix (any case; ``None``:
    a folder), not an existing folder (or file, for a folder), and a writable nearest existing
    folder above it (missing folders are created when the file is written). Returns a Path."""
    try:
        path = Path(path)
    except TypeError:
        raise ValidationError(f"{name}: expected a file path, got {type(path).__name__}") from None
    if suffixes is None:
        if path.exists() and not path.is_dir():
            raise ValidationError(f"{name}: {str(path)!r} is a file, expected a folder")
    else:
        if path.suffix.lower() not in suffixes:
            raise ValidationError(f"{name}: expected a file name ending in {' or '.join(suffixes)}, got {str(path)!r}")
        if path.is_dir():
            raise ValidationError(f"{name}: {str(path)!r} is a folder, expected a file name")
        if path.exists() and not os.access(path, os.W_OK):
            raise ValidationError(f"{name}: {str(path)!r} exists and is not writable")
    existing = path if suffixes is None else path.parent
    existing = existing.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValidationError(f"{name}: {str(existing)!r} is a file, so {str(path)!r} cannot be created")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValidationError(f"{name}: the folder {str(existing)!r} is not writable")
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Write a file atomically: ``write(handle)`` fills a temporary file in the same folder,
    which is flushed, fsynced and renamed over ``path``; missing folders are created. Returns
    ``path``."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    mode = _file_mode(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_folder(folder)
    return path


def write_json(path: str | os.PathLike, data: Any, *, indent: int | None = 2) -> Path:
    """``data`` as JSON (NumPy values converted, NaN and infinities as ``null``), atomically.
    Creates the parent folder if needed."""
    text = json.dumps(_finite_or_null(json.loads(json.dumps(data, default=json_default))), indent=indent,
                      allow_nan=False)
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> Path:
    """A compressed ``.npz`` of ``arrays`` plus a JSON ``metadata`` entry, atomically.

    The file is written through a handle, so that NumPy never appends a second ``.npz`` to a
    name that already ends in ``.NPZ``."""
    text = json.dumps(metadata, default=json_default, allow_nan=False)
    contents = {"metadata": np.array(text), **{key: np.asarray(value) for key, value in arrays.items()}}
    return atomic_write(path, lambda handle: np.savez_compressed(handle, **contents))


def read_json(name: str, path: str | os.PathLike) -> Any:
    """The JSON value in ``path``; every failure is a :class:`ValidationError` naming the file."""
    path = _existing_file(name, path)
    try:
        return json.loads(path.read_bytes().decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValidationError(f"{name}: {str(path)!r} is not valid JSON ({exc})") from None


def read_npz(name: str, path: str | os.PathLike, file_format: str | tuple[str, ...],
             arrays: tuple[str, ...]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The numeric arrays and the metadata dict of a jaxagg ``.npz``, never unpickling.

    Args:
        name: the argument the path came from (for messages).
        file_format: the format tag expected in the metadata (or a tuple of accepted tags).
        arrays: the array names the format allows; any other entry is refused.

    Raises:
        ValidationError: no such file, not a zip archive, a truncated or corrupt archive, an
            object (pickled) array, missing or non-JSON metadata, another format tag, or an
            unexpected entry.
    """
    path = _existing_file(name, path)
    try:
        with path.open("rb") as handle:  # our handle, closed even when numpy fails half-way
            if handle.read(4) not in ZIP_MAGIC:
                raise ValidationError(f"{name}: {str(path)!r} is not a .npz archive (not a zip file)")
            handle.seek(0)
            data = io.BytesIO(handle.read())
        with np.load(data, allow_pickle=False) as archive:
            contents = {key: archive[key] for key in archive.files}
    except ValidationError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise ValidationError(f"{name}: {str(path)!r} holds an object (pickled) array; refusing to unpickle") from None
        raise ValidationError(f"{name}: {str(path)!r} is not a readable .npz archive ({exc})") from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError) as exc:
        raise ValidationError(f"{name}: {str(path)!r} is not a readable .npz archive ({exc})") from None
    if "metadata" not in contents:
        raise ValidationError(f"{name}: {str(path)!r} has no 'metadata' entry; expected a file written by jaxagg")
    raw = contents.pop("metadata")
    if raw.dtype.kind not in "US" or raw.shape != ():
        raise ValidationError(f"{name}: {str(path)!r} has a 'metadata' entry that is not one JSON string")
    try:
        metadata = json.loads(str(raw), parse_constant=_refuse_constant)
    except ValueError as exc:
        raise ValidationError(f"{name}: {str(path)!r} has metadata that is not valid JSON ({exc})") from None
    if not isinstance(metadata, dict):
        raise ValidationError(f"{name}: {str(path)!r} has metadata that is not a JSON object")
    accepted = (file_format,) if isinstance(file_format, str) else tuple(file_format)
    found = metadata.get("format")
    if found not in accepted:
        raise ValidationError(f"{name}: {str(path)!r}: expected format {' or '.join(map(repr, accepted))}, got {found!r}")
    unexpected = sorted(set(contents) - set(arrays))
    if unexpected:
        raise ValidationError(f"{name}: {str(path)!r} has unexpected entries {unexpected}; a {found} file "
                              f"holds only {', '.join(arrays)} and metadata")
    for key, value in contents.items():
        if value.dtype.kind not in "biuf":
            raise ValidationError(f"{name}: {str(path)!r}: array {key!r} is not numeric (dtype {value.dtype})")
    return contents, metadata


# ------------------------------------------------------------------ helpers
def _existing_file(name: str, path: str | os.PathLike) -> Path:
    try:
        path = Path(path)
    except TypeError:
        raise ValidationError(f"{name}: expected a file path, got {type(path).__name__}") from None
    if not path.is_file():
        raise ValidationError(f"{name}: no such file {str(path)!r}")
    return path


def _refuse_constant(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON number")


def _finite_or_null(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite_or_null(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    return value


def _file_mode(path: Path) -> int:
    """The permission bits for the new file: the old file's, or the default under the umask."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable (best effort: not every platform can open a folder)."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

