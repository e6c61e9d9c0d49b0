"""The index's rows: one model's summary (name, source, status, findings, accuracy, link) and its
one-line error; the run's exit status from them."""

from __future__ import annotations

from typing import Iterable, Sequence


ROW_KEYS = (
    "name",
    "source",
    "spec",
    "status",
    "exit_status",
    "error",
    "link",
    "formats",
    "total_params",
    "findings_summary",
    "section_errors",
    "accuracy",
    "images",
    "generated",
    "seconds",
    "worker",
    "training",
)


def _link(name: str, formats: Iterable[str]) -> str | None:
    formats = set(formats)
    for fmt in ("html", "pdf", "json"):
        if fmt in formats:
            return f"{name}/report.{fmt}"
    return None


def entry_from_report(name: str, data: dict, formats: Iterable[str], fail_on: str | None = None) -> dict:
    """An index row from a report.json dict (``formats``: the files the folder holds); its exit status is the
    one rule's (:func:`reportgen.report.exit_status`)."""
    from reportgen.report import exit_status as report_status

    model = data.get("model") or {}
    dataset = data.get("dataset") or {}
    errors = list(data.get("section_errors") or [])
    return {
        "name": name,
        "source": model.get("source"),
        "status": "flagged" if errors else "written",
        "exit_status": report_status(data, fail_on),
        "error": None,
        "link": _link(name, formats),
        "formats": [f for f in ("html", "pdf", "json") if f in set(formats)],
        "total_params": model.get("total_params"),
        "findings_summary": data.get("findings_summary"),
        "section_errors": errors,
        "accuracy": dataset.get("accuracy"),
        "images": dataset.get("images"),
        "generated": data.get("generated"),
    }


def exit_status(rows: Sequence[dict]) -> int:
    """2 when a model failed; else 3 when a report has a failed section; else 1 when --fail-on
    tripped for a model; else 0."""
    statuses = {r["exit_status"] for r in rows}
    for status in (2, 3, 1):
        if status in statuses:
            return status
    return 0
