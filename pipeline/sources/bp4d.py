"""BP4D-Spontaneous raw folders (docs/data.md): list, read and write them.

Layout under the root:
  Sequences_2D+3D/<subject>/<task>/<frame>.jpg   frame zero-padded to 4 digits (F001-F023,
                                                 M001-M008) or 3 digits (M009-M018)
  AUCoding/AU_OCC/<subject>_<task>.csv           (some copies: AUCoding/<subject>_<task>.csv)
      one header row; column 0 the frame number; old files head 100 columns 0..99 (column N is
      AU N), re-released files name only the coded AUs ("1", "AU1", "AU01", ...).
      Codes: 1 present, 0 absent, 9 not coded (-> -1; any other value is not a valid code -> -1).
  2DFeatures/<subject>_<task>.mat                MATLAB v7.3: fit(k).pred, a 49 x 2 matrix of
      1-based pixel coordinates per frame of the coded segment, [] where the tracker failed.

Frame-to-landmark pairing, decided per sequence by evidence. A tracker runs over the image
sequence, and the coded segment need not start at its first image, so the landmark file may hold
one entry per frame of the images or one per frame of the coded segment. The counts decide:
  entries = frames of the image span (first to last image number in the task folder)
      -> entry k is frame `first image + k`                  ("first image")
  entries = frames of the coded span (first to last coded frame; BP4D codes a contiguous segment,
      so that is its number of rows)
      -> entry k is frame `first coded frame + k`            ("first coded frame")
  both spans fit, or neither does: the `landmark_offset` option decides,
      -> entry k is frame `first coded frame + k + landmark_offset`
Default landmark_offset = 0: the plain reading of a file with one entry per coded frame is that
both start at the segment's first frame; a one-frame shift moves points by well under a pixel at
25 fps anyway. Pass 1 to test the other reading. The choice made for each sequence is reported
with its frames (RawFrame.landmark_pairing) and counted in the job's stats.json.

Rows that cannot become an example keep their place in the count: a row repeating an earlier
frame is marked "duplicate frame row" (the first is read). A file without rows, or a frame number
that is not a whole number, makes the whole file unusable (DatasetLayoutError naming it).

Uncoded frames (RawFrame.coded False, every AU -1), for the auxiliary tasks: after a sequence's
coded rows, each image of its folder that no row codes and that has a landmark entry under the
pairing above (an entry index inside the landmark file; an empty entry is "no landmarks"). A
task folder with images and a landmark file but no AU code file is a sequence without codes:
all of its images are uncoded frames, entry k pairing with frame `first image + k` when the
counts fit the image span, else `first image + k + landmark_offset`. When its landmark file is
unreadable its images are still reported, each with that problem.
"""
import io
import os
import re
from typing import Iterator

import numpy as np

from schemas.face import AU_SETS, NUM_LANDMARKS

from . import imageio, layout, matlab
from .errors import DatasetLayoutError
from .records import RawFrame, SourceUnit

DATASET = "bp4d"
AUS = AU_SETS[DATASET]
IMAGES_DIR = "Sequences_2D+3D"
LABELS_DIR = "AUCoding"
OCCURRENCE_DIR = "AU_OCC"
LANDMARKS_DIR = "2DFeatures"
NOT_CODED = 9
NUMBERED_COLUMNS = 100   # old AU_OCC files: columns headed 0..99
DEFAULT_LANDMARK_OFFSET = 0

_LABEL_FILE = re.compile(r"^([FM]\d{3})_(T\d+)\.csv$", re.IGNORECASE)
_LANDMARK_FILE = re.compile(r"^([FM]\d{3})_(T\d+)\.mat$", re.IGNORECASE)
_AU_COLUMN = re.compile(r"^(?:AU)?[ _]?0*(\d+)$", re.IGNORECASE)


