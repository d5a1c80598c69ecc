"""What the entry points do first: set up logging once, and keep TensorFlow's start-up notices
out of the user's way.

Logging: this project's modules log through `logging.getLogger(__name__)` and never configure
it; the entry points (run_pipeline.py, python -m pipeline.job, python -m pipeline.analyze) call
`configure_logging` once with their --log_level.

TensorFlow prints INFO lines on import (oneDNN is on, no CUDA driver, CPU features) and, on a
machine without an NVIDIA device, an error that cuInit failed. They come before its logging is
set up, so TF_CPP_MIN_LOG_LEVEL does not hold them back. The entry points import TensorFlow here:
stderr is captured while it starts, and every line but those notices is written back.
"""
import glob
import logging
import os
import re
import sys
import tempfile

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# This project's loggers take --log_level; Beam's and TensorFlow's own stay at WARNING (Beam
# logs every bundle at INFO).
OUR_LOGGERS = ("pipeline", "components", "jaa_keras", "benchmarks")

STARTUP_NOTICES = [
    "All log messages before absl::InitializeLog",
    "oneDNN custom operations are on",
    "Could not find cuda drivers on your machine",
    "cpu_feature_guard",
    "To enable the following instructions",
]
# Without an NVIDIA device node, cuInit failing is expected, not an error worth showing.
NO_GPU_NOTICES = ["failed call to cuInit"]


def configure_logging(level: str = "INFO") -> None:
    """One handler on stderr ("LEVEL module: message"); this project's loggers at `level`."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(level)


def import_tensorflow_quietly():
    """Import TensorFlow and find its devices, dropping the start-up notices from stderr."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    import jaa_keras  # noqa: F401  (sets TensorFlow's environment before it is imported)
    notices = STARTUP_NOTICES + ([] if glob.glob("/dev/nvidia[0-9]*") else NO_GPU_NOTICES)
    pattern = re.compile("|".join(re.escape(n) for n in notices))
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow as tf
            tf.config.list_physical_devices()  # device discovery is where cuInit runs
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        for line in capture.read().decode(errors="replace").splitlines(keepends=True):
            if not pattern.search(line):
                sys.stderr.write(line)
    return tf
