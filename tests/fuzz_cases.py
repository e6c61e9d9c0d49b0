"""Hostile inputs and faults (issue 29): the case table, the files the cases use, and the runner.

Each :class:`Case` is a command line with what the README promises for it:
its exit status, exactly one line on stderr (the problem and the fix) for a
refusal, nothing written and an earlier report left intact (its files hashed
before and after), and no leftovers (``.NAME.tmp-*``, ``.NAME.old-*``,
``.junit-*.xml``).

:func:`run` runs many cases in ONE process that imports reportgen once and
calls :func:`reportgen.cli.main` for each, every case under its own
``signal.alarm``; the caller (tests/test_fuzz.py, bench/fuzz.py) starts that
process with a memory cap (``RLIMIT_AS``) and in its own process group, so a
case that hangs or grows without bound is contained: the alarm ends the case,
the cap ends the growth, and the group is killed if the whole child overruns.

``python tests/fuzz_cases.py FIXTURES RESULTS.json [CASE ...]`` is that child.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

CASE_SECONDS = 30  # each case's own time limit (signal.alarm) inside the child
MEMORY_CAP = (
    6 << 30
)  # RLIMIT_AS of the child: TensorFlow reserves ~2 GB of address space; a bomb needs far more
LEFTOVER_MARKS = (".tmp-", ".old-", ".junit-")


@dataclass(frozen=True)
class Case:
    """One hostile command line and what must happen.

    ``argv`` may hold ``{d}`` (the fixtures folder), ``{out}`` (a folder with an
    earlier good report, ``small/``, that must stay intact) and ``{w}`` (a fresh
    folder of this case's own, for the cases that write).
    """

    name: str
    argv: tuple[str, ...]
    status: int
    says: str = ""  # a phrase the stderr line must hold (the reason), case-insensitive
    lines: int | None = 1  # stderr lines; None: not checked (a report's own notes)
    writes: bool = False  # writes into {w}; otherwise nothing under {out} may change
    env: dict = field(default_factory=dict)
    fault: str | None = None  # a fault injected into the run (see _faults)
    check: str | None = None  # an extra check of what was written (see _checks)
    root: bool = True  # False: run as an unprivileged user (permission cases; root reads any file)


def _r(name: str, *argv: str, status: int = 2, **kw) -> Case:
    """A report case: ``reportgen ARGV --out {out}`` (or ``{w}`` when it writes), JSON only, quiet."""
    out = "{w}" if kw.get("writes") else "{out}"
    return Case(name, tuple(argv) + ("--out", out, "--format", "json", "--quiet"), status, **kw)


REPORT = ("--sections", "overview")  # the cheapest section: refusals must come before any work anyway

CASES: list[Case] = [
    # --- MODEL: not a regular file, a loop, a bomb, the wrong reason ---------------------------------
    _r("model FIFO", "{d}/fifo.keras", *REPORT, says="FIFO"),
    _r("model FIFO without suffix", "{d}/fifo_noext", *REPORT, says="FIFO"),
    _r("model symlink to /dev/zero", "{d}/zero.keras", *REPORT, says="character device"),
    _r("model /dev/zero itself", "/dev/zero", *REPORT, says="character device"),
    _r("model /dev/null", "/dev/null", *REPORT, says="character device"),
    _r("model symlink loop", "{d}/loop.keras", *REPORT, says="loop"),
    _r("model dangling symlink", "{d}/dangling.keras", *REPORT, says="does not exist"),
    _r("model missing", "{d}/nothere.keras", *REPORT, says="does not exist"),
    _r("model folder named .keras", "{d}/dir.keras", *REPORT),
    _r("model empty file", "{d}/empty.keras", *REPORT, says="empty"),
    _r("model text file", "{d}/text.keras", *REPORT, says="not a valid .keras archive"),
    _r("model truncated archive", "{d}/trunc.keras", *REPORT),
    _r("model config bomb (65 MB of spaces)", "{d}/bomb.keras", *REPORT, says="over the 64.0 MB"),
    _r(
        "model over a lowered config cap",
        "{d}/small.keras",
        *REPORT,
        says="REPORTGEN_MAX_CONFIG_MB",
        env={"REPORTGEN_MAX_CONFIG_MB": "0.0005"},
    ),
    _r(
        "config cap not a number",
        "{d}/small.keras",
        *REPORT,
        says="REPORTGEN_MAX_CONFIG_MB",
        env={"REPORTGEN_MAX_CONFIG_MB": "lots"},
    ),
    _r("model config gadget (os.system)", "{d}/gadget.keras", *REPORT, says="config gadget"),
    _r("model weights of another shape", "{d}/wrongshape.keras", *REPORT, says="the file's (3, 3, 3, 4)"),
    _r("model unreadable (chmod 000)", "{d}/perm.keras", *REPORT, says="permission denied", root=False),
    _r(
        "model in an unreadable folder",
        "{d}/locked/small.keras",
        *REPORT,
        says="permission denied",
        root=False,
    ),
    _r("several models, one a FIFO", "{d}/small.keras", "{d}/fifo.keras", *REPORT, says="FIFO"),
    _r("folder of models holding a FIFO", "{d}/models", *REPORT, says="FIFO"),
    _r("glob matching a FIFO", "{d}/models/*.keras", *REPORT, says="FIFO"),
    _r(
        "--jobs 2 over a FIFO",
        "{d}/small.keras",
        "{d}/zero.keras",
        "--jobs",
        "2",
        *REPORT,
        says="character device",
    ),
    _r("--weights FIFO for an architecture", "vgg16", "--weights", "{d}/fifo.keras", *REPORT, says="FIFO"),
    _r("remote handle", "hf://someone/model", *REPORT, says="network"),
    # --- --image ------------------------------------------------------------------------------------------
    _r("--image FIFO", "{d}/small.keras", "--image", "{d}/fifo.png", *REPORT, says="FIFO"),
    _r(
        "--image symlink to /dev/zero",
        "{d}/small.keras",
        "--image",
        "{d}/zero.png",
        *REPORT,
        says="character device",
    ),
    _r("--image symlink loop", "{d}/small.keras", "--image", "{d}/loop.png", *REPORT, says="loop"),
    _r("--image .npy header bomb", "{d}/small.keras", "--image", "{d}/bomb.npy", *REPORT, says="declares"),
    _r("--image .npy truncated", "{d}/small.keras", "--image", "{d}/trunc.npy", *REPORT, says="truncated"),
    _r(
        "--image .npy of Python objects",
        "{d}/small.keras",
        "--image",
        "{d}/obj.npy",
        *REPORT,
        says="Python objects",
    ),
    _r(
        "--image PNG decompression bomb", "{d}/small.keras", "--image", "{d}/bomb.png", *REPORT, says="pixels"
    ),
    _r("--image 300 MB file", "{d}/small.keras", "--image", "{d}/huge.png", *REPORT, says="over the 256"),
    _r("--image garbage", "{d}/small.keras", "--image", "{d}/garbage.png", *REPORT),
    _r("--image folder", "{d}/small.keras", "--image", "{d}/imgs", *REPORT, says="folder"),
    _r(
        "--image unreadable",
        "{d}/small.keras",
        "--image",
        "{d}/perm.png",
        *REPORT,
        says="permission denied",
        root=False,
    ),
    _r(
        "--image in an unreadable folder",
        "{d}/small.keras",
        "--image",
        "{d}/locked/img.png",
        *REPORT,
        says="permission denied",
        root=False,
    ),
    _r(
        "--config in an unreadable folder",
        "{d}/small.keras",
        "--config",
        "{d}/locked/c.toml",
        *REPORT,
        says="permission denied",
        root=False,
    ),
    _r(
        "--class-names in an unreadable folder",
        "{d}/small.keras",
        "--class-names",
        "{d}/locked/n.txt",
        *REPORT,
        says="permission denied",
        root=False,
    ),
    _r(
        "--junit in an unreadable folder",
        "{d}/small.keras",
        "--junit",
        "{d}/locked/j.xml",
        *REPORT,
        says="not writable",
        root=False,
    ),
    # --- --images ---------------------------------------------------------------------------------------
    _r(
        "--images with hostile files among good ones",
        "{d}/small.keras",
        "--images",
        "{d}/imgs",
        "--sections",
        "dataset",
        status=0,
        writes=True,
        lines=0,
        check="skipped_by_reason",
    ),
    _r(
        "--images with only hostile files",
        "{d}/small.keras",
        "--images",
        "{d}/badimgs",
        "--sections",
        "dataset",
        says="could be read",
    ),
    _r(
        "--images FIFO",
        "{d}/small.keras",
        "--images",
        "{d}/fifo.png",
        "--sections",
        "dataset",
        says="not a folder",
    ),
    _r(
        "--images symlink loop",
        "{d}/small.keras",
        "--images",
        "{d}/loopdir",
        "--sections",
        "dataset",
        says="loop",
    ),
    _r(
        "--images /dev/zero",
        "{d}/small.keras",
        "--images",
        "/dev/zero",
        "--sections",
        "dataset",
        says="not a folder",
    ),
    # --- --config ---------------------------------------------------------------------------------------
    _r("--config FIFO", "{d}/small.keras", "--config", "{d}/fifo.toml", *REPORT, says="FIFO"),
    _r(
        "--config symlink to /dev/zero",
        "{d}/small.keras",
        "--config",
        "{d}/zero.toml",
        *REPORT,
        says="character device",
    ),
    _r("--config binary", "{d}/small.keras", "--config", "{d}/bin.toml", *REPORT, says="not text"),
    _r("--config 2 MB", "{d}/small.keras", "--config", "{d}/big.toml", *REPORT, says="over the 1.0 MB"),
    _r("--config symlink loop", "{d}/small.keras", "--config", "{d}/loop.toml", *REPORT, says="loop"),
    _r(
        "--config invalid TOML", "{d}/small.keras", "--config", "{d}/bad.toml", *REPORT, says="not valid TOML"
    ),
    _r("--config folder", "{d}/small.keras", "--config", "{d}/imgs", *REPORT, says="folder"),
    _r(
        "--config dangling symlink",
        "{d}/small.keras",
        "--config",
        "{d}/dangling.toml",
        *REPORT,
        says="does not exist",
    ),
    _r(
        "--config unreadable",
        "{d}/small.keras",
        "--config",
        "{d}/perm.toml",
        *REPORT,
        says="permission denied",
        root=False,
    ),
    _r(
        "--config with several models, binary",
        "{d}/small.keras",
        "{d}/small2.keras",
        "--config",
        "{d}/bin.toml",
        *REPORT,
        says="not text",
    ),
    # --- --class-names ----------------------------------------------------------------------------------
    _r("--class-names FIFO", "{d}/small.keras", "--class-names", "{d}/fifo.txt", *REPORT, says="FIFO"),
    _r(
        "--class-names symlink to /dev/zero",
        "{d}/small.keras",
        "--class-names",
        "{d}/zero.txt",
        *REPORT,
        says="character device",
    ),
    _r("--class-names binary", "{d}/small.keras", "--class-names", "{d}/bin.txt", *REPORT, says="UTF-8"),
    _r(
        "--class-names 2 MB",
        "{d}/small.keras",
        "--class-names",
        "{d}/big.txt",
        *REPORT,
        says="over the 1.0 MB",
    ),
    _r(
        "--class-names symlink loop", "{d}/small.keras", "--class-names", "{d}/loop.txt", *REPORT, says="loop"
    ),
    # --- outputs -------------------------------------------------------------------------------------------
    _r("--junit is a folder", "{d}/small.keras", "--junit", "{out}", *REPORT, says="is a folder"),
    _r(
        "--junit inside a file",
        "{d}/small.keras",
        "--junit",
        "{d}/text.keras/j.xml",
        *REPORT,
        says="inside a file",
    ),
    _r("--junit /dev/null", "{d}/small.keras", "--junit", "/dev/null", *REPORT, says="not a regular file"),
    _r(
        "--junit in a read-only folder",
        "{d}/small.keras",
        "--junit",
        "{d}/rofolder/j.xml",
        *REPORT,
        says="not writable",
        root=False,
    ),
    Case(
        "--out is a file",
        ("{d}/small.keras", *REPORT, "--out", "{d}/text.keras", "--quiet"),
        2,
        says="inside a file",
    ),
    Case(
        "--out is /dev/null",
        ("{d}/small.keras", *REPORT, "--out", "/dev/null", "--quiet"),
        2,
        says="inside a file",
    ),
    Case(
        "--out in a read-only folder",
        ("{d}/small.keras", *REPORT, "--out", "{d}/rofolder/out", "--quiet"),
        2,
        says="not writable",
        root=False,
    ),
    Case(
        "--out in an unreadable folder",
        ("{d}/small.keras", *REPORT, "--out", "{d}/locked/out", "--quiet"),
        2,
        says="not writable",
        root=False,
    ),
    Case(
        "index --junit is a folder",
        ("index", "{out}", "--junit", "{out}", "--no-drift", "--quiet"),
        2,
        says="is a folder",
    ),
    Case(
        "--out on a file system that refuses it (/proc)",
        ("{d}/small.keras", *REPORT, "--out", "/proc/reportgen", "--quiet"),
        2,
        says="--out",
    ),
    _r("model path with a newline", "{d}/new\nline.keras", *REPORT, says="does not exist"),
    _r(
        "image path with a newline",
        "{d}/small.keras",
        "--image",
        "{d}/new\nline.png",
        *REPORT,
        says="does not exist",
    ),
    # --- writing faults ------------------------------------------------------------------------------------
    _r("disk full while writing", "{d}/small.keras", *REPORT, says="disk is full", fault="enospc"),
    _r("SIGTERM while writing", "{d}/small.keras", *REPORT, status=143, says="SIGTERM", fault="sigterm"),
    _r("SIGHUP while writing", "{d}/small.keras", *REPORT, status=129, says="SIGHUP", fault="sighup"),
    _r(
        "stale leftovers of a dead writer",
        "{d}/small.keras",
        *REPORT,
        status=0,
        writes=True,
        lines=0,
        fault="stale",
        check="stale_removed",
    ),
    # --- numbers --------------------------------------------------------------------------------------------
    _r(
        "--preprocess overflow",
        "{d}/small.keras",
        "--preprocess",
        "scale=1e300,offset=1e300",
        *REPORT,
        says="float32",
    ),
    _r(
        "--preprocess scale beyond float32",
        "{d}/small.keras",
        "--preprocess",
        "scale=1e37",
        *REPORT,
        says="float32",
    ),
    _r(
        "--preprocess tiny std",
        "{d}/small.keras",
        "--preprocess",
        "mean=0,std=1e-300",
        *REPORT,
        says="float32",
    ),
    _r("--preprocess NaN", "{d}/small.keras", "--preprocess", "scale=nan", *REPORT, says="finite"),
    _r("--preprocess inf", "{d}/small.keras", "--preprocess", "scale=inf", *REPORT, says="finite"),
    _r(
        "weights all 3e38 gate",
        "{d}/huge.keras",
        "--sections",
        "weights,findings",
        "--fail-on",
        "warning",
        status=1,
        writes=True,
        says="findings at or above",
        check="exploding_scale",
    ),
    _r(
        "weights all 3e38, every section",
        "{d}/huge.keras",
        "--fail-on",
        "warning",
        status=1,
        writes=True,
        says="findings at or above",
        check="exploding_scale",
    ),
    # --- hostile names
    # ----------------------------------------------------------------------------------------
    _r(
        "layer named c\\x0btwo in JUnit",
        "{d}/ctwo.keras",
        "--sections",
        "findings",
        "--fail-on",
        "warning",
        "--junit",
        "{w}/j.xml",
        status=1,
        writes=True,
        says="findings at or above",
        check="junit_parses",
    ),
    # --- index
    # -----------------------------------------------------------------------------------------------
    Case(
        "index with damaged report.json files",
        ("index", "{d}/ix", "--no-drift", "--quiet"),
        0,
        says="skipped",
        writes=True,
    ),
    Case(
        "index of only damaged report.json files",
        ("index", "{d}/ixbad", "--no-drift", "--quiet"),
        2,
        says="not reports",
    ),
    Case("index of a FIFO", ("index", "{d}/fifo.toml", "--quiet"), 2, says="FIFO"),
    Case("index of a symlink loop", ("index", "{d}/loopdir", "--quiet"), 2, says="loop"),
    # --- compare and arguments
    # -------------------------------------------------------------------------------
    Case(
        "compare with a FIFO",
        ("compare", "{d}/fifo.keras", "{d}/small.keras", "--out", "{out}", "--quiet"),
        2,
        says="FIFO",
    ),
    _r("--sample -1", "{d}/small.keras", "--sample", "-1", *REPORT),
    _r("unknown flag", "{d}/small.keras", "--frobnicate", *REPORT, says="unrecognized"),
    _r("--input-shape garbage", "{d}/small.keras", "--input-shape", "a,b", *REPORT),
    _r("--seed not a number", "{d}/small.keras", "--seed", "x", *REPORT),
]


# --- the files the cases read ------------------------------------------------------------------------------


def _tiny(conv: str = "conv_a", filters: int = 4):
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(filters, 3, activation="relu", padding="same", name=conv),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(3, activation="softmax", name="head"),
        ],
        name="tiny",
    )


def _rezip(src: Path, dst: Path, replace: dict) -> None:
    import zipfile

    with zipfile.ZipFile(src) as z:
        items = {n: z.read(n) for n in z.namelist()}
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as z:
        for n, v in items.items():
            z.writestr(n, replace.get(n, v))


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` pixels (no real pixel data follows)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _npy_header(shape: tuple, descr: str = "<f4") -> bytes:
    """A .npy file of a header alone: it declares ``shape`` and holds no data (228 bytes for 1e5 x 1e5 x
    3)."""
    import numpy as np

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def build_fixtures(d: Path) -> None:
    """Every file the cases read, in ``d`` (made once; about a second)."""
    import json as _json

    import numpy as np
    from PIL import Image

    d.mkdir(parents=True, exist_ok=True)
    m = _tiny()
    m.save(d / "small.keras")
    shutil.copy(d / "small.keras", d / "small2.keras")

    m = _tiny(conv="c\x0btwo")
    k, b = m.layers[0].get_weights()
    k[..., 0], b[0] = 0.0, 0.0  # a dead filter on the hostile name
    m.layers[0].set_weights([k, b])
    m.save(d / "ctwo.keras")
    m = _tiny()
    m.set_weights([np.full(w.shape, 3e38, w.dtype) for w in m.get_weights()])
    m.save(d / "huge.keras")
    import zipfile

    with zipfile.ZipFile(d / "small.keras") as z:
        config = _json.loads(z.read("config.json"))
    gadget = _json.loads(_json.dumps(config))
    gadget["config"]["layers"][1] = {
        "module": "os",
        "class_name": "system",
        "registered_name": "system",
        "config": {"command": f"touch {d}/pwned"},
    }
    _rezip(d / "small.keras", d / "gadget.keras", {"config.json": _json.dumps(gadget)})
    _tiny(filters=6).save(d / "six.keras")
    with zipfile.ZipFile(d / "six.keras") as z:
        six_config = z.read("config.json")
    _rezip(d / "small.keras", d / "wrongshape.keras", {"config.json": six_config})
    _rezip(d / "small.keras", d / "bomb.keras", {"config.json": _json.dumps(config) + " " * 65_000_000})
    (d / "empty.keras").write_bytes(b"")
    (d / "text.keras").write_text("not a model\n")
    data = (d / "small.keras").read_bytes()
    (d / "trunc.keras").write_bytes(data[: len(data) // 2])
    (d / "dir.keras").mkdir()
    for name in ("fifo.keras", "fifo_noext", "fifo.png", "fifo.toml", "fifo.txt"):
        os.mkfifo(d / name)
    for name in ("zero.keras", "zero.png", "zero.toml", "zero.txt"):
        os.symlink("/dev/zero", d / name)
    for name in ("loop.keras", "loop.png", "loop.toml", "loop.txt", "loopdir"):
        os.symlink(name, d / name)
    os.symlink("nothere.keras", d / "dangling.keras")
    os.symlink("nothere.toml", d / "dangling.toml")
    shutil.copy(d / "small.keras", d / "perm.keras")
    (d / "locked").mkdir()
    shutil.copy(d / "small.keras", d / "locked" / "small.keras")
    for name in ("img.png", "c.toml", "n.txt"):
        (d / "locked" / name).write_bytes(b"")
    (d / "rofolder").mkdir()
    (d / "models").mkdir()
    shutil.copy(d / "small.keras", d / "models" / "a.keras")
    os.mkfifo(d / "models" / "b.keras")
    # images
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(d / "img.png")
    (d / "bomb.npy").write_bytes(_npy_header((100_000, 100_000, 3)))
    (d / "trunc.npy").write_bytes(_npy_header((100, 100, 3)))
    np.save(d / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (d / "bomb.png").write_bytes(_png_header(100_000, 100_000))
    with open(d / "huge.png", "wb") as fh:
        fh.truncate(300_000_000)  # sparse: no disk used
    (d / "garbage.png").write_bytes(b"\x89PNG garbage" * 10)
    shutil.copy(d / "img.png", d / "perm.png")
    imgs = d / "imgs"
    imgs.mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(imgs / f"good{i}.png")
    os.mkfifo(imgs / "fifo.png")
    os.symlink("/dev/zero", imgs / "zero.png")
    os.symlink("loop.png", imgs / "loop.png")
    shutil.copy(d / "bomb.npy", imgs / "bomb.npy")
    shutil.copy(d / "bomb.png", imgs / "bomb.png")
    shutil.copy(d / "trunc.npy", imgs / "trunc.npy")
    bad = d / "badimgs"
    bad.mkdir()
    os.mkfifo(bad / "fifo.png")
    shutil.copy(d / "bomb.npy", bad / "bomb.npy")
    # text inputs
    (d / "bin.toml").write_bytes(bytes(range(256)) * 4)
    (d / "bin.txt").write_bytes(b"\xff\xfe\x00" * 100)
    for name in ("big.toml", "big.txt"):
        with open(d / name, "wb") as fh:
            fh.truncate(2_000_000)
    (d / "bad.toml").write_text("dead_kernel_norm = = 3\n")
    (d / "perm.toml").write_text("")
    for name in ("perm.keras", "perm.png", "perm.toml"):
        os.chmod(d / name, 0)
    os.chmod(d / "locked", 0)
    os.chmod(d / "rofolder", 0o555)


def _prior_report(out: Path, d: Path) -> None:
    """The earlier good report every refusal must leave intact: ``out/small``."""
    from reportgen.cli import main

    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        status = main(
            [
                str(d / "small.keras"),
                "--out",
                str(out),
                "--format",
                "json",
                "--sections",
                "overview",
                "--quiet",
            ]
        )
    if status != 0:
        raise RuntimeError(f"the earlier report could not be written (exit {status})")


def _index_folders(d: Path, out: Path) -> None:
    for name, bad in (("ix", False), ("ixbad", True)):
        root = d / name
        root.mkdir(exist_ok=True)
        if not bad:
            shutil.copytree(out / "small", root / "small")
        (root / "list").mkdir()
        (root / "list" / "report.json").write_text("[]")
        (root / "binary").mkdir()
        (root / "binary" / "report.json").write_bytes(b"\xff\xfe{")
        (root / "findings").mkdir()
        (root / "findings" / "report.json").write_text('{"findings": [{"kind": 5}]}')


def tree_hash(folder: Path) -> str:
    """One SHA-256 over every file (name, size, bytes) and folder name below ``folder``: any change shows."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(dirs):
            digest.update(
                f"D {os.path.relpath(os.path.join(root, name), folder)}\n".encode("utf-8", "surrogateescape")
            )
        for name in sorted(files):
            path = os.path.join(root, name)
            digest.update(f"F {os.path.relpath(path, folder)}\n".encode("utf-8", "surrogateescape"))
            if os.path.isfile(path):
                with open(path, "rb") as fh:
                    digest.update(hashlib.sha256(fh.read()).digest())
    return digest.hexdigest()


def leftovers(*folders: Path) -> list[str]:
    """Temporary or moved-aside files and folders of a writer below ``folders``."""
    found = []
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            for name in dirs + files:
                if name.startswith(".") and any(mark in name for mark in LEFTOVER_MARKS):
                    found.append(os.path.join(root, name))
    return found


# --- faults injected into one run ------------------------------------------------------------------------


@contextlib.contextmanager
def _faults(kind: str | None, w: Path):
    """``enospc``: the disk fills as report.json is written; ``sigterm``/``sighup``: the signal arrives as the
    finished report is moved into place; ``stale``: a dead writer's temporary and moved-aside folders wait in
    the output folder."""
    from reportgen import render

    if kind is None:
        yield
        return
    if kind == "stale":
        import subprocess

        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()  # its pid is free now: a writer that died
        owner = f"{dead.pid}-{render._host()}"
        for name in (f".small.tmp-{owner}-abc123", f".small.old-{owner}-def456"):
            (w / name).mkdir(parents=True)
            (w / name / "report.json").write_text("{half")
        yield
        return
    if kind == "enospc":
        import errno

        real = render.json

        class _Full:
            def __getattr__(self, name):
                return getattr(real, name)

            @staticmethod
            def dump(obj, fh, **kw):
                fh.write("{")
                raise OSError(errno.ENOSPC, "No space left on device", getattr(fh, "name", None))

        render.json = _Full()
        try:
            yield
        finally:
            render.json = real
        return
    signum = {"sigterm": signal.SIGTERM, "sighup": signal.SIGHUP}[kind]
    real_replace = render._replace

    def replace(tmp, final):
        os.kill(os.getpid(), signum)  # the handler raises at the next bytecode: mid-write
        return real_replace(tmp, final)

    render._replace = replace
    try:
        yield
    finally:
        render._replace = real_replace


# --- extra checks of what a writing case wrote
# ---------------------------------------------------------------


def _check(kind: str | None, w: Path) -> str | None:
    """None when the written output is as promised, else what is wrong."""
    if kind is None:
        return None
    if kind == "junit_parses":
        import xml.etree.ElementTree as ET

        try:
            root = ET.parse(w / "j.xml").getroot()
        except (ET.ParseError, OSError) as exc:
            return f"the JUnit file does not parse: {exc}"
        fails = [f for f in root.iter("failure") if f.get("type") == "dead_filter"]
        if root.get("failures") != "1" or not fails or "two" not in (fails[0].get("message") or ""):
            return f"the JUnit file does not list the dead filter ({root.attrib})"
        return None
    report = json.loads(next(w.glob("*/report.json")).read_text())
    if kind == "skipped_by_reason":
        got = report["dataset"].get("skipped_by_reason")
        want = {
            "a FIFO (named pipe)": 1,
            "a character device": 1,
            "a symlink loop": 1,
            "over the size cap": 2,
            "truncated": 1,
        }
        if got != want or report["dataset"]["images"] != 3:
            return f"skipped_by_reason {got}, images {report['dataset']['images']}; want {want} and 3 images"
        return None
    if kind == "exploding_scale":
        kinds = {f["kind"] for f in report["findings"]}
        if "exploding_scale" not in kinds or report.get("section_errors"):
            return f"findings {sorted(kinds)}, section errors {report.get('section_errors')}"
        return None
    if kind == "stale_removed":
        return None  # the leftovers check of every case finds them when they stay
    return f"unknown check {kind}"


# --- the runner ---------------------------------------------------------------------------------------------


class _Hung(BaseException):
    """A case ran past its time limit."""


def _alarm(signum, frame):
    raise _Hung


def run_case(case: Case, d: Path, out: Path, w: Path) -> dict:
    """Run one case through ``reportgen.cli.main`` in this process; returns what happened and what is
    wrong."""
    from reportgen.cli import main

    w.mkdir(parents=True, exist_ok=True)
    argv = [a.replace("{d}", str(d)).replace("{out}", str(out)).replace("{w}", str(w)) for a in case.argv]
    before = tree_hash(out)
    saved_env = {k: os.environ.get(k) for k in case.env}
    os.environ.update(case.env)
    err, stdout = io.StringIO(), io.StringIO()
    status: int | str
    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_SECONDS)
    try:
        with _faults(case.fault, w), contextlib.redirect_stderr(err), contextlib.redirect_stdout(stdout):
            status = main(argv)
    except _Hung:
        status = "hung"
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # noqa: BLE001  (escaped main(): a broken promise, recorded)
        status = f"raised {type(exc).__name__}: {exc}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.monotonic() - started
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    problems = []
    if status != case.status:
        problems.append(f"exit {status}, promised {case.status}")
    if case.lines is not None and len(lines) != case.lines:
        problems.append(f"{len(lines)} stderr lines, promised {case.lines}: {lines[:4]}")
    if case.says and not any(case.says.lower() in line.lower() for line in lines):
        problems.append(f"stderr does not say '{case.says}': {lines[:2]}")
    if any("Traceback" in line for line in lines):
        problems.append("a traceback on stderr")
    if tree_hash(out) != before:
        problems.append("the earlier report or the output folder changed")
    left = leftovers(out, w, d)
    if left:
        problems.append(f"leftovers: {left[:3]}")
    if not case.writes and any(w.iterdir()):
        problems.append(f"wrote {sorted(p.name for p in w.iterdir())}")
    if case.writes and status == case.status and not problems:
        try:
            wrong = _check(case.check, w)
        except Exception as exc:  # noqa: BLE001  (a missing or malformed output is a failed check)
            wrong = f"{type(exc).__name__}: {exc}"
        if wrong:
            problems.append(wrong)
    if (d / "pwned").exists():
        problems.append("the config gadget ran code")
    return {
        "name": case.name,
        "status": status,
        "stderr": lines[:3],
        "seconds": round(seconds, 2),
        "problems": problems,
    }


