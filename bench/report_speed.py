"""Where a whole report's time goes: each stage's seconds and the pattern ascent's share of the wall time.

Issue 21's bar: the ascent (the ``patterns`` analysis) is what a report is for and what it must
cost; everything else should be small beside it -- at least 80% of a JSON-only report's wall time
and 70% of an all-formats one's on EfficientNetB3 at defaults. This prints, for each architecture,
one row per stage (the scheduler's ``analysis_timings`` from report.json, the model load, the
presentation, the figures, the Jinja page and the PDF) for ``--format json`` and for all formats.

Each report is its own process (``python -m reportgen``'s ``main`` behind a small driver that times
the load, the figures, the template and WeasyPrint by wrapping them), so one run's imports, compiled
functions and memory never help another; peak RSS comes from ``os.wait4``. The wall time is the
parent's, interpreter start included: what a user waits for. Timings on a shared machine are noisy;
compare the shares and ratios within one run, not seconds across runs.

    python3 bench/report_speed.py                     # efficientnetb0, efficientnetb3
    python3 bench/report_speed.py efficientnetb3 --quick
    python3 bench/report_speed.py vgg16 --formats json -- --weights none
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Runs in the child: wraps the stages that report.json does not time, then runs the CLI.
DRIVER = r"""
import json, sys, time
started = time.perf_counter()
spent = {"load": 0.0, "figures": 0.0, "figures_n": 0, "template": 0.0, "pdf": 0.0, "write": 0.0}

def timed(key, fn):
    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            spent[key] += time.perf_counter() - t
    return wrapper

from reportgen import api, figures, render
api.load_any = timed("load", api.load_any)
render.render_html = timed("template", render.render_html)
render.write_report = timed("write", render.write_report)
_draw = figures.Figure.draw
def _timed_draw(self):
    if self.drawn:
        return _draw(self)
    t = time.perf_counter()
    try:
        return _draw(self)
    finally:
        spent["figures"] += time.perf_counter() - t
        spent["figures_n"] += 1
figures.Figure.draw = _timed_draw
if "pdf" in sys.argv:
    import weasyprint
    weasyprint.HTML.write_pdf = timed("pdf", weasyprint.HTML.write_pdf)
from reportgen.cli import main
rc = main(sys.argv[1:])
spent["driver_wall"] = time.perf_counter() - started
print("STAGES " + json.dumps(spent), file=sys.stderr)
sys.exit(rc)
"""

MODES = {"json": ["json"], "all": ["html", "pdf", "json"]}


def run(model: str, extra: list[str], formats: list[str], tree: str | None = None) -> dict:
    env = dict(os.environ)
    root = str(Path(tree or Path(__file__).resolve().parent.parent).resolve())
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory() as out:
        args = [sys.executable, "-c", DRIVER, model, *extra, "--out", out, "--quiet"]
        for f in formats:
            args += ["--format", f]
        t0 = time.perf_counter()
        # Run in the tree's folder: ``python -c`` puts the working folder first on sys.path, ahead of
        # PYTHONPATH, so a run started from another checkout would import that checkout instead.
        proc = subprocess.Popen(
            args, env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        err = proc.stderr.read()
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        reports = list(Path(out).glob("*/report.json"))
        data = json.loads(reports[0].read_text()) if reports else {}
    stages = next((json.loads(line[7:]) for line in err.splitlines() if line.startswith("STAGES ")), {})
    if not stages:
        sys.stderr.write(err[-3000:])
    return {
        "model": model,
        "formats": "+".join(formats),
        "exit": os.waitstatus_to_exitcode(status),
        "wall": wall,
        "peak_rss_gb": usage.ru_maxrss / 1024 / 1024,
        "stages": stages,
        "analyses": data.get("analysis_timings", {}),
        "sections": data.get("timings", {}),
    }


def stage_rows(r: dict) -> list[tuple[str, float]]:
    """(stage, seconds), in the order a report spends them; "other" is what the wall time leaves."""
    s, a = r["stages"], r["analyses"]
    rows = [("start-up (interpreter, imports)", r["wall"] - s.get("driver_wall", r["wall"]))]
    rows.append(("model load", s.get("load", 0.0)))
    rows += [(f"analysis: {name}", sec) for name, sec in a.items() if sec >= 0.01]
    analyses = sum(a.values())
    presentation = sum(r["sections"].values()) - analyses  # section timings count their analyses too
    rows.append(("sections (their own work: feature maps, kernel grids, describing)", max(0.0, presentation)))
    if s.get("write", 0.0):
        rows.append(("figures", s.get("figures", 0.0)))
        rows.append(("figures drawn (count)", float(s.get("figures_n", 0))))
        rows.append(
            ("HTML template (without figures)", max(0.0, s.get("template", 0.0) - s.get("figures", 0.0)))
        )
        if s.get("pdf"):
            rows.append(("PDF (WeasyPrint)", s["pdf"]))
        rows.append(("writing files", max(0.0, s["write"] - s.get("template", 0.0) - s.get("pdf", 0.0))))
    known = sum(sec for name, sec in rows if "(count)" not in name)
    rows.append(("other", max(0.0, r["wall"] - known)))
    return rows


def table(results: list[dict]) -> str:
    """One markdown table per architecture: stages as rows, the modes as columns."""
    out = []
    models = list(dict.fromkeys(r["model"] for r in results))
    for model in models:
        rs = [r for r in results if r["model"] == model]
        per = [dict(stage_rows(r)) for r in rs]
        names = list(dict.fromkeys(n for rows in per for n in rows))
        out.append(f"**{model}**\n")
        out.append("| stage | " + " | ".join(f"{r['formats']} (s)" for r in rs) + " |")
        out.append("| --- |" + " ---: |" * len(rs))
        for n in names:
            fmt = "{:.0f}" if "(count)" in n else "{:.1f}"
            out.append(f"| {n} | " + " | ".join(fmt.format(p[n]) if n in p else "" for p in per) + " |")
        out.append("| **wall** | " + " | ".join(f"**{r['wall']:.1f}**" for r in rs) + " |")
        out.append(
            "| **ascent share of wall** | "
            + " | ".join(f"**{100 * r['analyses'].get('patterns', 0.0) / r['wall']:.0f}%**" for r in rs)
            + " |"
        )
        out.append("| peak RSS (GB) | " + " | ".join(f"{r['peak_rss_gb']:.2f}" for r in rs) + " |")
        out.append("| exit | " + " | ".join(str(r["exit"]) for r in rs) + " |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "models",
        nargs="*",
        default=["efficientnetb0", "efficientnetb3"],
        help="keras.applications names or model files (default: efficientnetb0 efficientnetb3)",
    )
    p.add_argument("--formats", choices=["json", "all", "both"], default="both")
    p.add_argument(
        "--quick",
        action="store_true",
        help="--weights none and 8 pattern steps: the stages' proportions, not the defaults' (faster)",
    )
    p.add_argument("--tree", help="another reportgen checkout to run (before/after)")
    p.add_argument("--json", dest="json_out", help="also write the raw results here")
    args, extra = p.parse_known_args(argv)
    extra = [e for e in extra if e != "--"]
    if args.quick:
        extra = ["--weights", "none", "--pattern-steps", "8", *extra]
    modes = ["json", "all"] if args.formats == "both" else [args.formats]
    results = []
    for model in args.models:
        for mode in modes:
            r = run(model, extra, MODES[mode], args.tree)
            results.append(r)
            print(
                f"# {model} {r['formats']}: {r['wall']:.1f} s, exit {r['exit']}", file=sys.stderr, flush=True
            )
    print(table(results))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
