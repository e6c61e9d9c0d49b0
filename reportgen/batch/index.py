"""The index of many reports: ``index.json`` and ``index.html`` (one row per model, the weight
drift), written atomically; and the index of report folders written earlier (``reportgen index``)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Sequence
from urllib.parse import quote

from reportgen.batch.drift import drift_figure, drift_from_checkpoints
from reportgen.batch.rows import ROW_KEYS, entry_from_report, exit_status
from reportgen.batch.specs import is_model_file, natural_key
from reportgen.errors import UserError, one_line

TRAINING_FILE = "training.json"  # written beside a report by reportgen.keras.ReportCallback


def index_data(rows: Sequence[dict], drift: dict | None, note: str | None, title: str) -> dict:
    """index.json: the rows (in order), a summary, the drift block and the run's exit status."""
    from reportgen.names import VERSION
    from reportgen.analyses.overview import generated_at

    models = [{k: r.get(k) for k in ROW_KEYS if k in r} for r in rows]
    counts = {s: sum(r["status"] == s for r in rows) for s in ("written", "flagged", "failed")}
    return {
        "reportgen_version": VERSION,
        "generated": generated_at(),
        "kind": "index",
        "title": title,
        "summary": {"models": len(rows), **counts},
        "exit_status": exit_status(rows),
        "models": models,
        "drift": drift,
        "drift_note": note,
    }


def _status_text(row: dict) -> str:
    if row["status"] == "failed":
        return row.get("error") or "failed"
    if row.get("section_errors"):
        return "section(s) failed: " + ", ".join(
            f"{e['section']} ({e.get('error')}: {e.get('message')})" for e in row["section_errors"]
        )
    if row.get("exit_status") == 1:
        return "findings at or above --fail-on"
    return "written"


def render_index(data: dict, where: str) -> str:
    """index.html from index.json's dict (links relative to the index's folder)."""
    from reportgen import render

    rows = []
    for m in data["models"]:
        training = m.get("training") or {}
        logs = training.get("logs") or {}
        rows.append(
            {
                **m,
                "href": quote(m["link"]) if m.get("link") else None,
                "status_text": _status_text(m),
                "epoch": training.get("epoch"),
                "logs_text": ", ".join(f"{k} {render._fmt(v)}" for k, v in logs.items()),
            }
        )
    drift = data.get("drift")
    drift_rows = []
    if drift:
        for p in drift["layers"]:
            drift_rows.append({"path": p, "values": drift["relative_l2_change"][p]})
    variables = {
        "reportgen_version": data["reportgen_version"],
        "generated": data["generated"],
        "model_name": data["title"],
        "model_source": where,
        "findings_by_anchor": {},
        "section_errors": [],
        "rows": rows,
        "summary": data["summary"],
        "exit_status": data["exit_status"],
        "has_accuracy": any(m.get("accuracy") is not None for m in data["models"]),
        "has_training": any(m.get("training") for m in data["models"]),
        "drift": drift,
        "drift_rows": drift_rows,
        "drift_note": data.get("drift_note"),
        "drift_figure": drift_figure(drift) if drift else None,
    }
    return render.render_html("index.html.j2", variables)


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make the index private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_index(out: Path, data: dict) -> tuple[Path, Path]:
    """Write ``out/index.json`` and ``out/index.html``, each atomically; returns their paths."""
    from reportgen.render import to_jsonable

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot write to --out '{out}' ({exc.strerror}); choose a writable folder with --out"
        ) from None
    data = to_jsonable(data)
    html = render_index(data, str(out))
    _write_atomically(out / "index.json", json.dumps(data, indent=1, allow_nan=False) + "\n")
    _write_atomically(out / "index.html", html)
    return out / "index.html", out / "index.json"


def report_folders(root: Path) -> list[Path]:
    """The sub-folders of ``root`` that hold a report.json, in natural order of their names."""
    return sorted(
        (
            p
            for p in root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / "report.json").is_file()
        ),
        key=lambda p: natural_key(p.name),
    )


def checkpoint_of(folder: Path, data: dict) -> Path | None:
    """The model file behind a report folder: ``<folder>/<name>.keras`` (ReportCallback's), a
    single model file in the folder, or the report's source file if its SHA-256 still matches."""
    own = folder / f"{folder.name}.keras"
    if own.is_file():
        return own
    inside = [p for p in folder.iterdir() if is_model_file(p)]
    if len(inside) == 1:
        return inside[0]
    model = data.get("model") or {}
    source, digest = model.get("source"), model.get("sha256")
    if source and digest and Path(source).is_file() and is_model_file(source):
        from reportgen.loading import sha256

        if sha256(Path(source)) == digest:
            return Path(source)
    return None


