"""DISFA raw folders: the writer produces the real layout, the reader gets every labelled frame back."""
import os

import numpy as np
import pytest
import scipy.io

from pipeline.sources import DatasetLayoutError, disfa
from schemas.face import AU_SETS, DISFA_66_TO_49

SIZE = 32
FRAMES = 6   # video frames 0..5, label frames 1..6
# Intensities 0-5 over the frames; AU 2 at exactly the threshold, AU 25 just under it.
INTENSITIES = {1: np.array([0, 1, 2, 3, 4, 5]), 2: np.array([2, 2, 2, 0, 0, 0]),
               25: np.array([1, 1, 1, 1, 1, 1]), 26: np.array([5, 0, 5, 0, 5, 0]),
               5: np.array([5, 5, 5, 5, 5, 5])}   # AU 5 is coded by DISFA but not in its set of 8


def colour_image(index):
    """A flat frame whose colour identifies its 0-based video index, far apart from the others."""
    return np.full((SIZE, SIZE, 3), (30 + 40 * index, 220 - 40 * index, 128), np.uint8)


def landmarks66(index):
    rng = np.random.default_rng(index)
    return rng.integers(0, 4 * (SIZE - 1), (66, 2)) / 4   # quarter pixels: exact in float32


def write(root, subject="SN001", *, landmarks=None, **options):
    landmarks = [landmarks66(i) for i in range(FRAMES)] if landmarks is None else landmarks
    disfa.write_subject(root, subject, [colour_image(i) for i in range(FRAMES)], landmarks,
                        INTENSITIES, **options)


def read_all(root, **options):
    return [frame for unit in disfa.list_units(root) for frame in disfa.read_unit(unit, **options)]


def video_index(image):
    """Which written frame an image decoded from the video is (MJPG is lossy, colours stay apart)."""
    distances = [np.abs(image.astype(int) - colour_image(i)).mean() for i in range(FRAMES)]
    assert min(distances) < 8
    return int(np.argmin(distances))


@pytest.mark.parametrize("name_style, first_file", [("SN", "SN001_0000_lm.mat"), ("l0", "l00000_lm.mat")])
def test_every_labelled_frame_comes_back_aligned_to_video_and_landmarks(tmp_path, name_style, first_file):
    write(tmp_path, name_style=name_style)
    assert (tmp_path / "Landmark_Points/SN001/tmp_frame_lm" / first_file).is_file()

    frames = read_all(tmp_path)

    assert [raw.frame for raw in frames] == list(range(1, FRAMES + 1))   # 1-based label frames
    for raw in frames:
        assert raw.problem is None
        assert (raw.dataset, raw.subject, raw.task) == ("disfa", "SN001", "")
        # label frame f <-> video frame f - 1 <-> landmark file f - 1
        assert video_index(raw.image) == raw.frame - 1
        assert raw.image_source.endswith(f"LeftVideoSN001_comp.avi#{raw.frame - 1}")
        assert raw.landmark_source.endswith(disfa.landmark_name("SN001", raw.frame - 1, name_style))
        assert raw.landmarks.shape == (49, 2) and raw.landmarks.dtype == np.float32
        # the 49 are DISFA points 18..66 (1-based); exact 0-based coordinates
        np.testing.assert_array_equal(raw.landmarks, landmarks66(raw.frame - 1)[17:])


def test_landmark_files_hold_one_based_pts(tmp_path):
    write(tmp_path)
    stored = scipy.io.loadmat(str(tmp_path / "Landmark_Points/SN001/tmp_frame_lm/SN001_0003_lm.mat"))
    np.testing.assert_array_equal(stored["pts"], landmarks66(3) + 1)
    assert list(DISFA_66_TO_49) == list(range(17, 66))


def test_intensity_two_or_more_is_present_in_the_set_order(tmp_path):
    write(tmp_path)
    label_files = sorted(os.listdir(tmp_path / "ActionUnit_Labels/SN001"))
    assert label_files == sorted(f"SN001_au{au}.txt" for au in disfa.CODED_AUS)
    assert (tmp_path / "ActionUnit_Labels/SN001/SN001_au1.txt").read_text().splitlines()[:3] == \
        ["1,0", "2,1", "3,2"]

    au = np.stack([raw.au for raw in read_all(tmp_path)])

    assert AU_SETS["disfa"] == (1, 2, 4, 6, 9, 12, 25, 26) and au.dtype == np.int64
    np.testing.assert_array_equal(au[:, 0], [0, 0, 1, 1, 1, 1])   # AU 1
    np.testing.assert_array_equal(au[:, 1], [1, 1, 1, 0, 0, 0])   # AU 2
    np.testing.assert_array_equal(au[:, 6], [0] * FRAMES)          # AU 25 at intensity 1
    np.testing.assert_array_equal(au[:, 7], [1, 0, 1, 0, 1, 0])   # AU 26
    np.testing.assert_array_equal(au[:, [2, 3, 4, 5]], 0)          # AUs written as all 0


