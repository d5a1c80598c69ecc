"""The built-in synthetic dataset: readable as BP4D / DISFA, bad frames planted, AUs local."""
import dataclasses
import hashlib
import json
import os

import cv2
import numpy as np
import pytest

from jaa_keras.au_centres import AU_CENTRE_RULES
from pipeline.align import AlignmentError, align_face, alignment_matrix
from pipeline.sources import bp4d, disfa, matlab
from pipeline.sources.folds import part_of
from pipeline.synthetic import SyntheticSpec, ensure, generate, subject_names
from pipeline.synthetic.dataset import FRAME_SIZE, LATER_FIELDS, MARKER, _first_image_kept
from pipeline.synthetic.face import DRAWN_AUS, Pose, make_identity
from pipeline.synthetic.labels import STRENGTH, level_of, sample_intensities
from pipeline.synthetic.motion import KEYFRAME_GAP, smooth_states
from pipeline.synthetic.render import render_face
from schemas.face import AU_SETS, LEFT_INNER_EYE_CORNER, RIGHT_INNER_EYE_CORNER

TINY_BP4D = SyntheticSpec(layout="bp4d", subjects=3, tasks=2, frames=6, seed=5)
TINY_DISFA = SyntheticSpec(layout="disfa", subjects=3, frames=6, seed=5)
# The same with everything the self-supervised tasks need: smooth, uncoded and unlabelled frames.
TINY_RTATL = dataclasses.replace(TINY_BP4D, smooth=True, uncoded_frames=2, unlabelled_tasks=1)
TINY_SMOOTH_DISFA = dataclasses.replace(TINY_DISFA, smooth=True)
READERS = {"bp4d": bp4d, "disfa": disfa}
# What the readers (or, for collapsed landmarks, the alignment) say about each planted frame.
EXPECTED_PROBLEM = {"bp4d": {"no_landmarks": "no landmarks", "corrupt_jpeg": "image unreadable",
                             "missing_image": "image missing"},
                    "disfa": {"no_landmarks": "landmark file missing"}}


def _read_all(root, layout):
    """The coded frames the dataset reader gives (it gives the uncoded ones too, marked)."""
    reader = READERS[layout]
    reader.validate_root(root)
    return {(f.subject, f.task, f.frame): f
            for unit in reader.list_units(root) for f in reader.read_unit(unit) if f.coded}


@pytest.fixture(scope="module", params=[TINY_BP4D, TINY_DISFA, TINY_RTATL, TINY_SMOOTH_DISFA],
                ids=["bp4d", "disfa", "bp4d-smooth-uncoded", "disfa-smooth"])
def written(request, tmp_path_factory):
    spec = request.param
    root = tmp_path_factory.mktemp(f"synthetic_{spec.layout}")
    record = generate(root / "raw", spec)
    return spec, root / "raw", record, _read_all(root / "raw", spec.layout)


def test_every_frame_reads_back_through_the_dataset_reader(written):
    spec, root, record, frames = written
    per_sequence = spec.tasks if spec.layout == "bp4d" else 1
    assert len(frames) == record["frames"] == spec.subjects * per_sequence * spec.frames
    assert {f.subject for f in frames.values()} == set(record["subjects"])
    for subject, part in record["subjects"].items():
        assert part_of(spec.layout, subject) == part
    planted = {(p["subject"], p["task"], p["frame"]) for p in record["planted"]}
    good = [f for key, f in frames.items() if key not in planted and f.problem is None]
    assert len(good) >= len(frames) - len(planted) - 2   # a not-coded run spans up to 3 frames
    for frame in good:
        assert frame.image.shape == (288, 288, 3) and frame.landmarks.shape == (49, 2)
        assert set(np.unique(frame.au)) <= {-1, 0, 1}
        assert len(frame.au) == len(AU_SETS[spec.layout])
        align_face(frame.image, frame.landmarks)   # a usable face