def read_report(path: Path) -> tuple[str | None, dict]:
    """``(None, report.json's dict)``, or ``(why, {})`` when it cannot be read or is not shaped like one.

    A report folder is data (docs/safety.md): a hand-edited or damaged report.json
    is skipped with its reason, never a crash of the index (an AttributeError
    on a list where a dict belongs used to end ``reportgen index`` with exit 4).
    """
    from reportgen import guard
    from reportgen.finding_kinds import SEVERITY_RANK

    try:
        guard.check_file(path, "report.json", "re-write that report", REPORT_JSON_CAP)
        data = json.loads(path.read_text(encoding="utf-8"))
    except UserError as exc:
        return str(exc).split(";")[0], {}
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return f"not readable JSON ({one_line(exc, 120, typed=True)})", {}
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not a report", {}
    for key in ("model", "dataset", "findings_summary"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            return f"'{key}' is not an object", {}
    for key in ("findings", "section_errors", "findings_checked"):
        if data.get(key) is not None and not isinstance(data[key], list):
            return f"'{key}' is not a list", {}
    for f in data.get("findings") or []:
        if not (
            isinstance(f, dict)
            and isinstance(f.get("kind"), str)
            and f.get("severity") in SEVERITY_RANK
            and isinstance(f.get("message", ""), str)
        ):
            return "a finding without a kind, a known severity and a message", {}
    if not all(isinstance(e, dict) for e in data.get("section_errors") or []):
        return "a section error that is not an object", {}
    if not all(isinstance(k, str) for k in data.get("findings_checked") or []):
        return "a checked finding kind that is not a name", {}
    return None, data


REPORT_JSON_CAP = 512 * 1_000_000  # bytes: a report.json of a huge model is tens of MB


def index_folders(
    root: str | os.PathLike,
    folders: Sequence[Path] | None = None,
    drift: bool = True,
    skipped: list[tuple[str, str]] | None = None,
) -> dict:
    """Build ``root/index.{html,json}`` from report folders written earlier (``reportgen index DIR``).

    ``folders``: these report folders (inside ``root``), in this order; default:
    every sub-folder of ``root`` with a report.json, natural order. Nothing is
    recomputed: the rows come from each report.json (and training.json, written
    by ReportCallback); only the weight drift loads the models' files.
    """
    root = Path(root)
    if folders is None:
        from reportgen import guard

        if guard.present(root) and not os.path.isfile(
            root
        ):  # a FIFO, a symlink loop: told by their own reason
            guard.check_folder(root, "reportgen index:", "give the --out folder of earlier reportgen runs")
        if not root.is_dir():
            raise UserError(f"'{root}' is not a folder; give the --out folder of earlier reportgen runs")
        folders = report_folders(root)
        if not folders:
            raise UserError(
                f"'{root}' holds no report folders (sub-folders with a report.json); write reports "
                "there first, with json among the --format(s)"
            )
    rows, checkpoints = [], []
    skipped = skipped if skipped is not None else []
    for folder in folders:
        folder = Path(folder)
        problem, data = read_report(folder / "report.json")
        if problem is not None:
            skipped.append((folder.name, problem))
            continue
        present = [f for f in ("html", "pdf", "json") if (folder / f"report.{f}").is_file()]
        row = entry_from_report(folder.name, data, present)
        training = folder / TRAINING_FILE
        if training.is_file():
            try:
                row["training"] = json.loads(training.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                pass
        rows.append(row)
        checkpoints.append(checkpoint_of(folder, data) if drift else None)
    if not rows:
        first, why = skipped[0]
        raise UserError(
            f"no report folder in '{root}' can be indexed: {len(skipped)} report.json file(s) are not "
            f"reports ('{first}': {why}); re-write those reports"
        )
    names = [r["name"] for r in rows]
    table, note = drift_from_checkpoints(names, checkpoints) if drift else (None, None)
    data = index_data(rows, table, note, title=f"{len(rows)} reports")
    data["exit_status"] = None  # an index of earlier reports, not a run
    write_index(root, data)
    return data