def test_out_of_range_intensity_and_unlisted_frame_are_not_coded(tmp_path):
    write(tmp_path)
    (tmp_path / "ActionUnit_Labels/SN001/SN001_au4.txt").write_text("1,9\n2,0\n3,3\n4,0\n5,0\n")
    by_frame = {raw.frame: raw.au[2] for raw in read_all(tmp_path)}
    assert by_frame == {1: -1, 2: 0, 3: 1, 4: 0, 5: 0, 6: -1}


def test_missing_landmark_file_marks_its_frame_and_the_video_stays_in_step(tmp_path):
    landmarks = [landmarks66(i) for i in range(FRAMES)]
    landmarks[2] = None   # no file for video frame 2, i.e. label frame 3
    write(tmp_path, landmarks=landmarks)
    corrupt = tmp_path / "Landmark_Points/SN001/tmp_frame_lm/SN001_0004_lm.mat"
    corrupt.write_bytes(b"not a MAT-file")

    frames = read_all(tmp_path)

    assert [raw.frame for raw in frames] == list(range(1, FRAMES + 1))
    assert frames[2].problem == "landmark file missing"
    assert frames[2].landmark_source.endswith("SN001_0002_lm.mat") and frames[2].image is None
    assert frames[4].problem.startswith("landmark file unreadable")
    for raw in (frames[3], frames[5]):   # frames after a skipped decode are still the right ones
        assert raw.problem is None and video_index(raw.image) == raw.frame - 1


def test_offsets_are_options(tmp_path):
    write(tmp_path)

    frames = read_all(tmp_path, video_offset=0, landmark_offset=0)

    for raw in frames[:-1]:
        assert video_index(raw.image) == raw.frame
        np.testing.assert_array_equal(raw.landmarks, landmarks66(raw.frame)[17:])
    # label frame 6 now wants video frame 6 and landmark file 6; neither exists
    assert frames[-1].problem == f"image missing: video ends after {FRAMES} frames"
    assert frames[-1].landmark_source.endswith("SN001_0006_lm.mat")


def test_video_past_its_end_and_missing_video_mark_frames(tmp_path):
    write(tmp_path)
    frames = read_all(tmp_path, video_offset=0)   # label frame 6 wants video frame 6 of 0..5
    assert frames[-1].problem == f"image missing: video ends after {FRAMES} frames"
    assert all(raw.problem is None for raw in frames[:-1])

    os.remove(tmp_path / "Videos_LeftCamera/LeftVideoSN001_comp.avi")
    frames = read_all(tmp_path)
    assert len(frames) == FRAMES and all(raw.problem == "video missing" for raw in frames)


def test_video_and_folder_names_match_in_any_case(tmp_path):
    write(tmp_path)
    os.rename(tmp_path / "Videos_LeftCamera/LeftVideoSN001_comp.avi",
              tmp_path / "Videos_LeftCamera/leftvideoSN001_Comp.AVI")
    os.rename(tmp_path / "Videos_LeftCamera", tmp_path / "videos_leftcamera")

    frames = read_all(tmp_path)

    assert all(raw.problem is None for raw in frames)
    assert frames[0].image_source.endswith(os.path.join("videos_leftcamera", "leftvideoSN001_Comp.AVI#0"))


def test_label_file_problems_name_the_file(tmp_path):
    write(tmp_path)
    (tmp_path / "ActionUnit_Labels/SN001/SN001_au9.txt").write_text("1,0\n2,zero\n")
    with pytest.raises(DatasetLayoutError, match=r"cannot read DISFA labels .*SN001_au9\.txt"):
        read_all(tmp_path)
    os.remove(tmp_path / "ActionUnit_Labels/SN001/SN001_au9.txt")
    with pytest.raises(DatasetLayoutError, match=r"SN001_au9\.txt"):
        read_all(tmp_path)
