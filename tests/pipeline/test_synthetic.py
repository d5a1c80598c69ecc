"""The built-in synthetic dataset: readable as BP4D / DISFA, bad frames planted, AUs local."""
import hashlib
import os

import numpy as np
import pytest

from jaa_keras.au_centres import AU_CENTRE_RULES
from pipeline.align import AlignmentError, align_face
from pipeline.sources import bp4d, disfa
from pipeline.sources.folds import part_of
from pipeline.synthetic import SyntheticSpec, ensure, generate, subject_names
from pipeline.synthetic.face import DRAWN_AUS, Pose, make_identity
from pipeline.synthetic.labels import sample_intensities
from pipeline.synthetic.render import render_face
from schemas.face import AU_SETS, LEFT_INNER_EYE_CORNER, RIGHT_INNER_EYE_CORNER

TINY_BP4D = SyntheticSpec(layout="bp4d", subjects=3, tasks=2, frames=6, seed=5)
TINY_DISFA = SyntheticSpec(layout="disfa", subjects=3, frames=6, seed=5)
READERS = {"bp4d": bp4d, "disfa": disfa}
# What the readers (or, for collapsed landmarks, the alignment) say about each planted frame.
EXPECTED_PROBLEM = {"bp4d": {"no_landmarks": "no landmarks", "corrupt_jpeg": "image unreadable",
                             "missing_image": "image missing"},
                    "disfa": {"no_landmarks": "landmark file missing"}}


def _read_all(root, layout):
    reader = READERS[layout]
    reader.validate_root(root)
    return {(f.subject, f.task, f.frame): f
            for unit in reader.list_units(root) for f in reader.read_unit(unit)}


@pytest.fixture(scope="module", params=[TINY_BP4D, TINY_DISFA], ids=["bp4d", "disfa"])
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