def test_planted_bad_frames_come_back_with_their_problem(written):
    spec, root, record, frames = written
    kinds = sorted(p["kind"] for p in record["planted"])
    expected = {"bp4d": ["corrupt_jpeg", "degenerate_landmarks", "missing_image", "no_landmarks",
                         "no_landmarks", "not_coded_au", "not_coded_au", "not_coded_run"],
                "disfa": ["bad_intensity", "degenerate_landmarks", "no_landmarks", "no_landmarks"]}
    assert kinds == expected[spec.layout]
    for plant in record["planted"]:
        frame = frames[(plant["subject"], plant["task"], plant["frame"])]
        kind = plant["kind"]
        if kind in EXPECTED_PROBLEM[spec.layout]:
            expected = EXPECTED_PROBLEM[spec.layout][kind]
            assert frame.problem.startswith(expected), (kind, frame.problem)
        elif kind == "degenerate_landmarks":
            assert frame.problem is None
            with pytest.raises(AlignmentError):
                align_face(frame.image, frame.landmarks)
        elif kind == "not_coded_run":
            assert (frame.au == -1).all() and frame.problem is None
        else:   # one AU not coded (BP4D code 9, DISFA intensity outside 0-5)
            assert (frame.au == -1).sum() == 1 and frame.problem is None


def test_the_same_seed_writes_the_same_dataset(tmp_path):
    def digest(root):
        jpegs = sorted(p for p in root.rglob("*.jpg"))
        return [hashlib.sha256(p.read_bytes()).hexdigest() for p in jpegs]

    spec = SyntheticSpec(subjects=3, tasks=1, frames=8, seed=11)
    a, b = generate(tmp_path / "a", spec), generate(tmp_path / "b", spec)
    assert a == b and digest(tmp_path / "a") == digest(tmp_path / "b")
    frames_a, frames_b = _read_all(tmp_path / "a", "bp4d"), _read_all(tmp_path / "b", "bp4d")
    for key, frame in frames_a.items():
        np.testing.assert_array_equal(frame.au, frames_b[key].au)
        if frame.landmarks is not None:
            np.testing.assert_array_equal(frame.landmarks, frames_b[key].landmarks)
    other = generate(tmp_path / "c", SyntheticSpec(subjects=3, tasks=1, frames=8, seed=12))
    assert digest(tmp_path / "c") != digest(tmp_path / "a") and other["planted"] != a["planted"]


def test_ensure_reuses_a_matching_dataset_and_never_clobbers_other_folders(tmp_path):
    spec = SyntheticSpec(subjects=3, tasks=1, frames=4, plant_bad_frames=False)
    ensure(tmp_path / "raw", spec)
    marker = tmp_path / "raw" / "SYNTHETIC.json"
    before = os.stat(marker).st_mtime_ns
    ensure(tmp_path / "raw", spec)
    assert os.stat(marker).st_mtime_ns == before                       # reused
    record = ensure(tmp_path / "raw", SyntheticSpec(subjects=3, tasks=1, frames=5,
                                                     plant_bad_frames=False))
    assert record["frames"] == 15 and len(_read_all(tmp_path / "raw", "bp4d")) == 15   # rebuilt
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a synthetic dataset folder"):
        ensure(tmp_path / "mine", spec)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


SMALL = SyntheticSpec(subjects=3, tasks=1, frames=4, plant_bad_frames=False)


def test_a_folder_beside_the_dataset_is_never_touched(tmp_path):
    beside = tmp_path / "raw.partial"        # a user's folder that happens to have this name
    beside.mkdir()
    (beside / "notes.txt").write_text("keep me")
    ensure(tmp_path / "raw", SMALL)
    assert (beside / "notes.txt").read_text() == "keep me"
    assert sorted(os.listdir(tmp_path)) == ["raw", "raw.partial"]


def test_a_changed_spec_replaces_only_what_the_generator_wrote(tmp_path, caplog):
    root = tmp_path / "raw"
    first = ensure(root, SMALL)
    (root / "my_notes.txt").write_text("keep me")
    larger = SyntheticSpec(subjects=3, tasks=1, frames=5, plant_bad_frames=False)
    with pytest.raises(FileExistsError, match=r"spec changed: frames 4 -> 5.*my_notes.txt"):
        ensure(root, larger)
    assert (root / "my_notes.txt").read_text() == "keep me"
    assert ensure(root, SMALL) == first                      # nothing was deleted
    (root / "my_notes.txt").unlink()
    with caplog.at_level("WARNING"):
        record = ensure(root, larger)
    assert "replacing the synthetic dataset" in caplog.text and "frames 4 -> 5" in caplog.text
    assert record["frames"] == 15 and len(_read_all(root, "bp4d")) == 15
    assert sorted(record["files"]) == sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != "SYNTHETIC.json")


