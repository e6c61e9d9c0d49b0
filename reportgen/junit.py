"""JUnit XML for CI (``--junit FILE``): one ``testsuite`` per model, one ``testcase`` per finding kind
checked.

CI systems (GitLab, Jenkins, GitHub's test reporters) show JUnit natively, as
deepchecks and Giskard found. The file is made from report.json dicts alone
(``findings``, ``findings_checked``, ``section_errors``), so a run of several
models and ``reportgen index`` write it the same way, without Keras:

- each finding kind that was checked is a ``testcase`` (classname
  ``reportgen.<model>``); it holds a ``failure`` when a finding of that kind
  is at or above ``--fail-on`` -- exactly the findings that make the exit
  status 1 -- and lists the others in ``system-out``;
- a section that failed is a ``testcase`` named ``section <name>`` with an
  ``error`` (the report's exit status 3);
- a model that could not be reported (exit 2) is a suite with one ``error``.

Written atomically (a temporary file beside it, then renamed; removed when the
write fails). Every name and message is XML 1.0 text: ElementTree escapes
``& < > "``, and the characters XML 1.0 forbids (C0 controls but tab, newline
and return, lone surrogates from file names that are not UTF-8, U+FFFE/U+FFFF)
become U+FFFD, so that a hostile layer name cannot make the file unparseable
and lose the failure it holds.
"""

from __future__ import annotations

import os
import re
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterable

from reportgen.errors import UserError
from reportgen.finding_kinds import KINDS, SEVERITY_RANK


_FORBIDDEN = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: object) -> str:
    """``text`` as XML 1.0 allows it: each forbidden character replaced by U+FFFD (escaping is
    ElementTree's)."""
    return _FORBIDDEN.sub("\ufffd", str(text))


def _clean(el: ET.Element) -> None:
    """Every attribute and text below ``el`` made XML 1.0 text (:func:`xml_text`)."""
    for node in el.iter():
        for key, value in node.attrib.items():
            node.set(key, xml_text(value))
        if node.text is not None:
            node.text = xml_text(node.text)
        if node.tail is not None:
            node.tail = xml_text(node.tail)


def _at_or_above(severity: str, fail_on: str | None) -> bool:
    return fail_on is not None and SEVERITY_RANK[severity] >= SEVERITY_RANK[fail_on]


def _lines(findings: list[dict]) -> str:
    out = []
    for f in findings:
        where = f.get("layer") or ", ".join((f.get("layers") or [])[:5]) or "model"
        out.append(f"[{f['severity']}] {where}: {f['message']}")
    return "\n".join(out)


def suite(name: str, data: dict | None, fail_on: str | None, error: str | None = None) -> ET.Element:
    """One model's ``testsuite`` from its report.json dict (or its load ``error``)."""
    el = ET.Element("testsuite", name=f"reportgen {name}")
    tests = failures = errors = 0
    if error is not None or data is None:
        case = ET.SubElement(el, "testcase", classname=f"reportgen.{name}", name="report")
        ET.SubElement(case, "error", type="report_failed", message=error or "no report.json").text = (
            error or ""
        )
        tests, errors = 1, 1
    else:
        findings = data.get("findings") or []
        checked = data.get("findings_checked") or sorted({f["kind"] for f in findings})
        for kind in checked:
            mine = [f for f in findings if f["kind"] == kind]
            label = KINDS[kind].label if kind in KINDS else kind
            case = ET.SubElement(el, "testcase", classname=f"reportgen.{name}", name=f"{kind} ({label})")
            failing = [f for f in mine if _at_or_above(f["severity"], fail_on)]
            tests += 1
            if failing:
                failures += 1
                worst = max(failing, key=lambda f: SEVERITY_RANK[f["severity"]])
                ET.SubElement(case, "failure", type=kind, message=worst["message"][:500]).text = _lines(
                    failing
                )
            others = [f for f in mine if f not in failing]
            if others:
                ET.SubElement(case, "system-out").text = _lines(others)
        for e in data.get("section_errors") or []:
            case = ET.SubElement(
                el, "testcase", classname=f"reportgen.{name}", name=f"section {e['section']}"
            )
            ET.SubElement(case, "error", type=e.get("error", "error"), message=e.get("message", ""))
            tests += 1
            errors += 1
    el.set("tests", str(tests))
    el.set("failures", str(failures))
    el.set("errors", str(errors))
    return el


def write(path: str | os.PathLike, suites: Iterable[ET.Element]) -> Path:
    """``<testsuites>`` of ``suites`` into ``path``, atomically."""
    root = ET.Element("testsuites", name="reportgen")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for s in suites:
        root.append(s)
        for key in totals:
            totals[key] += int(s.get(key, "0"))
    for key, value in totals.items():
        root.set(key, str(value))
    _clean(root)
    ET.indent(root)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".junit-", suffix=".xml", dir=path.parent)
    except OSError as exc:
        raise UserError(
            f"--junit '{path}' cannot be written ({exc.strerror or exc}); the report was written, the "
            "JUnit file was not; choose a writable folder with --junit"
        ) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            ET.ElementTree(root).write(fh, encoding="utf-8", xml_declaration=True)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise UserError(
                f"--junit '{path}' cannot be written ({exc.strerror or exc}); the report was written, "
                "the JUnit file was not; choose a writable folder with --junit"
            ) from None
        raise
    return path
