"""JAA-Net in Keras 3: joint facial AU detection and face alignment (Shao et al., ECCV 2018).

The model is imported on first use, so `jaa_keras.config` and `jaa_keras.au_weights` stay light
enough for the preprocessing job, which must not import Keras. Reading a saved .keras file needs
the classes registered: import `jaa_keras.model` first (components/evaluate/model_io.py does).
"""
import os

# TensorFlow reads these when it is first imported, so they are set here, before it is.
# Its start-up INFO lines (CPU features) go; warnings and errors stay.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
# The region layers' grouped convolutions have CPU gradients only in the oneDNN kernels, which
# TensorFlow turns on by default on some CPUs only (not on the AMD EPYC machines here, where
# training failed with "Gradients for grouped convolutions are not supported on CPU").
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from jaa_keras.config import JaaNetConfig, preset  # noqa: E402

__all__ = ["JaaNetConfig", "preset", "JaaNet", "build_jaanet"]


def __getattr__(name):
    if name in ("JaaNet", "build_jaanet"):
        from jaa_keras import model
        return getattr(model, name)
    raise AttributeError(f"module 'jaa_keras' has no attribute {name!r}")
