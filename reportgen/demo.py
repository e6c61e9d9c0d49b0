"""``reportgen demo``: the tutorials' CNN, trained offline, and its report.

The model is the Fashion-MNIST CNN of the tutorials (Park 8-2/8-3): Conv2D 32
3x3 relu same -> MaxPooling2D 2 -> Conv2D 64 3x3 relu same -> MaxPooling2D 2 ->
Flatten -> Dense 100 relu -> Dropout 0.4 -> Dense 10 softmax, trained with adam
and sparse categorical cross-entropy, early stopping (patience 2, best weights
restored), and a ModelCheckpoint that writes ``best-cnn-model.keras``.

Offline (the default) it trains on scikit-learn's bundled handwritten digits
(1,797 real 8x8 scans) upscaled to 28x28; ``--dataset fashion-mnist`` uses
Keras' download for online users.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable

import numpy as np

from reportgen.errors import UserError

MODEL_NAME = "best-cnn-model"
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def load_digits_28() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """scikit-learn's digits (0-16, 8x8) as 0-255 greyscale 28x28 images."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.stack(
        [
            np.asarray(
                Image.fromarray((img * (255.0 / 16.0)).astype(np.uint8)).resize((28, 28), Image.BILINEAR)
            )
            for img in digits.images
        ]
    )
    return images, digits.target.astype(np.int64), [str(i) for i in range(10)]


def load_fashion_mnist() -> tuple[np.ndarray, np.ndarray, list[str]]:
    from reportgen.backend import import_keras

    keras = import_keras()  # quietly: TensorFlow's start-up lines swallowed once, here

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    except Exception as exc:
        raise UserError(
            f"could not download Fashion-MNIST ({type(exc).__name__}); offline, run 'reportgen demo' "
            "without --dataset to use the bundled digits"
        ) from None
    return (
        np.concatenate([x_train, x_test]),
        np.concatenate([y_train, y_test]).astype(np.int64),
        FASHION_CLASSES,
    )


def build_model():
    """The tutorials' CNN, layer for layer."""
    from reportgen.backend import import_keras

    keras = import_keras()  # quietly: TensorFlow's start-up lines swallowed once, here

    # Names as a fresh Keras session gives them in the tutorials, fixed so that
    # the report reads the same however many models the process built before.
    model = keras.Sequential(name="sequential")
    model.add(keras.Input(shape=(28, 28, 1)))
    model.add(keras.layers.Conv2D(32, kernel_size=3, activation="relu", padding="same", name="conv2d"))
    model.add(keras.layers.MaxPooling2D(2, name="max_pooling2d"))
    model.add(keras.layers.Conv2D(64, kernel_size=3, activation="relu", padding="same", name="conv2d_1"))
    model.add(keras.layers.MaxPooling2D(2, name="max_pooling2d_1"))
    model.add(keras.layers.Flatten(name="flatten"))
    model.add(keras.layers.Dense(100, activation="relu", name="dense"))
    model.add(keras.layers.Dropout(0.4, name="dropout"))
    model.add(keras.layers.Dense(10, activation="softmax", name="dense_1"))
    return model


def split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shuffled 70 / 15 / 15 split: train, validation, held-out test."""
    order = np.random.default_rng(seed).permutation(n)
    a, b = int(0.7 * n), int(0.85 * n)
    return order[:a], order[a:b], order[b:]


def train(out_root: Path, dataset: str = "digits", epochs: int = 20, seed: int = 0, verbose: int = 0):
    """Train and checkpoint the demo model; returns (model path, validation accuracy, held-out samples,
    names)."""
    from reportgen.backend import import_keras

    keras = import_keras()  # quietly: TensorFlow's start-up lines swallowed once, here

    from reportgen.preprocessing import Preprocessor

    images, labels, names = load_fashion_mnist() if dataset == "fashion-mnist" else load_digits_28()
    train_idx, val_idx, test_idx = split(len(images), seed)
    x = Preprocessor("unit").forward(images[..., np.newaxis])  # the tutorials' / 255
    keras.utils.set_random_seed(seed)
    model = build_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    out_root.mkdir(parents=True, exist_ok=True)
    model_path = out_root / f"{MODEL_NAME}.keras"
    tmp_path = out_root / f".{MODEL_NAME}.partial.keras"
    callbacks = [
        keras.callbacks.ModelCheckpoint(str(tmp_path), save_best_only=True),
        keras.callbacks.EarlyStopping(patience=2, restore_best_weights=True),
    ]
    history = model.fit(
        x[train_idx],
        labels[train_idx],
        epochs=epochs,
        batch_size=32,
        verbose=verbose,
        validation_data=(x[val_idx], labels[val_idx]),
        callbacks=callbacks,
    )
    tmp_path.replace(model_path)
    val_acc = float(max(history.history["val_accuracy"]))
    samples = []
    for cls in range(min(4, len(names))):
        i = test_idx[labels[test_idx] == cls][0]
        samples.append((images[i][..., np.newaxis].astype(np.uint8), names[cls]))
    return model_path, val_acc, len(history.history["loss"]), samples, names


def run_demo(
    out_root: Path,
    dataset: str = "digits",
    epochs: int = 20,
    seed: int = 0,
    formats: Iterable[str] = ("html", "pdf", "json"),
    quiet: bool = False,
) -> Path:
    from reportgen.context import Options
    from reportgen.loading import load_file
    from reportgen.report import build_report

    model_path, val_acc, ran, samples, names = train(out_root, dataset, epochs, seed)
    print(
        f"demo: trained {ran} epochs on {dataset}; best "
        f"validation accuracy {val_acc:.4f}; saved {model_path}",
        file=sys.stderr,
    )
    loaded = load_file(model_path)
    loaded.sample_images = samples
    loaded.class_names = names
    # The demo trained the model on pixels / 255 itself, so it says so rather than letting auto guess.
    folder, _ = build_report(loaded, Options(quiet=quiet, seed=seed, preprocess="unit"), out_root, formats)
    return folder
