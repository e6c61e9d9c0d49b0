"""What measuring the pixel convention costs (``--preprocess auto`` with labelled ``--images``).

For each MODEL, a labelled folder of scikit-learn's digits (PNG, one sub-folder per class, N per class)
goes through ``reportgen MODEL --images DIR --sections dataset --format json``, once with ``auto``
(measured: up to 64 images under each of the 5 candidates) and once with ``--preprocess unit`` (no
measurement), in separate processes. Printed: the measurement's own seconds (report.json's
``dataset.preprocess.measure_seconds``), the data-set pass's seconds, both runs' wall time, and what
was chosen.

    python3 bench/convention.py /tmp/demo/best-cnn-model.keras 'vgg16 --weights none' --per-class 20
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def digits_folder(root: Path, per_class: int) -> Path:
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    folder = root / "digits"
    for c in range(10):
        (folder / str(c)).mkdir(parents=True)
        for i, img in enumerate(d.images[d.target == c][:per_class]):
            px = (np.asarray(img) * 255 / 16).astype(np.uint8)
            Image.fromarray(px).resize((28, 28), Image.Resampling.BICUBIC).save(
                folder / str(c) / f"{i:03d}.png"
            )
    return folder


def run(model: list[str], folder: Path, preprocess: str) -> dict:
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "reportgen",
                *model,
                "--images",
                str(folder),
                "--sections",
                "dataset",
                "--format",
                "json",
                "--out",
                out,
                "--quiet",
                "--preprocess",
                preprocess,
            ],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t0
        report = next(Path(out).glob("*/report.json"), None)
        data = json.loads(report.read_text()) if report else {}
    ds = data.get("dataset") or {}
    pre = ds.get("preprocess") or {}
    return {
        "exit": proc.returncode,
        "wall": round(wall, 1),
        "pass_s": round(ds.get("seconds") or 0, 1),
        "measure_s": pre.get("measure_seconds"),
        "chosen": f"{pre.get('option')} ({pre.get('source')})",
        "accuracy": ds.get("accuracy"),
        "stderr": proc.stderr.strip().splitlines()[-1:] if proc.returncode else "",
    }


def main() -> None:
    import shlex

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "models", nargs="+", help="each a quoted model spec with its flags: 'vgg16 --weights none'"
    )
    p.add_argument("--per-class", type=int, default=20)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = digits_folder(Path(tmp), args.per_class)
        print(
            "| model | images | auto: chosen | measurement (s) | data-set pass (s) | wall auto / unit (s) | "
            "measurement / pass |"
        )
        print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
        for spec in (shlex.split(m) for m in args.models):
            auto, unit = run(spec, folder, "auto"), run(spec, folder, "unit")
            ratio = auto["measure_s"] / auto["pass_s"] if auto["measure_s"] and auto["pass_s"] else None
            print(
                f"| {' '.join(spec)} | {10 * args.per_class} | {auto['chosen']} | {auto['measure_s']} | "
                f"{auto['pass_s']} | {auto['wall']} / {unit['wall']} | "
                f"{'' if ratio is None else f'{ratio:.2f}'} |"
                + (f" exit {auto['exit']} {auto['stderr']}" if auto["exit"] else "")
            )


if __name__ == "__main__":
    main()
