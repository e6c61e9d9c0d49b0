"""What a JSON-only report saves: wall time and peak RSS of `reportgen MODEL --format json` against all
formats.

Each run is its own process (peak RSS from ``os.wait4``, so one run's memory never shows in another's).
``--tree DIR`` runs a different checkout of reportgen (an earlier commit, for a before/after table);
its package is put first on ``PYTHONPATH``.

    python3 bench/json_only.py vgg16 --weights none
    git worktree add /tmp/base e993f73 && python3 bench/json_only.py vgg16 --weights none --tree /tmp/base
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


def run(model: list[str], formats: list[str], tree: str | None) -> dict:
    env = dict(os.environ)
    if tree:
        env["PYTHONPATH"] = str(Path(tree).resolve()) + os.pathsep + env.get("PYTHONPATH", "")
    code = (
        "import sys; from reportgen.cli import main; rc = main(sys.argv[1:]); "
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'matplotlib', 'weasyprint', 'jinja2'}); "
        "print('IMPORTED', ','.join(heavy), file=sys.stderr); sys.exit(rc)"
    )
    with tempfile.TemporaryDirectory() as out:
        args = [sys.executable, "-c", code, *model, "--out", out, "--quiet"]
        for f in formats:
            args += ["--format", f]
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        err = proc.stderr.read()
        reports = list(Path(out).glob("*/report.json"))
        timings = json.loads(reports[0].read_text()).get("timings", {}) if reports else {}
    imported = next((line.split(" ", 1)[1] for line in err.splitlines() if line.startswith("IMPORTED")), "?")
    return {
        "formats": "+".join(formats),
        "exit": os.waitstatus_to_exitcode(status),
        "seconds": round(seconds, 1),
        "peak_rss_gb": round(usage.ru_maxrss / 1024 / 1024, 2),
        "imported": imported or "none",
        "patterns_s": timings.get("patterns"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("model", nargs="+", help="MODEL and its flags, e.g. vgg16 --weights none")
    p.add_argument("--tree", help="another reportgen checkout to run (before/after)")
    args, extra = p.parse_known_args()
    model = args.model + extra
    rows = [run(model, ["json"], args.tree), run(model, ["html", "pdf", "json"], args.tree)]
    label = args.tree or "this checkout"
    print(
        "| tree | formats | exit | seconds | peak RSS (GB) | patterns (s) | plotting/PDF modules imported |"
    )
    print("| --- | --- | --- | ---: | ---: | ---: | --- |")
    for r in rows:
        print(
            f"| {label} | {r['formats']} | {r['exit']} | "
            f"{r['seconds']} | {r['peak_rss_gb']} | {r['patterns_s']} | "
            f"{r['imported']} |"
        )


if __name__ == "__main__":
    main()
