"""The preprocessing job's Beam transforms, small and named.

    units | ReadUnits(...)          -> RawFrame            (one per labelled frame)
          | AlignFrames()           -> AlignedFace main output, Rejection on the "rejected" tag
          | EncodeExamples(...)     -> Example             (part, serialized tf.Example, labels)
    WriteExamples(output_dir)       GZIP TFRecords per part: part{1,2,3}/examples-*.tfrecord.gz
    WriteRejected(output_dir)       rejected/rejected-*.jsonl, one JSON line per frame set aside
    Tally()                         frames in, examples and AU counts per part, rejections by
                                    reason, sequences by landmark pairing

A frame that cannot be used never raises: it leaves through the "rejected" output with its reason
and is counted, so frames in = examples written + frames rejected. That holds for failures nobody
foresaw too: an exception while aligning one frame sets that frame aside as "unexpected error",
with the exception and where it was raised, and the job goes on.
"""
import json
import os
import traceback
from typing import NamedTuple

import apache_beam as beam
import cv2
import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.metrics import Metrics

from pipeline.align import AlignmentError, align_face
from pipeline.sources import source
from pipeline.sources.folds import part_of
from pipeline.sources.records import RawFrame

NAMESPACE = "preprocess"
REJECTED = "rejected"
PARTS = (1, 2, 3)
EXAMPLES_PREFIX = "examples"
EXAMPLES_SUFFIX = ".tfrecord.gz"
REJECTED_DIR = "rejected"
REJECTED_SUFFIX = ".jsonl"


class Rejection(NamedTuple):
    """A frame set aside: where it came from and why (one JSON line of rejected/)."""
    dataset: str
    subject: str
    task: str
    frame: int
    image_source: str
    landmark_source: str
    reason: str

    @classmethod
    def of(cls, frame: RawFrame, reason: str):
        return cls(frame.dataset, frame.subject, frame.task, int(frame.frame), frame.image_source,
                   frame.landmark_source, reason)

    @property
    def category(self) -> str:
        """The reason without details: "image unreadable: truncated JPEG" -> "image unreadable"."""
        return self.reason.split(":", 1)[0]

    def to_json(self) -> str:
        return json.dumps(self._asdict(), sort_keys=True)


class AlignedFrame(NamedTuple):
    subject: str
    task: str
    frame: int
    au: np.ndarray
    image: np.ndarray         # ALIGNED_SIZE x ALIGNED_SIZE RGB
    landmarks: np.ndarray     # (49, 2) aligned pixels
    inter_ocular: float


class Example(NamedTuple):
    """A serialized tf.Example with what the tally needs to know about it."""
    part: int
    subject: str
    au: tuple
    serialized: bytes


# --------------------------------------------------------------------------------------------
class _ReadUnitFn(beam.DoFn):
    def __init__(self, read_options: dict):
        self._options = read_options
        self._frames = Metrics.counter(NAMESPACE, "frames_read")
        self._units = Metrics.counter(NAMESPACE, "units_read")

    def process(self, unit):
        for frame in source(unit.dataset).read_unit(unit, **self._options):
            self._frames.inc()
            yield frame
        self._units.inc()


class ReadUnits(beam.PTransform):
    """Source units (a BP4D sequence, a DISFA video) -> every labelled RawFrame of them.

    `reshuffle` spreads the frames of one unit over workers. It pays on a distributed runner; an
    in-process runner would only hold every decoded frame in memory for it (the units themselves
    are already spread by beam.Create)."""

    def __init__(self, read_options: dict | None = None, reshuffle: bool = False):
        super().__init__()
        self._options, self._reshuffle = dict(read_options or {}), reshuffle

    def expand(self, units):
        frames = units | "ReadFrames" >> beam.ParDo(_ReadUnitFn(self._options))
        return frames | "SpreadFrames" >> beam.Reshuffle() if self._reshuffle else frames


