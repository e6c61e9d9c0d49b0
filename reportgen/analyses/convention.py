"""Which pixel convention a model was trained with, measured on labelled images instead of guessed.

A model file rarely says how its training images were scaled. The same face
read as pixels / 255 or as [-1, 1] can flip the top prediction, so a guess
that is wrong explains the model on an input it never saw. With labelled
``--images`` folders the question has an answer: run a few batches under each
candidate convention and keep the one under which the model is most often
right. The measurement is cheap (at most :data:`MAX_IMAGES` images a
candidate, one forward pass each, no gradients) and reported in full
(``dataset.preprocess.candidates``).

A convention other than ``unit`` is chosen only when it beats ``unit`` beyond
chance (McNemar's exact test on the same images, p < :data:`ALPHA`); ``unit``
is confirmed when it beats the worst candidate so. When nothing does -- an untrained model, one that ignores
the scale, a folder it does not classify -- the measurement decides nothing, and
the guess stays a guess: the report says so instead of calling it measured.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

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
        ranked = ", ".join(
            f"{c.mode} {c.accuracy:.0%}" + (f" of {c.images}" if c.images != self.images else "")
            for c in sorted(self.candidates, key=lambda c: (-c.images, -c.accuracy))
        )
        if self.chosen is None:
            return (
                f"no convention stood out on {self.images} labelled images of --images (accuracy {ranked}), "
                "so it is a guess"
            )
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


def predictor(model: Any, head: Any, feeds: Any) -> Callable[[np.ndarray], np.ndarray]:
    """Predicted class per image, as ``model.predict`` would give it for the chosen output: one compiled
    forward pass (no gradients) for every candidate and batch."""
    from reportgen import backend
    from reportgen.analyses.cam.base import pick
    from reportgen.analyses.cam.head import two_classes
    from reportgen.graph import forward
    from reportgen.graph.inputs import model_inputs

    def outputs(x: Any) -> Any:
        return pick(forward.run(model, model_inputs(feeds, x)).output, head.output)

    compiled = backend.function(outputs, list(model.variables))

    def predict(x: np.ndarray) -> np.ndarray:
        with backend.no_grad():
            y = backend.numpy(compiled(backend.tensor(x))).astype(np.float64).reshape(len(x), -1)
        if head.is_binary:  # one sigmoid unit: its probability read as two classes
            y = two_classes(y[:, -1:], logit=False)
        return y.argmax(axis=1)

    return predict


def measure(
    model: Any,
    head: Any,
    folder: Any,
    spec: Any,
    feeds: Any = None,
    modes: tuple[str, ...] | None = None,
    max_images: int = MAX_IMAGES,
) -> Measurement | None:
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
    # One image per class in turn, so that every batch, and so every early decision, sees each class.
    by_class: dict = {}
    for i in sample_indices(folder, max_images * 2):
        by_class.setdefault(folder.labels[i], []).append(i)
    queues = list(by_class.values())
    interleaved = [q[k] for k in range(max(map(len, queues), default=0)) for q in queues if k < len(q)]
    for i in interleaved:
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
    modes = tuple(modes or CANDIDATES)
    right = {m: np.zeros(0, dtype=bool) for m in modes}
    alive = list(modes)
    dropped: set[str] = set()  # candidates some better one beat beyond chance
    predict = predictor(model, head, feeds)
    # Batch by batch, a candidate clearly worse than the best so far (beyond chance on the images both saw)
    # is dropped: a trained model's wrong conventions go after a batch or two, so the measurement costs a
    # few batches under each, not MAX_IMAGES; an untrained model keeps every candidate to the end.
    for start in range(0, len(px), BATCH):
        batch, seen = px[start : start + BATCH], truth[start : start + BATCH]
        for mode in alive:
            right[mode] = np.concatenate([right[mode], predict(Preprocessor(mode).forward(batch)) == seen])
        best = max(alive, key=lambda m: (right[m].mean(), -modes.index(m)))
        beaten = [m for m in alive if m != best and better_than_chance(right[best], right[m])]
        dropped |= set(beaten)
        alive = [m for m in alive if m not in beaten]
        if len(alive) == 1:
            break
        if start + BATCH >= 2 * BATCH and np.ptp([right[m].sum() for m in alive]) <= 1:
            break  # after two batches the survivors agree to an image: the model does not tell them apart
    for mode in modes:
        result.candidates.append(
            Candidate(mode, float(right[mode].mean()) if right[mode].size else 0.0, int(right[mode].size))
        )
    best = max(modes, key=lambda m: (right[m].size, right[m].mean(), -modes.index(m)))
    # Another convention than the guess (unit) must beat the guess by more than chance; the guess itself is
    # confirmed when it beats the worst candidate so. On a model that ignores the scale, or an untrained one,
    # the accuracies differ by noise alone and nothing is chosen. Two candidates compare on the images both
    # saw.
    others = [m for m in modes if m != best]
    rivals = (
        ["unit"]
        if best != "unit" and "unit" in modes
        else [min(others, key=lambda m: right[m][: right[m].size].mean() if right[m].size else 1.0)]
        if others
        else []
    )
    if not rivals or all(
        r in dropped or better_than_chance(right[best][: right[r].size], right[r]) for r in rivals
    ):
        result.chosen = best
    result.seconds = time.perf_counter() - t0
    return result
