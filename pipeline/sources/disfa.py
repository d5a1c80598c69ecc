"""DISFA raw folders (docs/data.md): list, read and write them.

Layout under the root (folder and video names are matched case-insensitively; copies vary):
  Videos_LeftCamera/LeftVideo<subject>_comp.avi        frames 0-based; the right camera is unused
  ActionUnit_Labels/<subject>/<subject>_au<N>.txt      lines "frame,intensity", frame 1-based,
                                                       intensity 0-5, no header; N in CODED_AUS
  Landmark_Points/<subject>/tmp_frame_lm/<subject>_<NNNN>_lm.mat  (or l0<NNNN>_lm.mat)
      NNNN the 0-based frame; variable `pts`, 66 x 2, 1-based pixels; a few files are missing.
A subject is one unit (task ""). Positive = intensity >= 2 (docs/landmarks-and-aus.md); an intensity outside
0-5 or a frame absent from one AU's file is -1 (not coded).

Frame offsets. Label frame f (1-based) is decoded from video frame f + video_offset and takes the
landmarks of file number f + landmark_offset. Default both -1: labels count frames from 1, the
video and the landmark file names from 0, and all three list the same 4,845 frames per subject, so
they are one sequence counted from different bases. Pass 0 to test the other reading.

The video is decoded in one sequential pass per unit (no seeking): AVI seeking is slow and, for
some codecs, lands on the wrong frame.
"""
import os
import re
from typing import Iterator

import cv2
import numpy as np
from scipy.io.matlab import MatReadError

from schemas.face import AU_SETS, DISFA_66_TO_49

from . import layout, matlab
from .errors import DatasetLayoutError
from .records import RawFrame, SourceUnit

DATASET = "disfa"
AUS = AU_SETS[DATASET]
CODED_AUS = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)   # every AU with a label file
POSITIVE_INTENSITY = 2
MAX_INTENSITY = 5
VIDEOS_DIR = "Videos_LeftCamera"
LABELS_DIR = "ActionUnit_Labels"
LANDMARKS_DIR = "Landmark_Points"
LANDMARK_SUBDIR = "tmp_frame_lm"
LANDMARK_VARIABLE = "pts"
RAW_LANDMARKS = 66
FPS = 20
DEFAULT_VIDEO_OFFSET = -1
DEFAULT_LANDMARK_OFFSET = -1

_SUBJECT = re.compile(r"^SN\d{3}$", re.IGNORECASE)
_LANDMARK_FILE = re.compile(r"^(?:SN\d{3}_|l0)(\d+)_lm\.mat$", re.IGNORECASE)


def video_name(subject: str) -> str:
    return f"LeftVideo{subject}_comp.avi"


def landmark_name(subject: str, frame: int, name_style: str = "SN") -> str:
    """File name of 0-based frame `frame`: "SN" -> SN001_0000_lm.mat, "l0" -> l00000_lm.mat."""
    if name_style == "SN":
        return f"{subject}_{frame:04d}_lm.mat"
    if name_style == "l0":
        return f"l0{frame:04d}_lm.mat"
    raise ValueError(f"name_style must be 'SN' or 'l0', not {name_style!r}")


def validate_root(root) -> None:
    """Raise DatasetLayoutError unless `root` looks like a DISFA folder."""
    root = layout.require_root(root, "DISFA", (LABELS_DIR, VIDEOS_DIR, LANDMARKS_DIR))
    if not _subjects(root):
        raise DatasetLayoutError(
            f"no DISFA labels under {root!r}: expected "
            f"{os.path.join(root, LABELS_DIR, '<subject>', '<subject>_au1.txt')} "
            f"(e.g. SN001/SN001_au1.txt); point the root at the DISFA folder itself")
    layout.require_folders(root, "DISFA", {
        VIDEOS_DIR: video_name("<subject>"),
        LANDMARKS_DIR: os.path.join("<subject>", LANDMARK_SUBDIR, "<subject>_<frame>_lm.mat")})


def list_units(root, subjects=None) -> list[SourceUnit]:
    """One unit per subject with labels, sorted; `subjects` keeps only those subjects."""
    validate_root(root)
    root = os.fspath(root)
    found = _subjects(root)
    if subjects is not None:
        subjects = layout.require_subjects(root, "DISFA", found, subjects)
        found = {subject: path for subject, path in found.items() if subject in subjects}
    units = []
    for subject, label_folder in sorted(found.items()):
        landmark_folder = layout.descend(root, LANDMARKS_DIR, subject)
        units.append(SourceUnit(DATASET, subject, "", {
            "labels": label_folder,
            "video": layout.descend(root, VIDEOS_DIR, video_name(subject)),
            # Some copies keep the files directly in the subject's folder.
            "landmarks": layout.child(landmark_folder, LANDMARK_SUBDIR) or landmark_folder,
        }))
    return units


