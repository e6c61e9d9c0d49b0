"""Render: Jinja templates -> report.html, report.pdf (WeasyPrint), report.json.

Templates only present; everything they show was computed before, and the figures are drawn here, just
before the page is templated (:func:`draw_figures`), so a JSON-only run draws none. Output goes
to a temporary folder beside the final one and is moved into place at the end,
so a failed or interrupted run never leaves a half-written report and never
destroys an earlier good one.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from reportgen.anchors import anchor_id, slug  # noqa: F401  (the templates' id helpers)
from reportgen.errors import UserError
from reportgen.figures import Figure

FORMATS = ("html", "pdf", "json")


def templates_dir() -> Path:
    """Templates ship inside the package when installed, beside it in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parent / "templates"):
        if (candidate / "report.html.j2").is_file():
            return candidate
    raise RuntimeError("reportgen's templates are missing; reinstall reportgen")


def _fmt(value: Any, digits: int = 4) -> str:
    """Numbers for people: fixed or scientific as fits, NaN/Inf spelled out."""
    if value is None:
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Inf" if v > 0 else "-Inf"
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        return f"{v:.{max(1, digits - 1)}e}"
    return f"{v:.{digits}f}"


def breakable(text: Any) -> Any:
    """A layer path, escaped, with line-break opportunities after ``/`` and ``_`` (for narrow table cells)."""
    import markupsafe

    escaped = str(markupsafe.escape(str(text)))
    return markupsafe.Markup(escaped.replace("/", "/<wbr>").replace("_", "_<wbr>"))


def _shape(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, (list, tuple)):
        if value and isinstance(value[0], (list, tuple)):
            return ", ".join(_shape(v) for v in value)
        return "(" + ", ".join("None" if d is None else str(d) for d in value) + ")"
    return str(value)


def environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        finalize=_undrawn,
    )
    env.filters["slug"] = slug
    env.filters["path"] = breakable
    env.globals["anchor"] = anchor_id
    env.filters["fmt"] = _fmt
    env.filters["shape"] = _shape
    env.filters["pct"] = lambda v: "–" if v is None else f"{100.0 * float(v):.1f}%"
    return env


def to_jsonable(obj: Any) -> Any:
    """NumPy values to plain Python; NaN and Inf to null (strict JSON has neither)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj


def deep_merge(into: dict, new: dict) -> dict:
    """Merge section JSON: dicts recursively, equal-length lists of dicts element-wise."""
    for key, value in new.items():
        old = into.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            deep_merge(old, value)
        elif (
            isinstance(old, list)
            and isinstance(value, list)
            and len(old) == len(value)
            and all(isinstance(v, dict) for v in old + value)
        ):
            for a, b in zip(old, value):
                deep_merge(a, b)
        else:
            into[key] = value
    return into


def check_out_dir(out_root: Path) -> None:
    """Fail early, before any analysis, when ``--out`` cannot be written."""
    probe = out_root
    while (
        not os.path.exists(probe) and probe != probe.parent
    ):  # os.path: False, not PermissionError, when locked
        probe = probe.parent
    if not os.path.isdir(probe):
        raise UserError(
            f"--out '{out_root}' is inside a file, not a folder; choose a writable folder with --out"
        )
    from reportgen.guard import _access, _read_only_fs

    if not _access(probe, os.W_OK | os.X_OK) or _read_only_fs(
        probe
    ):  # the user who writes; a read-only mount
        raise UserError(f"--out '{out_root}' is not writable; choose a writable folder with --out")


def draw_figures(value: Any) -> Any:
    """``value`` with each :class:`reportgen.figures.Figure` in its dicts, lists and tuples drawn: its data
    URI in its place. The one place a report's figures are drawn; each only once (a Figure keeps its URI).
    The containers that hold a figure are copied, so the sections' views keep their Figures."""
    import reportgen.painters  # noqa: F401  (registers the painters)

    def walk(v: Any) -> Any:
        if isinstance(v, Figure):
            return v.draw()
        if isinstance(v, dict):
            new = {k: walk(x) for k, x in v.items()}
            return new if any(new[k] is not x for k, x in v.items()) else v
        if type(v) in (list, tuple):
            items = [walk(x) for x in v]
            return type(v)(items) if any(a is not b for a, b in zip(items, v)) else v
        return v

    return walk(value)


def _undrawn(value: Any) -> Any:
    """Jinja's ``finalize``: a Figure reaching the page was missed by :func:`draw_figures`."""
    if isinstance(value, Figure):
        raise TypeError(f"{value!r} reached the template undrawn; render_html draws a page's figures first")
    return value


def render_html(template_name: str, variables: dict) -> str:
    variables = draw_figures(variables)
    env = environment()
    # Macros (imported without context) read the findings through a global.
    env.globals["findings_by_anchor"] = variables.get("findings_by_anchor", {})
    css = (templates_dir() / "report.css").read_text(encoding="utf-8")
    return env.get_template(template_name).render(css=css, **variables)


