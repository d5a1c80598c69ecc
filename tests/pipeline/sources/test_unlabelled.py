"""--unlabelled_dir: face videos and image sequences without AU codes, with landmarks from a CSV
(pipeline.analyze's 49 points or OpenFace's 68) or from the face tracker."""
import os

import cv2
import numpy as np
import pytest
from skimage import data

from pipeline.sources import DatasetLayoutError, imageio, unlabelled
from pipeline.tracking import FaceTracker
from schemas.face import IBUG_68_TO_49

SIZE = 64
FRAMES = 5


def colour_image(frame):
    return np.full((SIZE, SIZE, 3), ((frame * 37) % 200 + 20, 120, 30), np.uint8)


def points(frame, count=49):
    rng = np.random.default_rng(frame)
    return (rng.integers(0, 4 * (SIZE - 1), (count, 2)) / 4).astype(np.float32)


def write_video(path, frames):
    """Motion-JPEG AVI (OpenCV's own encoder writes it everywhere)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (SIZE, SIZE))
    for image in frames:
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    writer.release()


def write_csv(path, rows, count=49, spaced=False):
    """rows: (frame, face_id, success, (count, 2) points or None); the header as
    pipeline.analyze (count 49) or OpenFace (68, names after ", ") writes it."""
    header = ["frame", "face_id", "timestamp", "confidence", "success"] + [
        f"x_{i}" for i in range(count)] + [f"y_{i}" for i in range(count)]
    if count == 68:
        header += [f"X_{i}" for i in range(count)]   # OpenFace's 3D points: not read
    lines = [(", " if spaced else ",").join(header)]
    for frame, face, success, xy in rows:
        values = [frame, face, 0.04 * frame, 0.9, success]
        values += [""] * 2 * count if xy is None else [f"{v:.2f}" for v in xy[:, 0]] + [
            f"{v:.2f}" for v in xy[:, 1]]
        if count == 68:
            values += [0] * count
        lines.append(",".join(map(str, values)))
    path.write_text("\n".join(lines) + "\n")


def test_videos_and_image_folders_with_or_without_landmarks_are_sequences(tmp_path):
    write_video(tmp_path / "P01" / "interview.avi", [colour_image(f) for f in range(FRAMES)])
    write_csv(tmp_path / "P01" / "interview.csv", [(1, 0, 1, points(1))])
    folder = tmp_path / "F003" / "walk"
    folder.mkdir(parents=True)
    imageio.write_jpeg(folder / "a.jpg", colour_image(0))
    (tmp_path / "F003" / "notes.txt").write_text("not a sequence")
    (tmp_path / "README").write_text("not a subject")
    units = unlabelled.list_units(tmp_path)
    assert [(u.dataset, u.subject, u.task, sorted(u.paths)) for u in units] == [
        ("unlabelled", "F003", "walk", ["images"]),
        ("unlabelled", "P01", "interview", ["landmarks", "video"])]
    assert [u.subject for u in unlabelled.list_units(tmp_path, subjects=["P01"])] == ["P01"]
    unlabelled.validate_root(tmp_path)


@pytest.mark.parametrize("make, message", [
    (lambda root: None, "holds no sequence"),
    (lambda root: (root / "P01").mkdir() or write_csv(root / "P01" / "talk.csv", []),
     "landmarks of no sequence"),
    (lambda root: write_video(root / "P01" / "talk.avi", [colour_image(0)])
     or (root / "P01" / "talk").mkdir(), "both a video and an image folder"),
])
def test_a_folder_that_is_not_the_layout_is_refused_naming_what_is_expected(tmp_path, make,
                                                                           message):
    make(tmp_path)
    with pytest.raises(DatasetLayoutError, match=message):
        unlabelled.validate_root(tmp_path)
    with pytest.raises(DatasetLayoutError, match="is not a folder"):
        unlabelled.validate_root(tmp_path / "nowhere")


def test_a_csv_without_landmark_columns_or_a_video_that_does_not_open_is_refused(tmp_path):
    write_video(tmp_path / "P01" / "talk.avi", [colour_image(0)])
    (tmp_path / "P01" / "talk.csv").write_text("frame,AU01_c\n1,0\n")
    with pytest.raises(DatasetLayoutError, match=r"talk\.csv.*x_0\.\.x_48"):
        unlabelled.validate_root(tmp_path)
    (tmp_path / "P01" / "talk.csv").unlink()
    (tmp_path / "P01" / "talk.avi").write_bytes(b"not a video")
    with pytest.raises(DatasetLayoutError, match="OpenCV cannot open this video"):
        unlabelled.validate_root(tmp_path)


def test_a_video_with_analyze_landmarks_gives_every_frame_uncoded(tmp_path):
    """Frames count from 1 as the CSV's do; a frame whose row failed (success 0) or that has no
    row is "no landmarks"; a second face seen on fewer frames is not read."""
    video = tmp_path / "P01" / "interview.avi"
    write_video(video, [colour_image(f) for f in range(1, FRAMES + 1)])
    rows = [(f, 0, 1, points(f)) for f in (1, 2, 4)] + [(3, 0, 0, None)] + [
        (f, 1, 1, points(100 + f)) for f in (1, 2)]
    write_csv(tmp_path / "P01" / "interview.csv", rows)
    [unit] = unlabelled.list_units(tmp_path)
    frames = list(unlabelled.read_unit(unit, num_aus=12))
    assert [f.frame for f in frames] == list(range(1, FRAMES + 1))
    by_frame = {f.frame: f for f in frames}
    for f in (1, 2, 4):
        raw = by_frame[f]
        assert raw.problem is None and not raw.coded and raw.dataset == "unlabelled"
        assert (raw.subject, raw.task) == ("P01", "interview")
        np.testing.assert_allclose(raw.landmarks, points(f), atol=0.006)
        assert raw.au.tolist() == [-1] * 12
        assert raw.image.shape == (SIZE, SIZE, 3)
        np.testing.assert_allclose(raw.image.mean(axis=(0, 1)), colour_image(f)[0, 0], atol=6)
        assert raw.image_source == f"{video}#{f - 1}"
        assert raw.landmark_source == f"{tmp_path / 'P01' / 'interview.csv'}#frame {f}"
    for f in (3, 5):
        assert by_frame[f].problem == "no landmarks" and by_frame[f].image is None


def test_openface_68_points_with_spaced_names_are_mapped_to_the_49(tmp_path):
    folder = tmp_path / "S1" / "clip"
    folder.mkdir(parents=True)
    for f in range(1, 4):
        imageio.write_jpeg(folder / f"img_{f:03d}.jpg", colour_image(f))
    (folder / "img_000.png").write_bytes(b"not an image")   # first by name: frame 1
    write_csv(tmp_path / "S1" / "clip.csv", [(f, 0, 1, points(f, 68)) for f in range(1, 5)],
              count=68, spaced=True)
    [unit] = unlabelled.list_units(tmp_path)
    frames = list(unlabelled.read_unit(unit, num_aus=8))
    assert [(f.frame, f.problem) for f in frames] == [
        (1, "image unreadable: OpenCV cannot decode it"), (2, None), (3, None), (4, None)]
    for raw in frames[1:]:
        np.testing.assert_allclose(raw.landmarks, points(raw.frame, 68)[list(IBUG_68_TO_49)],
                                   atol=0.006)
        assert raw.image_source == str(folder / f"img_{raw.frame - 1:03d}.jpg")


def test_without_a_csv_the_face_tracker_finds_the_landmarks(tmp_path):
    """Frames of a real face (scikit-image's astronaut) in an image folder without a CSV: the
    tracker's landmarks follow the face as it moves."""
    photo = data.astronaut()
    still = FaceTracker().detect(photo)[0].landmarks
    folder = tmp_path / "P02" / "still"
    folder.mkdir(parents=True)
    for f, dx in enumerate((0, 6, 12)):
        moved = cv2.warpAffine(photo, np.float32([[1, 0, dx], [0, 1, 0]]), (512, 512))
        imageio.write_jpeg(folder / f"{f}.jpg", moved)
    [unit] = unlabelled.list_units(tmp_path)
    assert "landmarks" not in unit.paths
    frames = list(unlabelled.read_unit(unit, num_aus=12))
    assert [f.problem for f in frames] == [None] * 3
    for raw, dx in zip(frames, (0, 6, 12)):
        error = np.hypot(*(raw.landmarks - (still + [dx, 0])).T).mean()
        assert error < 3.0, (raw.frame, error)   # pixels; the eyes are 45 px apart
        assert raw.landmark_source.startswith(unlabelled.TRACKER)
