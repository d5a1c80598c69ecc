"""JAA-Net in Keras 3: joint facial AU detection and face alignment (Shao et al., ECCV 2018).

The model is imported on first use, so `jaa_keras.config` and `jaa_keras.au_weights` stay light
enough for the preprocessing job, which must not import Keras. Reading a saved .keras file needs
the classes registered: import `jaa_keras.model` first (components/evaluate/model_io.py does).
"""
import os

# TensorFlow prints start-up INFO lines (CPU features) on import; keep warnings and errors.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from jaa_keras.config import JaaNetConfig, preset  # noqa: E402

__all__ = ["JaaNetConfig", "preset", "JaaNet", "build_jaanet"]


def __getattr__(name):
    if name in ("JaaNet", "build_jaanet"):
        from jaa_keras import model
        return getattr(model, name)
    raise AttributeError(f"module 'jaa_keras' has no attribute {name!r}")
