"""The face tracker on a real face (scikit-image's bundled astronaut photo, Eileen Collins) and the
68 -> 49 / 66 -> 49 landmark mappings."""
import cv2
import numpy as np
import pytest
from skimage import data

from pipeline.align import eye_centres
from pipeline.tracking import FaceTracker
from schemas.face import DISFA_66_TO_49, IBUG_68_TO_49, MOUTH_CORNERS, NOSE_TIP

# Placed by hand on data.astronaut() (512 x 512 RGB): crops of the face enlarged 6x and 9x with a
# pixel grid every 5 px were viewed and each point read off the grid (raw-image pixels, 0-based).
# Eye centres: the midpoint of the two eye corners; brow middles: the middle of each brow's arc.
HAND = {
    "left_eye_centre": (202.5, 100.5),
    "right_eye_centre": (247.5, 103.0),
    "left_brow_middle": (201.5, 88.5),    # 49-pt 2
    "right_brow_middle": (250.5, 91.5),   # 49-pt 7
    "nose_tip": (224.0, 127.0),           # 49-pt 13
    "left_mouth_corner": (203.3, 140.0),  # 49-pt 31
    "right_mouth_corner": (243.7, 141.3),  # 49-pt 37
}
TOLERANCE = 0.1  # of the hand-placed inter-ocular distance (45 px): 4.5 px


@pytest.fixture(scope="module")
def tracker():
    return FaceTracker(upsample=0, redetect_every=5)


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()


def _named_points(points):
    left, right = eye_centres(points)
    return {"left_eye_centre": left, "right_eye_centre": right,
            "left_brow_middle": points[2], "right_brow_middle": points[7],
            "nose_tip": points[NOSE_TIP], "left_mouth_corner": points[MOUTH_CORNERS[0]],
            "right_mouth_corner": points[MOUTH_CORNERS[1]]}


def test_mappings_pick_the_same_49_points():
    """68 -> 49 drops the jaw and the inner mouth corners; DISFA's 66 are the 68 without the inner
    mouth corners, so its 66 -> 49 must pick the very same points."""
    assert len(IBUG_68_TO_49) == len(DISFA_66_TO_49) == 49
    assert not set(range(17)) & set(IBUG_68_TO_49) and not {60, 64} & set(IBUG_68_TO_49)
    ibug = np.arange(68)
    disfa = np.delete(ibug, [60, 64])   # a DISFA face: 68-pt ids of its 66 points
    np.testing.assert_array_equal(disfa[list(DISFA_66_TO_49)], ibug[list(IBUG_68_TO_49)])
    # iBUG's nose tip (30), mouth corners (48, 54) and eye corners land where the scheme says.
    assert IBUG_68_TO_49[NOSE_TIP] == 30
    assert (IBUG_68_TO_49[MOUTH_CORNERS[0]], IBUG_68_TO_49[MOUTH_CORNERS[1]]) == (48, 54)
    assert IBUG_68_TO_49[19:31] == tuple(range(36, 48))


def test_photo_landmarks_match_hand_placed_points(tracker, astronaut):
    faces = tracker.detect(astronaut)
    assert len(faces) == 1
    face = faces[0]
    assert face.landmarks.shape == (49, 2) and face.confidence > 0.5
    hand_iod = np.hypot(*np.subtract(HAND["right_eye_centre"], HAND["left_eye_centre"]))
    errors = {name: np.hypot(*(point - HAND[name])) / hand_iod
              for name, point in _named_points(face.landmarks).items()}
    assert max(errors.values()) < TOLERANCE, errors


def test_no_face_in_a_photo_without_one(tracker):
    assert tracker.detect(data.coffee()) == []


def _moving_video(photo, frames=12):
    """640 x 480 frames of the photo's face region, moved and scaled over time, and the transform
    (scale, offset) of each frame: raw-photo pixel p lands at scale * p + offset."""
    region = photo[30:260, 100:350]
    video, transforms = [], []
    for t in range(frames):
        scale = 1.0 + 0.03 * t
        offset = np.array([60 + 12 * t, 80 + 5 * t], float)
        canvas = np.full((480, 640, 3), 90, np.uint8)
        patch = cv2.resize(region, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        x, y = int(offset[0]), int(offset[1])
        canvas[y:y + patch.shape[0], x:x + patch.shape[1]] = patch[:480 - y, :640 - x]
        video.append(canvas)
        transforms.append((scale, offset - scale * np.array([100, 30])))
    return video, transforms


def test_video_of_a_moving_face_gives_one_track(astronaut):
    tracker = FaceTracker(upsample=0, redetect_every=5)
    still = tracker.detect(astronaut)[0].landmarks
    video, transforms = _moving_video(astronaut)
    detected = []
    for frame, (scale, offset) in zip(video, transforms):
        faces = tracker.track(frame)
        assert [f.face_id for f in faces] == [0]
        expected = scale * still + offset
        left, right = eye_centres(expected)
        error = np.hypot(*(faces[0].landmarks - expected).T).mean() / np.hypot(*(right - left))
        assert error < 0.05
        detected.append(faces[0].detected)
    # The detector ran on frames 0, 5 and 10 only: the others were seeded by the previous frame.
    assert detected == [t % 5 == 0 for t in range(len(video))]
    # The face leaves: it is gone at the next detection (frame 15) at the latest; when it comes
    # back it is a new face.
    blank = np.full((480, 640, 3), 90, np.uint8)
    assert [tracker.track(blank) for _ in range(4)][-1] == []
    assert [f.face_id for f in tracker.track(video[0])] == [1]
