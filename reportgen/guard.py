"""Input paths checked before any work: a regular file (or a folder where one is expected), readable, under a
cap.

Every file reportgen reads is data except a model file opened with
``--unsafe`` (docs/safety.md). Reading data must neither hang (a FIFO), nor
grow without bound (a symlink to /dev/zero, a header that declares a huge
array), nor be told with the wrong reason (a symlink loop is not "missing",
a permission denied is not "not a model"). :func:`check_file` answers each
of these with one line (a :class:`Refused`, exit 2) before a byte is read;
inside an ``--images`` folder the same refusal skips the file and counts it.

Caps (stated in docs/safety.md and docs/reference.md):

- a model's config JSON (``config.json`` in a ``.keras`` archive, the
  ``model_config`` of an ``.h5``): 64 MB, ``REPORTGEN_MAX_CONFIG_MB`` to change;
- ``--config`` and ``--class-names``: 1 MB;
- an image file: 256 MB on disk, and at most Pillow's ``MAX_IMAGE_PIXELS``
  pixels by its header (``.npy``: by its declared shape), 1 GB declared for an array.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from reportgen.errors import UserError

MB = 1_000_000
TEXT_CAP = 1 * MB  # --config, --class-names
IMAGE_FILE_CAP = 256 * MB
ARRAY_CAP = 1_000_000_000  # bytes a .npy may declare (--image, --images, --input)
CONFIG_ENV = "REPORTGEN_MAX_CONFIG_MB"
CONFIG_DEFAULT_MB = 64


class Refused(UserError):
    """An input path refused before it was read; ``reason`` is the short reason a folder pass counts by."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def config_cap() -> int:
    """The cap on a model's config JSON in bytes: 64 MB, or ``REPORTGEN_MAX_CONFIG_MB``."""
    text = os.environ.get(CONFIG_ENV, "").strip()
    if not text:
        return CONFIG_DEFAULT_MB * MB
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value > 0 and value < 1e7):
        raise UserError(
            f"{CONFIG_ENV}={text!r} is not a size; give megabytes as a positive number, as {CONFIG_ENV}=128"
        )
    return int(value * MB)


def size_text(n: float) -> str:
    """Bytes for people: ``3.9 GB``, ``812 kB``."""
    for unit, step in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= step:
            return f"{n / step:.1f} {unit}"
    return f"{int(n)} bytes"


