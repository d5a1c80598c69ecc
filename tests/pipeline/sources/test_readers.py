"""What the BP4D and DISFA readers do alike: name a missing folder, filter subjects, ship units to
Beam workers, and place subjects in the official parts. Each reader's own layout is tested in
test_sources_bp4d.py and test_sources_disfa.py, whose writers these tests borrow."""
import os
import pickle
from dataclasses import dataclass

import pytest

from pipeline.sources import FOLDS, DatasetLayoutError, bp4d, disfa, part_of, unknown_subjects
from tests.pipeline.sources import test_bp4d as bp4d_files
from tests.pipeline.sources import test_disfa as disfa_files


@dataclass(frozen=True)
class Reader:
    dataset: str
    module: object
    write_subject: object       # (root, subject): that subject's raw files
    frames: list                # the frame numbers one written unit reads back
    labels_expected: str        # how validate_root describes the label files it looks for
    landmark_folder: str
    landmarks_expected: str
    subjects: tuple             # two known subjects
    part_sizes: list
    all_subjects: list
    part_examples: dict         # subject -> its part (1-based)
    not_a_subject: str

    def __str__(self):
        return self.dataset


def _bp4d_subject(root, subject):
    for task in ("T1", "T2"):
        bp4d_files.write(root, subject, task)


READERS = [
    Reader("bp4d", bp4d, _bp4d_subject, list(bp4d_files.FRAMES),
           r"AUCoding/AU_OCC/<subject>_<task>\.csv or .*AUCoding/<subject>_<task>\.csv",
           "2DFeatures", r"2DFeatures/<subject>_<task>\.mat", ("F001", "M001"), [14, 14, 13],
           sorted([f"F{i:03d}" for i in range(1, 24)] + [f"M{i:03d}" for i in range(1, 19)]),
           {"F001": 1, "M018": 2, "M009": 3}, "F024"),
    Reader("disfa", disfa, disfa_files.write, list(range(1, disfa_files.FRAMES + 1)),
           r"ActionUnit_Labels/<subject>/<subject>_au1\.txt", "Landmark_Points",
           r"Landmark_Points/<subject>", ("SN001", "SN002"), [9, 9, 9],
           [f"SN{i:03d}" for i in range(1, 33) if i not in {14, 15, 19, 20, 22}],
           {"SN032": 1, "SN031": 2, "SN029": 3}, "SN014"),
]
each_reader = pytest.mark.parametrize("reader", READERS, ids=str)


@each_reader
def test_validate_root_names_what_is_missing(tmp_path, reader):
    with pytest.raises(DatasetLayoutError, match="not a folder"):
        reader.module.validate_root(tmp_path / "nowhere")
    with pytest.raises(DatasetLayoutError, match=reader.labels_expected):
        reader.module.validate_root(tmp_path)
    reader.write_subject(tmp_path, reader.subjects[0])
    reader.module.validate_root(tmp_path)
    os.rename(tmp_path / reader.landmark_folder, tmp_path / "renamed")
    with pytest.raises(DatasetLayoutError,
                       match=f"no {reader.landmark_folder}/ folder.*{reader.landmarks_expected}"):
        reader.module.validate_root(tmp_path)


@each_reader
def test_subject_filter_keeps_only_those_and_names_absent_ones(tmp_path, reader):
    first, second = reader.subjects
    for subject in reader.subjects:
        reader.write_subject(tmp_path, subject)
    every_unit = reader.module.list_units(tmp_path)
    assert sorted({u.subject for u in every_unit}) == [first, second]

    units = reader.module.list_units(tmp_path, subjects=[second])

    assert units == [u for u in every_unit if u.subject == second]
    with pytest.raises(DatasetLayoutError, match=f"no labels for subject.*{reader.not_a_subject}"):
        reader.module.list_units(tmp_path, subjects=[first, reader.not_a_subject])


@each_reader
def test_units_survive_pickling_as_beam_ships_them(tmp_path, reader):
    reader.write_subject(tmp_path, reader.subjects[0])
    unit = reader.module.list_units(tmp_path)[0]
    shipped = pickle.loads(pickle.dumps(unit))
    assert shipped == unit and hash(shipped) == hash(unit)
    assert [raw.frame for raw in reader.module.read_unit(shipped)] == reader.frames


@each_reader
def test_official_parts(reader):
    parts = FOLDS[reader.dataset]
    assert [len(part) for part in parts] == reader.part_sizes
    assert sorted(s for part in parts for s in part) == reader.all_subjects
    assert {part_of(reader.dataset, s) for s in parts[0]} == {1}
    assert {s: part_of(reader.dataset, s) for s in reader.part_examples} == reader.part_examples
    assert unknown_subjects(reader.dataset, [reader.subjects[0], reader.not_a_subject]) == [
        reader.not_a_subject]
    with pytest.raises(DatasetLayoutError, match=reader.not_a_subject):
        part_of(reader.dataset, reader.not_a_subject)
