"""What the data-set review adds to the data-set pass: time, and memory with ten times the images.

On the digits CNN of the tests (``tests/digits_models.py``: 8x8 grey, 137k parameters) -- the worst case
for the review's share, since its per-image work (a perceptual hash and seven properties of each file,
the embedding tap) does not shrink with the model while the model's own work is tiny:

- **time**: :func:`reportgen.analyses.dataset.run_pass` over the same PNG files read from disk, as before
  the review (no embedding, no per-file facts) and as now, then the review itself
  (:func:`reportgen.analyses.review.build`: calibration, label issues, the duplicate search, outliers);
- **memory**: the peak RSS of ``reportgen MODEL --images DIR --sections dataset --format json`` with
  ``--small`` and with ``--images`` files (each its own process, ``wait4``).

Usage: ``python bench/review.py [--small 1000 --images 10000]`` (about 2 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import reportgen  # noqa: E402,F401

import numpy as np  # noqa: E402


def write_folder(root: Path, n: int) -> None:
    """``n`` digits as 8x8 PNGs in class folders (rolled copies make up the number)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.rint(d.images / 16.0 * 255).astype(np.uint8)
    for i in range(n):
        k, j = divmod(i, len(x))
        sub = root / str(d.target[j])
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.roll(x[j], k % 3, axis=1)).save(sub / f"{i:05d}.png")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=10000)
    p.add_argument("--small", type=int, default=1000)
    args = p.parse_args()

    import digits_models as dm
    from dataset import peak_rss
    from reportgen import config
    from reportgen.analyses import dataset as D
    from reportgen.analyses import review
    from reportgen.analyses.cam import classifier_head, find_target_layer
    from reportgen.images import folders, image_input_spec
    from reportgen.preprocessing import Preprocessor

    model = dm.trained()
    head = classifier_head(model)
    layer = find_target_layer(model).path
    embed = D.embedding_layer(model, head)
    spec = image_input_spec(model)
    pre = Preprocessor("unit", "", "option")
    tmp = Path(tempfile.mkdtemp(prefix="review-bench-"))
    try:
        small, large = tmp / "small", tmp / "large"
        write_folder(small, args.small)
        write_folder(large, args.images)
        folder = folders.scan([str(small)])
        size = D.batch_size(model)
        times = {"before": [], "now": []}
        D.run_pass(model, head, layer, folders.batches(folder, spec, pre, size), 10)  # compile both, untimed
        D.run_pass(model, head, layer, folders.batches(folder, spec, pre, size), 10, embed=embed)
        for _round in range(5):  # alternating, the best of five: the machine is shared
            t = time.perf_counter()
            D.run_pass(model, head, layer, folders.batches(folder, spec, pre, size), 10)
            times["before"].append(time.perf_counter() - t)
            t = time.perf_counter()
            facts = D.PixelFacts()
            stats = D.run_pass(
                model, head, layer, folders.batches(folder, spec, pre, size, None, facts), 10, embed=embed
            )
            facts.attach(stats)
            stats.review = review.build(
                stats.probs,
                stats.labels,
                stats.confusion,
                stats.hashes,
                stats.embeddings,
                stats.properties,
                sigmoid=False,
                top_k=3,
                t=config.Thresholds(),
            )
            times["now"].append(time.perf_counter() - t)
        before, now = min(times["before"]), min(times["now"])
        print("  before", np.round(times["before"], 3), "now", np.round(times["now"], 3))
        paired = np.median(np.asarray(times["now"]) / np.asarray(times["before"]))
        print(
            f"{args.small} images: pass before the review "
            f"{before:.2f} s, now (pass + facts + embedding + review) "
            f"{now:.2f} s = +{100 * (now / before - 1):.0f}% (best of 5; median of the 5 paired ratios "
            f"+{100 * (paired - 1):.0f}%); the review alone {stats.review.seconds:.3f} s"
        )
        # The parts on their own (min of 7 each; less exposed to a neighbour's load than the whole pass):
        from reportgen.images import load_pixels

        def best(f, n=7):
            f()
            out = []
            for _ in range(n):
                t0 = time.perf_counter()
                f()
                out.append(time.perf_counter() - t0)
            return min(out)

        pixels = [load_pixels(f) for f in folder.files]
        facts_s = best(lambda: [review.facts(p) for p in pixels])
        plain = best(lambda: D.run_pass(model, head, layer, folders.batches(folder, spec, pre, size), 10))
        tapped = best(
            lambda: D.run_pass(model, head, layer, folders.batches(folder, spec, pre, size), 10, embed=embed)
        )
        print(
            f"parts, {args.small} images: the pass {plain:.3f} s; the embedding tap +{tapped - plain:.3f} s; "
            f"per-file facts {facts_s:.3f} s; the review {stats.review.seconds:.3f} s; together "
            f"+{100 * (tapped - plain + facts_s + stats.review.seconds) / plain:.0f}%"
        )
        rows = []
        for path, n in ((small, args.small), (large, args.images)):
            model_file = tmp / "digits.keras"
            if not model_file.exists():
                model.save(model_file)
            cmd = [
                sys.executable,
                "-m",
                "reportgen",
                str(model_file),
                "--images",
                str(path),
                "--sections",
                "dataset",
                "--preprocess",
                "unit",
                "--format",
                "json",
                "--out",
                str(tmp / "out"),
                "--quiet",
            ]
            sec, rss = peak_rss(cmd)
            rows.append((n, sec, rss))
            print(
                f"reportgen --images ({n} PNG files) --sections dataset: {sec:.1f} s, peak RSS {rss:.3f} GB",
                flush=True,
            )
        print(f"peak RSS {rows[1][0]} / {rows[0][0]} images = {rows[1][2] / rows[0][2]:.3f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