# --------------------------------------------------------------------------------------------
class _AlignFn(beam.DoFn):
    def __init__(self):
        self._aligned = Metrics.counter(NAMESPACE, "frames_aligned")

    def process(self, frame):
        reason = frame.problem
        if reason is None:
            try:
                face = align_face(frame.image, frame.landmarks)
            except AlignmentError as error:
                reason = f"alignment failed: {error}"
            except Exception as error:  # noqa: BLE001 - one frame's bug must not stop the job
                reason = unexpected_error(error)
        if reason is not None:
            rejection = Rejection.of(frame, reason)
            Metrics.counter(NAMESPACE, f"rejected: {rejection.category}").inc()
            yield beam.pvalue.TaggedOutput(REJECTED, rejection)
            return
        self._aligned.inc()
        yield AlignedFrame(frame.subject, frame.task, int(frame.frame),
                           np.asarray(frame.au, np.int64), face.image, face.landmarks,
                           face.inter_ocular)


def unexpected_error(error: Exception) -> str:
    """A rejection reason for an exception nobody foresaw: its type, message and the innermost
    place it was raised ("unexpected error: ValueError: ... (align.py:52 in warp)")."""
    where = traceback.extract_tb(error.__traceback__)[-1]
    place = f"{os.path.basename(where.filename)}:{where.lineno} in {where.name}"
    return f"unexpected error: {type(error).__name__}: {error} ({place})"


class AlignFrames(beam.PTransform):
    """RawFrame -> AlignedFrame (docs/data.md), or a Rejection on the "rejected" output for a
    frame with a problem from its reader or landmarks that define no alignment."""

    def expand(self, frames):
        return frames | "Align" >> beam.ParDo(_AlignFn()).with_outputs(REJECTED, main="aligned")


# --------------------------------------------------------------------------------------------
class _EncodeFn(beam.DoFn):
    def __init__(self, dataset: str, jpeg_quality: int):
        self._dataset, self._quality = dataset, jpeg_quality
        self._encoded = Metrics.counter(NAMESPACE, "examples_encoded")

    def setup(self):
        from schemas.example import encode_example   # TensorFlow: imported on the worker
        self._encode_example = encode_example

    def process(self, face):
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(face.image, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, self._quality])
        if not ok:   # cannot happen for a 200x200 uint8 image; fail loudly rather than drop it
            raise RuntimeError(f"JPEG encoding failed for {face.subject} {face.task} {face.frame}")
        serialized = self._encode_example(
            image_jpeg=jpeg.tobytes(), landmarks=face.landmarks, au=face.au,
            inter_ocular=face.inter_ocular, subject=face.subject, task=face.task, frame=face.frame)
        self._encoded.inc()
        yield Example(part_of(self._dataset, face.subject), face.subject,
                      tuple(int(v) for v in face.au), serialized)


class EncodeExamples(beam.PTransform):
    """AlignedFrame -> Example: JPEG at `jpeg_quality`, schemas.example's tf.Example, its part
    from the official partition of `dataset` (docs/data.md)."""

    def __init__(self, dataset: str, jpeg_quality: int = 95):
        super().__init__()
        self._dataset, self._quality = dataset, jpeg_quality

    def expand(self, faces):
        return faces | "Encode" >> beam.ParDo(_EncodeFn(self._dataset, self._quality))


# --------------------------------------------------------------------------------------------
class _SerializedFn(beam.DoFn):
    def __init__(self, part: int):
        self._written = Metrics.counter(NAMESPACE, f"examples_written_part{part}")

    def process(self, example):
        self._written.inc()
        yield example.serialized


class WriteExamples(beam.PTransform):
    """Examples -> <output_dir>/part{1,2,3}/examples-SSSSS-of-NNNNN.tfrecord.gz (GZIP).

    `num_shards` per part; 0 lets the runner choose."""

    def __init__(self, output_dir: str, num_shards: int = 0):
        super().__init__()
        self._output_dir, self._num_shards = output_dir.rstrip("/"), num_shards

    def expand(self, examples):
        by_part = examples | "ByPart" >> beam.Partition(lambda example, _: example.part - 1,
                                                         len(PARTS))
        for part, pcoll in zip(PARTS, by_part):
            _ = (pcoll
                 | f"Serialized{part}" >> beam.ParDo(_SerializedFn(part))
                 | f"WritePart{part}" >> beam.io.WriteToTFRecord(
                     f"{self._output_dir}/part{part}/{EXAMPLES_PREFIX}",
                     file_name_suffix=EXAMPLES_SUFFIX, num_shards=self._num_shards,
                     compression_type=CompressionTypes.GZIP))
        return examples.pipeline


