"""What CAM faithfulness costs: its seconds against the whole report's, in ONE run at default settings.

Runs ``reportgen MODEL ...`` in its own process (default: ``vgg16 --weights none``, all sections and
formats, the stand-in photo, Grad-CAM, top 3) and reads from report.json the faithfulness analysis'
seconds, its forward passes and perturbed images, and every analysis' time. The ratio is taken within
the run, so a machine shared with other work moves both sides alike.

    python3 bench/faithfulness.py                       # vgg16 --weights none, defaults
    python3 bench/faithfulness.py vgg16 --weights none --cam gradcam,scorecam
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(args: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "reportgen", *args, "--out", out, "--quiet"]
        t0 = time.perf_counter()
        proc = subprocess.run(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=dict(os.environ)
        )
        wall = time.perf_counter() - t0
        reports = list(Path(out).glob("*/report.json"))
        if not reports:
            raise SystemExit(f"no report.json (exit {proc.returncode}): {proc.stderr[-2000:]}")
        data = json.loads(reports[0].read_text())
    faith = data.get("gradcam", {}).get("faithfulness", {})
    verdicts: dict[str, int] = {}  # per CAM entry (image, method, class): how many came out each way
    for image in data.get("images", []):
        for entry in image.get("gradcam", []):
            v = entry.get("faithfulness", {}).get("verdict", "none")
            verdicts[v] = verdicts.get(v, 0) + 1
    return {
        "exit": proc.returncode,
        "wall_s": wall,
        "faith_s": data["analysis_timings"].get("faithfulness"),
        "cams_s": data["analysis_timings"].get("cams"),
        "analyses": data["analysis_timings"],
        "sections": data.get("timings"),
        "passes": faith.get("forward_passes"),
        "images": faith.get("perturbed_images"),
        "blur_sigma": faith.get("blur_sigma"),
        "verdicts": verdicts,
        "method_verdicts": {m: v.get("verdict") for m, v in faith.get("verdicts", {}).items()},
        "replacement": faith.get("replacement"),
    }


def main() -> None:
    args = sys.argv[1:] or ["vgg16", "--weights", "none"]
    r = run(args)
    share = r["faith_s"] / r["wall_s"] if r["faith_s"] is not None else float("nan")
    print(json.dumps(r, indent=1))
    print(
        "| model and options | exit | report (s) | CAMs (s) | faithfulness (s) | share | forward passes | "
        "perturbed images | entry verdicts | method verdicts |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    counts = ", ".join(f"{k} {v}" for k, v in sorted(r["verdicts"].items()))
    methods = ", ".join(f"{k}: {v}" for k, v in r["method_verdicts"].items())
    print(
        f"| `{' '.join(args)}` | {r['exit']} | {r['wall_s']:.1f} | {r['cams_s']:.1f} | {r['faith_s']:.1f} | "
        f"{100 * share:.1f}% | {r['passes']} | {r['images']} | {counts} | {methods} |"
    )


if __name__ == "__main__":
    main()
