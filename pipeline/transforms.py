"""The preprocessing job's Beam transforms, small and named.

    units | ReadUnits(...)          -> RawFrame            (every frame, coded or not, decoded)
          | AlignFrames()           -> {"aligned": AlignedFrame, "rejected": Rejection}
          | EncodeExamples(...)     -> {"examples": Example, "rejected": Rejection}, in three steps:
              EncodeFaces(...)      -> the aligned face as JPEG (EncodedFace)
              FlowTargets(k)        -> with its flow target to frame t + k of its sequence
              SerializeExamples(..) -> schemas.example's tf.Example, its part
    WriteExamples(output_dir)       GZIP TFRecords per destination: part{1,2,3}/examples-* (coded
                                    frames), unlabelled/part{1,2,3}/frames-* (uncoded frames of
                                    that part's subjects), unlabelled/outside/frames-* (uncoded
                                    frames of subjects in no part)
    WriteRejected(output_dir)       rejected/rejected-*.jsonl, one JSON line per frame set aside
    Tally()                         frames in (and coded frames in), records, AU counts and flow
                                    targets per destination, rejections by reason, sequences by
                                    landmark pairing
    ReportUnits()                   one log line per unit: its frames written and rejected

A frame that cannot be used never raises: it leaves through a "rejected" output with its reason
and is counted, so frames in = records written + frames rejected. That holds for failures nobody
foresaw too: each step that takes one frame (decoding a BP4D image, aligning, encoding, its flow
target, serializing) runs under Beam's with_exception_handling, and a frame whose step raises is
set aside as "unexpected error" with the exception and where it was raised, while the job goes on.
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

from components.preprocess.component import PREPROCESS
from pipeline.align import AlignmentError, align_face
from pipeline.sources import DatasetLayoutError, imageio, source, unlabelled
from pipeline.sources.folds import part_of
from pipeline.sources.records import RawFrame
from schemas.face import PARTS

NAMESPACE = "preprocess"
REJECTED = "rejected"
EXAMPLES_PREFIX = "examples"
EXAMPLES_SUFFIX = ".tfrecord.gz"
UNLABELLED_DIR = "unlabelled"
UNLABELLED_PREFIX = "frames"
OUTSIDE = "outside"
REJECTED_DIR = "rejected"
REJECTED_SUFFIX = ".jsonl"
DEFAULT_FLOW_OFFSET = PREPROCESS.parameter("flow_offset").default
# Frames of a sequence grouped together for their flow targets (with the flow_offset frames after
# them as partners): a bounded group however long the sequence (BP4D's run past 1000 frames).
FLOW_CHUNK = 64
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
    coded: bool = True


class EncodedFace(NamedTuple):
    """An aligned face as JPEG bytes; `flow` (FLOW_SHAPE float32) to frame `flow_to` once
    FlowTargets has found its partner."""
    dataset: str
    subject: str
    task: str
    frame: int
    image_source: str
    landmark_source: str
    au: np.ndarray
    jpeg: bytes
    landmarks: np.ndarray
    inter_ocular: float
    coded: bool = True
    flow: np.ndarray | None = None
    flow_to: int | None = None


class Example(NamedTuple):
    """A serialized tf.Example with what the writer, the tally and the unit report need to know
    of it."""
    part: int | None          # the subject's part; None for a subject in no part
    subject: str
    task: str
    au: tuple
    serialized: bytes
    coded: bool = True
    has_flow: bool = False

    @property
    def destination(self) -> str:
        return destination(self.part, self.coded)


def destination(part: int | None, coded: bool) -> str:
    """The folder under the output of a record: part{p} (coded), unlabelled/part{p} (uncoded) or
    unlabelled/outside (uncoded, a subject in no part)."""
    if coded:
        return f"part{part}"
    return f"{UNLABELLED_DIR}/{OUTSIDE if part is None else f'part{part}'}"


DESTINATIONS = tuple(destination(p, True) for p in PARTS) + tuple(
    destination(p, False) for p in PARTS) + (destination(None, False),)


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
    def __init__(self, read_options: dict, num_aus: int | None):
        self._options, self._num_aus = read_options, num_aus
        self._frames = Metrics.counter(NAMESPACE, "frames_read")
        self._uncoded = Metrics.counter(NAMESPACE, "uncoded_frames_read")
        self._units = Metrics.counter(NAMESPACE, "units_read")

    def process(self, unit):
        options = dict(self._options)
        if unit.dataset == "bp4d":   # a JPEG per frame: DecodeImages decodes them one by one
            options["decode_images"] = False
        elif unit.dataset == unlabelled.DATASET:   # the dataset's offsets are not its business
            options = {"num_aus": self._num_aus}
        for frame in source(unit.dataset).read_unit(unit, **options):
            self._frames.inc()
            if not frame.coded:
                self._uncoded.inc()
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
    """Source units (a BP4D sequence, a DISFA video, an --unlabelled_dir sequence) -> every
    RawFrame of them, coded or not; `num_aus` (the dataset's) for --unlabelled_dir units.

    A BP4D image is decoded as a step of its own, frame by frame, so that a file the decoder
    fails on sets that frame aside, not its sequence (a DISFA video is decoded in one forward
    pass by its reader). `reshuffle` spreads the frames of one unit over workers. It pays on a
    distributed runner; an in-process runner would only hold every decoded frame in memory for
    it (the units themselves are already spread by beam.Create)."""

    def __init__(self, read_options: dict | None = None, reshuffle: bool = False,
                 num_aus: int | None = None):
        super().__init__()
        self._options, self._reshuffle = dict(read_options or {}), reshuffle
        self._num_aus = num_aus

    def expand(self, units):
        read = units | "ReadFrames" >> beam.ParDo(_ReadUnitFn(self._options, self._num_aus))
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
                           face.inter_ocular, frame.coded)


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
class _JpegFn(beam.DoFn):
    def __init__(self, jpeg_quality: int):
        self._quality = jpeg_quality

    def process(self, face):
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(face.image, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, self._quality])
        if not ok:   # cannot happen for a 200x200 uint8 image; fail loudly rather than drop it
            raise RuntimeError(f"JPEG encoding failed for {face.subject} {face.task} {face.frame}")
        yield EncodedFace(face.dataset, face.subject, face.task, face.frame, face.image_source,
                          face.landmark_source, face.au, jpeg.tobytes(), face.landmarks,
                          face.inter_ocular, face.coded)


def _guarded(pcoll, label: str, dofn, as_rejection=Rejection.of_failure):
    """`dofn` over `pcoll` under Beam's exception handling: (its outputs, a Rejection for each
    element whose step raised)."""
    done, failed = pcoll | label >> beam.ParDo(dofn).with_exception_handling()
    return done, failed | f"{label}Rejected" >> beam.Map(as_rejection)


class EncodeFaces(beam.PTransform):
    """AlignedFrame -> {"faces": EncodedFace (JPEG at `jpeg_quality`), "rejected": Rejection}."""

    def __init__(self, jpeg_quality: int = 95):
        super().__init__()
        self._quality = jpeg_quality

    def expand(self, faces):
        encoded, rejected = _guarded(faces, "Jpeg", _JpegFn(self._quality))
        return {"faces": encoded, "rejected": rejected}


_OWN, _PARTNER = "own", "partner"


def _chunk_keys(face: EncodedFace, offset: int, chunk: int):
    """((sequence, chunk), item): a face goes to its own chunk, and its JPEG also to the chunk of
    frame t - offset, whose partner it is when that chunk is another."""
    sequence = (face.dataset, face.subject, face.task)
    own = face.frame // chunk
    yield (sequence, own), (_OWN, face)
    partner_of = (face.frame - offset) // chunk
    if partner_of != own:
        yield (sequence, partner_of), (_PARTNER, (face.frame, face.jpeg, face.landmarks))


def _pairs(keyed, offset: int):
    """(face, (frame t + offset, its JPEG, its landmarks) or None) for each face of a chunk."""
    _, items = keyed
    own, partners = [], {}
    for role, item in items:
        if role == _OWN:
            own.append(item)
            partners[item.frame] = (item.frame, item.jpeg, item.landmarks)
        else:
            partners[item[0]] = item
    for face in sorted(own, key=lambda face: face.frame):
        yield face, partners.get(face.frame + offset)


class _FlowFn(beam.DoFn):
    def __init__(self):
        self._with_flow = Metrics.counter(NAMESPACE, "flow_targets")

    def setup(self):
        from pipeline import flow   # schemas.example: TensorFlow, imported on the worker
        self._flow = flow
        self._dis = cv2.DISOpticalFlow_create(flow.DIS_PRESET)   # not picklable: made here

    def process(self, pair):
        face, partner = pair
        if partner is None:
            yield face
            return
        frame, jpeg, landmarks = partner
        later = self._flow.registered(self._flow.grey_face(jpeg), landmarks, face.landmarks)
        target = self._flow.flow_target(self._flow.grey_face(face.jpeg), later, self._dis)
        self._with_flow.inc()
        yield face._replace(flow=target, flow_to=frame)


def _pair_failure(dead_letter) -> Rejection:
    (face, _), error = dead_letter
    return Rejection.of_failure((face, error))


class FlowTargets(beam.PTransform):
    """EncodedFace -> {"faces": EncodedFace, "rejected": Rejection}: each face whose sequence has
    an encoded face `offset` frames later gets the optical flow to it (pipeline.flow); the others
    go on without one. Faces are grouped by sequence in chunks of `chunk` frames, each with the
    `offset` frames after it, so no worker holds a whole sequence."""

    def __init__(self, offset: int = DEFAULT_FLOW_OFFSET, chunk: int = FLOW_CHUNK):
        super().__init__()
        if offset < 1 or chunk < 1:
            raise ValueError(f"flow offset and chunk must be positive, got {offset}, {chunk}")
        self._offset, self._chunk = offset, chunk

    def expand(self, faces):
        pairs = (faces
                 | "KeyByChunk" >> beam.FlatMap(_chunk_keys, self._offset, self._chunk)
                 | "GroupChunks" >> beam.GroupByKey()
                 | "PairPartners" >> beam.FlatMap(_pairs, self._offset))
        flows, rejected = _guarded(pairs, "ComputeFlow", _FlowFn(), _pair_failure)
        return {"faces": flows, "rejected": rejected}


class _SerializeFn(beam.DoFn):
    def __init__(self, dataset: str):
        self._dataset = dataset
        self._encoded = Metrics.counter(NAMESPACE, "examples_encoded")

    def setup(self):
        from schemas.example import NO_FLOW, encode_example   # TensorFlow: on the worker
        self._encode_example, self._no_flow = encode_example, NO_FLOW

    def process(self, face):
        serialized = self._encode_example(
            image_jpeg=face.jpeg, landmarks=face.landmarks, au=face.au,
            inter_ocular=face.inter_ocular, subject=face.subject, task=face.task, frame=face.frame,
            flow=face.flow, flow_to=self._no_flow if face.flow_to is None else face.flow_to)
        example = Example(self._part(face), face.subject, face.task,
                          tuple(int(v) for v in face.au), serialized, face.coded,
                          face.flow is not None)
        self._encoded.inc()
        yield example

    def _part(self, face) -> int | None:
        """The subject's official part; None for uncoded frames of a subject in none."""
        try:
            return part_of(self._dataset, face.subject)
        except DatasetLayoutError:
            if face.coded:
                raise
            return None