def image_name(subject: str, frame: int) -> str:
    """The image file name of a frame: 3-digit padding for M009-M018, 4 digits otherwise."""
    digits = 3 if subject[0].upper() == "M" and int(subject[1:]) >= 9 else 4
    return f"{frame:0{digits}d}.jpg"


def validate_root(root) -> None:
    """Raise DatasetLayoutError unless `root` looks like a BP4D folder."""
    root = layout.require_root(root, "BP4D", (LABELS_DIR, IMAGES_DIR, LANDMARKS_DIR))
    if not _label_files(root):
        raise DatasetLayoutError(
            f"no BP4D AU codes under {root!r}: expected "
            f"{os.path.join(root, LABELS_DIR, OCCURRENCE_DIR, '<subject>_<task>.csv')} or "
            f"{os.path.join(root, LABELS_DIR, '<subject>_<task>.csv')} (e.g. F001_T1.csv); "
            f"point the root at the BP4D folder itself")
    layout.require_folders(root, "BP4D", {IMAGES_DIR: "<subject>/<task>/<frame>.jpg",
                                          LANDMARKS_DIR: "<subject>_<task>.mat"})


def list_units(root, subjects=None) -> list[SourceUnit]:
    """One unit per subject-task with AU codes, and one per task folder with images and a landmark
    file but no AU codes (no "labels" path), sorted; `subjects` keeps only those subjects."""
    validate_root(root)
    root = os.fspath(root)
    labels = _label_files(root)
    images, landmarks = layout.child(root, IMAGES_DIR), layout.child(root, LANDMARKS_DIR)
    uncoded = {key: None for key in _landmark_files(landmarks) if key not in labels
               and os.path.isdir(layout.descend(images, *key))}
    sequences = {**labels, **uncoded}
    if subjects is not None:
        subjects = layout.require_subjects(root, "BP4D", {s for s, _ in sequences}, subjects)
        sequences = {key: path for key, path in sequences.items() if key[0] in subjects}
    return [SourceUnit(DATASET, subject, task, {
                **({"labels": path} if path else {}),
                "images": layout.descend(images, subject, task),
                "landmarks": layout.descend(landmarks, f"{subject}_{task}.mat"),
            }) for (subject, task), path in sorted(sequences.items())]


def read_unit(unit: SourceUnit, landmark_offset: int = DEFAULT_LANDMARK_OFFSET,
              decode_images: bool = True) -> Iterator[RawFrame]:
    """Every coded frame of one sequence, in CSV order, then its uncoded frames in frame order
    (see the module doc); unusable frames carry `problem`.

    decode_images=False leaves each image to its reader (image None, image_source the JPEG to
    pass to imageio.read_jpeg): the preprocessing job decodes frame by frame, so that a file the
    decoder fails on costs that frame only."""
    if "labels" in unit.paths:
        frames, au = read_au_codes(unit.paths["labels"])
    else:
        frames, au = np.zeros(0, np.int64), np.zeros((0, len(AUS)), np.int64)
    landmarks_path = unit.paths["landmarks"]
    entries, file_problem = _read_pred(landmarks_path)
    images = _ImageFolder(unit.paths["images"], unit.subject)
    anchor, pairing = landmark_anchor(len(entries), frames, images.numbers, landmark_offset)
    pairing = None if file_problem else pairing
    seen = set()
    for frame, codes in zip(frames.tolist(), au):
        entry = frame - anchor
        image_path = images.path(frame)
        if frame in seen:
            problem = f"duplicate frame row: frame {frame} is coded again in {unit.paths['labels']}"
        else:
            problem = images.problem or (None if image_path else "image missing")
        seen.add(frame)
        image, landmarks, problem = _frame_data(problem, entries, entry, file_problem, image_path,
                                                decode_images)
        yield RawFrame(
            dataset=unit.dataset, subject=unit.subject, task=unit.task, frame=frame,
            image=image, landmarks=landmarks, au=codes,
            image_source=image_path or os.path.join(images.folder, image_name(unit.subject, frame)),
            landmark_source=f"{landmarks_path}#{entry}", problem=problem,
            landmark_pairing=pairing)
    yield from _uncoded_frames(unit, images, seen, entries, anchor, file_problem, pairing,
                               decode_images)


