"""The robustness pass, per condition, against a plain compiled ``model.predict`` over the same images.

For each condition (the clean images, each corruption at each severity, FGSM and PGD at each budget) the
pass's time -- corrupting or attacking the images included -- is set against ``model.predict`` (Keras' own
compiled predict) over the same, already preprocessed, images in the same batch size. The issue's target is at
most 1.2x for a corruption condition: the forward pass dominates where the model is large; for a small model
the corruption itself (NumPy/SciPy, one image at a time) dominates and the ratio says so. An attack condition
costs its gradients (FGSM one, PGD ``--pgd-steps``), so its ratio is shown against predict too, for scale.

Models: ``demo`` (reportgen's demo CNN, trained if ``reports/best-cnn-model/best-cnn-model.keras`` is missing;
28x28 grey digits), ``vgg16`` and ``efficientnet_b0`` (``weights=None``: the cost does not depend on the
weights; 224x224 RGB, Matplotlib's sample photo with its colours shifted per image).

Usage: ``python bench/robustness.py demo --images 256`` / ``python bench/robustness.py vgg16 --images 8``
(TensorFlow backend; VGG16 at 8 images: ~3 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import reportgen  # noqa: E402,F401

import numpy as np  # noqa: E402


def model_and_images(name: str, n: int):
    import keras

    from reportgen.preprocessing import Preprocessor

    if name == "demo":
        from pathlib import Path

        from reportgen.demo import load_digits_28

        path = Path("reports/best-cnn-model/best-cnn-model.keras")
        if not path.exists():
            from reportgen.demo import train

            path = train(Path("reports"))[0]
        model = keras.saving.load_model(path)
        imgs, labels, _ = load_digits_28()
        return model, imgs[-n:, ..., None].astype(np.float32), labels[-n:], Preprocessor("unit")
    from PIL import Image

    from reportgen.images.prepared import sample_photo_path

    model = {"vgg16": keras.applications.VGG16, "efficientnet_b0": keras.applications.EfficientNetB0}[name](
        weights=None
    )
    photo = np.asarray(Image.open(sample_photo_path()).convert("RGB").resize((224, 224)), np.float32)
    shift = np.random.default_rng(0).uniform(-40, 40, (n, 1, 1, 3)).astype(np.float32)
    pre = Preprocessor("caffe") if name == "vgg16" else Preprocessor("none")
    return model, np.clip(photo[None] + shift, 0, 255), np.zeros(n, np.int64), pre


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", choices=("demo", "vgg16", "efficientnet_b0"))
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--corruptions", default=None, help="comma-separated (default: all 14)")
    ap.add_argument("--epsilons", default="1,2,4,8")
    ap.add_argument("--pgd-steps", type=int, default=10)
    args = ap.parse_args()

    from reportgen import backend
    from reportgen.analyses import robustness as R
    from reportgen.analyses.cam import classifier_head
    from reportgen.analyses.robustness.classifier import PixelClassifier

    model, x, y, pre = model_and_images(args.model, args.images)
    head = classifier_head(model)
    names = tuple(args.corruptions.split(",")) if args.corruptions else R.C.NAMES
    eps = tuple(float(e) for e in args.epsilons.split(","))
    with backend.precision():
        clf = PixelClassifier(model, head, pre, x.shape[-1])
        xp = pre.forward(x)
        model.predict(
            xp, batch_size=clf.forward_batch, verbose=0
        )  # compiled at every batch size before timing
        t = time.perf_counter()
        model.predict(xp, batch_size=clf.forward_batch, verbose=0)
        predict = time.perf_counter() - t
        t = time.perf_counter()
        r = R.measure(clf, x, y, list(range(len(x))), names, eps, args.pgd_steps, seed=0)
        total = time.perf_counter() - t
    print(
        f"{args.model}: {len(x)} images {x.shape[1:]}, batch "
        f"{clf.forward_batch}; model.predict {predict:.3f} s "
        f"({1000 * predict / len(x):.1f} ms an image); the whole pass {total:.1f} s"
    )
    print(f"{'condition':<26}{'seconds':>9}{'x predict':>11}")
    print(f"{'clean (our forward)':<26}{r.clean.seconds:>9.3f}{r.clean.seconds / predict:>11.2f}")
    worst = 0.0
    for (n, s), c in r.corrupted.items():
        worst = max(worst, c.seconds / predict)
        print(f"{n + ' ' + str(s):<26}{c.seconds:>9.3f}{c.seconds / predict:>11.2f}")
    for (m, e), c in r.adversarial.items():
        print(f"{m + ' eps=' + format(e, 'g'):<26}{c.seconds:>9.3f}{c.seconds / predict:>11.2f}")
    ratios = sorted(c.seconds / predict for c in r.corrupted.values())
    print(
        f"corruption conditions: median {np.median(ratios):.2f}x predict, worst {worst:.2f}x; "
        f"{sum(v <= 1.2 for v in ratios)} of {len(ratios)} within 1.2x"
    )


if __name__ == "__main__":
    main()
