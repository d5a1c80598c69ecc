"""The preprocessing job's Beam transforms one by one (pipeline/transforms.py), each on a small
real input in Beam's test pipeline: which frames come out, which are set aside and why, what is
written where, and what is counted."""
import json

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.align import align_face
from pipeline.job import _counters
from pipeline.sources import bp4d
from pipeline.sources.records import RawFrame
from pipeline.synthetic import SyntheticSpec, generate
from pipeline.transforms import (AlignedFrame, AlignFrames, EncodeExamples, Example, ReadUnits,
                                 Rejection, Tally, WriteExamples, WriteRejected)
from schemas.example import parse_examples
from schemas.face import AU_SETS
from tests._tiny_records import draw_example, mean_face

TINY = SyntheticSpec(subjects=3, tasks=2, frames=6, seed=2)
# What each planted bad frame is set aside as: by the reader (the first three) or by alignment.
REJECTED_AS = {"no_landmarks": "no landmarks", "missing_image": "image missing",
               "corrupt_jpeg": "image unreadable", "degenerate_landmarks": "alignment failed"}


def _pipeline():
    """Beam's test pipeline on the in-process runner (DirectRunner may fetch Prism first)."""
    return test_pipeline.TestPipeline(runner=FnApiRunner())


def _key(item):
    return item.subject, item.task, int(item.frame)


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """A tiny synthetic BP4D set with its planted bad frames: (record, units, frames read)."""
    root = tmp_path_factory.mktemp("raw") / "synthetic"
    record = generate(root, TINY)
    units = bp4d.list_units(root)
    return record, units, [frame for unit in units for frame in bp4d.read_unit(unit)]


def _planted(record, kinds):
    return {(p["subject"], p["task"], p["frame"]): REJECTED_AS[p["kind"]]
            for p in record["planted"] if p["kind"] in kinds}


@pytest.mark.parametrize("reshuffle", [False, True], ids=["in place", "reshuffled"])
def test_read_units_gives_every_coded_frame_once_with_the_readers_problems(raw, reshuffle):
    record, units, _ = raw
    coded = {(unit.subject, unit.task, int(frame)): None for unit in units
             for frame in bp4d.read_au_codes(unit.paths["labels"])[0]}
    assert len(coded) == record["frames"]
    coded.update(_planted(record, {"no_landmarks", "missing_image", "corrupt_jpeg"}))
    pipeline = _pipeline()
    frames = pipeline | beam.Create(units) | ReadUnits(reshuffle=reshuffle)
    assert_that(frames | beam.Map(lambda f: (*_key(f), f.problem and f.problem.split(":")[0])),
                equal_to([(*key, problem) for key, problem in coded.items()]))
    counters = _counters(pipeline.run())
    assert counters["frames_read"] == record["frames"] and counters["units_read"] == len(units)


def test_align_frames_sets_aside_each_unusable_frame_with_its_reason(raw):
    record, units, frames = raw
    rejected = _planted(record, REJECTED_AS)
    pipeline = _pipeline()
    # The frames are read in the pipeline: beam.Create would compress every decoded image into
    # the pipeline's graph (15 s here).
    outputs = pipeline | beam.Create(units) | ReadUnits() | AlignFrames()
    assert_that(outputs["aligned"] | "Aligned" >> beam.Map(_key),
                equal_to([_key(f) for f in frames if _key(f) not in rejected]), label="aligned")
    assert_that(outputs["aligned"] | "Shapes" >> beam.Map(lambda f: (f.image.shape, f.landmarks.shape))
                | beam.Distinct(), equal_to([((200, 200, 3), (49, 2))]), label="aligned shapes")
    sources = {_key(f): f.image_source for f in frames}
    assert_that(outputs["rejected"] | "Rejected" >> beam.Map(
        lambda r: (_key(r), r.category, r.image_source == sources[_key(r)])),
        equal_to([(key, reason, True) for key, reason in rejected.items()]), label="rejected")
    counters = _counters(pipeline.run())
    assert counters["frames_aligned"] == len(frames) - len(rejected)
    reasons = sorted(set(rejected.values()))
    assert {c: n for c, n in counters.items() if c.startswith("rejected: ")} == {
        f"rejected: {reason}": list(rejected.values()).count(reason) for reason in reasons}


def test_encode_examples_writes_each_face_through_the_schema_into_its_subjects_part(raw):
    record, _, frames = raw
    rejected = _planted(record, REJECTED_AS)
    usable = list({f.subject: f for f in frames if _key(f) not in rejected}.values())  # one a part
    faces = {_key(f): (f, align_face(f.image, f.landmarks)) for f in usable}
    aligned = [AlignedFrame(frame.dataset, *key, frame.image_source, frame.landmark_source,
                            frame.au, face.image, face.landmarks, face.inter_ocular)
               for key, (frame, face) in faces.items()]

    def check(examples):
        assert sorted(e.part for e in examples) == [1, 2, 3]  # one subject of each part
        parsed = parse_examples(tf.constant([e.serialized for e in examples]),
                                len(AU_SETS["synthetic"]))
        for i, example in enumerate(examples):
            key = (parsed["subject"][i].numpy().decode(), parsed["task"][i].numpy().decode(),
                   int(parsed["frame"][i]))
            frame, face = faces[key]
            assert example.part == record["subjects"][frame.subject]
            assert example.au == tuple(frame.au) == tuple(parsed["au"][i].numpy())
            np.testing.assert_allclose(parsed["landmarks"][i].numpy().reshape(49, 2),
                                       face.landmarks, atol=1e-4)
            assert float(parsed["inter_ocular"][i]) == pytest.approx(face.inter_ocular, rel=1e-5)
            assert np.abs(parsed["image"][i].numpy().astype(int) - face.image).mean() < 3  # q95

    with _pipeline() as pipeline:
        encoded = pipeline | beam.Create(aligned) | EncodeExamples("bp4d", jpeg_quality=95)
        assert_that(encoded["examples"], check)


