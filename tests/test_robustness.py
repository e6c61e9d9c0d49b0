"""The robustness section: each corruption against its published formula, the attacks against hand-written
ones, determinism and exact merging, the section end to end, and the other backends.

Independent truths: the paper's parameter tables typed in from ``make_imagenet_c.py`` (Hendrycks &
Dietterich 2019); statistics of the noise on flat images; Matplotlib's HSV conversion; Pillow's JPEG and box
resize; FGSM and PGD written out with ``tf.GradientTape`` on the model and ``/ 255`` by hand.
"""

from __future__ import annotations

import reportgen  # noqa: F401

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from reportgen import backend
from reportgen.analyses import robustness as R
from reportgen.analyses.robustness import attacks as A
from reportgen.analyses.robustness import corruptions as C
from reportgen.analyses.robustness.classifier import PixelClassifier
from reportgen.analyses.robustness.corruptions import _ops
from reportgen.analyses.cam import classifier_head
from reportgen.preprocessing import Preprocessor

HERE = Path(__file__).resolve().parent
SCHEMA = json.loads((HERE.parent / "docs" / "report.schema.json").read_text())

# make_imagenet_c.py's tables, severity 1..5 (hendrycks/robustness, ImageNet-C/create_c).
PAPER = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
    "shot_noise": (60, 25, 12, 5, 3),
    "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),
    "defocus_blur": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
    "glass_blur": ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
    "motion_blur": ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
    "snow": (
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
        (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
        (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
        (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
    ),
    "fog": ((1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)),
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
    "elastic_transform": (
        (244 * 2, 244 * 0.7, 244 * 0.1),
        (244 * 2, 244 * 0.08, 244 * 0.2),
        (244 * 0.05, 244 * 0.01, 244 * 0.02),
        (244 * 0.07, 244 * 0.01, 244 * 0.02),
        (244 * 0.12, 244 * 0.01, 244 * 0.02),
    ),
    "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),
    "jpeg_compression": (25, 18, 15, 10, 7),
}
ZOOMS = [
    np.arange(1, 1.11, 0.01),
    np.arange(1, 1.16, 0.01),
    np.arange(1, 1.21, 0.02),
    np.arange(1, 1.26, 0.02),
    np.arange(1, 1.31, 0.03),
]


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """Matplotlib's Grace Hopper photo, 224 x 224 RGB, pixels 0-255."""
    from reportgen.images.prepared import sample_photo_path

    return np.asarray(Image.open(sample_photo_path()).convert("RGB").resize((224, 224)), np.float64)


def test_the_published_parameters_and_names():
    from reportgen.options import CORRUPTIONS

    assert (
        C.NAMES == tuple(n for n in C.PAPER_ORDER if n != "frost") == CORRUPTIONS
    )  # the flag's list, Keras-free
    assert "frost" in C.LEFT_OUT
    for name, table in PAPER.items():
        assert C.REGISTRY[name].parameters == tuple(table), name
    for sev, factors in enumerate(ZOOMS, 1):
        np.testing.assert_allclose(np.arange(*C.REGISTRY["zoom_blur"].parameters[sev - 1]), factors)


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_noises_have_their_published_statistics(severity):
    flat = np.full((200, 200, 3), 127.5)
    rng = lambda name: C.rng_for(0, name, severity, 0)  # noqa: E731
    d = (C.corrupt(flat, "gaussian_noise", severity, rng("gaussian_noise")) - 127.5) / 255
    sigma = np.median(np.abs(d)) / 0.6745  # robust to the clipping of the largest draws
    assert sigma == pytest.approx(PAPER["gaussian_noise"][severity - 1], rel=0.03)
    c = PAPER["shot_noise"][severity - 1]
    s = C.corrupt(flat, "shot_noise", severity, rng("shot_noise")) / 255
    from scipy.stats import poisson

    k = np.arange(200)
    v = np.clip(k / c, 0, 1)  # Poisson(x c) / c, clipped: its exact mean and variance at x = 0.5
    mean = (poisson.pmf(k, 0.5 * c) * v).sum()
    assert s.mean() == pytest.approx(mean, rel=0.02)
    assert s.var() == pytest.approx((poisson.pmf(k, 0.5 * c) * (v - mean) ** 2).sum(), rel=0.05)
    imp = C.corrupt(flat, "impulse_noise", severity, rng("impulse_noise"))
    assert (imp != 127.5).mean() == pytest.approx(PAPER["impulse_noise"][severity - 1], abs=0.005)
    assert (imp == 255).sum() == pytest.approx((imp == 0).sum(), rel=0.1)


def test_contrast_brightness_jpeg_pixelate_follow_their_formulas(photo):
    import matplotlib.colors as mc

    x = photo / 255
    for sev in (1, 3, 5):
        rng = C.rng_for(0, "x", sev, 0)
        c = PAPER["contrast"][sev - 1]
        m = x.mean(axis=(0, 1), keepdims=True)
        np.testing.assert_allclose(
            C.corrupt(photo, "contrast", sev, rng), np.clip((x - m) * c + m, 0, 1) * 255, atol=1e-3
        )
        hsv = mc.rgb_to_hsv(x)  # Matplotlib's conversion, not reportgen's
        hsv[..., 2] = np.clip(hsv[..., 2] + PAPER["brightness"][sev - 1], 0, 1)
        np.testing.assert_allclose(
            C.corrupt(photo, "brightness", sev, rng), mc.hsv_to_rgb(hsv) * 255, atol=1e-3
        )
        q = PAPER["jpeg_compression"][sev - 1]
        import io

        buf = io.BytesIO()
        Image.fromarray(photo.astype(np.uint8)).save(buf, "JPEG", quality=q)
        expected = np.asarray(Image.open(buf), np.float64)
        np.testing.assert_array_equal(C.corrupt(photo, "jpeg_compression", sev, rng), expected)
        p = PAPER["pixelate"][sev - 1]
        small = Image.fromarray(photo.astype(np.uint8)).resize((int(224 * p),) * 2, Image.BOX)
        np.testing.assert_array_equal(
            C.corrupt(photo, "pixelate", sev, rng),
            np.asarray(small.resize((224, 224), Image.BOX), np.float64),
        )


def test_blurs_follow_their_definitions(photo):
    rng = C.rng_for(0, "x", 1, 0)
    flat = np.full((40, 40, 3), 90.0)
    for name in ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"):
        # a blur of a constant image is the constant (kernels sum to one; glass blur only moves pixels)
        np.testing.assert_allclose(C.corrupt(flat, name, 3, rng), 90.0, atol=1.0, err_msg=name)
        out = C.corrupt(photo, name, 3, C.rng_for(0, name, 3, 0))
        assert out.std() < photo.std(), name
    k = _ops.disk(3, 0.1)  # radius 3, within the paper's 17 x 17 support
    assert k.shape == (17, 17) and k.sum() == pytest.approx(1.0)
    assert k[8, 8 + 4] < 1e-6 < k[8, 8 + 3]  # nothing outside the radius but the anti-aliasing's spill
    # zoom blur: the mean of the image and its centre zoomed by each published factor
    x = photo / 255
    expected = (x + sum(_ops.clipped_zoom(x, z) for z in ZOOMS[0])) / (len(ZOOMS[0]) + 1)
    np.testing.assert_allclose(
        C.corrupt(photo, "zoom_blur", 1, rng), np.clip(expected, 0, 1) * 255, atol=1e-3
    )


@pytest.mark.parametrize("shape", [(224, 224, 3), (28, 28, 1), (17, 23, 3), (9, 31, 1)])
def test_every_corruption_any_size_grey_or_colour_and_deterministic(shape):
    x = np.random.default_rng(4).uniform(0, 255, shape)
    for name in C.NAMES:
        a = C.corrupt(x, name, 3, C.rng_for(7, name, 3, 11))
        b = C.corrupt(x, name, 3, C.rng_for(7, name, 3, 11))
        assert a.shape == shape and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 255, name
        np.testing.assert_array_equal(a, b, err_msg=name)
        if name not in (
            "brightness",
            "contrast",
            "jpeg_compression",
            "pixelate",
            "defocus_blur",
            "zoom_blur",
        ):
            # other image keys: other draws (a small image's motion blur may round two angles to one kernel)
            assert any(
                not np.array_equal(a, C.corrupt(x, name, 3, C.rng_for(7, name, 3, k))) for k in (12, 13, 14)
            ), name


# --- the attacks -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    sys.path.insert(0, str(HERE))
    import digits_models as D

    x, y = D.digits()
    return D.trained(), (x[1500:1564] * 255).astype(np.float32), y[1500:1564]


def _by_hand_gradient(model, x, y):
    import tensorflow as tf

    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        p = model(xt / 255.0, training=False)
        loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(y, p))
    return tape.gradient(loss, xt).numpy()


@pytest.mark.skipif(
    backend.requested() != "tensorflow", reason="the hand-written attacks use tf.GradientTape"
)
def test_fgsm_and_pgd_equal_hand_written_ones(digits):
    model, x, y = digits
    clf = PixelClassifier(model, classifier_head(model), Preprocessor("unit"), 1)
    for eps in (2.0, 8.0):
        ours = A.fgsm(clf, x, y, eps)
        g = _by_hand_gradient(model, x, y)
        theirs = np.clip(x + eps * np.sign(g), 0, 255)
        differ = ours != theirs
        assert differ.mean() < 1e-3  # only where the gradient is ~0 and float round-off picks its sign
        assert np.all(np.abs(g[differ]) < 1e-6 * np.abs(g).max())
        p_ours = model(ours / 255.0).numpy().argmax(1)
        p_theirs = model(theirs / 255.0).numpy().argmax(1)
        assert (p_ours == y).mean() == (p_theirs == y).mean()
        # PGD (Madry et al. 2018): the same seeded start, 10 steps of eps / 4, projected
        keys = np.arange(len(x))
        ours = A.pgd(clf, x, y, eps, 10, 3, keys)
        adv = np.clip(
            x + eps * np.stack([A.start_rng(3, eps, k).uniform(-1, 1, x.shape[1:]) for k in keys]),
            np.clip(x - eps, 0, 255),
            np.clip(x + eps, 0, 255),
        ).astype(np.float32)
        for _ in range(10):
            adv = np.clip(adv + eps / 4 * np.sign(_by_hand_gradient(model, adv, y)), x - eps, x + eps)
            adv = np.clip(adv, 0, 255).astype(np.float32)
        acc = lambda a: (model(a / 255.0).numpy().argmax(1) == y).mean()  # noqa: E731
        assert abs(acc(ours) - acc(adv)) <= 0.01
        assert np.abs(ours - x).max() <= eps + 1e-4 and ours.min() >= 0 and ours.max() <= 255


def test_pgd_is_at_least_as_strong_as_fgsm_and_stays_in_budget(digits):
    model, x, y = digits
    clf = PixelClassifier(model, classifier_head(model), Preprocessor("unit"), 1)

    def loss(a):
        p = clf.probabilities(a)
        return -np.log(p[np.arange(len(y)), y] + 1e-12).mean()

    for eps in (4.0, 16.0):
        f, p = A.fgsm(clf, x, y, eps), A.pgd(clf, x, y, eps, 10, 0, np.arange(len(x)))
        assert loss(p) >= loss(f) - 1e-3 > loss(x)
        assert np.abs(p - x).max() <= eps + 1e-4


def test_two_runs_identical_and_shards_merge_exactly(digits):
    model, x, y = digits
    clf = PixelClassifier(model, classifier_head(model), Preprocessor("unit"), 1)
    names, eps = ("gaussian_noise", "glass_blur", "fog"), (2.0,)
    keys = list(range(100, 100 + len(x)))
    a = R.measure(clf, x, y, keys, names, eps, 3, seed=5)
    b = R.measure(clf, x, y, keys, names, eps, 3, seed=5)
    halves = [
        R.measure(clf, x[:20], y[:20], keys[:20], names, eps, 3, seed=5),
        R.measure(clf, x[20:], y[20:], keys[20:], names, eps, 3, seed=5),
    ]
    merged = R.merge(halves)

    def numbers(r):
        return (
            {k: (c.images, c.correct, c.agree, round(c.confidence, 6)) for k, c in r.corrupted.items()},
            {k: (c.images, c.correct, c.agree, round(c.confidence, 6)) for k, c in r.adversarial.items()},
            (r.clean.images, r.clean.correct),
        )

    assert numbers(a) == numbers(b) == numbers(merged)
    assert a.clean_accuracy > 0.8 and a.relative_drop is not None


# --- the section, end to end ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folders(tmp_path_factory, digits):
    model, x, y = digits
    root = tmp_path_factory.mktemp("robustness")
    model.save(root / "digits.keras")
    (root / "names.txt").write_text(
        "\n".join(str(d) for d in range(10))
    )  # folders 0-9 name classes 0-9 when some are missing
    for i, (px, label) in enumerate(zip(x[:24], y[:24])):
        d = root / "labelled" / str(label)
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(px[..., 0].astype(np.uint8)).save(d / f"{i}.png")
        (root / "unlabelled").mkdir(exist_ok=True)
        Image.fromarray(px[..., 0].astype(np.uint8)).save(root / "unlabelled" / f"{i}.png")
    return root


FAST = (
    "--corruptions",
    "gaussian_noise,contrast,pixelate",
    "--epsilons",
    "2,8",
    "--pgd-steps",
    "3",
    "--preprocess",
    "unit",
    "--format",
    "json",
    "--quiet",
)


def test_section_end_to_end_labelled_and_findings(cli, folders, tmp_path):
    import jsonschema

    cfg = tmp_path / "t.toml"
    cfg.write_text("corruption_drop = 0.1\nadversarial_accuracy = 0.99\nadversarial_epsilon = 64.0\n")
    junit = tmp_path / "j.xml"
    res = cli(
        folders / "digits.keras",
        "--images",
        folders / "labelled",
        "--sections",
        "robustness,findings",
        "--class-names",
        folders / "names.txt",
        "--out",
        tmp_path,
        "--config",
        cfg,
        "--fail-on",
        "warning",
        "--junit",
        junit,
        *FAST,
        "--epsilons",
        "2,64",
    )
    assert res.status == 1, res.stderr
    data = json.loads((tmp_path / "digits" / "report.json").read_text())
    jsonschema.validate(data, SCHEMA)
    r = data["robustness"]
    assert r["images"] == 24 and r["measure"] == "accuracy" and r["clean_accuracy"] > 0.8
    assert {(c["name"], c["severity"]) for c in r["corruptions"]} == {
        (n, s) for n in ("gaussian_noise", "contrast", "pixelate") for s in range(1, 6)
    }
    assert [(a["method"], a["epsilon"], a["steps"]) for a in r["adversarial"]] == [
        ("fgsm", 2.0, 1),
        ("pgd", 2.0, 3),
        ("fgsm", 64.0, 1),
        ("pgd", 64.0, 3),
    ]
    kinds = {f["kind"] for f in data["findings"]}
    assert {"fragile_to_corruption", "adversarially_fragile"} <= kinds
    assert "adversarially_fragile" in junit.read_text()
    assert data["settings"]["epsilons"] == [2.0, 64.0]


def test_section_without_labels_gives_agreement(cli, folders, tmp_path):
    res = cli(
        folders / "digits.keras",
        "--images",
        folders / "unlabelled",
        "--sections",
        "robustness",
        "--out",
        tmp_path,
        *FAST,
        "--format",
        "html",
    )
    assert res.status == 0, res.stderr
    page = (tmp_path / "digits" / "report.html").read_text()
    assert "agreement with the model's own clean prediction" in page and 'id="robustness-adversarial"' in page
    r = json.loads((tmp_path / "digits" / "report.json").read_text())["robustness"]
    assert (
        r["measure"] == "agreement" and r["clean_accuracy"] is None and r["mean_corruption_accuracy"] is None
    )
    assert all(c["accuracy"] is None and c["agreement"] is not None for c in r["corruptions"])
    assert r["verdicts"]["corruption"] is None  # 24 images, no labels: agreement is judged, and says so


@pytest.mark.parametrize(
    "flag,value",
    [("--epsilons", "0"), ("--epsilons", "a,b"), ("--corruptions", "frost"), ("--robustness-sample", "0")],
)
def test_bad_robustness_flags_are_exit_2(cli, folders, tmp_path, flag, value):
    res = cli(
        folders / "digits.keras",
        "--images",
        folders / "labelled",
        "--sections",
        "robustness",
        "--out",
        tmp_path,
        flag,
        value,
        "--quiet",
    )
    assert res.status == 2
    assert len(res.stderr.strip().splitlines()) == 1 and flag in res.stderr


# --- every backend ----------------------------------------------------------------------------------------

PROBE = textwrap.dedent("""
    import sys, json
    sys.path.insert(0, {tests!r})
    import numpy as np, keras
    from reportgen.analyses import robustness as R
    from reportgen.analyses.robustness.classifier import PixelClassifier
    from reportgen.analyses.cam import classifier_head
    from reportgen.preprocessing import Preprocessor
    model = keras.saving.load_model({model!r})
    x, y = np.load({x!r}), np.load({y!r})
    clf = PixelClassifier(model, classifier_head(model), Preprocessor("unit"), 1)
    r = R.measure(clf, x, y, list(range(len(x))), ("gaussian_noise", "motion_blur", "contrast"),
                  (2.0, 8.0), 3, seed=1)
    out = {{"clean": r.clean_accuracy}}
    out.update({{f"{{n}}/{{s}}": c.accuracy for (n, s), c in r.corrupted.items()}})
    out.update({{f"{{m}}/{{e}}": c.accuracy for (m, e), c in r.adversarial.items()}})
    print("RESULT" + json.dumps(out))
""")


def _probe(name: str, paths: dict) -> dict:
    code = PROBE.format(tests=str(HERE), **{k: str(v) for k, v in paths.items()})
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "KERAS_BACKEND": name},
    )
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")]
    assert line, f"{name}:\n{res.stderr[-3000:]}"
    return json.loads(line[0][len("RESULT") :])


