"""Silence TensorFlow's start-up chatter before it is imported anywhere.

Users read reportgen's stderr for progress and one-line errors; TensorFlow's
CUDA and CPU-feature notices would drown both. Setting these variables costs
nothing; TensorFlow itself is imported only when it is the backend and a
model is to be loaded (:func:`reportgen.backend.import_keras`).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
# oneDNN's own memory pool keeps every freed block: building VGG16 (0.55 GB of weights) left TensorFlow
# at 2.17 GB RSS with it and 1.35 GB with the system allocator, which also returns freed tensors
# (docs/benchmarks.md, "Memory"). Set before TensorFlow is imported; a user's own setting wins.
os.environ.setdefault("TF_ONEDNN_USE_SYSTEM_ALLOCATOR", "true")


def import_tensorflow_quietly() -> None:
    """Import Keras and its backend quietly (kept for callers of 0.1.0)."""
    from reportgen.backend import import_keras

    import_keras()