def test_missing_files_and_killed_generations_are_repaired(tmp_path, caplog):
    root = tmp_path / "raw"
    record = ensure(root, SMALL)
    lost = sorted(record["files"])[0]
    (root / lost).unlink()
    with caplog.at_level("WARNING"):
        assert ensure(root, SMALL)["files"] == record["files"]
    assert "1 of its files are missing" in caplog.text and (root / lost).is_file()
    # Killed while generating: the unfinished set in .generating is removed, then regenerated.
    other = tmp_path / "other"
    generate(other / ".generating", SMALL)
    (other / ".generating" / "SYNTHETIC.json").unlink()
    assert ensure(other, SMALL)["files"] == record["files"]
    assert not (other / ".generating").exists()
    # Killed while moving a complete set into place: the move is finished, nothing regenerated.
    third = tmp_path / "third"
    generate(third / ".generating", SMALL)
    first_entry = sorted(os.listdir(third / ".generating"))[0]
    os.replace(third / ".generating" / first_entry, third / first_entry)
    mtimes = {p: p.stat().st_mtime_ns for p in (third / ".generating").rglob("*.jpg")}
    assert ensure(third, SMALL)["files"] == record["files"]
    assert sorted(os.listdir(third)) == sorted(os.listdir(root))
    assert all((third / p.relative_to(third / ".generating")).stat().st_mtime_ns == t
               for p, t in mtimes.items())


def test_subjects_are_official_names_spread_over_the_three_parts():
    names = subject_names("bp4d", 9)
    assert [part_of("bp4d", s) for s in names] == [1, 2, 3] * 3
    assert any(s[0] == "M" and int(s[1:]) >= 9 for s in names)   # 3-digit image names
    assert any(s[0] == "F" for s in names)                         # 4-digit image names
    assert [part_of("disfa", s) for s in subject_names("disfa", 6)] == [1, 2, 3] * 2


def test_labels_are_sparse_and_correlated_like_real_aus():
    rng = np.random.default_rng(0)
    draws = [sample_intensities(rng, f"T{1 + i % 8}") for i in range(4000)]
    present = {au: np.array([d[au] >= 2 for d in draws]) for au in DRAWN_AUS}
    for au in AU_SETS["bp4d"]:
        assert 0.05 < present[au].mean() < 0.5, au
    assert np.mean([present[au].sum() for au in AU_SETS["bp4d"]]) / 4000 < 4   # few AUs per frame
    for a, b in ((1, 2), (6, 12), (23, 24)):   # co-occurring pairs
        assert present[b][present[a]].mean() > 1.5 * present[b].mean(), (a, b)


# --- the picture: every AU moves its own landmarks and draws only in its own region ------------
_POSE = Pose(angle_deg=0.0, scale=65.0, offset=(144.0, 110.0))


def _render(strengths, seed=0):
    identity = make_identity("F001", np.random.default_rng(seed))
    image, points, _ = render_face(identity, strengths, _POSE, (288, 288), np.random.default_rng(7))
    return image.astype(np.int16), points


@pytest.mark.parametrize("au, moved, direction", [
    (1, [4, 5], (0, -1)), (2, [0, 9], (0, -1)), (4, [2, 7], (0, 1)), (7, [23, 30], (0, -1)),
    (12, [31], (-1, -1)), (12, [37], (1, -1)), (15, [31, 37], (0, 1)), (17, [40], (0, -1)),
    (26, [40, 47], (0, 1)), (10, [44], (0, -1)), (14, [31], (1, 0)), (14, [37], (-1, 0))])
def test_an_au_moves_its_landmarks_the_way_the_muscle_pulls(au, moved, direction):
    _, neutral = _render({})
    _, active = _render({au: 1.0})
    shift = (active - neutral)[moved] / _POSE.scale
    for axis, sign in enumerate(direction):
        if sign:
            assert (np.sign(shift[:, axis]) == sign).all() and (abs(shift[:, axis]) > 0.03).all()