def _uncoded_frames(unit, images, coded, entries, anchor, file_problem, pairing, decode_images):
    """The images no row codes that have a landmark entry (all images of a sequence without codes
    whose landmark file is unusable, each carrying the file's problem)."""
    if file_problem and coded:
        return
    not_coded = np.full(len(AUS), -1, np.int64)
    for frame in images.numbers:
        entry = frame - anchor
        if frame in coded or not (file_problem or 0 <= entry < len(entries)):
            continue
        image_path = images.path(frame)
        image, landmarks, problem = _frame_data(None, entries, entry, file_problem, image_path,
                                                decode_images)
        yield RawFrame(
            dataset=unit.dataset, subject=unit.subject, task=unit.task, frame=frame,
            image=image, landmarks=landmarks, au=not_coded.copy(),
            image_source=image_path, landmark_source=f"{unit.paths['landmarks']}#{entry}",
            problem=problem, landmark_pairing=pairing, coded=False)


def _frame_data(problem, entries, entry, file_problem, image_path, decode_images):
    """(image or None, landmarks or None, problem) of a frame: its landmark entry and then its
    image are read only while no problem has set it aside."""
    landmarks = image = None
    if problem is None:
        landmarks, problem = (None, file_problem) if file_problem else _landmarks(entries, entry)
    if problem is None and decode_images:
        image, problem = imageio.read_jpeg(image_path)
    return image, (landmarks if problem is None else None), problem


def landmark_anchor(entries: int, frames: np.ndarray, image_numbers,
                    landmark_offset: int = DEFAULT_LANDMARK_OFFSET) -> tuple[int, str]:
    """(the frame landmark entry 0 belongs to, how that was decided): see the module doc."""
    fits_images = bool(image_numbers) and entries == max(image_numbers) - min(image_numbers) + 1
    if not len(frames):   # a sequence without AU codes: its images are the only anchor
        first_image = min(image_numbers, default=0)
        if fits_images:
            return first_image, "first image"
        return first_image + landmark_offset, \
            "landmark_offset option from the first image (no AU codes; counts fit no span)"
    first_coded = int(frames.min())
    fits_coded = entries == int(frames.max()) - first_coded + 1
    if fits_images and not fits_coded:
        return min(image_numbers), "first image"
    if fits_coded and not fits_images:
        return first_coded, "first coded frame"
    return first_coded + landmark_offset, \
        f"landmark_offset option (counts fit {'both spans' if fits_coded else 'neither span'})"


