"""Milliseconds per figure, by kind: every figure a real report draws, timed one by one.

Issue 21's bar: a small chart (histogram, bars, depth chart) costs at most 30 ms. The report's figures
are :class:`reportgen.figures.Figure` specs; this computes one report (a ``keras.applications`` model,
``weights=None``, few pattern steps: the figures' cost does not depend on the values), records every
``Figure`` the sections make, then draws each with its painter and groups the times by painter. The first
figure of each kind is timed apart (Matplotlib's imports and font cache are paid once per process) and left
out of the median. Timings on a shared machine are noisy: compare kinds within one run.

    python3 bench/figures.py                    # efficientnetb0
    python3 bench/figures.py mobilenetv2 --repeat 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", default="efficientnetb0")
    p.add_argument("--repeat", type=int, default=1, help="draw every figure this many times")
    args = p.parse_args(argv)

    import reportgen.painters  # noqa: F401  (registers the painters)
    from reportgen import figures
    from reportgen.api import Report

    made: list[tuple[str, tuple, dict]] = []
    init = figures.Figure.__init__

    def record(self, painter, *a, **k):
        init(self, painter, *a, **k)
        made.append((painter, a, k))

    figures.Figure.__init__ = record
    report = Report(args.model, weights="none", pattern_steps=4, quiet=True)
    report.json  # noqa: B018  (computes the analyses and the sections' views, draws nothing)
    figures.Figure.__init__ = init
    times: dict[str, list[float]] = defaultdict(list)
    sizes: dict[str, list[int]] = defaultdict(list)
    first: dict[str, float] = {}
    for name, a, k in made:
        draw = figures.PAINTERS[name]
        for _ in range(args.repeat):
            t = time.perf_counter()
            uri = draw(*a, **k)
            ms = 1e3 * (time.perf_counter() - t)
            if name not in first:
                first[name] = ms
                continue
            times[name].append(ms)
            sizes[name].append(len(uri) if isinstance(uri, str) else len(uri[0] or ""))
    print(f"{args.model}: {len(made)} figures")
    print("| figure kind | count | first (ms) | median (ms) | max (ms) | median size (kB) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in sorted(first, key=lambda n: -statistics.median(times[n]) if times[n] else 0):
        t = times[name]
        med = f"{statistics.median(t):.0f}" if t else ""
        mx = f"{max(t):.0f}" if t else ""
        kb = f"{statistics.median(sizes[name]) / 1024:.0f}" if sizes[name] else ""
        print(f"| {name} | {len(t) + 1} | {first[name]:.0f} | {med} | {mx} | {kb} |")


if __name__ == "__main__":
    main()