@pytest.mark.parametrize("au", AU_SETS["bp4d"] + (9, 25))
def test_an_au_changes_the_picture_only_near_its_centres(au):
    base, points = _render({})
    image, moved_points = _render({au: 1.0})
    changed = np.abs(image - base).max(axis=2) > 10
    assert changed.sum() > 30, "the AU must be visible"
    ys, xs = np.nonzero(changed)
    ruler = abs(points[LEFT_INNER_EYE_CORNER, 0] - points[RIGHT_INNER_EYE_CORNER, 0])
    centres = np.array([(points[i, 0], points[i, 1] + k * ruler) for i, k in AU_CENTRE_RULES[au]])
    distance = np.hypot(xs[:, None] - centres[:, 0], ys[:, None] - centres[:, 1]).min(1)
    distance /= _POSE.scale
    assert distance.max() < (1.3 if au == 26 else 0.9)   # the jaw drop moves the whole chin
    assert np.percentile(distance, 95) < (0.95 if au == 26 else 0.72)
    # landmarks outside the AU's own region stay where they were
    upper = au in (1, 2, 4, 6, 7)
    still = range(31, 49) if upper else range(0, 10)
    np.testing.assert_array_equal(moved_points[list(still)], points[list(still)])


# --- smooth sequences: the flow between nearby frames is the AUs' own motion -------------------
def _smooth_frames(seed, count):
    """`count` frames of a smooth sequence as the generator draws them: (state, image, points)."""
    identity = make_identity("F001", np.random.default_rng([seed, 0]))
    states = smooth_states(identity, lambda k: f"T{1 + (seed + k) % 8}", FRAME_SIZE,
                           np.random.default_rng([seed, 1]), np.random.default_rng([seed, 2]))
    frames = []
    for _, state in zip(range(count), states):
        image, points, _ = render_face(identity, state.strengths, state.pose, FRAME_SIZE,
                                       look=state.look)
        frames.append((state, image, points))
    return frames


def test_smooth_strengths_ease_between_keyframes_that_keep_their_drawn_levels():
    frames = _smooth_frames(seed=1, count=4 * KEYFRAME_GAP + 1)
    strengths = np.array([[state.strengths[au] for au in DRAWN_AUS] for state, _, _ in frames])
    # smoothstep between keyframes: no frame-to-frame step above its steepest quarter
    assert np.abs(np.diff(strengths, axis=0)).max() <= 0.35
    keyframes = strengths[::KEYFRAME_GAP]
    assert (np.abs(np.diff(keyframes, axis=0)) > 0.3).sum() >= 4   # new expressions come
    for state, _, _ in frames[::KEYFRAME_GAP]:   # a keyframe's level is the level it drew
        for au, s in state.strengths.items():
            assert abs(STRENGTH[state.intensities[au]] - s) <= 0.05 + 1e-9
    for state, _, _ in frames:
        assert state.intensities == {au: level_of(s) for au, s in state.strengths.items()}
    assert level_of(0.3) == 1 and level_of(0.4) == 2    # present from half-way to level 2


def test_smooth_sequences_move_little_from_frame_to_frame(tmp_path):
    def steps(smooth):
        root = tmp_path / f"smooth_{smooth}"
        generate(root, SyntheticSpec(subjects=3, tasks=1, frames=9, seed=3, smooth=smooth,
                                     plant_bad_frames=False))
        moves, same_codes = [], []
        for unit in bp4d.list_units(root):
            frames = list(bp4d.read_unit(unit, decode_images=False))
            points = np.array([f.landmarks for f in frames])
            codes = np.array([f.au for f in frames])
            moves.append(np.abs(np.diff(points, axis=0)).max(axis=(1, 2)))
            same_codes.append((codes[1:] == codes[:-1]).mean())
        return np.concatenate(moves), np.mean(same_codes)

    smooth_moves, smooth_same = steps(True)
    jumps, independent_same = steps(False)
    assert smooth_moves.max() < 8 and np.median(smooth_moves) < 4   # pixels of a 288 frame
    assert np.median(jumps) > 20                                     # a new pose every frame
    assert smooth_same > independent_same + 0.1


