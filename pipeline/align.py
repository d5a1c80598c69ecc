"""Similarity alignment of a face to the ALIGNED_SIZE x ALIGNED_SIZE crop (docs/data.md).

The authors' recipe, from the 49 landmarks of the raw frame:
  1. rotate about the origin so that the two eye centres are level;
  2. take the bounding box of five rotated points: both eye centres, the nose tip (point 13) and
     the mouth corners (points 31 and 37);
  3. half size = 0.5 * 2.9 * max(box width, box height); scale = 99.5 / half size
     (99.5 = (200 - 1) / 2, so the box centre lands on the centre of the 0-based pixel grid);
  4. translate so that the box centre is the centre of the crop;
  5. warp the image bilinearly with a grey (128) border and move the landmarks with the same matrix.

Pure numpy / OpenCV: no TensorFlow, no Beam.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from schemas.face import ALIGNED_SIZE
from schemas.face import LEFT_EYE, MOUTH_CORNERS, NOSE_TIP, NUM_LANDMARKS, RIGHT_EYE

BOX_ENLARGE = 2.9
BORDER_VALUE = 128
# Below this the landmarks cannot define a face (pixels of the raw frame).
_MIN_EYE_DISTANCE = 1.0
# Plausible proportions, in the face's own size: inter-ocular distance (between the eye centres)
# over the eye-to-mouth distance (midpoint of the eye centres to the midpoint of the mouth
# corners). A frontal adult face gives about 0.9 (eye centres ~62 mm apart, ~65-70 mm above the
# mouth). Turning the head shortens the first by cos(yaw), nodding shortens the second by
# cos(pitch); these bounds still accept either at about 75 degrees, past the pose at which a
# 49-point tracker keeps both eyes, and reject what no pose gives (eyes 1.2 px apart, mouth 300 px
# away: 0.004), which would make the alignment zoom onto a point and the loss divide by ~0.
EYE_TO_MOUTH_RATIO = (0.25, 4.0)


class AlignmentError(ValueError):
    """The landmarks cannot define an alignment (non-finite, wrong shape, eyes on one point, a
    geometry no face has...)."""


@dataclass(frozen=True)
class AlignedFace:
    image: np.ndarray          # (size, size, channels) uint8
    landmarks: np.ndarray      # (49, 2) float32, aligned pixels, 0-based
    inter_ocular: float        # eye-centre distance in aligned pixels
    matrix: np.ndarray         # (2, 3) float64, raw pixel -> aligned pixel


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the eye on the image's left (points 19-24) and on its right (25-30)."""
    landmarks = np.asarray(landmarks, np.float64)
    return landmarks[list(LEFT_EYE)].mean(axis=0), landmarks[list(RIGHT_EYE)].mean(axis=0)


def alignment_matrix(landmarks: np.ndarray, size: int = ALIGNED_SIZE,
                     box_enlarge: float = BOX_ENLARGE) -> np.ndarray:
    """The 2 x 3 similarity matrix taking raw pixel coordinates to aligned ones."""
    landmarks = np.asarray(landmarks, np.float64)
    if landmarks.shape != (NUM_LANDMARKS, 2):
        raise AlignmentError(f"expected ({NUM_LANDMARKS}, 2) landmarks, got {landmarks.shape}")
    if not np.all(np.isfinite(landmarks)):
        raise AlignmentError("landmarks contain NaN or infinite values")
    left, right = eye_centres(landmarks)
    delta = right - left
    distance = float(np.hypot(*delta))
    if distance < _MIN_EYE_DISTANCE:
        raise AlignmentError(f"eye centres {distance:.3g} px apart: degenerate landmarks")
    mouth = (landmarks[MOUTH_CORNERS[0]] + landmarks[MOUTH_CORNERS[1]]) / 2
    eye_to_mouth = float(np.hypot(*(mouth - (left + right) / 2)))
    ratio = distance / eye_to_mouth if eye_to_mouth > 0 else np.inf
    if not EYE_TO_MOUTH_RATIO[0] <= ratio <= EYE_TO_MOUTH_RATIO[1]:
        raise AlignmentError(
            f"implausible face: eye centres {distance:.3g} px apart but {eye_to_mouth:.3g} px from "
            f"the mouth (ratio {ratio:.2g}; a face in any pose gives {EYE_TO_MOUTH_RATIO[0]} to "
            f"{EYE_TO_MOUTH_RATIO[1]})")
    cos, sin = delta / distance
    rotation = np.array([[cos, sin], [-sin, cos]])   # takes the eye-to-eye vector onto +x
    five = np.stack([left, right, landmarks[NOSE_TIP], landmarks[MOUTH_CORNERS[0]],
                     landmarks[MOUTH_CORNERS[1]]])
    rotated = five @ rotation.T
    low, high = rotated.min(axis=0), rotated.max(axis=0)
    centre = (low + high) / 2
    half = 0.5 * box_enlarge * float(np.max(high - low))
    scale = (size - 1) / 2 / half
    # aligned = scale * (R p - centre) + (size - 1) / 2  ==  scale * (R p + half - centre)
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = scale * (half - centre)
    return matrix


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2 x 3 affine matrix to (N, 2) points."""
    points = np.asarray(points, np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = ALIGNED_SIZE,
               box_enlarge: float = BOX_ENLARGE) -> AlignedFace:
    """Align one face. `image` is HxW or HxWxC uint8 (any channel order); landmarks (49, 2) 0-based.

    Raises AlignmentError when the landmarks cannot define the transform.
    """
    if image is None or image.ndim not in (2, 3) or image.shape[0] < 1 or image.shape[1] < 1:
        raise AlignmentError(f"not an image: {None if image is None else image.shape}")
    matrix = alignment_matrix(landmarks, size, box_enlarge)
    channels = 1 if image.ndim == 2 else image.shape[2]
    aligned = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT,
                             borderValue=(BORDER_VALUE,) * min(channels, 4))
    if aligned.ndim == 2 and image.ndim == 3:   # OpenCV drops a single channel axis
        aligned = aligned[:, :, None]
    points = transform_points(matrix, landmarks)
    left, right = eye_centres(points)
    return AlignedFace(image=aligned, landmarks=points.astype(np.float32),
                       inter_ocular=float(np.hypot(*(right - left))), matrix=matrix)
