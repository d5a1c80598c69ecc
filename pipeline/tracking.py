"""Faces and their 49 landmarks in raw photos and video frames: dlib's HOG detector and 68-point
shape predictor, mapped to the 49-point scheme (schemas.face.IBUG_68_TO_49).

Why dlib. The tracker must come from a registry package that ships its models (nothing downloaded
at run time) and install beside TensorFlow 2.21 (protobuf >= 5, numpy >= 2):
  - dlib (`dlib-bin` 20.0.1, a binary wheel) with `face-recognition-models` 0.3.0, which carries
    dlib's HOG and CNN face detectors and the 68-point predictor: installs cleanly beside the
    pinned stack. Measured on one core of the project's 2-core machine: HOG detection 70 ms on the
    512 x 512 astronaut photo (290 ms when upsampled once), 90-170 ms on a 640 x 480 frame; the
    predictor 5-12 ms a face. Its 49 points land 0.05-0.06 inter-ocular distances from the BP4D
    and DISFA landmarks on raw frames of those datasets.
  - OpenCV: opencv-python-headless 5.0 no longer carries the Haar cascades nor
    CascadeClassifier; its FaceDetectorYN needs an ONNX file no wheel ships, and OpenCV has no
    landmark model at all.
  - mediapipe: the 1.x wheels ship no models (the Tasks API downloads them); 0.10.21 ships face
    detection and face-mesh models but pins protobuf < 5 and numpy < 2.
License: dlib's 68-point predictor was trained on the iBUG 300-W data set, whose terms exclude
commercial use; so do the AU results that rest on it.

Speed. Full-frame detection is the expensive part, so in a video it runs only on the first frame,
every `redetect_every` frames (to find faces that enter and drop faces that leave) and after a
face was lost; on the frames between, the predictor starts from the box the face's previous
landmarks give. `face_id`s follow faces across frames by box overlap.

Pure numpy / dlib: no TensorFlow, no Beam.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schemas.face import IBUG_68_TO_49

# A new face needs at least this HOG score (dlib's SVM margin). On the astronaut photo and videos
# made from it the face scores 0.8-1.6 and the one false detection (a patch of her suit) 0.12-0.33.
# A face that is already tracked is kept at any positive score.
MIN_NEW_FACE_SCORE = 0.5
REDETECT_EVERY = 10
# Boxes overlapping at least this much (intersection over union) are the same face.
SAME_FACE_IOU = 0.3
# The predictor's landmarks moved so far from the box they started in that the face is lost.
LOST_IOU = 0.5


@dataclass(frozen=True)
class Face:
    face_id: int
    landmarks: np.ndarray   # (49, 2) float32, raw-frame pixels, 0-based
    confidence: float       # HOG score of the face's latest detection (higher is surer)
    detected: bool          # this frame ran the detector (False: seeded by the previous frame)


def predictor_path() -> str:
    """The 68-point model file that `face-recognition-models` installs."""
    import face_recognition_models

    return face_recognition_models.pose_predictor_model_location()


def box_iou(a, b) -> float:
    """Intersection over union of two (left, top, right, bottom) boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _points_box(points: np.ndarray) -> tuple[float, float, float, float]:
    low, high = points.min(axis=0), points.max(axis=0)
    return float(low[0]), float(low[1]), float(high[0]), float(high[1])


def to_grey(image: np.ndarray) -> np.ndarray:
    """uint8 grey of an RGB, RGBA or grey image (what the detector and the predictor read)."""
    image = np.asarray(image)
    if image.ndim == 2:
        return np.ascontiguousarray(image, dtype=np.uint8)
    import cv2

    code = cv2.COLOR_RGBA2GRAY if image.shape[2] == 4 else cv2.COLOR_RGB2GRAY
    return cv2.cvtColor(np.ascontiguousarray(image, dtype=np.uint8), code)


@dataclass
class _Track:
    face_id: int
    box: tuple          # the predictor's input box of the latest frame
    points: np.ndarray  # (68, 2) of the latest frame
    confidence: float
    previous_points: np.ndarray | None = None   # (68, 2) of the frame before
    # The detector's box relative to the landmarks' box at the latest detection: centre offset
    # and size, in units of the landmarks' box size. Seeds the next frame's box.
    box_from_points: tuple = (0.0, 0.0, 1.0)