def test_the_flow_between_nearby_smooth_frames_is_in_the_regions_of_the_aus_that_change():
    """DIS optical flow between frames t and t + 2, both warped by frame t's alignment: the mean
    flow near the centres of the AUs that changed beats the mean over the rest of the face (2.3
    to 4.6 times, over 6 sets of 5 sequences; single sequences range from 1 to 12 times). Pairs
    whose changing AUs cover nearly the whole face are left out."""
    regions = {**AU_CENTRE_RULES, 5: AU_CENTRE_RULES[7], 20: AU_CENTRE_RULES[12]}   # no rule
    flow_of = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    ys, xs = np.mgrid[:200, :200]
    inside, outside = [], []
    for seed in range(5):
        frames = _smooth_frames(seed, 11)
        for (before, image, points), (after, later, _) in zip(frames, frames[2:]):
            changed = [au for au in DRAWN_AUS
                       if abs(before.strengths[au] - after.strengths[au]) > 0.15]
            matrix = alignment_matrix(points)
            aligned = points @ matrix[:, :2].T + matrix[:, 2]
            ruler = abs(aligned[LEFT_INNER_EYE_CORNER, 0] - aligned[RIGHT_INNER_EYE_CORNER, 0])
            near = np.zeros((200, 200), bool)
            for au in changed:
                for landmark, down in regions[au]:
                    x, y = aligned[landmark, 0], aligned[landmark, 1] + down * ruler
                    near |= np.hypot(xs - x, ys - y) < ruler
            face = np.zeros((200, 200), np.uint8)
            cv2.fillConvexPoly(face, cv2.convexHull(np.round(aligned).astype(np.int32)), 1)
            face = cv2.dilate(face, np.ones((25, 25), np.uint8)).astype(bool)
            if not changed or (face & ~near).sum() < 500:
                continue
            grey = [cv2.cvtColor(cv2.warpAffine(i, matrix, (200, 200)), cv2.COLOR_RGB2GRAY)
                    for i in (image, later)]
            flow = flow_of.calc(grey[0], grey[1], None)
            magnitude = np.hypot(flow[..., 0], flow[..., 1])
            inside.append(magnitude[near].mean())
            outside.append(magnitude[face & ~near].mean())
    assert len(inside) >= 20
    assert np.mean(inside) > 1.5 * np.mean(outside), (np.mean(inside), np.mean(outside))


def test_more_frames_leave_a_smooth_sequence_as_it_was():
    short, longer = _smooth_frames(seed=2, count=5), _smooth_frames(seed=2, count=9)
    for (state, image, points), (same, image2, points2) in zip(short, longer):
        assert state == same
        np.testing.assert_array_equal(image, image2)
        np.testing.assert_array_equal(points, points2)


# --- frames without codes: uncoded frames after the coded ones, and unlabelled tasks -----------
def test_uncoded_frames_and_unlabelled_tasks_have_images_and_landmarks_but_no_codes(tmp_path):
    record = generate(tmp_path / "raw", TINY_RTATL)
    root = tmp_path / "raw"
    images = root / bp4d.IMAGES_DIR
    labelled = [q for q in record["sequences"] if q["labelled"]]
    unlabelled = [q for q in record["sequences"] if not q["labelled"]]
    assert len(labelled) == 3 * 2 and len(unlabelled) == 3 * 1
    assert sum(q["coded"] for q in labelled) == record["frames"] == 3 * 2 * 6
    assert sum(q["uncoded"] for q in labelled) == record["uncoded_frames"] == 3 * 2 * 2
    assert sum(q["uncoded"] for q in unlabelled) == record["unlabelled_frames"] == 3 * 1 * 8
    missing = {(p["subject"], p["task"], p["frame"]) for p in record["planted"]
               if p["kind"] == "missing_image"}
    no_landmarks = {(p["subject"], p["task"], p["frame"])
                    for p in record["planted"] + record["planted_uncoded"]
                    if p["kind"] == "no_landmarks"}
    assert sorted(p["kind"] for p in record["planted_uncoded"]) == ["corrupt_jpeg", "no_landmarks"]
    for sequence in record["sequences"]:
        subject, task, first = sequence["subject"], sequence["task"], sequence["first"]
        span = range(first, first + sequence["coded"] + sequence["uncoded"])
        present = [f for f in span if (subject, task, f) not in missing]
        assert sorted(int(p.stem) for p in (images / subject / task).iterdir()) == present
        entries = matlab.read_v73_struct_field(
            root / bp4d.LANDMARKS_DIR / f"{subject}_{task}.mat", "fit", "pred")
        assert len(entries) == present[-1] - present[0] + 1        # one entry per image
        for frame, entry in zip(range(present[0], present[-1] + 1), entries):
            assert (entry is None) == ((subject, task, frame) in no_landmarks)
        csv = [root / bp4d.LABELS_DIR / d / f"{subject}_{task}.csv" for d in ("AU_OCC", "")]
        if sequence["labelled"]:
            [path] = [p for p in csv if p.is_file()]
            frames, _ = bp4d.read_au_codes(path)
            assert frames.tolist() == list(range(first, first + sequence["coded"]))
        else:
            assert not any(p.exists() for p in csv)
    # The reader reads every sequence, coded frames paired with their landmarks by the image
    # span, and the uncoded frames marked as such.
    units = bp4d.list_units(root)
    assert {(u.subject, u.task) for u in units} == {(q["subject"], q["task"])
                                                     for q in labelled + unlabelled}
    frames = [f for u in units for f in bp4d.read_unit(u, decode_images=False)]
    coded = [f for f in frames if f.coded]
    assert len(coded) == record["frames"]
    assert len(frames) - len(coded) == record["uncoded_frames"] + record["unlabelled_frames"]
    assert {f.landmark_pairing for f in coded} == {"first image"}