def read_au_codes(path) -> tuple[np.ndarray, np.ndarray]:
    """(frame numbers int64 (n,), codes int64 (n, 12) in AUS order, 1/0/-1) of one AU_OCC file."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            header = [name.strip().strip('"') for name in f.readline().split(",")]
            rows = f.read()
        values = np.loadtxt(io.StringIO(rows), delimiter=",", ndmin=2, dtype=np.float64) \
            if rows.strip() else np.zeros((0, len(header)))
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise DatasetLayoutError(
            f"cannot read BP4D AU codes {path!r}: {error}; expected a comma-separated file with one "
            f"header row and one row of numbers per frame — replace it with the original") from None
    columns = {}
    for index, name in enumerate(header[1:], start=1):
        match = _AU_COLUMN.match(name)
        if match:
            columns.setdefault(int(match[1]), index)
    missing = [au for au in AUS if au not in columns]
    if missing:
        raise DatasetLayoutError(
            f"BP4D AU codes {path!r} have no column for AU {', '.join(map(str, missing))} "
            f"(header: {','.join(header[:8])}{',...' if len(header) > 8 else ''}); expected the "
            f"frame first, then AU columns headed 0..99 or named like 1, AU1 or AU01")
    if len(values) and values.shape[1] != len(header):
        raise DatasetLayoutError(
            f"BP4D AU codes {path!r}: rows have {values.shape[1]} values but the header names "
            f"{len(header)} columns; replace the file with the original")
    if not len(values):
        raise DatasetLayoutError(
            f"BP4D AU codes {path!r} have a header but no frame rows, so the sequence would add "
            f"nothing; replace the file with the original or move it out of {LABELS_DIR}/")
    fractional = np.flatnonzero(values[:, 0] != np.round(values[:, 0]))
    if len(fractional):
        raise DatasetLayoutError(
            f"BP4D AU codes {path!r}: frame number {values[fractional[0], 0]:g} (row "
            f"{fractional[0] + 1} after the header) is not a whole number; the frame it codes is "
            f"unknown — replace the file with the original")
    raw = values[:, [columns[au] for au in AUS]]
    codes = np.where(raw == 1, 1, np.where(raw == 0, 0, -1)).astype(np.int64)
    return values[:, 0].astype(np.int64), codes


def write_sequence(root, subject: str, task: str, frames: dict, landmarks: dict,
                   codes: dict | None, header_style: str = "numbered", au_folder: str = "AU_OCC",
                   landmark_offset: int = DEFAULT_LANDMARK_OFFSET,
                   landmark_entries: str = "coded") -> None:
    """Write one subject-task in BP4D's raw layout.

    frames     {frame: RGB uint8 image, or bytes written verbatim (a corrupt JPEG)}; a frame listed
               in `codes` but absent here has no image file
    landmarks  {frame: (49, 2) 0-based pixels or None}; written 1-based, [] for None or absent
    codes      {frame: {AU number: 0, 1 or 9}}; AUs not given are written as 9 (not coded).
               None: a sequence nobody coded, no AU file at all (landmark_entries must be
               "images")
    header_style  "numbered" (100 columns 0..99) or "named" (frame, then AU01, AU02, ...)
    au_folder     "AU_OCC" (AUCoding/AU_OCC/) or "flat" (AUCoding/)
    landmark_entries "coded": one pred entry per frame of the coded span, entry k is frame
                     first_coded + k + landmark_offset; "images": one per frame from the first to
                     the last image in `frames`, entry k is frame first_image + k (see module doc)
    """
    root = os.fspath(root)
    if codes is None and landmark_entries != "images":
        raise ValueError("a sequence without codes has no coded span to pair landmarks with: "
                         "pass landmark_entries='images'")
    image_folder = os.path.join(root, IMAGES_DIR, subject, task)
    os.makedirs(image_folder, exist_ok=True)
    for frame, image in frames.items():
        imageio.write_jpeg(os.path.join(image_folder, image_name(subject, frame)), image)
    if codes is not None:
        _write_au_codes(_label_path(root, subject, task, au_folder), codes, header_style)

    if landmark_entries == "coded":
        start, stop = min(codes) + landmark_offset, max(codes) + 1 + landmark_offset
    elif landmark_entries == "images":
        start, stop = min(frames), max(frames) + 1
    else:
        raise ValueError(f"landmark_entries must be 'coded' or 'images', not {landmark_entries!r}")
    pred = []
    for frame in range(start, stop):
        points = landmarks.get(frame)
        if points is not None and np.shape(points) != (NUM_LANDMARKS, 2):
            raise ValueError(f"landmarks of frame {frame} have shape {np.shape(points)}, "
                             f"expected ({NUM_LANDMARKS}, 2)")
        pred.append(None if points is None else matlab.to_matlab_pixels(points))
    os.makedirs(os.path.join(root, LANDMARKS_DIR), exist_ok=True)
    matlab.write_v73_struct_field(os.path.join(root, LANDMARKS_DIR, f"{subject}_{task}.mat"),
                                  "fit", "pred", pred)


def _write_au_codes(path, codes: dict, header_style: str) -> None:
    if header_style == "numbered":
        aus = list(range(1, NUMBERED_COLUMNS))
        header = [str(column) for column in range(NUMBERED_COLUMNS)]
    elif header_style == "named":
        aus = sorted(set(AUS).union(*(frame_codes.keys() for frame_codes in codes.values())))
        header = ["frame"] + [f"AU{au:02d}" for au in aus]
    else:
        raise ValueError(f"header_style must be 'numbered' or 'named', not {header_style!r}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(",".join(header) + "\n")
        for frame in sorted(codes):
            row = [frame] + [codes[frame].get(au, NOT_CODED) for au in aus]
            f.write(",".join(map(str, row)) + "\n")


def _label_path(root, subject, task, au_folder) -> str:
    if au_folder not in ("AU_OCC", "flat"):
        raise ValueError(f"au_folder must be 'AU_OCC' or 'flat', not {au_folder!r}")
    folder = os.path.join(root, LABELS_DIR, *([OCCURRENCE_DIR] if au_folder == "AU_OCC" else []))
    return os.path.join(folder, f"{subject}_{task}.csv")


def _label_files(root) -> dict[tuple[str, str], str]:
    """(subject, task) -> AU code file; AUCoding/AU_OCC/ wins over a copy directly in AUCoding/."""
    found = {}
    labels = layout.child(root, LABELS_DIR)
    for folder in (labels, labels and layout.child(labels, OCCURRENCE_DIR)):
        for name in layout.listing(folder).values() if folder else ():
            match = _LABEL_FILE.match(name)
            if match:
                found[(match[1].upper(), match[2].upper())] = os.path.join(folder, name)
    return found


def _landmark_files(folder) -> list[tuple[str, str]]:
    """(subject, task) of every <subject>_<task>.mat in the landmark folder."""
    keys = []
    for name in layout.listing(folder).values() if folder else ():
        match = _LANDMARK_FILE.match(name)
        if match:
            keys.append((match[1].upper(), match[2].upper()))
    return keys


def _read_pred(path) -> tuple[list, str | None]:
    """(fit.pred entries, None), or ([], reason) when the whole landmark file is unusable."""
    if not os.path.lexists(path):   # a dangling or looping link is there, but unreadable
        return [], "landmark file missing"
    try:
        return matlab.read_v73_struct_field(path, "fit", "pred"), None
    except (OSError, KeyError, ValueError) as error:
        return [], f"landmark file unreadable: {error}"


def _landmarks(entries: list, entry: int) -> tuple[np.ndarray | None, str | None]:
    if not 0 <= entry < len(entries) or entries[entry] is None:
        return None, "no landmarks"
    points = entries[entry]
    if points.shape == (2, NUM_LANDMARKS):
        points = points.T
    if points.shape != (NUM_LANDMARKS, 2):
        return None, f"landmarks malformed: shape {points.shape}"
    if not np.isfinite(points).all():
        return None, "no landmarks (not finite)"
    return matlab.from_matlab_pixels(points), None


class _ImageFolder:
    """One listing of a sequence's image folder, so each frame costs no extra file-system call.

    `problem` is set when the folder exists but cannot be listed (not a folder, no permission, a
    symbolic link loop): every frame of the sequence then carries it instead of "image missing".
    """

    def __init__(self, folder: str, subject: str):
        self.folder, self.subject, self.problem = folder, subject, None
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            names = []
        except OSError as error:
            names, self.problem = [], f"image folder unreadable: {error.strerror or error}"
        self._names = set(names)
        # A copy padded differently from the rule is still found by its number.
        self._by_number = {}
        for name in names:
            stem, ext = os.path.splitext(name)
            if ext.lower() == ".jpg" and stem.isdigit():
                self._by_number[int(stem)] = name
        self.numbers = sorted(self._by_number)

    def path(self, frame: int) -> str | None:
        name = image_name(self.subject, frame)
        if name not in self._names:
            name = self._by_number.get(frame)
        return os.path.join(self.folder, name) if name else None