class FaceTracker:
    """Faces of a photo (`detect`) or of consecutive video frames (`track`).

    upsample        detector pyramid upsampling: 0 finds faces of about 80 pixels and more, 1
                    down to about 40 at four times the detection time
    redetect_every  frames between full-frame detections in `track` (1: detect on every frame)
    """

    def __init__(self, upsample: int = 0, redetect_every: int = REDETECT_EVERY,
                 min_score: float = MIN_NEW_FACE_SCORE):
        import dlib

        if upsample < 0:
            raise ValueError(f"upsample must be >= 0, got {upsample}")
        if redetect_every < 1:
            raise ValueError(f"redetect_every must be >= 1, got {redetect_every}")
        self.upsample = int(upsample)
        self.redetect_every = int(redetect_every)
        self.min_score = float(min_score)
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(predictor_path())
        self.reset()

    def reset(self) -> None:
        """Forget all faces: the next `track` call starts a new video."""
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._frames_since_detection = 0
        self._lost = False

    # -- the two steps, timed separately by the benchmark ------------------------------------

    def detect_boxes(self, grey: np.ndarray) -> list[tuple[tuple, float]]:
        """(box, score) of every face the HOG detector finds with a positive score."""
        rects, scores, _ = self._detector.run(grey, self.upsample, 0.0)
        return [((r.left(), r.top(), r.right(), r.bottom()), float(s))
                for r, s in zip(rects, scores)]

    def landmarks68(self, grey: np.ndarray, box) -> np.ndarray:
        """(68, 2) float32 iBUG points of the face in `box` (left, top, right, bottom)."""
        rect = self._dlib.rectangle(*(int(round(v)) for v in box))
        shape = self._predictor(grey, rect)
        return np.array([(p.x, p.y) for p in shape.parts()], np.float32)

    # -- photos --------------------------------------------------------------------------------

    def detect(self, image: np.ndarray) -> list[Face]:
        """Every face of one photo, numbered left to right."""
        grey = to_grey(image)
        found = sorted((b for b in self.detect_boxes(grey) if b[1] >= self.min_score),
                       key=lambda b: b[0][0])
        return [Face(i, self.landmarks68(grey, box)[list(IBUG_68_TO_49)], score, True)
                for i, (box, score) in enumerate(found)]

    # -- videos --------------------------------------------------------------------------------

    def track(self, frame: np.ndarray) -> list[Face]:
        """The faces of the next frame of a video, with ids that follow them across frames."""
        grey = to_grey(frame)
        detect = (not self._tracks or self._lost
                  or self._frames_since_detection >= self.redetect_every - 1)
        if detect:
            self._match_detections(self.detect_boxes(grey))
            self._frames_since_detection = 0
        else:
            self._frames_since_detection += 1
        self._lost = False
        faces = []
        for track in self._tracks:
            if not detect:
                track.box = _seed_box(track)
            track.previous_points = track.points if track.points.any() else None
            track.points = self.landmarks68(grey, track.box)
            if detect:
                track.box_from_points = _relative_box(track.box, track.points)
            elif box_iou(_box_around(track.points, track.box_from_points), track.box) < LOST_IOU:
                self._lost = True   # the predictor slid off the face: detect on the next frame
            faces.append(Face(track.face_id, track.points[list(IBUG_68_TO_49)],
                              track.confidence, detect))
        return faces

    def _match_detections(self, detections) -> None:
        """Keep the tracks a detection overlaps (greedily, best overlap first), start tracks for
        new faces that score enough, end the tracks no detection overlaps."""
        pairs = sorted(((box_iou(track.box, box), t, d)
                        for t, track in enumerate(self._tracks)
                        for d, (box, _) in enumerate(detections)), reverse=True)
        kept, used = {}, set()
        for iou, t, d in pairs:
            if iou < SAME_FACE_IOU or t in kept or d in used:
                continue
            kept[t] = d
            used.add(d)
        tracks = []
        for t, d in sorted(kept.items()):
            track = self._tracks[t]
            track.box, track.confidence = detections[d]
            tracks.append(track)
        for d, (box, score) in sorted(enumerate(detections), key=lambda e: e[1][0][0]):
            if d not in used and score >= self.min_score:
                tracks.append(_Track(self._next_id, box, np.zeros((68, 2), np.float32), score))
                self._next_id += 1
        self._tracks = tracks


def _relative_box(box, points: np.ndarray) -> tuple:
    left, top, right, bottom = _points_box(points)
    size = max(right - left, bottom - top, 1.0)
    return (((box[0] + box[2]) - (left + right)) / 2 / size,
            ((box[1] + box[3]) - (top + bottom)) / 2 / size,
            max(box[2] - box[0], box[3] - box[1]) / size)


def _box_around(points: np.ndarray, box_from_points: tuple) -> tuple:
    """The detector-like box around `points`, `box_from_points` as _relative_box measured it."""
    left, top, right, bottom = _points_box(points)
    size = max(right - left, bottom - top, 1.0)
    dx, dy, scale = box_from_points
    cx, cy = (left + right) / 2 + dx * size, (top + bottom) / 2 + dy * size
    half = scale * size / 2
    return (cx - half, cy - half, cx + half, cy + half)


def _seed_box(track: _Track) -> tuple:
    """The box the face should be in on the next frame: around the latest landmarks, moved and
    scaled as much again as the face moved between the last two frames (the predictor starts
    from a box, and a box that lags a moving face makes its landmarks lag too)."""
    box = np.array(_box_around(track.points, track.box_from_points))
    if track.previous_points is not None:
        box = 2 * box - np.array(_box_around(track.previous_points, track.box_from_points))
    return tuple(box)