def read_unit(unit: SourceUnit, video_offset: int = DEFAULT_VIDEO_OFFSET,
              landmark_offset: int = DEFAULT_LANDMARK_OFFSET) -> Iterator[RawFrame]:
    """Every labelled frame of one subject in frame order; unusable frames carry `problem`."""
    frames, au = read_labels(unit.paths["labels"], unit.subject)
    landmark_files = _LandmarkFolder(unit.paths["landmarks"], unit.subject)
    video = _SequentialVideo(unit.paths["video"])
    try:
        for frame, codes in zip(frames.tolist(), au):
            landmark_path = landmark_files.path(frame + landmark_offset)
            landmarks, problem = _read_landmarks(landmark_path)
            image, image_problem = video.frame(frame + video_offset, decode=problem is None)
            problem = image_problem or problem
            yield RawFrame(
                dataset=unit.dataset, subject=unit.subject, task=unit.task, frame=frame,
                image=image if problem is None else None,
                landmarks=landmarks if problem is None else None, au=codes,
                image_source=f"{unit.paths['video']}#{frame + video_offset}",
                landmark_source=landmark_path or landmark_files.expected(frame + landmark_offset),
                problem=problem)
    finally:
        video.close()


def read_labels(folder, subject: str) -> tuple[np.ndarray, np.ndarray]:
    """(label frames int64 (n,), 1-based; occurrence int64 (n, 8) in AUS order, 1/0/-1)."""
    names = layout.listing(folder)
    per_au = {}
    for au in AUS:
        name = f"{subject}_au{au}.txt"
        path = os.path.join(folder, names.get(name.lower(), name))
        try:
            table = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
            if table.size and table.shape[1] != 2:
                raise ValueError(f"{table.shape[1]} values per line, expected 2")
        except (OSError, ValueError) as error:
            raise DatasetLayoutError(
                f"cannot read DISFA labels {path!r}: {error}; expected lines 'frame,intensity' "
                f"(frame 1-based, intensity 0-5) — restore the file from the DISFA release") from None
        per_au[au] = dict(zip(table[:, 0].astype(np.int64).tolist(), table[:, 1].tolist()))
    frames = np.array(sorted(set().union(*per_au.values())), np.int64)
    occurrence = np.full((len(frames), len(AUS)), -1, np.int64)
    for column, au in enumerate(AUS):
        intensity = np.array([per_au[au].get(f, np.nan) for f in frames.tolist()], np.float64)
        valid = (intensity >= 0) & (intensity <= MAX_INTENSITY)
        occurrence[valid, column] = (intensity[valid] >= POSITIVE_INTENSITY).astype(np.int64)
    return frames, occurrence


def write_subject(root, subject: str, frames, landmarks66, intensities: dict,
                  name_style: str = "SN") -> None:
    """Write one subject in DISFA's raw layout.

    frames       RGB uint8 images, all the same size; video frame i (0-based)
    landmarks66  per frame a (66, 2) array of 0-based pixels, or None for a missing file;
                 written 1-based as `pts` in landmark file i
    intensities  {AU: per-frame intensities 0-5}; label line i + 1 (1-based). Every AU of
                 CODED_AUS gets a file; AUs not given are all 0.
    name_style   "SN" (SN001_0000_lm.mat) or "l0" (l00000_lm.mat)
    """
    root = os.fspath(root)
    if len(landmarks66) != len(frames):
        raise ValueError(f"{len(frames)} frames but {len(landmarks66)} landmark entries")
    _write_video(os.path.join(root, VIDEOS_DIR, video_name(subject)), frames)

    label_folder = os.path.join(root, LABELS_DIR, subject)
    os.makedirs(label_folder, exist_ok=True)
    for au in CODED_AUS:
        values = np.asarray(intensities.get(au, np.zeros(len(frames))), np.int64)
        if values.shape != (len(frames),):
            raise ValueError(f"AU {au} has {values.shape} intensities for {len(frames)} frames")
        with open(os.path.join(label_folder, f"{subject}_au{au}.txt"), "w") as f:
            f.writelines(f"{i},{v}\n" for i, v in enumerate(values.tolist(), start=1))

    landmark_folder = os.path.join(root, LANDMARKS_DIR, subject, LANDMARK_SUBDIR)
    os.makedirs(landmark_folder, exist_ok=True)
    for i, points in enumerate(landmarks66):
        if points is None:
            continue
        if np.shape(points) != (RAW_LANDMARKS, 2):
            raise ValueError(f"landmarks of frame {i} have shape {np.shape(points)}, "
                             f"expected ({RAW_LANDMARKS}, 2)")
        matlab.write_v5_matrix(os.path.join(landmark_folder, landmark_name(subject, i, name_style)),
                               LANDMARK_VARIABLE, matlab.to_matlab_pixels(points))