def run(d: Path, names: list[str] | None = None) -> list[dict]:
    """Run the cases (all, or those ``names``) in this process, with their fixtures under ``d``."""
    import reportgen  # noqa: F401  (quiets TensorFlow)

    want = [c for c in CASES if names is None or c.name in names]
    if not (d / ".built").exists():
        build_fixtures(d)
        out = d / "out"
        _prior_report(out, d)
        _index_folders(d, out)
        (d / ".built").write_text("")
    results = []
    mine = [c for c in want if c.root or os.geteuid() != 0]
    other = [c for c in want if c not in mine]
    for i, case in enumerate(mine):
        results.append(run_case(case, d, d / "out", d / "w" / f"{i:03d}"))
    if other:
        # Root reads any file: the permission cases run with this process's effective user unprivileged
        # (Linux drops the file-permission capabilities with it), in folders that user may write.
        folders = [d / "w" / f"u{i:03d}" for i in range(len(other))]
        for folder in folders + [d / "out"]:  # {out} too: a refusal must come before any write is tried
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, 0o777)
        try:
            os.seteuid(NOBODY)
        except OSError as exc:  # a root without CAP_SETUID (some containers): these cases cannot be staged
            return results + [
                {
                    "name": c.name,
                    "status": None,
                    "stderr": [],
                    "seconds": 0.0,
                    "problems": [],
                    "skipped": f"cannot become an unprivileged user ({exc.strerror})",
                }
                for c in other
            ]
        try:
            for case, folder in zip(other, folders):
                results.append(run_case(case, d, d / "out", folder))
        finally:
            os.seteuid(0)
    return results


