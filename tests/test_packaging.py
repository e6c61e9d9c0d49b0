"""A non-editable install finds its templates and data; the console script is declared."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_templates_data_and_console_script(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next(tmp_path.glob("reportgen-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in (ROOT / "templates").rglob("*"):
        if template.is_file() and template.suffix in {".j2", ".css"}:
            rel = template.relative_to(ROOT / "templates").as_posix()
            assert f"reportgen/templates/{rel}" in names, rel
    assert "reportgen/data/imagenet_classes.txt" in names
    for init in (ROOT / "reportgen").rglob(
        "__init__.py"
    ):  # every package, a new one too (pyproject lists them)
        assert init.relative_to(ROOT).as_posix() in names, init
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "reportgen = reportgen.cli:main" in text

    # unpacked without the checkout beside it, the package still finds its templates
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = "import reportgen.render as r; print(r.templates_dir())"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert Path(proc.stdout.strip()) == site / "reportgen" / "templates"
