"""The data-set pass against ``model.predict`` plus plain Grad-CAM gradients, and its memory with more images.

ONE run, on the trained VGG16-size network of ``bench/trained_vgg16.py``
(32x32 RGB digits, 14.7M parameters) and 2,000 images (scikit-learn's digits,
shifted copies to make up the number):

- **reference**: ``model.predict`` over the images, plus the Grad-CAM of each
  image's predicted class written the keras-io way (a two-output model, a
  ``tf.GradientTape``, pooled gradients), compiled with ``tf.function``, in
  the same batches;
- **ours**: :func:`reportgen.analyses.dataset.run_pass` on the same in-memory
  batches (outputs, every unit's statistics, the Grad-CAM maps, running sums),
  and the whole ``reportgen MODEL --images DIR --sections dataset`` command
  from PNG files on disk;
- **memory**: the peak RSS of that command with 100 and with 2,000 images
  (each its own process, ``wait4``).

Usage: ``python bench/dataset.py`` (TensorFlow backend; ~3 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import reportgen  # noqa: E402,F401

import numpy as np  # noqa: E402


def images(n: int) -> tuple[np.ndarray, np.ndarray]:
    import trained_vgg16

    x, y = trained_vgg16.digits_rgb()
    reps = -(-n // len(x))
    xs = [np.roll(x, k, axis=2) for k in range(reps)]
    return np.concatenate(xs)[:n], np.tile(y, reps)[:n]


def write_folder(root: Path, x: np.ndarray, y: np.ndarray) -> None:
    from PIL import Image

    for i, (im, label) in enumerate(zip(x, y)):
        d = root / str(label)
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(d / f"{i:05d}.png")


def peak_rss(cmd: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in GB) of one child process."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{proc.stderr.read().decode()[-2000:]}")
    return time.perf_counter() - t, usage.ru_maxrss / 1024 / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--small", type=int, default=100)
    args = p.parse_args()

    import keras
    import tensorflow as tf

    import trained_vgg16
    from reportgen import backend, graph
    from reportgen.analyses import dataset as D
    from reportgen.analyses.cam import classifier_head, find_target_layer

    backend.import_keras()
    path = trained_vgg16.ensure()
    model = keras.saving.load_model(path)
    x8, y = images(args.images)
    x = x8.astype("float32")  # the model rescales inside: pixels 0..255
    head = classifier_head(model)
    layer = find_target_layer(model).path
    size = D.batch_size(model)
    print(f"{args.images} images, batches of {size}, CAM layer {layer}")

    # reference: predict, then keras-io Grad-CAM of the predicted class, compiled, same batches
    conv = graph.flat_graph(model).by_path[layer]
    final = graph.flat_graph(model).args_by_path[head.final_path][0]
    dense = model.get_layer(head.final_path)
    grad_model = keras.Model(graph.flat_graph(model).inputs, [conv, final])

    @tf.function
    def gradcam(batch):
        with tf.GradientTape() as tape:
            a, h = grad_model(batch, training=False)
            tape.watch(a)
            logits = tf.matmul(h, dense.kernel) + dense.bias
            c = tf.argmax(logits, axis=1)
            score = tf.reduce_sum(tf.gather(logits, c, axis=1, batch_dims=1))
        g = tape.gradient(score, a)
        return tf.nn.relu(tf.einsum("nhwk,nk->nhw", a, tf.reduce_mean(g, axis=(1, 2))))

    model.predict(x[:size], batch_size=size, verbose=0)
    gradcam(x[:size])
    t = time.perf_counter()
    model.predict(x, batch_size=size, verbose=0)
    t_predict = time.perf_counter() - t
    t = time.perf_counter()
    for lo in range(0, len(x), size):
        gradcam(x[lo : lo + size]).numpy()
    t_gradcam = time.perf_counter() - t

    def arrays():
        for lo in range(0, len(x), size):
            yield x[lo : lo + size], y[lo : lo + size], list(range(lo, min(lo + size, len(x))))

    D.run_pass(model, head, layer, ((a[:size], b[:size], c[:size]) for a, b, c in arrays()), 10)  # compile
    stats = D.run_pass(model, head, layer, arrays(), 10)
    t_ours = stats.seconds
    print(
        f"model.predict {t_predict:.1f} s + plain Grad-CAM "
        f"{t_gradcam:.1f} s = {t_predict + t_gradcam:.1f} s; "
        f"ours {t_ours:.1f} s = {t_ours / (t_predict + t_gradcam):.2f}x; accuracy {stats.accuracy:.4f}"
    )

    # against the machine: the pass's FLOPs (a forward pass, 2 per multiply-add, plus the backward from
    # the output to the CAM layer, input gradients only: 2 per multiply-add) over a compiled 2048^3 matmul
    from reportgen.analyses.patterns.cost import macs_up_to

    side = int(model.input_shape[1])
    total = macs_up_to(model, head.final_path, side)
    upto = macs_up_to(model, layer, side)
    flops = len(x) * (2 * total + 2 * (total - upto))
    a = tf.random.normal((2048, 2048))
    mm = tf.function(lambda m: m @ m)
    mm(a).numpy()
    t = time.perf_counter()
    for _ in range(10):
        mm(a).numpy()
    rate = 10 * 2 * 2048**3 / (time.perf_counter() - t)
    print(
        f"matmul {rate / 1e9:.0f} GFLOP/s; the pass {flops / t_ours / 1e9:.1f} GFLOP/s = "
        f"{100 * flops / t_ours / rate:.1f}% of it ({flops / 1e9:.0f} GFLOP)"
    )

    tmp = Path(tempfile.mkdtemp(prefix="dataset-bench-"))
    try:
        small, large = tmp / "small", tmp / "large"
        write_folder(small, x8[: args.small], y[: args.small])
        write_folder(large, x8, y)
        rows = []
        for folder, n in ((small, args.small), (large, args.images)):
            cmd = [
                sys.executable,
                "-m",
                "reportgen",
                str(path),
                "--images",
                str(folder),
                "--sections",
                "dataset",
                "--format",
                "json",
                "--out",
                str(tmp / "out"),
                "--quiet",
            ]
            sec, rss = peak_rss(cmd)
            rows.append((n, sec, rss))
            print(
                f"reportgen --images ({n} PNG files) --sections dataset: {sec:.1f} s, peak RSS {rss:.2f} GB",
                flush=True,
            )
        print(f"\npeak RSS {rows[1][0]} images / {rows[0][0]} images = {rows[1][2] / rows[0][2]:.2f}")
        print("\n| measure | value |\n|---|---:|")
        print(f"| model.predict, {args.images} images | {t_predict:.1f} s |")
        print(f"| plain Grad-CAM (keras-io, tf.function), predicted class | {t_gradcam:.1f} s |")
        print(f"| reference total | {t_predict + t_gradcam:.1f} s |")
        print(
            f"| ours (data-set pass: outputs, unit statistics, Grad-CAM, running sums) | {t_ours:.1f} s "
            f"= **{t_ours / (t_predict + t_gradcam):.2f}x** |"
        )
        print(
            f"| the pass against the machine: {flops / 1e9:.0f} GFLOP at {flops / t_ours / 1e9:.1f} GFLOP/s, "
            f"matmul {rate / 1e9:.0f} GFLOP/s | {100 * flops / t_ours / rate:.1f}% |"
        )
        for n, sec, rss in rows:
            print(
                f"| `reportgen ... --images` ({n} PNG files, whole "
                f"command) | {sec:.1f} s, peak RSS {rss:.2f} GB |"
            )
        print(f"| peak RSS ratio, {rows[1][0]} / {rows[0][0]} images | **{rows[1][2] / rows[0][2]:.2f}** |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