def write_report(
    out_root: Path,
    name: str,
    json_data: dict,
    template_name: str,
    variables: dict,
    formats: Iterable[str] = FORMATS,
    progress: Callable[..., Any] | None = None,
    extra_files: dict[str, str | None] | None = None,
) -> Path:
    """Write the report folder ``out_root/name`` atomically and return its path.

    ``extra_files`` are written beside the report (``errors.log``).
    """
    from reportgen.names import folder_name

    formats = tuple(f for f in FORMATS if f in set(formats))
    out_root = Path(out_root)
    name = folder_name(name)
    check_out_dir(out_root)
    try:
        out_root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-{_owner()}-", dir=out_root))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would make the report private
    except OSError as exc:
        raise UserError(
            f"cannot write to --out '{out_root}' ({exc.strerror}); choose a writable folder with --out"
        ) from None
    final = out_root / name
    try:
        html = render_html(template_name, variables) if {"html", "pdf"} & set(formats) else ""
        steps = list(formats)
        bar = progress(steps, desc="render", total=len(steps)) if progress else steps
        for fmt in bar:
            if fmt == "html":
                (tmp / "report.html").write_text(html, encoding="utf-8")
            elif fmt == "pdf":
                import weasyprint

                weasyprint.HTML(string=html, base_url=str(templates_dir())).write_pdf(tmp / "report.pdf")
            elif fmt == "json":
                with open(tmp / "report.json", "w", encoding="utf-8") as fh:
                    json.dump(to_jsonable(json_data), fh, indent=1, allow_nan=False)
                    fh.write("\n")
        for file_name, text in (extra_files or {}).items():
            if text is not None:
                (tmp / file_name).write_text(text, encoding="utf-8")
        _replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _host() -> str:
    """This machine, as 6 hex digits: a leftover of another machine (a shared --out) is never ours to
    judge."""
    import hashlib
    import socket

    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:6]


def _owner() -> str:
    """``PID-HOST``: the writer a temporary or earlier-report folder belongs to (see :func:`clean_stale`)."""
    return f"{os.getpid()}-{_host()}"


def _dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        return False
    return False


_STALE = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>\d+)(?:-(?P<host>[0-9a-f]{6}))?(?:-.*)?$")
# seconds: a leftover named without its machine is stale when its writer is dead and it is this old
LEGACY_AGE = 3600.0


def clean_stale(out_root: Path, name: str) -> list[Path]:
    """Remove ``.NAME.tmp-*`` and ``.NAME.old-*`` folders in ``out_root`` left by writers that died (SIGKILL,
    a power cut) on this machine; return what was removed. A live writer's folders, and another
    machine's, are left alone."""
    import time

    removed = []
    try:
        entries = list(os.scandir(out_root))
    except OSError:
        return removed
    here = _host()
    for entry in entries:
        match = _STALE.match(entry.name)
        if not match or match.group("name") != name or not entry.is_dir(follow_symlinks=False):
            continue
        host = match.group("host")
        if host is not None and host != here:
            continue
        if not _dead(int(match.group("pid"))):
            continue
        if host is None:
            try:
                if time.time() - entry.stat(follow_symlinks=False).st_mtime < LEGACY_AGE:
                    continue
            except OSError:
                continue
        shutil.rmtree(entry.path, ignore_errors=True)
        if not os.path.lexists(entry.path):
            removed.append(Path(entry.path))
    return removed


class _FolderLock:
    """An exclusive lock on ``out_root`` (``flock`` on the folder itself: no lock file is left behind) while a
    report folder is swapped in, so that two writers of one report never see each other's half-done rename.
    Where the file system has no ``flock`` the swap goes on unlocked."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.fd: int | None = None

    def __enter__(self) -> "_FolderLock":
        try:
            import fcntl

            self.fd = os.open(self.folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except (ImportError, OSError):
            if self.fd is not None:
                os.close(self.fd)
            self.fd = None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing releases the lock


def _replace(tmp: Path, final: Path) -> None:
    """Move the finished folder into place under the folder lock; the earlier report goes only after that.

    Stale leftovers of dead writers of this report are removed first (:func:`clean_stale`).
    """
    with _FolderLock(final.parent):
        clean_stale(final.parent, final.name)
        old = None
        if final.exists():
            old = final.with_name(f".{final.name}.old-{_owner()}-{os.urandom(4).hex()}")
            os.replace(final, old)
        try:
            os.replace(tmp, final)
        except BaseException:
            if old is not None:
                os.replace(old, final)
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
        if os.path.lexists(old):
            import sys

            print(
                f"reportgen: warning: the earlier report, moved aside to '{old}', could not be removed; "
                "remove it by hand (the next run on this machine tries again)",
                file=sys.stderr,
            )
