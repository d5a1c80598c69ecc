"""JAA-Net in Keras 3: joint facial AU detection and face alignment (Shao et al., ECCV 2018)."""
import os

# TensorFlow prints start-up INFO lines (oneDNN, CPU features) on import; keep warnings and errors.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from jaa_keras.config import JaaNetConfig, preset  # noqa: E402
from jaa_keras.model import JaaNet, build_jaanet  # noqa: E402

__all__ = ["JaaNetConfig", "preset", "JaaNet", "build_jaanet"]
