"""--unlabelled_dir: extra face videos and image sequences without AU codes (docs/data.md), for the
auxiliary tasks. Every frame read is uncoded (RawFrame.coded False, every AU -1).

Layout under the folder:
  <subject>/<sequence>.<mp4|avi|mov|mkv|...>   a video OpenCV decodes, or
  <subject>/<sequence>/<any name>.<jpg|png|...> a folder of images, the frames in name order
  <subject>/<sequence>.csv                     the sequence's landmarks (see below); optional
Frames count from 1, in video order or name order, as the CSV's `frame` column counts them. A
subject named like one of the dataset's subjects belongs to that subject's part; any other
subject is in no part (pipeline.job writes it to unlabelled/outside/).

Landmark CSV: one header row, then one row per face and frame; columns `frame`, optionally
`face_id` and `success`, and either x_0..x_48, y_0..y_48 (the 49-point scheme, raw-frame pixels,
as `python -m pipeline.analyze` writes them) or x_0..x_67, y_0..y_67 (iBUG's 68 points, as
OpenFace's FeatureExtraction writes them; mapped with schemas.face.IBUG_68_TO_49). Names may
carry spaces (OpenFace's do). A row with success 0 or empty points gives no landmarks. When the
CSV holds several faces, the face with landmarks on most frames is the sequence's (the subject);
the others are not read.

Without a CSV the project's face tracker (pipeline.tracking: dlib's HOG detector and 68-point
predictor, as pipeline.analyze uses it) finds the landmarks in a first pass over the frames;
the face it tracks on most frames is the subject. It costs tens of milliseconds a frame.

Each frame is one frame in: one without landmarks ("no landmarks") or with an image that cannot
be decoded ("image unreadable: ...") is rejected with its reason, never left out.
"""
from __future__ import annotations

import csv
import os
from typing import Iterator

import numpy as np

from schemas.face import IBUG_68_TO_49, NUM_LANDMARKS

from . import imageio, layout
from .errors import DatasetLayoutError
from .records import RawFrame, SourceUnit

DATASET = "unlabelled"
LANDMARKS_SUFFIX = ".csv"
TRACKER = "face tracker (pipeline.tracking)"
_SCHEMES = {68: IBUG_68_TO_49, NUM_LANDMARKS: tuple(range(NUM_LANDMARKS))}


def validate_root(root) -> None:
    """DatasetLayoutError unless `root` holds at least one sequence and every sequence's video
    opens and landmark CSV names its columns as the module doc says."""
    for unit in list_units(root):
        if "video" in unit.paths:
            if not imageio.video_opens(unit.paths["video"]):
                raise DatasetLayoutError(f"{unit.paths['video']}: {imageio.CANNOT_OPEN_VIDEO}")
        if "landmarks" in unit.paths:
            _columns(unit.paths["landmarks"])


def list_units(root, subjects=None) -> list[SourceUnit]:
    """One unit per <subject>/<sequence> (a video or an image folder), sorted; `subjects` keeps
    only those subjects."""
    root = layout.require_root(root, "--unlabelled_dir", ("<subject>",))
    units = []
    for subject in sorted(layout.listing(root).values()):
        folder = os.path.join(root, subject)
        if not os.path.isdir(folder) or (subjects is not None and subject not in subjects):
            continue
        units += _sequences(folder, subject)
    if not units:
        raise DatasetLayoutError(
            f"--unlabelled_dir {root!r} holds no sequence: expected <subject>/<sequence>.mp4 (or "
            f"another video) or <subject>/<sequence>/ with images, e.g. "
            f"{os.path.join(root, 'P01', 'interview.mp4')}")
    return units


def _sequences(folder: str, subject: str) -> list[SourceUnit]:
    names = sorted(os.listdir(folder))
    csvs = {os.path.splitext(n)[0]: n for n in names if n.lower().endswith(LANDMARKS_SUFFIX)}
    found = {}
    for name in names:
        path = os.path.join(folder, name)
        stem, suffix = os.path.splitext(name)
        if os.path.isdir(path):
            paths = {"images": path}
            stem = name
        elif suffix.lower() in imageio.VIDEO_SUFFIXES:
            paths = {"video": path}
        else:
            continue
        if stem in found:
            raise DatasetLayoutError(
                f"{os.path.join(folder, stem)}: both a video and an image folder (or two videos) "
                f"are named {stem!r}; rename one (its landmarks would be {stem}.csv for both)")
        if stem in csvs:
            paths["landmarks"] = os.path.join(folder, csvs[stem])
        found[stem] = SourceUnit(DATASET, subject, stem, paths)
    orphans = sorted(set(csvs) - set(found))
    if orphans:
        raise DatasetLayoutError(
            f"{os.path.join(folder, csvs[orphans[0]])}: landmarks of no sequence (no video or "
            f"image folder named {orphans[0]!r} beside it); rename it or move it out")
    return [found[stem] for stem in sorted(found)]