def _examples(parts):
    """One real serialized example per entry of `parts` (its part), for the writers."""
    return [Example(part, f"S{n}", "T1", (1, 0),
                    draw_example(mean_face(), np.zeros(12), subject=f"S{n}", frame=n))
            for n, part in enumerate(parts)]


def _read_records(files):
    return sorted(r.numpy() for r in tf.data.TFRecordDataset([str(f) for f in files], "GZIP"))


def test_write_examples_writes_each_part_into_its_own_folder(tmp_path):
    examples = _examples([1, 3, 1, 1]) + [e._replace(coded=False) for e in _examples([2, 3, None])]
    with _pipeline() as pipeline:
        _ = pipeline | beam.Create(examples) | WriteExamples(str(tmp_path), num_shards=2,
                                                             outside=True)
    for folder, prefix in [(f"part{p}", "examples") for p in (1, 2, 3)] + [
            (f"unlabelled/part{p}", "frames") for p in (1, 2, 3)] + [
            ("unlabelled/outside", "frames")]:
        files = sorted((tmp_path / folder).glob("*"))
        expected = sorted(e.serialized for e in examples if e.destination == folder)
        assert _read_records(files) == expected, folder
        if expected:
            assert [f.name for f in files] == [f"{prefix}-0000{i}-of-00002.tfrecord.gz"
                                               for i in (0, 1)]
    assert {e.destination for e in examples} == {"part1", "part3", "unlabelled/part2",
                                                 "unlabelled/part3", "unlabelled/outside"}


def test_write_rejected_writes_one_json_line_per_rejected_frame(tmp_path):
    reasons = ["image missing", "alignment failed: implausible face"]
    rejections = [Rejection("bp4d", "F001", "T1", n, f"raw/{n}.jpg", "F001_T1.mat", reason)
                  for n, reason in enumerate(reasons)]
    with _pipeline() as pipeline:
        _ = pipeline | beam.Create(rejections) | WriteRejected(str(tmp_path))
    [written] = (tmp_path / "rejected").iterdir()
    assert written.name == "rejected-00000-of-00001.jsonl"
    lines = [json.loads(line) for line in written.read_text().splitlines()]
    assert sorted(lines, key=lambda r: r["frame"]) == [r._asdict() for r in rejections]


def test_tally_counts_frames_parts_rejections_and_sequence_pairings():
    def frame(task, number, pairing):
        return RawFrame("bp4d", "F001", task, number, None, None, np.zeros(2, np.int64),
                        "raw.jpg", "raw.mat", landmark_pairing=pairing)

    frames = [frame("T1", n, "first image") for n in range(3)] + [
        frame("T2", n, None) for n in range(2)] + [frame("T3", 0, "first coded frame")]
    frames[2].coded = False
    examples = [Example(1, "S1", "T1", (1, 0), b"", has_flow=True),
                Example(1, "S2", "T1", (1, -1), b""), Example(3, "S3", "T1", (0, 0), b""),
                Example(3, "S3", "T1", (-1, -1), b"", coded=False, has_flow=True),
                Example(None, "P1", "T1", (-1, -1), b"", coded=False)]
    rejections = [Rejection.of(frame("T2", 0, None), "image missing"),
                  Rejection.of(frame("T2", 1, None), "alignment failed: implausible face"),
                  Rejection.of(frame("T1", 2, None), "image missing")]
    with _pipeline() as pipeline:
        inputs = tuple(pipeline | name >> beam.Create(items) for name, items in
                       (("Frames", frames), ("Examples", examples), ("Rejections", rejections)))
        assert_that(inputs | Tally(), equal_to([{
            "frames_in": 6, "coded_in": 5,
            "records": {
                "part1": {"examples": 2, "with_flow": 1, "subjects": ["S1", "S2"],
                          "positive": [2, 0], "negative": [0, 1], "unknown": [0, 1]},
                "part3": {"examples": 1, "with_flow": 0, "subjects": ["S3"], "positive": [0, 0],
                          "negative": [1, 1], "unknown": [0, 0]},
                "unlabelled/part3": {"examples": 1, "with_flow": 1, "subjects": ["S3"],
                                     "positive": [0, 0], "negative": [0, 0],
                                     "unknown": [1, 1]},
                "unlabelled/outside": {"examples": 1, "with_flow": 0, "subjects": ["P1"],
                                       "positive": [0, 0], "negative": [0, 0],
                                       "unknown": [1, 1]}},
            "rejected": {"image missing": 2, "alignment failed": 1},
            "landmark_pairing": {"first image": 1, "first coded frame": 1}}]))