class SerializeExamples(beam.PTransform):
    """EncodedFace -> {"examples": Example, "rejected": Rejection}: schemas.example's tf.Example,
    its part from the official partition of `dataset` (docs/data.md)."""

    def __init__(self, dataset: str):
        super().__init__()
        self._dataset = dataset

    def expand(self, faces):
        examples, rejected = _guarded(faces, "Serialize", _SerializeFn(self._dataset))
        return {"examples": examples, "rejected": rejected}


class EncodeExamples(beam.PTransform):
    """AlignedFrame -> {"examples": Example, "rejected": Rejection}: EncodeFaces, FlowTargets
    (`flow_offset` frames ahead) and SerializeExamples in a row; a frame whose step raised is
    rejected as an unexpected error."""

    def __init__(self, dataset: str, jpeg_quality: int = 95,
                 flow_offset: int = DEFAULT_FLOW_OFFSET):
        super().__init__()
        self._dataset, self._quality, self._offset = dataset, jpeg_quality, flow_offset

    def expand(self, aligned):
        encoded = aligned | "EncodeFaces" >> EncodeFaces(self._quality)
        flows = encoded["faces"] | "FlowTargets" >> FlowTargets(self._offset)
        examples = flows["faces"] | "SerializeExamples" >> SerializeExamples(self._dataset)
        return {"examples": examples["examples"],
                "rejected": (encoded["rejected"], flows["rejected"], examples["rejected"])
                | "Rejected" >> beam.Flatten()}


