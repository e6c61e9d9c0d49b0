"""Compare two report.json files key by key: what a rebuild changed, apart from clocks.

    python3 bench/same_report.py OLD/report.json NEW/report.json [--rtol 1e-6]

Prints one line per differing key path (added, removed, or changed, with both values cut short), then
a summary line. Keys that are clocks by nature -- ``generated``, ``timings``, ``analysis_timings``
and any ``seconds`` -- are left out; numbers compare within ``--rtol``. Exit status 0 when the two
agree, 1 when they differ.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any, Iterator

CLOCKS = {
    "generated",
    "timings",
    "analysis_timings",
    "seconds",
    "seconds_per_image",
    "wall_seconds",
    "time_vs_predict",
}


def _short(value: Any, limit: int = 90) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def differences(old: Any, new: Any, rtol: float, path: str = "") -> Iterator[str]:
    """Each differing key path, as a line."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            if key in CLOCKS or str(key).endswith("_seconds"):
                continue
            here = f"{path}.{key}" if path else str(key)
            if key not in new:
                yield f"removed  {here} = {_short(old[key])}"
            elif key not in old:
                yield f"added    {here} = {_short(new[key])}"
            else:
                yield from differences(old[key], new[key], rtol, here)
        return
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            yield f"changed  {path}: {len(old)} items -> {len(new)} items"
            return
        for i, (a, b) in enumerate(zip(old, new)):
            yield from differences(a, b, rtol, f"{path}[{i}]")
        return
    numbers = (int, float)
    if isinstance(old, numbers) and isinstance(new, numbers) and not isinstance(old, bool):
        if math.isclose(old, new, rel_tol=rtol, abs_tol=rtol) or (math.isnan(old) and math.isnan(new)):
            return
    elif old == new:
        return
    yield f"changed  {path}: {_short(old, 60)} -> {_short(new, 60)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rtol", type=float, default=1e-6)
    args = parser.parse_args(argv)
    with open(args.old) as f:
        old = json.load(f)
    with open(args.new) as f:
        new = json.load(f)
    lines = list(differences(old, new, args.rtol))
    for line in lines:
        print(line)
    print(
        f"{len(lines)} differing key(s) between {args.old} and {args.new} "
        f"(clocks left out, rtol {args.rtol:g})"
    )
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