def read_unit(unit: SourceUnit, num_aus: int) -> Iterator[RawFrame]:
    """Every frame of one sequence, in order; `num_aus` the dataset's AU count (all -1)."""
    if "landmarks" in unit.paths:
        landmarks, source = read_landmarks(unit.paths["landmarks"]), unit.paths["landmarks"]
    else:
        landmarks, source = _tracked(unit), TRACKER
    not_coded = np.full(num_aus, -1, np.int64)
    for number, image, image_source, problem in _frames(unit):
        points = landmarks.get(number)
        if problem is None and points is None:
            problem = "no landmarks"
        yield RawFrame(
            dataset=unit.dataset, subject=unit.subject, task=unit.task, frame=number,
            image=image if problem is None else None,
            landmarks=points if problem is None else None, au=not_coded.copy(),
            image_source=image_source, landmark_source=f"{source}#frame {number}",
            problem=problem, coded=False)


def read_landmarks(path) -> dict[int, np.ndarray]:
    """{frame: (49, 2) float32 raw pixels} of the CSV's main face (see the module doc)."""
    frame_column, face_column, success_column, xs, ys, scheme = _columns(path)
    faces: dict[str, dict[int, np.ndarray]] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = csv.reader(f)
        next(rows)
        for line, row in enumerate(rows, start=2):
            if not row or len(row) <= max(xs + ys + [frame_column]):
                continue
            if success_column is not None and row[success_column].strip() in ("0", "0.0", ""):
                continue
            try:
                frame = int(float(row[frame_column]))
                points = np.array([[float(row[x]), float(row[y])] for x, y in zip(xs, ys)],
                                  np.float32)
            except ValueError:   # empty points: a frame without a face
                continue
            if not np.isfinite(points).all():
                continue
            face = row[face_column].strip() if face_column is not None else "0"
            faces.setdefault(face, {})[frame] = points[list(scheme)]
    return _main_face(faces)


def _columns(path):
    """(frame, face_id or None, success or None, x columns, y columns, 49-point selection)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = [name.strip() for name in next(csv.reader(f), [])]
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetLayoutError(f"cannot read landmarks {path!r}: {error}") from None
    index = {name: i for i, name in enumerate(header)}
    for count, scheme in _SCHEMES.items():
        names = [f"x_{i}" for i in range(count)], [f"y_{i}" for i in range(count)]
        if all(n in index for n in names[0] + names[1]) and f"x_{count}" not in index:
            if "frame" not in index:
                break
            return (index["frame"], index.get("face_id"), index.get("success"),
                    [index[n] for n in names[0]], [index[n] for n in names[1]], scheme)
    raise DatasetLayoutError(
        f"landmarks {path!r}: expected a header with frame and x_0..x_48, y_0..y_48 (as python -m "
        f"pipeline.analyze writes) or x_0..x_67, y_0..y_67 (OpenFace), got "
        f"{','.join(header[:8])}{',...' if len(header) > 8 else ''}")


def _frames(unit: SourceUnit):
    """(frame number from 1, RGB image or None, image source, problem or None) of a sequence."""
    if "images" in unit.paths:
        folder = unit.paths["images"]
        names = sorted(n for n in os.listdir(folder)
                       if os.path.splitext(n)[1].lower() in imageio.IMAGE_SUFFIXES)
        for number, name in enumerate(names, start=1):
            path = os.path.join(folder, name)
            image, problem = imageio.read_image(path)
            yield number, image, path, problem
        return
    path = unit.paths["video"]
    video = imageio.open_video(path)
    if video is None:
        raise DatasetLayoutError(f"{path}: {imageio.CANNOT_OPEN_VIDEO}")
    for number, _, image in video[1]:
        yield number, image, f"{path}#{number - 1}", None


def _tracked(unit: SourceUnit) -> dict[int, np.ndarray]:
    """{frame: (49, 2)} of the face the tracker follows on most frames (a first pass)."""
    from pipeline.tracking import FaceTracker

    tracker = FaceTracker()
    faces: dict[int, dict[int, np.ndarray]] = {}
    for number, image, _, problem in _frames(unit):
        if problem is None:
            for face in tracker.track(image):
                faces.setdefault(face.face_id, {})[number] = face.landmarks
    return _main_face(faces)


def _main_face(faces: dict) -> dict[int, np.ndarray]:
    """The landmarks of the face with landmarks on most frames (the first such id on a tie)."""
    if not faces:
        return {}
    return faces[max(sorted(faces), key=lambda face: len(faces[face]))]