# --------------------------------------------------------------------------------------------
class _SerializedFn(beam.DoFn):
    def __init__(self, folder: str):
        name = folder.replace("/", "_")
        self._written = Metrics.counter(
            NAMESPACE, f"examples_written_{name}" if folder.startswith("part") else
            f"{name}_written")

    def process(self, example):
        self._written.inc()
        yield example.serialized


class WriteExamples(beam.PTransform):
    """Examples -> GZIP TFRecords under `output_dir`, by Example.destination:
    part{1,2,3}/examples-SSSSS-of-NNNNN.tfrecord.gz, unlabelled/part{1,2,3}/frames-*.tfrecord.gz
    and, with `outside`, unlabelled/outside/frames-*.tfrecord.gz (otherwise no frame may go there).

    `num_shards` per folder; 0 lets the runner choose."""

    def __init__(self, output_dir: str, num_shards: int = 0, outside: bool = False):
        super().__init__()
        self._output_dir, self._num_shards = output_dir.rstrip("/"), num_shards
        self._destinations = DESTINATIONS if outside else DESTINATIONS[:-1]

    def expand(self, examples):
        index = {folder: i for i, folder in enumerate(self._destinations)}
        by_folder = examples | "ByDestination" >> beam.Partition(
            lambda example, _: index[example.destination], len(self._destinations))
        for folder, pcoll in zip(self._destinations, by_folder):
            prefix = EXAMPLES_PREFIX if folder.startswith("part") else UNLABELLED_PREFIX
            name = folder.replace("/", "_").title().replace("_", "")
            _ = (pcoll
                 | f"Serialized{name}" >> beam.ParDo(_SerializedFn(folder))
                 | f"Write{name}" >> beam.io.WriteToTFRecord(
                     f"{self._output_dir}/{folder}/{prefix}",
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
    """Examples of one destination -> {"examples", "with_flow", "subjects", "positive",
    "negative", "unknown"} (the last three: counts per AU in the dataset's order)."""

    def create_accumulator(self):
        return {"examples": 0, "with_flow": 0, "subjects": set(), "labels": None}

    def add_input(self, acc, example):
        labels = np.asarray(example.au, np.int64)
        counts = np.stack([labels == 1, labels == 0, labels < 0]).astype(np.int64)
        acc["examples"] += 1
        acc["with_flow"] += int(example.has_flow)
        acc["subjects"].add(example.subject)
        acc["labels"] = counts if acc["labels"] is None else acc["labels"] + counts
        return acc

    def merge_accumulators(self, accumulators):
        merged = self.create_accumulator()
        for acc in accumulators:
            merged["examples"] += acc["examples"]
            merged["with_flow"] += acc["with_flow"]
            merged["subjects"] |= acc["subjects"]
            if acc["labels"] is not None:
                merged["labels"] = acc["labels"] if merged["labels"] is None \
                    else merged["labels"] + acc["labels"]
        return merged

    def extract_output(self, acc):
        labels = acc["labels"].tolist() if acc["labels"] is not None else [[], [], []]
        return {"examples": acc["examples"], "with_flow": acc["with_flow"],
                "subjects": sorted(acc["subjects"]),
                "positive": labels[0], "negative": labels[1], "unknown": labels[2]}


class Tally(beam.PTransform):
    """(raw frames, examples, rejections) -> one dict: frames in and coded frames in, tallies per
    destination ("part1", "unlabelled/part1", "unlabelled/outside", ...: PartTallyFn), rejections
    by reason, sequences by how their landmarks were paired with frames
    (RawFrame.landmark_pairing). The job checks its totals and writes stats.json from it."""

    def expand(self, inputs):
        frames, examples, rejections = inputs
        counts = [
            frames | "CountFrames" >> beam.combiners.Count.Globally()
                   | "AsFramesIn" >> beam.Map(lambda n: ("frames_in", n)),
            frames | "Coded" >> beam.Filter(lambda f: f.coded)
                   | "CountCoded" >> beam.combiners.Count.Globally()
                   | "AsCodedIn" >> beam.Map(lambda n: ("coded_in", n)),
            examples | "KeyByDestination" >> beam.Map(lambda e: (e.destination, e))
                     | "TallyDestinations" >> beam.CombinePerKey(PartTallyFn())
                     | "AsDestination" >> beam.Map(lambda kv: ("records", kv)),
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
    tally = {"frames_in": 0, "coded_in": 0, "records": {}, "rejected": {}, "landmark_pairing": {}}
    for kind, value in entries:
        if kind in ("frames_in", "coded_in"):
            tally[kind] = value
        else:
            key, item = value
            tally[kind][str(key)] = item
    return tally
