"""Silence TensorFlow's start-up chatter before it is imported anywhere.

Users read reportgen's stderr for progress and one-line errors; TensorFlow's
CUDA and CPU-feature notices would drown both.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")


def import_tensorflow_quietly() -> None:
    """Import TensorFlow and probe its devices with stderr silenced at the fd level.

    XLA and absl print CUDA-probe lines ("Could not find cuda drivers",
    "failed call to cuInit") straight to file descriptor 2 before Python's
    logging is set up, ignoring TF_CPP_MIN_LOG_LEVEL. The CLI's stderr carries
    one-line errors and progress bars, so those lines are swallowed here, once.
    """
    import sys

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded use): nothing to hide
        import tensorflow  # noqa: F401

        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        # One compiled ascent step per layer is by design; TensorFlow's
        # "triggered tf.function retracing" advice is noise to our users.
        tf.get_logger().setLevel("ERROR")
        tf.config.list_physical_devices()
        try:
            tf.constant(0.0)  # first device use triggers the cuInit probe
        except Exception:
            pass
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