def _write_video(path, frames) -> None:
    height, width = np.shape(frames[0])[:2]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # Motion-JPEG in AVI: OpenCV's own encoder writes it everywhere, no external codec needed.
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), FPS, (width, height))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write the video {path!r}")
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 95)
    try:
        for image in frames:
            if np.shape(image)[:2] != (height, width):
                raise ValueError(f"video frames differ in size: {np.shape(image)} vs {(height, width)}")
            writer.write(cv2.cvtColor(np.asarray(image, np.uint8), cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


def _read_landmarks(path: str | None) -> tuple[np.ndarray | None, str | None]:
    if path is None:
        return None, "landmark file missing"
    try:
        points = matlab.read_v5_matrix(path, LANDMARK_VARIABLE)
    except KeyError:
        return None, f"landmark file unreadable: no variable {LANDMARK_VARIABLE!r}"
    except (OSError, ValueError, TypeError, NotImplementedError, MatReadError) as error:
        return None, f"landmark file unreadable: {error}"
    if points.shape != (RAW_LANDMARKS, 2):
        return None, f"landmarks malformed: shape {points.shape}"
    if not np.isfinite(points).all():
        return None, "no landmarks (not finite)"
    return matlab.from_matlab_pixels(points[list(DISFA_66_TO_49)]), None


class _LandmarkFolder:
    """One listing of a subject's landmark files, in whichever of the two name styles it uses."""

    def __init__(self, folder: str, subject: str):
        self.folder, self.subject = folder, subject
        self._by_number = {}
        for name in layout.listing(folder).values():
            match = _LANDMARK_FILE.match(name)
            if match:
                self._by_number[int(match[1])] = name
        self._style = "l0" if any(n.lower().startswith("l0") for n in self._by_number.values()) else "SN"

    def path(self, number: int) -> str | None:
        """The file of 0-based frame `number`, or None when there is none."""
        name = self._by_number.get(number)
        return os.path.join(self.folder, name) if name else None

    def expected(self, number: int) -> str:
        """Where the file of frame `number` would be, in the folder's name style (for messages)."""
        return os.path.join(self.folder, landmark_name(self.subject, max(number, 0), self._style))


class _SequentialVideo:
    """Frames of a video by increasing 0-based index, decoded in one forward pass."""

    def __init__(self, path: str):
        self.path = path
        self._capture = cv2.VideoCapture(path) if os.path.isfile(path) else None
        self._problem = None
        if self._capture is None:
            self._problem = "video missing"
        elif not self._capture.isOpened():
            self._problem = "video unreadable"
        self._next = 0   # index of the frame the next read returns

    def frame(self, index: int, decode: bool = True) -> tuple[np.ndarray | None, str | None]:
        """The frame `index` (must not decrease between calls); decode=False only skips it."""
        if self._problem:
            return None, self._problem
        if index < 0:
            return None, "image missing: before the video's first frame"
        if index < self._next:
            raise ValueError(f"video frame {index} requested after frame {self._next - 1}")
        while self._next < index:
            if not self._advance(self._capture.grab()):
                return None, self._problem
        if decode:
            ok, bgr = self._capture.read()
        else:
            ok, bgr = self._capture.grab(), None
        if not self._advance(ok):
            return None, self._problem
        return (cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if decode else None), None

    def _advance(self, ok: bool) -> bool:
        if not ok:
            self._problem = f"image missing: video ends after {self._next} frames"
            return False
        self._next += 1
        return True

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()


def _subjects(root) -> dict[str, str]:
    """Subject -> label folder, for every SNnnn folder under ActionUnit_Labels/."""
    labels = layout.child(root, LABELS_DIR)
    if labels is None:
        return {}
    return {name.upper(): os.path.join(labels, name) for name in layout.listing(labels).values()
            if _SUBJECT.match(name) and os.path.isdir(os.path.join(labels, name))}
