"""Hostile inputs and faults: how many of the cases in tests/fuzz_cases.py behave as docs/safety.md promises.

``python bench/fuzz.py`` builds the fixtures (tiny models, FIFOs, links to
/dev/zero, symlink loops, header bombs, damaged report folders) in a
temporary folder, runs every case in one child process with a memory cap and
its own process group (each case under its own alarm), and prints the cases
tried, the cases that behaved as promised, and each one that did not with
what went wrong. ``--list`` prints the table; ``--verbose`` every case's
stderr line. Exit status 0 when every case behaved, else 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import fuzz_cases  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print the cases and exit")
    parser.add_argument("--verbose", action="store_true", help="print every case's stderr line")
    args = parser.parse_args()
    if args.list:
        for case in fuzz_cases.CASES:
            print(f"{case.status:>3}  {case.name}")
        return 0
    base = Path(tempfile.mkdtemp(prefix="reportgen-fuzz-"))
    os.chmod(base, 0o755)
    started = time.monotonic()
    try:
        results = fuzz_cases.run_all(base)
    finally:
        for root, dirs, _ in os.walk(base):
            for name in dirs:
                p = os.path.join(root, name)
                if not os.path.islink(p):
                    os.chmod(p, 0o755)
        shutil.rmtree(base, ignore_errors=True)
    skipped = [r for r in results if r.get("skipped")]
    results = [r for r in results if not r.get("skipped")]
    for r in skipped:
        print(f"SKIPPED {r['name']}: {r['skipped']}")
    behaved = [r for r in results if not r["problems"]]
    for r in results:
        if r["problems"]:
            print(f"BROKEN  {r['name']}: exit {r['status']}; {'; '.join(r['problems'])}")
        elif args.verbose:
            print(f"ok      {r['name']}: exit {r['status']}; {(r['stderr'] or [''])[0]}")
    print(
        f"{len(results)} cases tried, {len(behaved)} behaved as promised ({time.monotonic() - started:.1f} s)"
    )
    return 0 if len(behaved) == len(results) and len(results) + len(skipped) == len(fuzz_cases.CASES) else 1


if __name__ == "__main__":
    sys.exit(main())
