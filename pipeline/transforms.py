"""The preprocessing job's Beam transforms, small and named.

    units | ReadUnits(...)          -> RawFrame            (one per labelled frame, decoded)
          | AlignFrames()           -> {"aligned": AlignedFrame, "rejected": Rejection}
          | EncodeExamples(...)     -> {"examples": Example, "rejected": Rejection}
    WriteExamples(output_dir)       GZIP TFRecords per part: part{1,2,3}/examples-*.tfrecord.gz
    WriteRejected(output_dir)       rejected/rejected-*.jsonl, one JSON line per frame set aside
    Tally()                         frames in, examples and AU counts per part, rejections by
                                    reason, sequences by landmark pairing
    ReportUnits()                   one log line per unit: its frames written and rejected

A frame that cannot be used never raises: it leaves through a "rejected" output with its reason
and is counted, so frames in = examples written + frames rejected. That holds for failures nobody
foresaw too: each step that takes one frame (decoding a BP4D image, aligning, encoding) runs under
Beam's with_exception_handling, and a frame whose step raises is set aside as "unexpected error"
with the exception and where it was raised, while the job goes on.
"""
import dataclasses
import json
import logging
import os
import re
from collections import Counter
from typing import NamedTuple

import apache_beam as beam
import cv2
import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.metrics import Metrics

from pipeline.align import AlignmentError, align_face
from pipeline.sources import imageio, source
from pipeline.sources.folds import part_of
from pipeline.sources.records import RawFrame
from schemas.face import PARTS

NAMESPACE = "preprocess"
REJECTED = "rejected"
EXAMPLES_PREFIX = "examples"
EXAMPLES_SUFFIX = ".tfrecord.gz"
REJECTED_DIR = "rejected"
REJECTED_SUFFIX = ".jsonl"
# Innermost places of an unexpected exception's traceback kept in its rejection reason.
TRACEBACK_PLACES = 3
_TRACEBACK_PLACE = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')
_LOG = logging.getLogger(__name__)


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
    def of(cls, frame, reason: str):
        """`frame`: a RawFrame or an AlignedFrame; counted under "rejected: <category>"."""
        rejection = cls(frame.dataset, frame.subject, frame.task, int(frame.frame),
                        frame.image_source, frame.landmark_source, reason)
        Metrics.counter(NAMESPACE, f"rejected: {rejection.category}").inc()
        return rejection

    @classmethod
    def of_failure(cls, dead_letter):
        """The rejection of a frame whose step raised: Beam's dead letter (frame, error)."""
        frame, error = dead_letter
        return cls.of(frame, unexpected_error(error))

    @property
    def category(self) -> str:
        """The reason without details: "image unreadable: truncated JPEG" -> "image unreadable"."""
        return self.reason.split(":", 1)[0]

    def to_json(self) -> str:
        return json.dumps(self._asdict(), sort_keys=True)


class AlignedFrame(NamedTuple):
    dataset: str
    subject: str
    task: str
    frame: int
    image_source: str
    landmark_source: str
    au: np.ndarray
    image: np.ndarray         # ALIGNED_SIZE x ALIGNED_SIZE RGB
    landmarks: np.ndarray     # (49, 2) aligned pixels
    inter_ocular: float


class Example(NamedTuple):
    """A serialized tf.Example with what the tally and the unit report need to know of it."""
    part: int
    subject: str
    task: str
    au: tuple
    serialized: bytes


def unexpected_error(error) -> str:
    """A rejection reason for an exception nobody foresaw, from the (type, repr, formatted
    traceback) of Beam's dead letter: its type and message, then the innermost places it passed
    ("unexpected error: cv2.error: ... (at imageio.py:40 in decode_jpeg < imageio.py:31 in
    read_jpeg < transforms.py:120 in process)")."""
    _, _, lines = error
    message = " ".join(lines[-1].split())   # "cv2.error: ...", as Python prints it, on one line
    places = [f"{os.path.basename(path)}:{line} in {name}"
              for path, line, name in _TRACEBACK_PLACE.findall("".join(lines))]
    return f"unexpected error: {message} (at {' < '.join(places[::-1][:TRACEBACK_PLACES])})"


# --------------------------------------------------------------------------------------------
class _ReadUnitFn(beam.DoFn):
    def __init__(self, read_options: dict):
        self._options = read_options
        self._frames = Metrics.counter(NAMESPACE, "frames_read")
        self._units = Metrics.counter(NAMESPACE, "units_read")

    def process(self, unit):
        options = dict(self._options)
        if unit.dataset == "bp4d":   # a JPEG per frame: DecodeImages decodes them one by one
            options["decode_images"] = False
        for frame in source(unit.dataset).read_unit(unit, **options):
            self._frames.inc()
            yield frame
        self._units.inc()