@pytest.mark.parametrize("other", [b for b in ("jax", "torch") if __import__("importlib").util.find_spec(b)])
def test_other_backends_agree_with_tensorflow_within_0_002(other, digits, tmp_path):
    if backend.requested() != "tensorflow":
        pytest.skip("run from the TensorFlow process, which is the reference")
    model, x, y = digits
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    paths = {"model": tmp_path / "m.keras", "x": tmp_path / "x.npy", "y": tmp_path / "y.npy"}
    clf = PixelClassifier(
        model, classifier_head(model), Preprocessor("unit"), 1
    )  # TensorFlow, in this process
    r = R.measure(
        clf, x, y, list(range(len(x))), ("gaussian_noise", "motion_blur", "contrast"), (2.0, 8.0), 3, seed=1
    )
    here = {
        "clean": r.clean_accuracy,
        **{f"{n}/{s}": c.accuracy for (n, s), c in r.corrupted.items()},
        **{f"{m}/{e}": c.accuracy for (m, e), c in r.adversarial.items()},
    }
    there = _probe(other, paths)
    assert here.keys() == there.keys()
    for k in here:
        assert abs(here[k] - there[k]) <= 0.002, (k, here[k], there[k])


def test_jobs_1_and_jobs_2_give_identical_numbers(cli, folders, tmp_path):
    """Two worker processes, each a shard of the images: the same report numbers as one process."""
    out = {}
    for jobs in ("1", "2"):
        res = cli(
            folders / "digits.keras",
            "--images",
            folders / "labelled",
            "--sections",
            "robustness",
            "--class-names",
            folders / "names.txt",
            "--out",
            tmp_path / jobs,
            "--jobs",
            jobs,
            *FAST,
        )
        assert res.status == 0, res.stderr
        out[jobs] = json.loads((tmp_path / jobs / "digits" / "report.json").read_text())["robustness"]
    assert (out["1"]["shards"], out["2"]["shards"], out["2"]["shards_note"]) == (1, 2, None)
    for key in ("corruptions", "adversarial"):
        strip = [
            [{k: v for k, v in row.items() if k not in ("seconds", "time_vs_predict")} for row in out[j][key]]
            for j in ("1", "2")
        ]
        assert strip[0] == strip[1]
    for key in ("clean_accuracy", "mean_corruption_accuracy", "relative_drop", "flipped"):
        assert out["1"][key] == out["2"][key]