class WriteRejected(beam.PTransform):
    """Rejections -> <output_dir>/rejected/rejected-*.jsonl, one JSON object per line."""

    def __init__(self, output_dir: str):
        super().__init__()
        self._output_dir = output_dir.rstrip("/")

    def expand(self, rejections):
        return (rejections
                | "ToJson" >> beam.Map(Rejection.to_json)
                | "WriteLines" >> beam.io.WriteToText(
                    f"{self._output_dir}/{REJECTED_DIR}/rejected", file_name_suffix=REJECTED_SUFFIX,
                    num_shards=1))


# --------------------------------------------------------------------------------------------
class PartTallyFn(beam.CombineFn):
    """Examples of one part -> {"examples", "subjects", "positive", "negative", "unknown"}
    (the last three: counts per AU in the dataset's order)."""

    def create_accumulator(self):
        return {"examples": 0, "subjects": set(), "labels": None}

    def add_input(self, acc, example):
        labels = np.asarray(example.au, np.int64)
        counts = np.stack([labels == 1, labels == 0, labels < 0]).astype(np.int64)
        acc["examples"] += 1
        acc["subjects"].add(example.subject)
        acc["labels"] = counts if acc["labels"] is None else acc["labels"] + counts
        return acc

    def merge_accumulators(self, accumulators):
        merged = self.create_accumulator()
        for acc in accumulators:
            merged["examples"] += acc["examples"]
            merged["subjects"] |= acc["subjects"]
            if acc["labels"] is not None:
                merged["labels"] = acc["labels"] if merged["labels"] is None \
                    else merged["labels"] + acc["labels"]
        return merged

    def extract_output(self, acc):
        labels = acc["labels"].tolist() if acc["labels"] is not None else [[], [], []]
        return {"examples": acc["examples"], "subjects": sorted(acc["subjects"]),
                "positive": labels[0], "negative": labels[1], "unknown": labels[2]}


class Tally(beam.PTransform):
    """(raw frames, examples, rejections) -> one dict: frames in, per-part tallies, rejections by
    reason, sequences by how their landmarks were paired with frames (RawFrame.landmark_pairing).
    The job checks its totals and writes stats.json from it."""

    def expand(self, inputs):
        frames, examples, rejections = inputs
        counts = [
            frames | "CountFrames" >> beam.combiners.Count.Globally()
                   | "AsFramesIn" >> beam.Map(lambda n: ("frames_in", n)),
            examples | "KeyByPart" >> beam.Map(lambda e: (e.part, e))
                     | "TallyParts" >> beam.CombinePerKey(PartTallyFn())
                     | "AsPart" >> beam.Map(lambda kv: ("parts", kv)),
            rejections | "Reasons" >> beam.Map(lambda r: r.category)
                       | "CountReasons" >> beam.combiners.Count.PerElement()
                       | "AsReason" >> beam.Map(lambda kv: ("rejected", kv)),
            frames | "Paired" >> beam.Filter(lambda f: f.landmark_pairing is not None)
                   | "SequencePairing" >> beam.Map(
                       lambda f: (f.dataset, f.subject, f.task, f.landmark_pairing))
                   | "OnePerSequence" >> beam.Distinct()
                   | "Pairings" >> beam.Map(lambda sequence: sequence[-1])
                   | "CountPairings" >> beam.combiners.Count.PerElement()
                   | "AsPairing" >> beam.Map(lambda kv: ("landmark_pairing", kv)),
        ]
        return (counts
                | "AllCounts" >> beam.Flatten()
                | "Gather" >> beam.combiners.ToList()
                | "AsDict" >> beam.Map(_tally_dict))


def _tally_dict(entries) -> dict:
    tally = {"frames_in": 0, "parts": {}, "rejected": {}, "landmark_pairing": {}}
    for kind, value in entries:
        if kind == "frames_in":
            tally["frames_in"] = value
        else:
            key, item = value
            tally[kind][str(key)] = item
    return tally
