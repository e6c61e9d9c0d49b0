"""The whole keras.applications zoo: one report per architecture, timed, measured, and tabled.

Each architecture runs as its own ``reportgen NAME --weights none`` process
(so that peak RSS is that report's alone, read from ``wait4``), with the
default settings or, with ``--quick``, short pattern settings
(``--pattern-steps 3 --pattern-filters 8``). One row per architecture:
seconds, peak RSS, PDF pages and size, HTML size, findings by severity, and
the sections that failed. The table replaces the one between the
``zoo-table`` markers in docs/benchmarks.md (``--write``).

Usage::

    python bench/zoo.py --quick --write                 # every architecture, short patterns
    python bench/zoo.py vgg16 resnet50 --write           # some, at default settings
    python bench/zoo.py --list                           # the names
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- zoo-table begin -->", "<!-- zoo-table end -->"


def architectures() -> list[str]:
    """Every keras.applications constructor (reportgen takes the names in any case)."""
    import keras

    return [
        a for a in dir(keras.applications) if a[:1].isupper() and callable(getattr(keras.applications, a))
    ]


def run_one(name: str, out: Path, quick: bool, timeout: int) -> dict:
    cmd = [sys.executable, "-m", "reportgen", name, "--weights", "none", "--out", str(out), "--quiet"]
    if quick:
        cmd += ["--pattern-steps", "3", "--pattern-filters", "8"]
    t0 = time.perf_counter()
    proc = _Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        timed_out = True
    seconds = time.perf_counter() - t0
    # peak RSS of this child alone: its rusage, collected by the wait above
    rss = getattr(proc, "_rss", None)
    row = {
        "name": name,
        "status": proc.returncode,
        "seconds": seconds,
        "timed_out": timed_out,
        "peak_rss_gb": rss,
        "stderr": stderr.strip().splitlines()[-1:] if stderr.strip() else [],
    }
    folder = out / name.lower()
    data_path = folder / "report.json"
    if data_path.exists():
        data = json.loads(data_path.read_text())
        row["findings"] = data.get("findings_summary", {})
        row["failed"] = [e["section"] for e in data.get("section_errors", [])]
        row["layers"] = len(data.get("layers", []))
        row["timings"] = data.get("timings", {})
    pdf = folder / "report.pdf"
    if pdf.exists():
        import pypdfium2

        row["pages"] = len(pypdfium2.PdfDocument(str(pdf)))
        row["pdf_mb"] = pdf.stat().st_size / 1e6
    html = folder / "report.html"
    if html.exists():
        row["html_mb"] = html.stat().st_size / 1e6
    return row


class _Popen(subprocess.Popen):
    """Popen that keeps the child's peak RSS (``wait4``'s rusage) before the child is reaped."""

    def _try_wait(self, wait_flags):  # noqa: D401  (CPython's hook, POSIX)
        try:
            pid, status, usage = os.wait4(self.pid, wait_flags)
        except ChildProcessError:
            pid, status = self.pid, 0
            usage = None
        if pid == self.pid and usage is not None:
            self._rss = usage.ru_maxrss / 1024 / 1024  # KiB -> GiB
        return pid, status


def table(rows: list[dict], quick: bool, machine: str) -> str:
    setting = "--pattern-steps 3 --pattern-filters 8" if quick else "default settings"
    lines = [
        f"`python bench/zoo.py{' --quick' if quick else ''}`: `reportgen NAME --weights none` ({setting}), "
        f"each architecture in its own process, on {machine}. Peak RSS is the process's own (wait4).",
        "",
        "| architecture | layers | exit | seconds | peak RSS (GB) | PDF pages "
        "| PDF (MB) | HTML (MB) | errors | warnings | info | failed sections |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        f = r.get("findings", {})
        rss = r.get("peak_rss_gb")
        lines.append(
            f"| {r['name']} | {r.get('layers', '')} | "
            f"{r['status']}{' (timeout)' if r['timed_out'] else ''} | "
            f"{r['seconds']:.0f} | {'' if rss is None else f'{rss:.2f}'} | {r.get('pages', '')} | "
            f"{r.get('pdf_mb', 0):.1f} | {r.get('html_mb', 0):.1f} "
            f"| {f.get('error', '')} | {f.get('warning', '')} | "
            f"{f.get('info', '')} | {', '.join(r.get('failed', [])) or '–'} |"
        )
    ok = [r for r in rows if r["status"] == 0]
    if rows:
        worst = max(rows, key=lambda r: r.get("peak_rss_gb") or 0)
        slow = sorted(rows, key=lambda r: -r["seconds"])[:3]
        lines += [
            "",
            f"{len(ok)} of {len(rows)} exit 0. Largest peak RSS: {worst['name']} "
            f"{(worst.get('peak_rss_gb') or 0):.2f} GB. Slowest: "
            + ", ".join(f"{r['name']} {r['seconds']:.0f} s" for r in slow)
            + ".",
        ]
        lines += [
            "",
            "Where their time goes (report.json `timings`; the rest is loading the model and rendering):",
            "",
        ]
        for r in slow:
            t = r.get("timings") or {}
            parts = [f"{k} {v:.0f} s" for k, v in sorted(t.items(), key=lambda kv: -kv[1]) if v >= 1]
            rest = r["seconds"] - sum(t.values())
            lines.append(f"- {r['name']}: " + ", ".join(parts + [f"load and render {rest:.0f} s"]))
    return "\n".join(lines)


def write(text: str) -> None:
    doc = DOC.read_text(encoding="utf-8")
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in doc:
        doc = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _m: block, doc, flags=re.S)
    else:
        doc = doc.rstrip() + "\n\n## The keras.applications zoo (`bench/zoo.py`)\n\n" + block + "\n"
    DOC.write_text(doc, encoding="utf-8")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("names", nargs="*", help="architectures (default: all)")
    p.add_argument("--quick", action="store_true", help="--pattern-steps 3 --pattern-filters 8")
    p.add_argument("--write", action="store_true", help="replace the table in docs/benchmarks.md")
    p.add_argument("--list", action="store_true")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per architecture")
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = p.parse_args()
    names = args.names or architectures()
    if args.list:
        print("\n".join(names))
        return
    machine = f"{os.cpu_count()} cores ({platform.machine()}), Python {platform.python_version()}"
    out = Path(tempfile.mkdtemp(prefix="zoo-"))
    rows = []
    try:
        for name in names:
            row = run_one(name, out, args.quick, args.timeout)
            rows.append(row)
            print(json.dumps(row), flush=True)
            shutil.rmtree(out / name.lower(), ignore_errors=True)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    text = table(rows, args.quick, machine)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.write:
        write(text)


if __name__ == "__main__":
    main()
