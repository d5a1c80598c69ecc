"""BP4D raw folders: the writer produces the real layout, the reader gets every coded frame back."""
import os

import cv2
import h5py
import numpy as np
import pytest
import scipy.io

from pipeline.sources import DatasetLayoutError, bp4d
from schemas.face import AU_SETS

SIZE = 32
FIRST_FRAME = 2440   # coded segments start deep into a task (docs/data.md: F001 T1)
FRAMES = range(FIRST_FRAME, FIRST_FRAME + 6)
# AU 4 is not coded (9) on the odd frames; AU 24 alternates; AU 99 is outside the BP4D set.
CODES = {f: {1: 1, 2: 0, 4: 9 if f % 2 else 1, 24: f % 2, 99: 1} for f in FRAMES}
# In AU-set order 1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24; AUs not given are written as 9.
EXPECTED_AU = {f: np.array([1, 0, -1 if f % 2 else 1] + [-1] * 8 + [f % 2]) for f in FRAMES}


def colour_image(frame):
    """A flat image whose RGB colour encodes the frame (JPEG keeps flat colours nearly exact)."""
    return np.full((SIZE, SIZE, 3), ((frame * 37) % 200 + 20, 200, 30), np.uint8)


def landmarks_of(frame):
    # Quarter-pixel values are exact in float32 and MATLAB doubles, so 1-based -> 0-based is exact.
    rng = np.random.default_rng(frame)
    return (rng.integers(0, 4 * (SIZE - 1), (49, 2)) / 4).astype(np.float32)


def write(root, subject="F001", task="T1", *, frames=None, landmarks=None, **options):
    frames = {f: colour_image(f) for f in FRAMES} if frames is None else frames
    landmarks = {f: landmarks_of(f) for f in FRAMES} if landmarks is None else landmarks
    bp4d.write_sequence(root, subject, task, frames, landmarks, CODES, **options)


def read_all(root, **options):
    return [frame for unit in bp4d.list_units(root) for frame in bp4d.read_unit(unit, **options)]


@pytest.mark.parametrize("header_style", ["numbered", "named"])
@pytest.mark.parametrize("au_folder", ["AU_OCC", "flat"])
def test_every_coded_frame_comes_back_with_codes_landmarks_and_image(tmp_path, header_style, au_folder):
    write(tmp_path, header_style=header_style, au_folder=au_folder)
    label_folder = ("AUCoding/AU_OCC" if au_folder == "AU_OCC" else "AUCoding")
    assert (tmp_path / label_folder / "F001_T1.csv").is_file()

    frames = read_all(tmp_path)

    assert [f.frame for f in frames] == list(FRAMES)
    for raw in frames:
        assert raw.problem is None
        assert (raw.dataset, raw.subject, raw.task) == ("bp4d", "F001", "T1")
        np.testing.assert_array_equal(raw.au, EXPECTED_AU[raw.frame])
        assert raw.au.dtype == np.int64 and raw.au.shape == (len(AU_SETS["bp4d"]),)
        assert raw.landmarks.dtype == np.float32
        np.testing.assert_array_equal(raw.landmarks, landmarks_of(raw.frame))   # exact, 0-based
        assert raw.image.shape == (SIZE, SIZE, 3) and raw.image.dtype == np.uint8
        # RGB order, not OpenCV's BGR
        np.testing.assert_allclose(raw.image.mean(axis=(0, 1)), colour_image(raw.frame)[0, 0], atol=3)


def test_header_columns_are_matched_by_name_not_position(tmp_path):
    write(tmp_path)
    path = tmp_path / "AUCoding/AU_OCC/F001_T1.csv"
    # A re-released style header: AUs named three ways, in an order unlike the AU set's.
    names = ["24", "AU23", "AU01", "au2", "AU_4", "6", "7", "AU10", "12", "14", "15", "17"]
    values = {"24": 1, "AU23": 0, "AU01": 1, "au2": 9}
    rows = [f"{f}," + ",".join(str(values.get(n, 0)) for n in names) for f in FRAMES]
    path.write_text("Frame," + ",".join(names) + "\n" + "\n".join(rows) + "\n")

    frames, codes = bp4d.read_au_codes(path)

    np.testing.assert_array_equal(frames, list(FRAMES))
    #                         AU 1  2  4  6  7  10 12 14 15 17 23 24
    np.testing.assert_array_equal(codes[0], [1, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])


