"""Geometry of the docs/data.md similarity alignment."""
import cv2
import numpy as np
import pytest

from pipeline.align import (AlignmentError, align_face, alignment_matrix, eye_centres,
                            transform_points)
from schemas.face import LEFT_EYE, MOUTH_CORNERS, NOSE_TIP, RIGHT_EYE


def _face(angle_deg=12.0, scale=55.0, centre=(170.0, 140.0), seed=0):
    """49 plausible landmarks (unit template, rotated, scaled and moved) in a raw frame."""
    rng = np.random.default_rng(seed)
    template = np.zeros((49, 2))
    template[0:5] = np.stack([np.linspace(-0.85, -0.2, 5), [-0.28, -0.38, -0.42, -0.4, -0.34]], 1)
    template[5:10] = template[4::-1] * [-1, 1]
    template[10:14] = np.stack([np.zeros(4), np.linspace(0.0, 0.54, 4)], 1)
    template[14:19] = np.stack([np.linspace(-0.2, 0.2, 5), [0.62, 0.66, 0.68, 0.66, 0.62]], 1)
    eye = np.array([[-0.21, 0], [-0.07, -0.07], [0.07, -0.07], [0.21, 0], [0.07, 0.06],
                    [-0.07, 0.06]])
    template[19:25] = eye + [-0.5, 0]
    template[25:31] = eye + [0.5, 0]
    lip = np.linspace(np.pi, -np.pi, 12, endpoint=False)
    template[31:43] = np.stack([0.4 * np.cos(lip), 1.0 + 0.13 * np.sin(lip)], 1)
    template[43:49] = np.stack([[-0.15, 0, 0.15, 0.15, 0, -0.15], [0.99] * 3 + [1.01] * 3], 1)
    template += rng.normal(0, 0.01, template.shape)
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return template @ rot.T * scale + centre


@pytest.mark.parametrize("angle", [-15.0, 0.0, 7.5, 40.0])
def test_eye_centres_are_level_after_alignment(angle):
    landmarks = _face(angle_deg=angle)
    face = align_face(np.zeros((300, 360, 3), np.uint8), landmarks)
    left, right = eye_centres(face.landmarks)
    assert abs(left[1] - right[1]) < 1e-3
    assert right[0] > left[0]
    assert face.inter_ocular == pytest.approx(np.hypot(*(right - left)), rel=1e-5)


def test_five_point_box_has_the_expected_size_and_centre():
    landmarks = _face(angle_deg=-9.0, scale=80.0)
    matrix = alignment_matrix(landmarks)
    left, right = eye_centres(landmarks)
    five = np.stack([left, right, landmarks[NOSE_TIP], landmarks[MOUTH_CORNERS[0]],
                     landmarks[MOUTH_CORNERS[1]]])
    aligned = transform_points(matrix, five)
    low, high = aligned.min(0), aligned.max(0)
    # the box is centred on the crop's centre ...
    np.testing.assert_allclose((low + high) / 2, [99.5, 99.5], atol=1e-6)
    # ... and its longer side is 199 / 2.9 aligned pixels (half size 99.5 = 0.5 * 2.9 * side)
    assert np.max(high - low) == pytest.approx(199 / 2.9, rel=1e-9)


def test_the_scale_follows_the_face_size_not_the_frame():
    small, large = _face(scale=40.0), _face(scale=120.0)
    a = align_face(np.zeros((400, 400, 3), np.uint8), small)
    b = align_face(np.zeros((400, 400, 3), np.uint8), large)
    np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-3)


def test_a_transformed_landmark_lands_on_the_drawn_dot():
    rng = np.random.default_rng(3)
    for trial in range(5):
        landmarks = _face(angle_deg=rng.uniform(-15, 15), scale=rng.uniform(45, 70),
                          centre=rng.uniform(120, 180, 2), seed=trial)
        image = np.full((300, 320, 3), 128, np.uint8)   # the same grey as the warp's border
        point = landmarks[rng.integers(0, 49)]
        cv2.circle(image, tuple(int(round(v * 16)) for v in point), 2 * 16, (255, 255, 255), -1,
                   cv2.LINE_AA, shift=4)
        face = align_face(image, landmarks)
        weights = face.image[:, :, 0].astype(np.float64) - 128   # only the dot differs from grey
        ys, xs = np.mgrid[:200, :200]
        found = np.array([(weights * xs).sum(), (weights * ys).sum()]) / weights.sum()
        expected = transform_points(face.matrix, point[None])[0]
        assert np.hypot(*(found - expected)) < 0.35, (trial, found, expected)


def test_grey_border_and_channels():
    landmarks = _face(centre=(30.0, 30.0))   # face near the corner: much of the crop is outside
    face = align_face(np.full((100, 100, 3), 7, np.uint8), landmarks)
    assert face.image.shape == (200, 200, 3) and face.image.dtype == np.uint8
    assert (face.image == 128).all(axis=2).mean() > 0.2
    grey = align_face(np.full((100, 100), 7, np.uint8), landmarks)
    assert grey.image.shape == (200, 200)


@pytest.mark.parametrize("bad", ["nan", "same_point", "shape"])
def test_degenerate_landmarks_raise(bad):
    landmarks = _face()
    if bad == "nan":
        landmarks[3] = np.nan
    elif bad == "same_point":
        landmarks[:] = 5.0
    else:
        landmarks = landmarks[:40]
    with pytest.raises(AlignmentError):
        align_face(np.zeros((50, 50, 3), np.uint8), landmarks)


def test_eye_indices_are_the_scheme_ones():
    assert LEFT_EYE == tuple(range(19, 25)) and RIGHT_EYE == tuple(range(25, 31))


def test_a_face_with_eyes_1_2_px_apart_and_the_mouth_300_px_away_is_rejected():
    landmarks = _face(angle_deg=0.0, scale=300.0)
    landmarks[25:31] = landmarks[19:25] + [1.2, 0.0]   # passes the 1-pixel rule
    with pytest.raises(AlignmentError, match=r"implausible face: eye centres 1.2 px apart"):
        align_face(np.zeros((700, 700, 3), np.uint8), landmarks)


@pytest.mark.parametrize("axis, degrees", [(0, 65.0), (1, 65.0)])
def test_a_turned_or_nodding_head_is_still_a_face(axis, degrees):
    """Yaw foreshortens x (the eye distance), pitch y (eyes to mouth), both by cos(angle)."""
    landmarks = _face(angle_deg=0.0, scale=60.0)
    centre = landmarks.mean(0)
    landmarks[:, axis] = centre[axis] + (landmarks[:, axis] - centre[axis]) * np.cos(
        np.deg2rad(degrees))
    face = align_face(np.zeros((300, 360, 3), np.uint8), landmarks)
    assert face.inter_ocular > 10