def test_uncoded_frames_and_unlabelled_tasks_change_no_coded_frame(tmp_path):
    plain = dataclasses.replace(TINY_RTATL, uncoded_frames=0, unlabelled_tasks=0)
    generate(tmp_path / "plain", plain)
    generate(tmp_path / "more", TINY_RTATL)
    coded, more = _read_all(tmp_path / "plain", "bp4d"), _read_all(tmp_path / "more", "bp4d")
    assert coded.keys() == more.keys()
    for key, frame in coded.items():
        other = more[key]
        assert frame.problem == other.problem
        np.testing.assert_array_equal(frame.au, other.au)
        if frame.problem is None:
            np.testing.assert_array_equal(frame.image, other.image)
            np.testing.assert_array_equal(frame.landmarks, other.landmarks)


def test_a_sequence_without_codes_writes_no_au_file(tmp_path):
    image = np.full((64, 64, 3), 90, np.uint8)
    points = np.random.default_rng(0).uniform(10, 50, (49, 2)).astype(np.float32)
    with pytest.raises(ValueError, match="landmark_entries='images'"):
        bp4d.write_sequence(tmp_path, "F001", "T1", {5: image}, {5: points}, None)
    bp4d.write_sequence(tmp_path, "F001", "T1", {5: image, 6: image}, {5: points, 6: points},
                        None, landmark_entries="images")
    assert not (tmp_path / bp4d.LABELS_DIR).exists()
    assert len(matlab.read_v73_struct_field(
        tmp_path / bp4d.LANDMARKS_DIR / "F001_T1.mat", "fit", "pred")) == 2


def test_with_one_uncoded_frame_no_sequence_loses_its_first_image():
    """A missing first image would make the image span as long as the coded span: ambiguous."""
    plants = {(0, 0): "missing_image", (0, 1): "no_landmarks", (2, 0): "corrupt_jpeg"}
    assert _first_image_kept(plants) == {(0, 1): "missing_image", (0, 0): "no_landmarks",
                                         (2, 0): "corrupt_jpeg"}
    assert _first_image_kept({(1, 0): "missing_image"}) == {(1, 1): "missing_image"}
    assert _first_image_kept({(1, 2): "missing_image"}) == {(1, 2): "missing_image"}


@pytest.mark.parametrize("fields, message", [
    ({"uncoded_frames": -1}, "negative"), ({"tasks": 6, "unlabelled_tasks": 3}, "too many"),
    ({"layout": "disfa", "subjects": 3, "unlabelled_tasks": 1}, "BP4D layout only")])
def test_impossible_fields_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        SyntheticSpec(**fields)


def test_a_set_recorded_before_the_new_fields_is_reused(tmp_path):
    spec = dataclasses.replace(SMALL, **LATER_FIELDS)
    ensure(tmp_path / "raw", spec)
    marker = tmp_path / "raw" / MARKER
    record = json.loads(marker.read_text())
    for name in LATER_FIELDS:
        del record["spec"][name]
    marker.write_text(json.dumps(record))
    before = marker.stat().st_mtime_ns
    ensure(tmp_path / "raw", spec)
    assert marker.stat().st_mtime_ns == before