def test_missing_au_column_names_the_file_and_the_au(tmp_path):
    write(tmp_path, header_style="named")
    path = tmp_path / "AUCoding/AU_OCC/F001_T1.csv"
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    drop = header.index("AU17")
    path.write_text("\n".join(",".join(v for i, v in enumerate(line.split(",")) if i != drop)
                              for line in lines) + "\n")
    with pytest.raises(DatasetLayoutError, match=r"F001_T1\.csv.*no column for AU 17"):
        list(bp4d.read_unit(bp4d.list_units(tmp_path)[0]))


def test_unreadable_label_file_names_the_file(tmp_path):
    write(tmp_path)
    path = tmp_path / "AUCoding/AU_OCC/F001_T1.csv"
    with open(path, "a") as f:
        f.write("2446,1,0,not-a-number\n")
    with pytest.raises(DatasetLayoutError, match=r"cannot read BP4D AU codes .*F001_T1\.csv"):
        list(bp4d.read_unit(bp4d.list_units(tmp_path)[0]))


def test_image_names_follow_the_padding_rule_and_both_paddings_are_read(tmp_path):
    write(tmp_path, "F001", "T1")
    write(tmp_path, "M008", "T2")
    write(tmp_path, "M009", "T3")
    assert (tmp_path / f"Sequences_2D+3D/F001/T1/{FIRST_FRAME:04d}.jpg").is_file()
    assert (tmp_path / f"Sequences_2D+3D/M008/T2/{FIRST_FRAME:04d}.jpg").is_file()
    small = 7   # a frame number where 3 and 4 digits differ
    bp4d.write_sequence(tmp_path, "M009", "T3", {small: colour_image(small)}, {small: landmarks_of(small)},
                        {small: {1: 1}})
    assert (tmp_path / "Sequences_2D+3D/M009/T3/007.jpg").is_file()
    assert bp4d.image_name("M018", 7) == "007.jpg" and bp4d.image_name("F023", 7) == "0007.jpg"

    frames = read_all(tmp_path)

    assert [(f.subject, f.frame) for f in frames] == [("F001", f) for f in FRAMES] + \
        [("M008", f) for f in FRAMES] + [("M009", small)]
    assert all(f.problem is None for f in frames)
    assert frames[-1].image_source.endswith(os.path.join("M009", "T3", "007.jpg"))


def test_a_copy_padded_against_the_rule_is_still_found(tmp_path):
    frame = 5
    bp4d.write_sequence(tmp_path, "M010", "T1", {}, {frame: landmarks_of(frame)}, {frame: {1: 0}})
    # 4 digits where the rule says 3 for M010
    cv2.imwrite(str(tmp_path / "Sequences_2D+3D/M010/T1/0005.jpg"), colour_image(frame))

    [raw] = read_all(tmp_path)

    assert raw.problem is None and raw.image_source.endswith("0005.jpg")