class _DecodeImageFn(beam.DoFn):
    def process(self, frame):
        if frame.image is None and frame.problem is None:   # BP4D: left to decode frame by frame
            image, problem = imageio.read_jpeg(frame.image_source)
            frame = dataclasses.replace(frame, image=image, problem=problem,
                                        landmarks=None if problem else frame.landmarks)
        yield frame


def _failed_frame(dead_letter) -> RawFrame:
    """A frame whose decoding raised, carrying the exception as its problem."""
    frame, error = dead_letter
    return dataclasses.replace(frame, image=None, landmarks=None, problem=unexpected_error(error))


class ReadUnits(beam.PTransform):
    """Source units (a BP4D sequence, a DISFA video) -> every labelled RawFrame of them.

    A BP4D image is decoded as a step of its own, frame by frame, so that a file the decoder
    fails on sets that frame aside, not its sequence (a DISFA video is decoded in one forward
    pass by its reader). `reshuffle` spreads the frames of one unit over workers. It pays on a
    distributed runner; an in-process runner would only hold every decoded frame in memory for
    it (the units themselves are already spread by beam.Create)."""

    def __init__(self, read_options: dict | None = None, reshuffle: bool = False):
        super().__init__()
        self._options, self._reshuffle = dict(read_options or {}), reshuffle

    def expand(self, units):
        read = units | "ReadFrames" >> beam.ParDo(_ReadUnitFn(self._options))
        decoded, failed = (
            read | "DecodeImages" >> beam.ParDo(_DecodeImageFn()).with_exception_handling())
        frames = ((decoded, failed | "AsProblem" >> beam.Map(_failed_frame))
                  | "Frames" >> beam.Flatten())
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
        if reason is not None:
            yield beam.pvalue.TaggedOutput(REJECTED, Rejection.of(frame, reason))
            return
        self._aligned.inc()
        yield AlignedFrame(frame.dataset, frame.subject, frame.task, int(frame.frame),
                           frame.image_source, frame.landmark_source,
                           np.asarray(frame.au, np.int64), face.image, face.landmarks,
                           face.inter_ocular)


class AlignFrames(beam.PTransform):
    """RawFrame -> {"aligned": AlignedFrame (docs/data.md), "rejected": Rejection} for a frame
    with a problem from its reader, landmarks that define no alignment, or an unexpected error."""

    def expand(self, frames):
        # the output types declared, or Beam warns that with_outputs names an undeclared tag
        outputs = frames | "Align" >> (beam.ParDo(_AlignFn())
                                       .with_output_types(AlignedFrame, **{REJECTED: Rejection})
                                       .with_exception_handling(dead_letter_tag="failed")
                                       .with_outputs(REJECTED, main="aligned"))
        return {"aligned": outputs.aligned,
                "rejected": (outputs.rejected,
                             outputs.failed | "AsRejection" >> beam.Map(Rejection.of_failure))
                            | "Rejected" >> beam.Flatten()}


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
        example = Example(part_of(self._dataset, face.subject), face.subject, face.task,
                          tuple(int(v) for v in face.au), serialized)
        self._encoded.inc()
        yield example


class EncodeExamples(beam.PTransform):
    """AlignedFrame -> {"examples": Example, "rejected": Rejection}: JPEG at `jpeg_quality`,
    schemas.example's tf.Example, its part from the official partition of `dataset`
    (docs/data.md); a frame whose encoding raised is rejected as an unexpected error."""

    def __init__(self, dataset: str, jpeg_quality: int = 95):
        super().__init__()
        self._dataset, self._quality = dataset, jpeg_quality

    def expand(self, faces):
        encoded, failed = faces | "Encode" >> (beam.ParDo(_EncodeFn(self._dataset, self._quality))
                                               .with_exception_handling())
        return {"examples": encoded,
                "rejected": failed | "AsRejection" >> beam.Map(Rejection.of_failure)}


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


class ReportUnits(beam.PTransform):
    """(examples, rejections) -> one INFO line per unit once its counts are complete:
    "F003 T1: 4 frames, 3 written, 1 rejected (unexpected error 1)"."""

    def expand(self, inputs):
        examples, rejections = inputs
        return ((examples | "Written" >> beam.Map(lambda e: ((e.subject, e.task), None)),
                 rejections | "Reasons" >> beam.Map(lambda r: ((r.subject, r.task), r.category)))
                | "Outcomes" >> beam.Flatten()
                | "PerUnit" >> beam.GroupByKey()
                | "Log" >> beam.MapTuple(_log_unit))


def _log_unit(unit, outcomes) -> None:
    counts = Counter(outcomes)
    written = counts.pop(None, 0)
    rejected = sum(counts.values())
    reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items()))
    name = " ".join(part for part in unit if part)   # a DISFA video has no task
    _LOG.info("%s: %d frames, %d written, %d rejected%s", name, written + rejected, written,
              rejected, f" ({reasons})" if reasons else "")


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