def test_a_map_model_is_refused_by_name_and_said_so_by_default(cli, folders, tmp_path):
    import awkward_models as AW

    AW.hed().save(tmp_path / "edges.keras")
    res = cli(
        tmp_path / "edges.keras",
        "--images",
        folders / "unlabelled",
        "--sections",
        "robustness",
        "--out",
        tmp_path,
        "--quiet",
    )
    assert res.status == 2 and "class scores" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    from reportgen import loading
    from reportgen.context import Context
    from reportgen.options import SECTION_NAMES, Options
    from reportgen.sections import robustness as section

    ctx = Context.computed(
        loading.load(str(tmp_path / "edges.keras")),
        Options(image_dirs=(str(folders / "unlabelled"),), sections=SECTION_NAMES),
        section.NEEDS,
    )
    section.validate(ctx)  # in the default set: not an error ...
    result = section.run(ctx)  # ... the section says why it measured nothing
    assert "class scores" in result.json["robustness"]["note"] and result.view["note"]


def test_no_verdict_where_the_measurement_cannot_tell():
    from reportgen import config
    from reportgen.analyses.findings.robustness import check_robustness, verdicts

    t = config.Thresholds()

    def result(images, labelled, correct, confidence, classes, predicted, drop_to=0, adv=0):
        r = R.Robustness(("contrast",), (2.0,), 10, 0.25, 0, classes=classes, predicted=set(predicted))
        r.clean = R.Counts(images, labelled, correct, images, confidence * images)
        r.corrupted[("contrast", 3)] = R.Counts(images, labelled, drop_to, drop_to, confidence * images)
        r.adversarial[("pgd", 2.0)] = R.Counts(images, labelled, adv, adv, confidence * images)
        return r

    fragile = result(20, 20, 19, 0.9, 10, range(10))  # 95% clean, 0% under both: two findings
    assert verdicts(fragile, t) == {"corruption": None, "adversarial": None}
    assert {f["kind"] for f in check_robustness(fragile, t)} == {
        "fragile_to_corruption",
        "adversarially_fragile",
    }
    cases = {
        "fewer than robustness_min_images": result(5, 5, 5, 0.9, 10, range(5)),
        "of chance": result(20, 20, 2, 0.9, 10, range(10)),  # 10% clean accuracy with 10 classes
        "near-uniform": result(20, 0, 0, 0.0011, 1000, range(20)),  # an untrained ImageNet model
        "one class": result(20, 0, 0, 0.9, 10, [3]),
    }  # unlabelled, every image the same answer
    for needle, r in cases.items():
        said = verdicts(r, t)
        assert needle in said["corruption"] and needle in said["adversarial"], needle
        assert check_robustness(r, t) == []
    no_eps = result(20, 20, 19, 0.9, 10, range(10))
    no_eps.adversarial = {("pgd", 8.0): R.Counts(20, 20, 0, 0, 18.0)}
    assert "did not run at eps = 2" in verdicts(no_eps, t)["adversarial"]