def test_bad_frames_are_marked_with_their_reason_and_none_is_dropped(tmp_path):
    frames = {f: colour_image(f) for f in FRAMES}
    missing, corrupt, truncated, no_landmarks = FRAMES[1], FRAMES[2], FRAMES[3], FRAMES[4]
    del frames[missing]
    frames[corrupt] = b"\xff\xd8\xff\xe0 this is not a JPEG body \xff\xd9"
    ok, jpeg = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (SIZE, SIZE, 3), np.uint8))
    frames[truncated] = jpeg.tobytes()[: len(jpeg) // 2]
    landmarks = {f: landmarks_of(f) for f in FRAMES}
    landmarks[no_landmarks] = None
    write(tmp_path, frames=frames, landmarks=landmarks)

    by_frame = {raw.frame: raw for raw in read_all(tmp_path)}

    assert sorted(by_frame) == list(FRAMES)
    assert by_frame[missing].problem == "image missing"
    assert by_frame[corrupt].problem.startswith("image unreadable")
    assert by_frame[truncated].problem == "image unreadable: truncated JPEG"
    assert by_frame[no_landmarks].problem == "no landmarks"
    for raw in by_frame.values():
        if raw.problem:
            assert raw.image is None and raw.landmarks is None
        np.testing.assert_array_equal(raw.au, EXPECTED_AU[raw.frame])   # labels kept for the log
    assert by_frame[missing].image_source.endswith(f"{missing:04d}.jpg")
    usable = [f for f, raw in by_frame.items() if raw.problem is None]
    assert usable == [FRAMES[0], FRAMES[5]]


@pytest.mark.parametrize("damage, reason", [
    (lambda path: path.unlink(), "landmark file missing"),
    (lambda path: path.write_bytes(b"MATLAB 5.0 MAT-file, not HDF5"), "landmark file unreadable"),
])
def test_a_bad_landmark_file_marks_every_frame_of_its_sequence(tmp_path, damage, reason):
    write(tmp_path)
    damage(tmp_path / "2DFeatures/F001_T1.mat")
    frames = read_all(tmp_path)
    assert len(frames) == len(FRAMES)
    assert all(raw.problem.startswith(reason) for raw in frames)


def test_landmark_offset_option_shifts_the_pred_entry_a_frame_takes(tmp_path):
    write(tmp_path, landmark_offset=1)   # pred entry k holds frame first + k + 1

    matched = {raw.frame: raw for raw in read_all(tmp_path, landmark_offset=1)}
    default = {raw.frame: raw for raw in read_all(tmp_path)}

    for f in FRAMES[1:]:
        np.testing.assert_array_equal(matched[f].landmarks, landmarks_of(f))
    assert matched[FRAMES[0]].problem == "no landmarks"   # entry -1 does not exist
    for f in FRAMES[:-1]:   # the default reading pairs each frame with its successor's points
        np.testing.assert_array_equal(default[f].landmarks, landmarks_of(f + 1))
    assert default[FRAMES[0]].landmark_source.endswith("F001_T1.mat#0")


def test_landmark_file_is_matlab_v73_shaped(tmp_path):
    landmarks = {f: landmarks_of(f) for f in FRAMES}
    landmarks[FRAMES[2]] = None
    write(tmp_path, landmarks=landmarks)
    path = tmp_path / "2DFeatures/F001_T1.mat"

    header = path.read_bytes()[:512]
    assert header.startswith(b"MATLAB 7.3 MAT-file")
    assert header[124:128] == b"\x00\x02IM"   # version 0x0200 (v7.3), little-endian indicator
    assert scipy.io.matlab.matfile_version(str(path)) == (2, 0)
    with h5py.File(path, "r") as f:
        assert f.userblock_size == 512
        assert isinstance(f["fit"], h5py.Group) and f["fit"].attrs["MATLAB_class"] == b"struct"
        pred = f["fit/pred"]
        assert pred.dtype == h5py.ref_dtype and pred.shape == (len(FRAMES), 1)
        for k, frame in enumerate(FRAMES):
            target = f[pred[k, 0]]
            assert target.attrs["MATLAB_class"] == b"double"
            if landmarks[frame] is None:   # MATLAB's []: its dimensions, flagged empty
                assert target.attrs["MATLAB_empty"] == 1
                np.testing.assert_array_equal(target[()], [0, 0])
            else:   # MATLAB's 49 x 2 (x, y) matrix seen row-major: 2 x 49, 1-based
                assert target.shape == (2, 49)
                np.testing.assert_array_equal(target[0], landmarks[frame][:, 0] + 1)
                np.testing.assert_array_equal(target[1], landmarks[frame][:, 1] + 1)


# -- rows that cannot become examples: marked with their reason, or the file named ------------
def _label_file(root):
    return root / "AUCoding/AU_OCC/F001_T1.csv"


def test_a_duplicated_frame_row_is_marked_and_not_read_twice(tmp_path):
    write(tmp_path)
    lines = _label_file(tmp_path).read_text().splitlines()
    _label_file(tmp_path).write_text("\n".join(lines[:3] + [lines[2]] + lines[3:]) + "\n")

    frames = read_all(tmp_path)

    assert [f.frame for f in frames] == [FRAMES[0], FRAMES[1], FRAMES[1]] + list(FRAMES[2:])
    assert frames[1].problem is None
    assert frames[2].problem.startswith(f"duplicate frame row: frame {FRAMES[1]} is coded again")
    assert str(_label_file(tmp_path)) in frames[2].problem
    assert [f.frame for f in frames if f.problem is None] == list(FRAMES)


@pytest.mark.parametrize("damage, message", [
    (lambda lines: lines[:2] + [lines[2].replace(f"{FRAMES[1]},", f"{FRAMES[1]}.9,", 1)]
     + lines[3:], rf"frame number {FRAMES[1]}\.9 \(row 2 after the header\) is not a whole"),
    (lambda lines: lines[:1], "a header but no frame rows"),
])
def test_a_fractional_frame_number_or_a_header_only_file_names_the_file(tmp_path, damage, message):
    write(tmp_path)
    lines = _label_file(tmp_path).read_text().splitlines()
    _label_file(tmp_path).write_text("\n".join(damage(lines)) + "\n")
    with pytest.raises(DatasetLayoutError, match=message) as error:
        read_all(tmp_path)
    assert str(_label_file(tmp_path)) in str(error.value)


@pytest.mark.parametrize("damage, reason", [
    ("a file", "image folder unreadable: Not a directory"),
    ("a symbolic link loop", "image folder unreadable: Too many levels of symbolic links"),
])
def test_an_unreadable_task_folder_is_not_reported_as_missing_images(tmp_path, damage, reason):
    write(tmp_path)
    folder = tmp_path / "Sequences_2D+3D/F001/T1"
    for image in folder.iterdir():
        image.unlink()
    folder.rmdir()
    if damage == "a file":
        folder.write_bytes(b"not a folder")
    else:
        os.symlink("T1", folder)
    frames = read_all(tmp_path)
    assert [f.frame for f in frames] == list(FRAMES)
    assert {f.problem for f in frames} == {reason}


def test_a_looping_landmark_file_is_unreadable_not_missing(tmp_path):
    write(tmp_path)
    path = tmp_path / "2DFeatures/F001_T1.mat"
    path.unlink()
    os.symlink(path.name, path)
    assert all(f.problem.startswith("landmark file unreadable") for f in read_all(tmp_path))


# -- frame-to-landmark pairing, decided per sequence by the counts ------------------------------
IMAGES = range(FIRST_FRAME - 3, FIRST_FRAME + len(FRAMES) + 2)   # the tracker's span: 11 frames


def _pairing_of(frames):
    [pairing] = {f.landmark_pairing for f in frames}
    return pairing


def test_one_entry_per_image_is_anchored_at_the_first_image(tmp_path):
    write(tmp_path, frames={f: colour_image(f) for f in IMAGES},
          landmarks={f: landmarks_of(f) for f in IMAGES}, landmark_entries="images")
    frames = read_all(tmp_path, landmark_offset=1)   # the evidence decides, not the option
    # the coded rows, then the images before and after the coded segment, uncoded
    assert [(f.frame, f.coded) for f in frames] == [(f, True) for f in FRAMES] + [
        (f, False) for f in IMAGES if f not in FRAMES]
    for raw in frames:
        assert raw.problem is None
        np.testing.assert_array_equal(raw.landmarks, landmarks_of(raw.frame))
        np.testing.assert_array_equal(raw.image.mean(axis=(0, 1)).round(-1),
                                      colour_image(raw.frame)[0, 0].round(-1))
    assert frames[0].landmark_source.endswith(f"F001_T1.mat#{FRAMES[0] - IMAGES[0]}")
    assert frames[-1].landmark_source.endswith(f"F001_T1.mat#{IMAGES[-1] - IMAGES[0]}")
    assert all((f.au == -1).all() for f in frames if not f.coded)
    assert _pairing_of(frames) == "first image"


def test_one_entry_per_coded_frame_is_anchored_at_the_first_coded_frame(tmp_path):
    write(tmp_path, frames={f: colour_image(f) for f in IMAGES},
          landmarks={f: landmarks_of(f) for f in IMAGES})
    frames = read_all(tmp_path, landmark_offset=1)
    # entries cover the coded segment only: the images around it have none, so are not read
    assert [f.frame for f in frames] == list(FRAMES) and all(f.coded for f in frames)
    for raw in frames:
        np.testing.assert_array_equal(raw.landmarks, landmarks_of(raw.frame))
    assert _pairing_of(frames) == "first coded frame"


def test_when_both_spans_or_neither_fit_the_option_decides(tmp_path):
    write(tmp_path)   # images = coded frames: both spans are 6 frames
    assert _pairing_of(read_all(tmp_path)) == "landmark_offset option (counts fit both spans)"
    neither = tmp_path / "neither"
    write(neither, frames={f: colour_image(f) for f in IMAGES})
    # One entry more than the coded span, fewer than the images': it starts a frame early.
    from pipeline.sources import matlab
    pred = [None] + [matlab.to_matlab_pixels(landmarks_of(f)) for f in FRAMES]
    matlab.write_v73_struct_field(neither / "2DFeatures/F001_T1.mat", "fit", "pred", pred)
    frames = read_all(neither, landmark_offset=-1)
    assert _pairing_of(frames) == "landmark_offset option (counts fit neither span)"
    coded = [raw for raw in frames if raw.coded]
    for raw in coded:
        np.testing.assert_array_equal(raw.landmarks, landmarks_of(raw.frame))
    # the image before the segment has entry 0, which is empty
    [before] = [raw for raw in frames if not raw.coded]
    assert (before.frame, before.problem) == (FRAMES[0] - 1, "no landmarks")


# -- uncoded frames: images no AU row codes, and sequences without AU codes ---------------------
def test_images_between_coded_rows_with_a_landmark_entry_are_read_uncoded(tmp_path):
    """A coded segment with a gap (a row left out): the image in the gap has its landmark entry
    (one entry per image), so it is an uncoded frame; its problems are reported as for a coded
    one."""
    gap, empty = FRAMES[2], FRAMES[4]
    codes = {f: c for f, c in CODES.items() if f not in (gap, empty)}
    landmarks = {f: landmarks_of(f) for f in FRAMES}
    landmarks[empty] = None
    bp4d.write_sequence(tmp_path, "F001", "T1", {f: colour_image(f) for f in FRAMES}, landmarks,
                        codes, landmark_entries="images")
    frames = read_all(tmp_path)
    assert [(f.frame, f.coded) for f in frames] == [
        (f, True) for f in FRAMES if f not in (gap, empty)] + [(gap, False), (empty, False)]
    by_frame = {f.frame: f for f in frames}
    assert by_frame[gap].problem is None and (by_frame[gap].au == -1).all()
    assert by_frame[gap].au.shape == (len(AU_SETS["bp4d"]),)
    np.testing.assert_array_equal(by_frame[gap].landmarks, landmarks_of(gap))
    assert by_frame[empty].problem == "no landmarks" and by_frame[empty].landmarks is None


def _without_codes(root, subject, task, **options):
    """A sequence written with AU codes whose code file is then removed: images and landmarks,
    one entry per image."""
    write(root, subject, task, landmark_entries="images", **options)
    for folder in ("AUCoding/AU_OCC", "AUCoding"):
        path = root / folder / f"{subject}_{task}.csv"
        if path.exists():
            path.unlink()


def test_a_task_folder_without_au_codes_is_a_sequence_of_uncoded_frames(tmp_path):
    write(tmp_path, "F001", "T1")                 # the root needs one code file
    _without_codes(tmp_path, "F001", "T2")
    _without_codes(tmp_path, "M008", "T3")
    (tmp_path / "Sequences_2D+3D/F002/T4").mkdir(parents=True)   # images only: no landmarks
    units = bp4d.list_units(tmp_path)
    assert [(u.subject, u.task, "labels" in u.paths) for u in units] == [
        ("F001", "T1", True), ("F001", "T2", False), ("M008", "T3", False)]
    assert [u.subject for u in bp4d.list_units(tmp_path, subjects=["M008"])] == ["M008"]
    frames = [f for f in read_all(tmp_path) if f.task != "T1"]
    assert [(f.subject, f.frame) for f in frames] == [("F001", f) for f in FRAMES] + [
        ("M008", f) for f in FRAMES]
    for raw in frames:
        assert not raw.coded and raw.problem is None and (raw.au == -1).all()
        np.testing.assert_array_equal(raw.landmarks, landmarks_of(raw.frame))
    assert {f.landmark_pairing for f in frames} == {"first image"}


def test_a_sequence_without_codes_and_an_unreadable_landmark_file_reports_its_images(tmp_path):
    write(tmp_path, "F001", "T1")
    _without_codes(tmp_path, "F001", "T2")
    (tmp_path / "2DFeatures/F001_T2.mat").write_bytes(b"MATLAB 5.0 MAT-file, not HDF5")
    frames = [f for f in read_all(tmp_path) if f.task == "T2"]
    assert [f.frame for f in frames] == list(FRAMES)
    assert all(f.problem.startswith("landmark file unreadable") and not f.coded for f in frames)
