"""The built-in synthetic dataset: drawn faces with known AUs, written in BP4D's (or DISFA's) raw
layout so the preprocessing job reads it exactly as it reads the real datasets.

  face.py     the 49-point geometry: template, identities, AU deformations, head pose
  render.py   drawing a face with its AU textures (OpenCV, anti-aliased)
  labels.py   sparse, correlated AU intensities
  motion.py   smooth sequences: keyframed expressions, a slowly drifting head
  dataset.py  writing whole datasets with planted bad frames; SyntheticSpec, generate, ensure
"""
from pipeline.synthetic.dataset import (MARKER, REJECTED_PLANTS, SyntheticSpec, ensure, generate,
                                        subject_names)

__all__ = ["MARKER", "REJECTED_PLANTS", "SyntheticSpec", "ensure", "generate", "subject_names"]