def present(path: str | os.PathLike) -> bool:
    """Whether something is at ``path``, as far as anyone can tell: a dangling link or a symlink loop is
    there, and so is a file behind a folder this process may not search (told by :func:`check_file` as
    permission denied, not "does not exist")."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True
    except ValueError:  # a NUL in the name
        return False
    return True


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def _stat(path: Path, what: str, fix: str) -> os.stat_result:
    """``os.stat`` (following links) with each failure told by its own reason."""
    try:
        return os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Refused(
                f"{what} '{path}' is a symbolic link loop (it points back at itself); "
                f"fix or remove the link, {fix}",
                "a symlink loop",
            ) from None
        if exc.errno == errno.ENOENT:
            if os.path.islink(path):
                raise Refused(
                    f"{what} '{path}' is a symbolic link to '{os.readlink(path)}', which does not "
                    f"exist; fix the link, {fix}",
                    "a broken symlink",
                ) from None
            raise Refused(
                f"{what} '{path}' does not exist; check the path, {fix}", "does not exist"
            ) from None
        if exc.errno == errno.EACCES:
            raise Refused(
                f"{what} '{path}' cannot be reached (permission denied on a folder above it); "
                f"check the permissions, {fix}",
                "permission denied",
            ) from None
        if exc.errno == errno.ENAMETOOLONG:
            raise Refused(
                f"{what}: the path is too long for the file system; use a shorter path", "name too long"
            ) from None
        raise Refused(
            f"{what} '{path}' cannot be read ({exc.strerror or exc}); {fix}", exc.strerror or "unreadable"
        ) from None


def check_file(
    path: str | os.PathLike, what: str, fix: str, cap: int | None = None, cap_fix: str | None = None
) -> int:
    """Refuse ``path`` unless it is a readable regular file of at most ``cap`` bytes; return its size.

    ``what`` names the input (``--config``, ``image``, ``model file``); ``fix``
    says what to give instead. Nothing is opened: a FIFO would block, a device
    would never end.
    """
    path = Path(path)
    st = _stat(path, what, fix)
    if not stat.S_ISREG(st.st_mode):
        kind = _kind(st.st_mode)
        link = f" (a symbolic link to {os.path.realpath(path)})" if os.path.islink(path) else ""
        raise Refused(f"{what} '{path}' is {kind}{link}, not a regular file; {fix}", kind)
    if not readable_by_us(path):
        raise Refused(
            f"{what} '{path}' cannot be read (permission denied); check its permissions (chmod +r), {fix}",
            "permission denied",
        )
    if cap is not None and st.st_size > cap:
        raise Refused(
            f"{what} '{path}' is {size_text(st.st_size)}, over the {size_text(cap)} reportgen reads; "
            f"{cap_fix or fix}",
            "over the size cap",
        )
    return st.st_size


def readable_by_us(path: Path) -> bool:
    """Whether this process may read the regular file ``path``: opened and closed, so that the effective user
    and its capabilities decide, as they will for the read (``os.access`` asks for the real user)."""
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)))
    except PermissionError:
        return False
    except OSError:
        return True  # any other reason is told by the read itself
    return True


def check_folder(path: str | os.PathLike, what: str, fix: str) -> None:
    """Refuse ``path`` unless it is a folder this process can list."""
    path = Path(path)
    st = _stat(path, what, fix)
    if not stat.S_ISDIR(st.st_mode):
        raise Refused(
            f"{what} '{path}' is {_kind(st.st_mode) if not stat.S_ISREG(st.st_mode) else 'a file'}, "
            f"not a folder; {fix}",
            "not a folder",
        )
    if not _access(path, os.R_OK | os.X_OK):
        raise Refused(
            f"{what} '{path}' cannot be listed (permission denied); check its permissions, {fix}",
            "permission denied",
        )


def check_output_file(path: str | os.PathLike, what: str) -> None:
    """Refuse an output file path before any work: not a folder, not a special file, its folder writable."""
    path = Path(path)
    fix = f"choose a file in a writable folder with {what}"
    if os.path.isdir(path):
        raise UserError(f"{what} '{path}' is a folder; give a file name, as {what} {path / 'junit.xml'}")
    if os.path.exists(path) and not os.path.isfile(path):
        raise UserError(f"{what} '{path}' is {_kind(os.stat(path).st_mode)}, not a regular file; {fix}")
    probe = path.parent
    while not os.path.exists(probe):
        if probe == probe.parent:
            break
        probe = probe.parent
    if not os.path.isdir(probe):
        raise UserError(f"{what} '{path}' is inside a file, not a folder; {fix}")
    if not _access(probe, os.W_OK | os.X_OK) or _read_only_fs(probe):
        raise UserError(f"{what} '{path}' cannot be written (its folder '{probe}' is not writable); {fix}")


def _access(path: str | os.PathLike, mode: int) -> bool:
    """``os.access`` for the effective user (who will read or write), where the platform can ask for it."""
    if os.access in os.supports_effective_ids:
        return os.access(path, mode, effective_ids=True)
    return os.access(path, mode)


def _read_only_fs(folder: Path) -> bool:
    """A read-only mount (``os.access`` says yes to root there)."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def npy_declared(
    path: str | os.PathLike, what: str, fix: str, pixels: int | None = None
) -> tuple[tuple, str]:
    """A ``.npy`` file's declared ``(shape, dtype)`` from its header alone, refused when it declares more than
    :data:`ARRAY_CAP` bytes (or, for an image, ``pixels`` pixels) or holds Python objects."""
    import numpy as np

    path = Path(path)
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_1_0(fh, max_header_size=10000)
            else:
                shape, _fortran, dtype = np.lib.format.read_array_header_2_0(fh, max_header_size=10000)
            start = fh.tell()
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise Refused(
            f"{what} '{path}' is not a readable .npy array ({' '.join(str(exc).split())[:160]}); "
            f"save it with numpy.save",
            "not a .npy array",
        ) from None
    if dtype.hasobject:
        raise Refused(
            f"{what} '{path}' holds Python objects, which reportgen never unpickles; save a numeric "
            "array with numpy.save",
            "holds Python objects",
        )
    count = 1
    for d in shape:
        count *= int(d)
    declared = count * dtype.itemsize
    if declared > ARRAY_CAP:
        raise Refused(
            f"{what} '{path}' declares a {'x'.join(map(str, shape))} {dtype} array "
            f"({size_text(declared)}), over the {size_text(ARRAY_CAP)} reportgen allocates; {fix}",
            "over the size cap",
        )
    if start + declared > path.stat().st_size:
        raise Refused(
            f"{what} '{path}' is truncated: its header declares {size_text(declared)} of data, the file "
            f"holds {size_text(max(0, path.stat().st_size - start))}; save it again with numpy.save",
            "truncated",
        )
    if pixels is not None and len(shape) >= 2:
        dims = [int(d) for d in shape]
        if len(dims) == 4 and dims[0] == 1:
            dims = dims[1:]
        hw = dims[0] * dims[1]
        if hw > pixels:
            raise Refused(
                f"{what} '{path}' declares {dims[0]}x{dims[1]} pixels, over the {pixels:,} reportgen "
                f"decodes; {fix}",
                "over the size cap",
            )
    return tuple(int(d) for d in shape), str(dtype)
