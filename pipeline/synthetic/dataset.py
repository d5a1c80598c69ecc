"""Write the synthetic dataset in BP4D's raw layout (or DISFA's), with a few planted bad frames.

Subjects take real subject names, picked in turn from the three official parts of docs/data.md,
so the official partition splits them (three parts with the same number of subjects, give or take
one) and the BP4D / DISFA readers read the folders as they read the real ones. Everything follows
from the seed: subject k and its sequences come from generators seeded with (seed, k, ...), so
asking for more subjects or frames leaves the existing ones as they were.

A sequence's frames are independent draws (each its own expression and pose), or, with `smooth`,
a motion (motion.py) whose optical flow between nearby frames is the AUs' own. For the
self-supervised tasks of RTATL (issue 11) a BP4D set may also hold images without codes:
`uncoded_frames` after the coded ones of every sequence (the landmark file then has one entry
per image), and `unlabelled_tasks` sequences per subject with images and landmarks but no AU
file. The record (SYNTHETIC.json) lists every sequence with its coded and uncoded frames.

Planted bad frames (each kind once per dataset, on distinct frames):
  BP4D   landmarks missing (x2), a truncated JPEG, a missing image file, landmarks collapsed to
         one point (alignment must reject it), and code 9 (not coded) on a run of frames and on
         single AUs -- code 9 frames stay in the data with -1 labels. Among the frames without
         codes (record "planted_uncoded"): landmarks missing on an uncoded frame, a truncated
         JPEG in an unlabelled sequence, when there are such frames.
  DISFA  landmark files missing (x2), collapsed landmarks, an intensity outside 0-5 (read as -1).
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from components.base import LOCK_FILE, folder_lock, parameter_changes
from pipeline.sources import bp4d, disfa
from pipeline.sources.folds import FOLDS
from pipeline.synthetic.face import make_identity, random_pose
from pipeline.synthetic.labels import sample_intensities, strengths
from pipeline.synthetic.motion import smooth_states
from pipeline.synthetic.render import render_face

MARKER = "SYNTHETIC.json"
GENERATING = ".generating"         # inside the dataset folder: a set being written
FRAME_SIZE = (288, 288)            # width, height of a raw frame
LANDMARK_NOISE = 0.3               # pixels: annotation jitter of the stored landmarks
BP4D_TASKS = tuple(f"T{i}" for i in range(1, 9))
BP4D_PLANTS = ("no_landmarks", "no_landmarks", "corrupt_jpeg", "missing_image",
               "degenerate_landmarks", "not_coded_run", "not_coded_au", "not_coded_au")
UNCODED_PLANTS = ("no_landmarks",)       # among the uncoded frames of the coded sequences
UNLABELLED_PLANTS = ("corrupt_jpeg",)    # among the frames of the unlabelled sequences
DISFA_PLANTS = ("no_landmarks", "no_landmarks", "degenerate_landmarks", "bad_intensity")
# Planted frames that the job must reject, and the other ones (kept, with -1 labels).
REJECTED_PLANTS = {"no_landmarks", "corrupt_jpeg", "missing_image", "degenerate_landmarks"}
# The fields added after the first records were written, with the values that generate what a
# record without them describes: such a set is still reused.
LATER_FIELDS = {"smooth": False, "uncoded_frames": 0, "unlabelled_tasks": 0}
_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate. The defaults are the demo's size (1,872 BP4D frames): many people with
    few frames each, because the held-out part tests other people (docs/data.md, "The synthetic
    set", has the runs that showed it)."""
    layout: str = "bp4d"           # "bp4d" or "disfa"
    subjects: int = 36
    tasks: int = 4                 # BP4D tasks per subject (DISFA has one video per subject)
    frames: int = 13               # frames per sequence (BP4D task or DISFA video)
    seed: int = 0
    plant_bad_frames: bool = True
    smooth: bool = False           # expressions and pose change gradually within a sequence
    uncoded_frames: int = 0        # BP4D: images after the coded frames of every sequence
    unlabelled_tasks: int = 0      # BP4D: more tasks per subject, with images but no AU file

    def __post_init__(self):
        if self.layout not in ("bp4d", "disfa"):
            raise ValueError(f"synthetic layout must be 'bp4d' or 'disfa', not {self.layout!r}")
        if not 3 <= self.subjects <= sum(map(len, FOLDS[self.layout])):
            raise ValueError(f"synthetic {self.layout} needs 3 to "
                             f"{sum(map(len, FOLDS[self.layout]))} subjects, not {self.subjects}")
        if not 1 <= self.tasks <= len(BP4D_TASKS) or self.frames < 2:
            raise ValueError(f"synthetic set needs 1-8 tasks and >= 2 frames per sequence, "
                             f"not {self.tasks} tasks of {self.frames} frames")
        if self.uncoded_frames < 0 or self.unlabelled_tasks < 0:
            raise ValueError(f"uncoded frames and unlabelled tasks cannot be negative, not "
                             f"{self.uncoded_frames} and {self.unlabelled_tasks}")
        if self.tasks + self.unlabelled_tasks > len(BP4D_TASKS):
            raise ValueError(f"BP4D has {len(BP4D_TASKS)} tasks: {self.tasks} coded and "
                             f"{self.unlabelled_tasks} unlabelled are too many")
        if self.layout == "disfa" and (self.uncoded_frames or self.unlabelled_tasks):
            raise ValueError("uncoded frames and unlabelled tasks are for the BP4D layout only "
                             "(every DISFA frame has its intensities)")


