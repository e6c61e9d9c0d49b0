"""Silence TensorFlow's start-up chatter before it is imported anywhere.

Users read reportgen's stderr for progress and one-line errors; TensorFlow's
CUDA and CPU-feature notices would drown both.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
