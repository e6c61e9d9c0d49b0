"""Which pixel convention a model was trained with, measured on labelled images instead of guessed.

A model file rarely says how its training images were scaled. The same face
read as pixels / 255 or as [-1, 1] can flip the top prediction, so a guess
that is wrong explains the model on an input it never saw. With labelled
``--images`` folders the question has an answer: run a few batches under each
candidate convention and keep the one under which the model is most often
right. The measurement is cheap (at most :data:`MAX_IMAGES` images a
candidate, one forward pass each, no gradients) and reported in full
(``dataset.preprocess.candidates``).

When no candidate beats its rival beyond chance (McNemar's exact test on the
same images, p < :data:`ALPHA`) -- an untrained model, one that ignores the
scale, a folder it does not classify -- the measurement decides nothing, and
the guess stays a guess: the report says so instead of calling it measured.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAX_IMAGES = 64  # images a candidate is scored on ("a few batches"); balanced over the classes
BATCH = 16
ALPHA = 0.01  # a convention is chosen only when it beats its rival beyond chance at this level (McNemar)


@dataclass
class Candidate:
    mode: str
    accuracy: float
    images: int

    def to_json(self) -> dict:
        return {"mode": self.mode, "accuracy": round(self.accuracy, 4), "images": self.images}


@dataclass
class Measurement:
    """Every candidate's accuracy, and the one chosen (None when no candidate stood out)."""

    candidates: list[Candidate] = field(default_factory=list)
    chosen: str | None = None
    images: int = 0
    seconds: float = 0.0

    def why(self) -> str:
        ranked = ", ".join(f"{c.mode} {c.accuracy:.0%}" for c in sorted(self.candidates, key=lambda c: -c.accuracy))
        if self.chosen is None:
            return (f"no convention stood out on {self.images} labelled images of --images (accuracy {ranked}), "
                    "so it is a guess")
        return f"the best accuracy on {self.images} labelled images of --images ({ranked})"


def better_than_chance(a: np.ndarray, b: np.ndarray, alpha: float = ALPHA) -> bool:
    """McNemar's exact test on the same images: is convention ``a`` right more often than ``b`` beyond chance?

    Only the images on which the two disagree count; under "no difference"
    each of them is equally likely to favour either (a binomial with p = 1/2).
    """
    from scipy.stats import binomtest

    wins, losses = int(np.sum(a & ~b)), int(np.sum(~a & b))
    if wins <= losses:
        return False
    return binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue < alpha


def _predict(model: Any, x: np.ndarray, head: Any, feeds: Any) -> np.ndarray:
    """Predicted class per image, as ``model.predict`` would give it for the chosen output."""
    from reportgen import backend
    from reportgen.graph import forward
    from reportgen.graph.inputs import model_inputs
    from reportgen.analyses.cam.base import pick
    from reportgen.analyses.cam.head import two_classes

    with backend.no_grad():
        inputs = backend.tensor(x)
        trace = forward.run(model, model_inputs(feeds, inputs))
    y = backend.numpy(pick(trace.output, head.output)).astype(np.float64).reshape(len(x), -1)
    if head.is_binary:  # one sigmoid unit: its probability read as two classes
        y = two_classes(y[:, -1:], logit=False)
    return y.argmax(axis=1)


def measure(model: Any, head: Any, folder: Any, spec: Any, feeds: Any = None, modes: tuple[str, ...] | None = None,
            max_images: int = MAX_IMAGES) -> Measurement | None:
    """Each candidate's accuracy on up to ``max_images`` labelled images (one per class in turn).

    Returns None when the question has no answer here: no labels, or an
    output that is not class scores.
    """
    from reportgen.errors import UserError
    from reportgen.images.folders import sample_indices
    from reportgen.images import fit_to_input, load_pixels
    from reportgen.preprocessing import CANDIDATES, Preprocessor

    if folder is None or not folder.labelled or head.units is None or head.is_map:
        return None
    t0 = time.perf_counter()
    pixels, labels = [], []
    for i in sample_indices(folder, max_images * 2):
        if len(pixels) == max_images:
            break
        if folder.labels[i] is None:
            continue
        try:
            pixels.append(fit_to_input(load_pixels(folder.files[i]), spec).astype(np.float32))
        except UserError:
            continue  # unreadable: the data-set pass names it
        labels.append(int(folder.labels[i]))
    if not pixels:
        return None
    px, truth = np.stack(pixels), np.asarray(labels)
    result = Measurement(images=len(truth))
    right: dict[str, np.ndarray] = {}
    for mode in modes or CANDIDATES:
        pre = Preprocessor(mode, source="measured")
        predicted = np.concatenate([_predict(model, pre.forward(px[s:s + BATCH]), head, feeds)
                                    for s in range(0, len(px), BATCH)])
        right[mode] = predicted == truth
        result.candidates.append(Candidate(mode, float(np.mean(right[mode])), len(truth)))
    ranked = sorted(result.candidates, key=lambda c: -c.accuracy)  # stable: the first of equals stays first
    best = ranked[0].mode
    # The best must beat the guess (unit), or -- when it is the guess -- the runner-up, by more than chance:
    # on a model that ignores the scale, or an untrained one, the accuracies differ by noise alone.
    rival = "unit" if best != "unit" and "unit" in right else (ranked[1].mode if len(ranked) > 1 else None)
    if rival is None or better_than_chance(right[best], right[rival]):
        result.chosen = best
    result.seconds = time.perf_counter() - t0
    return result