def subject_names(layout: str, count: int) -> list[str]:
    """`count` official subject names, taken from parts 1, 2, 3, 1, 2, 3, ... in turn.

    BP4D alternates women and men within a part, men from M018 down, so both image-name
    paddings (4 digits for F, 3 for M009-M018) appear from the first few subjects on."""
    queues = []
    for part in FOLDS[layout]:
        if layout == "bp4d":
            women = [s for s in part if s[0] == "F"]
            men = sorted((s for s in part if s[0] == "M"), reverse=True)
            pairs = [s for pair in zip(women, men) for s in pair]
            part = pairs + women[len(men):] + men[len(women):]
        queues.append(list(part))
    return [queues[i % 3][i // 3] for i in range(count)]


def generate(root, spec: SyntheticSpec = SyntheticSpec()) -> dict:
    """Write the dataset under `root` (which must not exist yet, or be empty); return the record
    that is also written, last, to `<root>/SYNTHETIC.json`, with every file written and its size."""
    root = os.fspath(root)
    if os.path.exists(root) and os.listdir(root):
        raise FileExistsError(f"synthetic dataset folder {root!r} is not empty")
    os.makedirs(root, exist_ok=True)
    writer = _write_bp4d if spec.layout == "bp4d" else _write_disfa
    written = writer(root, spec)
    names = subject_names(spec.layout, spec.subjects)
    record = {"spec": asdict(spec), "frames": written.frames, "frame_size": list(FRAME_SIZE),
              "subjects": {name: 1 + i % 3 for i, name in enumerate(names)},
              "planted": written.planted, "uncoded_frames": written.uncoded_frames,
              "unlabelled_frames": written.unlabelled_frames,
              "planted_uncoded": written.planted_uncoded, "sequences": written.sequences,
              "files": _sizes(root)}
    with open(os.path.join(root, MARKER), "w") as f:
        json.dump(record, f, indent=2)
    return record


def ensure(root, spec: SyntheticSpec = SyntheticSpec()) -> dict:
    """The dataset at `root` as `spec` describes it: reused when its record says so, otherwise
    (re)generated. Only what the generator wrote (the files its record lists) is ever deleted;
    a folder holding anything else is refused (FileExistsError). The new set is written into
    <root>/.generating and moved into place when complete."""
    root = os.fspath(root)
    with folder_lock(root, _LOG.warning):
        _finish_publishing(root)
        record = _read_marker(root)
        if record is not None:
            changes = parameter_changes({**LATER_FIELDS, **(record.get("spec") or {})},
                                        asdict(spec))
            missing = _missing_files(root, record)
            if not changes and not missing:
                return record
            reason = (f"its spec changed: {'; '.join(changes)}" if changes else
                      f"{len(missing)} of its files are missing or changed (e.g. {missing[0]})")
            _remove_generated(root, record, reason)
        staging = os.path.join(root, GENERATING)
        if os.path.isdir(staging) and _entries(root) == {GENERATING}:
            _LOG.warning("removing %s, an unfinished generation of a synthetic set", staging)
            shutil.rmtree(staging)
        if _entries(root):
            raise FileExistsError(
                f"{root!r} holds files but no {MARKER}: it is not a synthetic dataset folder; "
                f"pass an empty or new folder for the synthetic data")
        generate(staging, spec)
        _finish_publishing(root)
        return _read_marker(root)


def _entries(root) -> set[str]:
    """What a dataset folder holds, leaving out the lock that a run holds while it works."""
    return set(os.listdir(root)) - {LOCK_FILE} if os.path.isdir(root) else set()


def _read_marker(root) -> dict | None:
    path = os.path.join(root, MARKER)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise FileExistsError(f"{path} cannot be read ({error}); remove the folder {root!r} or "
                              "pass another folder for the synthetic data") from None
    return record if isinstance(record, dict) else None


def _sizes(root) -> dict[str, int]:
    """Relative path -> size of every file under `root` (but the marker and the lock)."""
    sizes = {}
    for folder, subfolders, names in os.walk(root):
        subfolders.sort()
        for name in sorted(names):
            relative = os.path.relpath(os.path.join(folder, name), root)
            if relative not in (MARKER, LOCK_FILE):
                sizes[relative] = os.path.getsize(os.path.join(folder, name))
    return sizes


def _missing_files(root, record) -> list[str]:
    listed = record.get("files")
    if listed is None:  # written before the generator listed its files: trust the record
        return []
    present = _sizes(root)
    return sorted(path for path, size in listed.items() if present.get(path) != size)


def _remove_generated(root, record, reason: str) -> None:
    """Delete the files the generator listed in the record (the record last), nothing else."""
    listed = record.get("files")
    if listed is None:
        raise FileExistsError(
            f"{root!r} must be regenerated ({reason}), but its {MARKER} comes from an earlier "
            f"version that did not list the files it wrote; remove the folder yourself, or pass "
            f"another folder for the synthetic data")
    foreign = sorted(set(_sizes(root)) - set(listed))
    if foreign:
        raise FileExistsError(
            f"{root!r} must be regenerated ({reason}), but it also holds {len(foreign)} file(s) "
            f"the generator did not write ({', '.join(foreign[:3])}); move them out, or pass "
            f"another folder for the synthetic data")
    _LOG.warning("replacing the synthetic dataset in %s: %s", root, reason)
    folders = set()
    for relative in listed:
        path = os.path.join(root, relative)
        if os.path.lexists(path):
            os.unlink(path)
        folders.update(_parents(relative))
    for relative in sorted(folders, key=len, reverse=True):  # deepest first; emptied ones only
        path = os.path.join(root, relative)
        if os.path.isdir(path) and not os.listdir(path):
            os.rmdir(path)
    os.unlink(os.path.join(root, MARKER))


def _parents(relative: str) -> list[str]:
    parents, parent = [], os.path.dirname(relative)
    while parent:
        parents.append(parent)
        parent = os.path.dirname(parent)
    return parents


def _finish_publishing(root) -> None:
    """Move a complete set from <root>/.generating into <root>, its record last. Each step can
    be redone, so a run killed half-way through is finished by the next one."""
    staging = os.path.join(root, GENERATING)
    if not os.path.isfile(os.path.join(staging, MARKER)):
        return
    for name in sorted(os.listdir(staging), key=lambda n: n == MARKER):
        os.replace(os.path.join(staging, name), os.path.join(root, name))
    os.rmdir(staging)


def _frame(identity, task, rng):
    """One rendered frame: (RGB image, 49 landmarks, 17 jaw points, AU intensities)."""
    intensities = sample_intensities(rng, task)
    pose = random_pose(identity, rng, FRAME_SIZE)
    image, points, jaw = render_face(identity, strengths(intensities, rng), pose, FRAME_SIZE, rng)
    points = points + rng.normal(0, LANDMARK_NOISE, points.shape)
    return image, points.astype(np.float32), jaw.astype(np.float32), intensities


def _sequence(identity, task_of, spec: SyntheticSpec, seed: list[int], rng):
    """The frames of one sequence, in order and without end, as _frame returns them.

    Independent frames draw from `rng` one after the other (`task_of(i)`: frame i's task);
    smooth ones (`task_of(k)`: expression keyframe k's task) from generators of their own seeded
    from `seed`, so that what else draws from `rng` (the plants) changes no frame."""
    if not spec.smooth:
        for i in itertools.count():
            yield _frame(identity, task_of(i), rng)
    expression_rng, pose_rng, noise_rng = (np.random.default_rng(seed + [k]) for k in (1, 2, 3))
    for state in smooth_states(identity, task_of, FRAME_SIZE, expression_rng, pose_rng):
        image, points, jaw = render_face(identity, state.strengths, state.pose, FRAME_SIZE,
                                         look=state.look)
        points = points + noise_rng.normal(0, LANDMARK_NOISE, points.shape)
        yield image, points.astype(np.float32), jaw.astype(np.float32), state.intensities


@dataclass
class _Written:
    """What a writer wrote, for the record."""
    frames: int                     # coded frames (what the AU readers read)
    planted: list[dict]             # planted bad frames among them
    sequences: list[dict]           # subject, task, first frame, coded and uncoded frames
    uncoded_frames: int = 0         # images after the coded frames of the coded sequences
    unlabelled_frames: int = 0      # images of the sequences without an AU file
    planted_uncoded: list[dict] = field(default_factory=list)   # planted among those two


def _plan_plants(kinds, sequences, frames_per_sequence, rng) -> dict[tuple[int, int], str]:
    """Distinct (sequence, frame index) for each planted kind."""
    total = sequences * frames_per_sequence
    if len(kinds) > total:
        raise ValueError(f"{total} frames are too few to plant {len(kinds)} bad frames")
    picks = rng.choice(total, size=len(kinds), replace=False)
    return {(int(p) // frames_per_sequence, int(p) % frames_per_sequence): kind
            for p, kind in zip(picks, kinds)}


def _write_bp4d(root, spec: SyntheticSpec) -> _Written:
    names = subject_names("bp4d", spec.subjects)
    sequences, images_per_sequence = spec.subjects * spec.tasks, spec.frames + spec.uncoded_frames
    unlabelled = spec.subjects * spec.unlabelled_tasks
    planting = spec.plant_bad_frames
    plants = _plan_plants(BP4D_PLANTS if planting else (), sequences, spec.frames,
                          np.random.default_rng([spec.seed, 999]))
    if spec.uncoded_frames == 1:
        plants = _first_image_kept(plants)
    uncoded_plants = _plan_plants(UNCODED_PLANTS if planting and spec.uncoded_frames else (),
                                  sequences, spec.uncoded_frames,
                                  np.random.default_rng([spec.seed, 998]))
    unlabelled_plants = _plan_plants(UNLABELLED_PLANTS if planting and unlabelled else (),
                                     unlabelled, images_per_sequence,
                                     np.random.default_rng([spec.seed, 997]))
    written = _Written(frames=sequences * spec.frames, planted=[], sequences=[],
                       uncoded_frames=sequences * spec.uncoded_frames,
                       unlabelled_frames=unlabelled * images_per_sequence)
    landmark_entries = "images" if spec.uncoded_frames else "coded"
    for s, subject in enumerate(names):
        identity = make_identity(subject, np.random.default_rng([spec.seed, s]))
        order = [BP4D_TASKS[(3 * s + k) % 8] for k in range(spec.tasks + spec.unlabelled_tasks)]
        for t, task in enumerate(sorted(order[:spec.tasks])):
            seed = [spec.seed, s, t + 1]
            rng = np.random.default_rng(seed)
            start = int(rng.integers(1, 900))
            frames = _sequence(identity, lambda _: task, spec, seed, rng)
            images, landmarks, codes = {}, {}, {}
            for i in range(spec.frames):
                frame = start + i
                image, points, _, intensities = next(frames)
                images[frame], landmarks[frame] = image, points
                codes[frame] = {au: int(intensities[au] >= 2) for au in bp4d.AUS}
            for i in range(spec.frames):
                kind = plants.get((s * spec.tasks + t, i))
                if kind:
                    _plant_bp4d(kind, start + i, images, landmarks, codes, rng)
                    written.planted.append({"subject": subject, "task": task, "frame": start + i,
                                            "kind": kind})
            for i in range(spec.uncoded_frames):   # after the plants: those leave them as they are
                frame = start + spec.frames + i
                images[frame], landmarks[frame], _, _ = next(frames)
                kind = uncoded_plants.get((s * spec.tasks + t, i))
                if kind:
                    _plant_bp4d(kind, frame, images, landmarks, codes, rng)
                    written.planted_uncoded.append({"subject": subject, "task": task,
                                                    "frame": frame, "kind": kind})
            bp4d.write_sequence(root, subject, task, images, landmarks, codes,
                                header_style=("numbered", "named")[(s + t) % 2],
                                au_folder="flat" if s == 1 else "AU_OCC",
                                landmark_entries=landmark_entries)
            written.sequences.append({"subject": subject, "task": task, "first": start,
                                      "coded": spec.frames, "uncoded": spec.uncoded_frames,
                                      "labelled": True})
        for u, task in enumerate(sorted(order[spec.tasks:])):
            seed = [spec.seed, s, 9 + u]   # past the coded tasks' seeds (t + 1 <= 8)
            rng = np.random.default_rng(seed)
            start = int(rng.integers(1, 900))
            frames = _sequence(identity, lambda _: task, spec, seed, rng)
            images, landmarks = {}, {}
            for i in range(images_per_sequence):
                images[start + i], landmarks[start + i], _, _ = next(frames)
                kind = unlabelled_plants.get((s * spec.unlabelled_tasks + u, i))
                if kind:
                    _plant_bp4d(kind, start + i, images, landmarks, None, rng)
                    written.planted_uncoded.append({"subject": subject, "task": task,
                                                    "frame": start + i, "kind": kind})
            bp4d.write_sequence(root, subject, task, images, landmarks, None,
                                landmark_entries="images")
            written.sequences.append({"subject": subject, "task": task, "first": start,
                                      "coded": 0, "uncoded": images_per_sequence,
                                      "labelled": False})
    return written


def _first_image_kept(plants: dict[tuple[int, int], str]) -> dict[tuple[int, int], str]:
    """The plants with a missing image moved off the first frame of its sequence (swapped with
    the second's plant, if any). With one uncoded frame a missing first image would leave the
    images' span (first to last image) as long as the coded span, so the reader could not tell
    which of the two the landmark entries follow (bp4d.landmark_anchor)."""
    for (sequence, index), kind in plants.items():
        if kind == "missing_image" and index == 0:
            moved = dict(plants)
            second = moved.pop((sequence, 1), None)
            moved[(sequence, 1)] = kind
            if second:
                moved[(sequence, 0)] = second
            else:
                del moved[(sequence, 0)]
            return moved
    return plants


def _plant_bp4d(kind, frame, images, landmarks, codes, rng):
    if kind == "no_landmarks":
        landmarks[frame] = None
    elif kind == "corrupt_jpeg":
        ok, jpeg = cv2.imencode(".jpg", images[frame])
        images[frame] = jpeg.tobytes()[: len(jpeg) // 2]
    elif kind == "missing_image":
        del images[frame]
    elif kind == "degenerate_landmarks":
        landmarks[frame] = np.full_like(landmarks[frame], landmarks[frame].mean())
    elif kind == "not_coded_run":   # this frame and the next two of the segment are not coded
        for f in range(frame, min(frame + 3, max(codes) + 1)):
            codes[f] = {au: bp4d.NOT_CODED for au in bp4d.AUS}
    elif kind == "not_coded_au":
        codes[frame][int(rng.choice(bp4d.AUS))] = bp4d.NOT_CODED


def _write_disfa(root, spec: SyntheticSpec) -> _Written:
    names = subject_names("disfa", spec.subjects)
    plants = _plan_plants(DISFA_PLANTS if spec.plant_bad_frames else (), spec.subjects,
                          spec.frames, np.random.default_rng([spec.seed, 999]))
    planted, sequences = [], []
    for s, subject in enumerate(names):
        identity = make_identity(subject, np.random.default_rng([spec.seed, s]))
        seed = [spec.seed, s, 1]
        rng = np.random.default_rng(seed)
        # DISFA's one video per subject passes through the emotions of BP4D's tasks in turn
        frames = _sequence(identity, lambda i: BP4D_TASKS[(s + i) % 8], spec, seed, rng)
        images, landmarks66 = [], []
        intensities = {au: np.zeros(spec.frames, np.int64) for au in disfa.CODED_AUS}
        for i in range(spec.frames):
            image, points, jaw, levels = next(frames)
            images.append(image)
            landmarks66.append(np.concatenate([jaw, points]))
            for au in disfa.CODED_AUS:
                intensities[au][i] = levels[au]
            kind = plants.get((s, i))
            if kind == "no_landmarks":
                landmarks66[i] = None
            elif kind == "degenerate_landmarks":
                landmarks66[i] = np.full_like(landmarks66[i], landmarks66[i].mean())
            elif kind == "bad_intensity":
                intensities[int(rng.choice(disfa.AUS))][i] = 9
            if kind:   # label frames are 1-based
                planted.append({"subject": subject, "task": "", "frame": i + 1, "kind": kind})
        disfa.write_subject(root, subject, images, landmarks66, intensities,
                            name_style=("SN", "l0")[s % 2])
        sequences.append({"subject": subject, "task": "", "first": 1, "coded": spec.frames,
                          "uncoded": 0, "labelled": True})
    return _Written(frames=spec.subjects * spec.frames, planted=planted, sequences=sequences)