NOBODY = 65534


def limits(memory: int = MEMORY_CAP):
    """A ``preexec_fn``: the child's memory cap, and no core files."""

    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def spawn(d: Path, results: Path, names: list[str] | None = None, timeout: float = 300.0) -> list[dict]:
    """Run the cases in a child process with :func:`limits`, in its own process group; the group is killed
    when the child overruns ``timeout``. Returns the cases' results (a case the child never reached:
    absent)."""
    import subprocess

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    cmd = [sys.executable, str(Path(__file__).resolve()), str(d), str(results)] + list(names or [])
    child = subprocess.Popen(
        cmd,
        env=env,
        preexec_fn=limits(),
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=str(d.parent),
    )
    try:
        _, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        raise RuntimeError(f"the fuzz child overran {timeout:.0f} s and was killed with its process group")
    if child.returncode != 0 or not results.exists():
        raise RuntimeError(
            f"the fuzz child failed (exit {child.returncode}): {err.decode(errors='replace')[-2000:]}"
        )
    return json.loads(results.read_text())


def run_all(base: Path, timeout: float = 300.0) -> list[dict]:
    """Every case, in one child process (see :func:`run`)."""
    return spawn(base / "fx", base / "results.json", None, timeout)


def main(argv: list[str]) -> int:
    d, results = Path(argv[0]), Path(argv[1])
    names = argv[2:] or None
    out = run(d, names)
    results.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
