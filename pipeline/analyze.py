"""From photos and videos to AUs: faces, 49 landmarks, alignment, the model, one CSV per input.

    python -m pipeline.analyze --input clip.mp4 photos/ 'shots/*.jpg' --model artifacts/serving \\
        --output_dir out [--sequence] [--runner=DirectRunner]

Inputs: image files, video files (anything OpenCV decodes; frame rate and timestamps from the
container), folders and globs of them. A folder of images is analysed image by image, one CSV
each (like OpenFace's FaceLandmarkImg), unless --sequence says its images are the frames of one
video (in name order).

A Beam pipeline: one input is read and tracked by one worker (pipeline.tracking: every face, ids
kept across frames, detection only every --redetect_every frames), each face aligned with
pipeline.align, the aligned faces batched by Beam's own RunInference with its TensorFlow model
handler, and one CSV (plus, for a video, a PNG of the AU probabilities over time) written per
input. --runner=DirectRunner (the default) runs in this process; DataflowRunner spreads many
inputs over workers. Beam's own flags pass through.

--model: an exported SavedModel version folder, the TF Serving folder above its versions
(serving/jaa_net, or a folder holding serving/jaa_net: the newest complete version is taken), a
.keras file, or a trained fold folder holding model.keras.

--precision: the model's arithmetic; auto (the default) is bfloat16 on CPUs with bfloat16
arithmetic (Intel AMX, AVX512-BF16), about 3x faster there, and float32 elsewhere.

Output OUT/<input name>.csv in OpenFace's conventions, one row per face and frame:
  frame (1-based), face_id, timestamp (s), confidence (the face detector's score), success,
  x_0..x_48, y_0..y_48     the tracker's 49 landmarks the face was aligned with (raw-frame pixels)
  model_x_0..model_y_48    the model's own 49 landmarks, mapped back to the raw frame
  AU01_c ...               1 where the AU's probability >= the model's threshold, else 0
  AU01_p ...               P(AU present)
A frame without a face gets one row with success = 0 and empty fields: nothing is dropped.
"""
from __future__ import annotations

import argparse
import csv
import glob
import io
import json
import logging
import os
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import KeyedModelHandler, PredictionResult, RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from components.base import UserError
from pipeline.align import AlignmentError, align_face, transform_points
from pipeline.sources import imageio
from pipeline.tracking import REDETECT_EVERY
from schemas.face import NUM_LANDMARKS, au_name

# Named after the module also under `python -m`, where __name__ is "__main__" and its level
# would not be the one components.startup.configure_logging sets.
_LOG = logging.getLogger(__spec__.name if __spec__ else __name__)

SERVING_SIGNATURE = "serving_default"
KERAS_THRESHOLD = 0.5   # a .keras file carries no threshold; the export's default
PRECISIONS = ("auto", "float32", "bfloat16")
# CPU flags (Linux /proc/cpuinfo) of bfloat16 arithmetic: Intel AMX and AVX512-BF16.
BFLOAT16_CPU_FLAGS = {"amx_bf16", "avx512_bf16"}
PROGRESS_EVERY_S = 5.0
SUMMARY_FILE = "analyze_summary.json"   # every input's summary, written by the job


@dataclass(frozen=True)
class Unit:
    """One input: what one CSV describes."""
    name: str                 # OUT/<name>.csv
    kind: str                 # "image", "video" or "sequence"
    paths: tuple[str, ...]    # one file, or the frames of a sequence in order


@dataclass(frozen=True)
class ModelInfo:
    path: str                 # SavedModel folder or .keras file
    kind: str                 # "saved_model" or "keras"
    aus: tuple[str, ...]      # "AU01", ...
    threshold: float


@dataclass(frozen=True)
class FaceKey:
    """What travels beside an aligned face through RunInference."""
    unit: str
    frame: int                # 1-based
    face_id: int
    timestamp: float
    confidence: float
    landmarks: np.ndarray     # (49, 2) raw-frame pixels
    to_raw: np.ndarray        # (2, 3) aligned pixel -> raw pixel


# --------------------------------------------------------------------------------------------
# Inputs

def _is_remote(path: str) -> bool:
    return "://" in path


def _kind(path: str) -> str | None:
    suffix = os.path.splitext(path)[1].lower()
    return ("image" if suffix in imageio.IMAGE_SUFFIXES
            else "video" if suffix in imageio.VIDEO_SUFFIXES else None)


_KNOWN_ENDINGS = ", ".join(sorted(imageio.IMAGE_SUFFIXES | imageio.VIDEO_SUFFIXES))


def _list(pattern: str) -> list[str]:
    if _is_remote(pattern):
        from apache_beam.io.filesystems import FileSystems
        return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
    return sorted(glob.glob(pattern))


def expand_inputs(inputs, sequence: bool = False) -> list[Unit]:
    """The units the --input paths name, in the order given; UserError for anything unusable."""
    units = []
    for given in inputs:
        if not _is_remote(given) and os.path.isdir(given):
            files = sorted(os.path.join(given, n) for n in os.listdir(given))
            images = [f for f in files if _kind(f) == "image"]
            videos = [f for f in files if _kind(f) == "video"]
            if not images and not videos:
                raise UserError(f"--input {given}: the folder holds no image or video files "
                                f"({_KNOWN_ENDINGS})")
            if sequence and images:
                units.append(Unit(Path(given.rstrip("/")).name or "sequence", "sequence",
                                  tuple(images)))
            else:
                units += [Unit(Path(f).stem, "image", (f,)) for f in images]
            units += [Unit(Path(f).stem, "video", (f,)) for f in videos]
            continue
        if not _is_remote(given) and os.path.isfile(given):
            matches = [given]
        elif _is_remote(given) or glob.has_magic(given):
            matches = _list(given)
            if not matches:
                raise UserError(f"--input {given}: no file matches")
        else:
            raise UserError(f"--input {given}: no such file or folder")
        for path in matches:
            kind = _kind(path)
            if kind is None:
                if glob.has_magic(given):
                    continue   # a glob may also match other files
                raise UserError(f"--input {path}: not an image or video file by its name; "
                                f"known endings: {_KNOWN_ENDINGS}")
            if sequence and kind == "image" and glob.has_magic(given):
                units.append(Unit(Path(given).parent.name or "sequence", "sequence", tuple(
                    m for m in matches if _kind(m) == "image")))
                break
            units.append(Unit(Path(path).stem, kind, (path,)))
    names = {}
    for unit in units:
        if unit.name in names:
            raise UserError(f"--input: {names[unit.name]} and {unit.paths[0]} would both write "
                            f"{unit.name}.csv; analyse them into different --output_dir folders")
        names[unit.name] = unit.paths[0]
    if not units:
        raise UserError("--input names no image or video file")
    return units


# --------------------------------------------------------------------------------------------
# The model

def resolve_model(given: str) -> ModelInfo:
    """The model --model names (see the module docstring); UserError naming the path otherwise."""
    from components.export.component import latest_export

    path = Path(given)
    if path.is_file() and path.suffix == ".keras":
        return ModelInfo(str(path), "keras", _keras_aus(path), KERAS_THRESHOLD)
    if (path / "model.keras").is_file():
        return resolve_model(str(path / "model.keras"))
    if (path / "saved_model.pb").is_file():
        return _saved_model_info(path)
    for serving in (path, path / "jaa_net", path / "serving" / "jaa_net"):
        version = latest_export(serving)
        if version is not None:
            return _saved_model_info(Path(version))
    raise UserError(f"--model {given}: not a SavedModel folder (saved_model.pb), a TF Serving "
                    "folder with complete numbered versions (serving/jaa_net), a .keras file or a "
                    "folder holding model.keras; run the export (or train) stage first")


def _saved_model_info(folder: Path) -> ModelInfo:
    from components.base import read_json

    metadata_file = folder / "assets.extra" / "jaa_net.json"
    if not metadata_file.is_file():
        raise UserError(f"--model {folder}: no {metadata_file.relative_to(folder)} naming the AUs; "
                        "export the model with this project's export stage")
    metadata = read_json(metadata_file, "export metadata")
    return ModelInfo(str(folder), "saved_model", tuple(metadata["aus"]),
                     float(metadata.get("threshold", KERAS_THRESHOLD)))


def _keras_aus(path: Path) -> tuple[str, ...]:
    """The AU names in a JAA-Net .keras file's config, read without building the model."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as e:
        raise UserError(f"--model {path}: not a readable .keras file ({e})") from None

    def find(node):
        if isinstance(node, dict):
            if isinstance(node.get("aus"), list):
                return node["aus"]
            node = list(node.values())
        if isinstance(node, list):
            for child in node:
                found = find(child)
                if found is not None:
                    return found
        return None

    aus = find(config)
    if not aus:
        raise UserError(f"--model {path}: its config names no AUs; not a JAA-Net model")
    return tuple(au_name(int(a)) for a in aus)


def cpu_computes_bfloat16() -> bool:
    """Whether this machine's CPU has bfloat16 arithmetic (Intel AMX or AVX512-BF16)."""
    try:
        with open("/proc/cpuinfo") as info:
            flags = next((line.split(":", 1)[1].split() for line in info
                          if line.startswith("flags")), [])
    except OSError:
        return False
    return bool(BFLOAT16_CPU_FLAGS & set(flags))


def model_precision(requested: str) -> str:
    """The precision the model runs in: `requested`, or for "auto" bfloat16 on a CPU-only
    machine whose CPU computes in bfloat16, float32 elsewhere: a CPU without bfloat16 arithmetic
    converts, which is slower than float32 (a bfloat16 training step took 1.8x float32's on an
    AMD EPYC, BENCHMARKS.md), and GPUs are left to float32."""
    if requested not in PRECISIONS:
        raise UserError(f"--precision {requested}: choose one of {', '.join(PRECISIONS)}")
    if requested != "auto":
        return requested
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU") or not cpu_computes_bfloat16():
        return "float32"
    return "bfloat16"


def load_serving_function(info: ModelInfo, precision: str):
    """images uint8 (B, 200, 200, 3) -> {au_probability, au_present, landmarks}, numpy.

    precision "bfloat16" turns on oneDNN's bfloat16 graph rewrite for the whole process: every
    TensorFlow function it runs from then on computes in bfloat16 where oneDNN has a kernel.
    Measured (BENCHMARKS.md, "Photos and videos to AUs"): the paper-size network 2.8x faster on
    an AMX CPU; a trained model's held-out AU probabilities 0.003 from float32 on average."""
    import tensorflow as tf

    precision = model_precision(precision)
    _LOG.info("the model runs in %s", precision)
    if precision == "bfloat16":
        tf.config.optimizer.set_experimental_options({"auto_mixed_precision_onednn_bfloat16": True})
    if info.kind == "saved_model":
        signature = tf.saved_model.load(info.path).signatures[SERVING_SIGNATURE]
        call = lambda images: signature(images=images)  # noqa: E731
    else:
        import keras

        import jaa_keras.model  # noqa: F401  (registers JaaNet: `import jaa_keras` alone does not)
        from components.export.signatures import make_serving_functions

        model = keras.models.load_model(info.path, compile=False)
        call = make_serving_functions(model, info.threshold)[0]
    return lambda images: {k: v.numpy() for k, v in call(tf.constant(images)).items()}


def model_handler(info: ModelInfo, max_batch_size: int, precision: str):
    """Beam's TensorFlow model handler, loading our model (Keras 3 cannot load a SavedModel with
    tf.keras.models.load_model, which the stock handler calls) and calling its serving function."""
    from apache_beam.ml.inference.tensorflow_inference import TFModelHandlerNumpy

    class JaaNetModelHandler(TFModelHandlerNumpy):
        def load_model(self):
            return load_serving_function(info, precision)

    def inference(model, batch, inference_args, model_id=None):
        outputs = model(np.stack(batch))
        return [PredictionResult(None, {k: v[i] for k, v in outputs.items()}, model_id)
                for i in range(len(batch))]

    return KeyedModelHandler(JaaNetModelHandler(
        info.path, inference_fn=inference, min_batch_size=1, max_batch_size=max_batch_size))


# --------------------------------------------------------------------------------------------
# Frames

def _local_copy(path: str) -> tuple[str, bool]:
    """A local file with `path`'s bytes (remote files are copied to a temporary file)."""
    if not _is_remote(path):
        return path, False
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path) as source, tempfile.NamedTemporaryFile(
            suffix=os.path.splitext(path)[1], delete=False) as copy:
        while chunk := source.read(1 << 24):
            copy.write(chunk)
    return copy.name, True


def read_image(path: str) -> np.ndarray | None:
    """RGB uint8 of an image file, or None when it cannot be decoded."""
    import cv2

    local, temporary = _local_copy(path)
    try:
        image = cv2.imread(local, cv2.IMREAD_COLOR)
    finally:
        if temporary:
            os.unlink(local)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def video_frames(path: str):
    """(frame number from 1, timestamp s, RGB uint8 frame) of a video, and its frames/s first."""
    local, temporary = _local_copy(path)
    try:
        video = imageio.open_video(local)
        if video is None:
            raise UserError(f"{path}: {imageio.CANNOT_OPEN_VIDEO}")
        fps, frames = video
        yield fps
        yield from frames
    finally:
        if temporary:
            os.unlink(local)


def unit_frames(unit: Unit):
    """(frames/s or None, iterator of (frame, timestamp, RGB image or None))."""
    if unit.kind == "video":
        frames = video_frames(unit.paths[0])
        return next(frames), frames
    return None, ((i + 1, 0.0, read_image(p)) for i, p in enumerate(unit.paths))


# --------------------------------------------------------------------------------------------
# Beam transforms

class TrackFaces(beam.DoFn):
    """Unit -> (FaceKey, aligned face) per face and frame; rows for frames without a face and one
    info row per unit on the 'rows' output, keyed by the unit's name."""

    ROWS = "rows"

    def __init__(self, upsample: int, redetect_every: int):
        self.upsample, self.redetect_every = upsample, redetect_every

    def setup(self):
        from pipeline.tracking import FaceTracker

        self.tracker = FaceTracker(upsample=self.upsample, redetect_every=self.redetect_every)

    def process(self, unit: Unit):
        started = time.time()
        fps, frames = unit_frames(unit)
        self.tracker.reset()
        counted, last_report = 0, started
        unreadable = []
        for number, stamp, image in frames:
            counted += 1
            if image is None:
                unreadable.append(unit.paths[number - 1])
                yield beam.pvalue.TaggedOutput(self.ROWS, (unit.name, _empty_row(number, stamp)))
                continue
            if unit.kind == "image":
                faces = self.tracker.detect(image)
            else:
                faces = self.tracker.track(image)
            aligned_any = False
            for face in faces:
                try:
                    aligned = align_face(image, face.landmarks)
                except AlignmentError:
                    continue   # degenerate landmarks: the frame's row says success = 0
                aligned_any = True
                key = FaceKey(unit.name, number, face.face_id, stamp, face.confidence,
                              face.landmarks, _inverse(aligned.matrix))
                yield key, aligned.image
            if not aligned_any:
                yield beam.pvalue.TaggedOutput(self.ROWS, (unit.name, _empty_row(number, stamp)))
            if time.time() - last_report > PROGRESS_EVERY_S:
                last_report = time.time()
                _LOG.info("%s: frame %d, %.1f frames/s", unit.name, counted,
                          counted / (last_report - started))
        info = {"info": True, "kind": unit.kind, "frames": counted, "fps": fps,
                "started": started, "unreadable": unreadable}
        yield beam.pvalue.TaggedOutput(self.ROWS, (unit.name, info))


def _inverse(matrix: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.invertAffineTransform(matrix)


def _empty_row(frame: int, timestamp: float) -> dict:
    return {"frame": frame, "timestamp": timestamp, "success": 0}


def prediction_row(keyed) -> tuple[str, dict]:
    """(FaceKey, PredictionResult) -> (unit name, CSV row values)."""
    key, result = keyed
    outputs = result.inference
    model_points = transform_points(key.to_raw, np.reshape(outputs["landmarks"], (NUM_LANDMARKS, 2)))
    return key.unit, {
        "frame": key.frame, "face_id": key.face_id, "timestamp": key.timestamp,
        "confidence": key.confidence, "success": 1, "landmarks": np.asarray(key.landmarks),
        "model_landmarks": model_points, "present": np.asarray(outputs["au_present"]),
        "probability": np.asarray(outputs["au_probability"])}


def csv_header(aus) -> list[str]:
    return (["frame", "face_id", "timestamp", "confidence", "success"]
            + [f"x_{i}" for i in range(NUM_LANDMARKS)] + [f"y_{i}" for i in range(NUM_LANDMARKS)]
            + [f"model_x_{i}" for i in range(NUM_LANDMARKS)]
            + [f"model_y_{i}" for i in range(NUM_LANDMARKS)]
            + [f"{au}_c" for au in aus] + [f"{au}_p" for au in aus])


def _csv_values(row: dict, aus) -> list:
    values = [row["frame"], row.get("face_id", ""), f"{row['timestamp']:.3f}",
              f"{row['confidence']:.3f}" if "confidence" in row else "", row["success"]]
    if not row["success"]:
        return values + [""] * (4 * NUM_LANDMARKS + 2 * len(aus))
    return (values + [f"{v:.2f}" for v in row["landmarks"][:, 0]]
            + [f"{v:.2f}" for v in row["landmarks"][:, 1]]
            + [f"{v:.2f}" for v in row["model_landmarks"][:, 0]]
            + [f"{v:.2f}" for v in row["model_landmarks"][:, 1]]
            + [int(v) for v in row["present"]] + [f"{v:.4f}" for v in row["probability"]])


class WriteResults(beam.DoFn):
    """(unit name, rows) -> OUT/<name>.csv (+ <name>.png for a video or sequence); yields the
    unit's summary."""

    def __init__(self, output_dir: str, aus):
        self.output_dir, self.aus = output_dir, tuple(aus)

    def process(self, element):
        from apache_beam.io.filesystems import FileSystems

        name, rows = element
        rows = list(rows)
        info = next(r for r in rows if r.get("info"))
        rows = sorted((r for r in rows if not r.get("info")),
                      key=lambda r: (r["frame"], r.get("face_id", -1)))
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(csv_header(self.aus))
        writer.writerows(_csv_values(r, self.aus) for r in rows)
        csv_path = FileSystems.join(self.output_dir, f"{name}.csv")
        with FileSystems.create(csv_path) as out:
            out.write(text.getvalue().encode())
        faces = [r for r in rows if r["success"]]
        summary = {
            "input": name, "csv": csv_path, "frames": info["frames"],
            "faces": len({r["face_id"] for r in faces}),
            "face_rows": len(faces),
            "frames_without_face": len({r["frame"] for r in rows}
                                       - {r["frame"] for r in faces}),
            "unreadable": info["unreadable"],
            "frames_per_s": round(info["frames"] / max(time.time() - info["started"], 1e-6), 2)}
        if info["kind"] != "image" and faces:
            summary["plot"] = FileSystems.join(self.output_dir, f"{name}.png")
            with FileSystems.create(summary["plot"]) as out:
                out.write(plot_probabilities(faces, self.aus, name))
        yield summary


def plot_probabilities(faces: list[dict], aus, title: str) -> bytes:
    """PNG bytes: per face, each AU's probability over time."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ids = sorted({r["face_id"] for r in faces})
    figure, axes = plt.subplots(len(ids), 1, figsize=(10, 2.6 * len(ids)), squeeze=False,
                                sharex=True)
    for axis, face_id in zip(axes[:, 0], ids):
        mine = [r for r in faces if r["face_id"] == face_id]
        times = [r["timestamp"] for r in mine]
        probability = np.stack([r["probability"] for r in mine])
        for a, au in enumerate(aus):
            axis.plot(times, probability[:, a], label=au, linewidth=1)
        axis.set_ylim(0, 1)
        axis.set_ylabel(f"face {face_id}\nP(AU)")
    axes[0, 0].set_title(title)
    axes[0, 0].legend(ncol=min(len(aus), 7), fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("time (s)")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()


def build_pipeline(pipeline, units, info: ModelInfo, output_dir: str, *, upsample: int,
                   redetect_every: int, batch_size: int, precision: str):
    """units -> summaries (a PCollection of dicts, one per unit)."""
    tracked = (pipeline
               | "Inputs" >> beam.Create(units)
               | "Track and align faces" >> beam.ParDo(TrackFaces(upsample, redetect_every))
               .with_outputs(TrackFaces.ROWS, main="faces"))
    predicted = (tracked.faces
                 | "RunInference" >> RunInference(model_handler(info, batch_size, precision))
                 | "To rows" >> beam.Map(prediction_row))
    return ((predicted, tracked[TrackFaces.ROWS])
            | "All rows" >> beam.Flatten()
            | "By input" >> beam.GroupByKey()
            | "Write CSV and plot" >> beam.ParDo(WriteResults(output_dir, info.aus))
            | "All summaries" >> beam.combiners.ToList()
            | "Write summary" >> beam.Map(_write_json, output_dir))


def _write_json(summaries: list, output_dir: str) -> None:
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(FileSystems.join(output_dir, SUMMARY_FILE)) as out:
        out.write(json.dumps(sorted(summaries, key=lambda s: s["input"]), indent=1).encode())


def analyze(inputs, model: str, output_dir: str, beam_args=(), *, sequence: bool = False,
            upsample: int = 0, redetect_every: int = REDETECT_EVERY, batch_size: int = 32,
            precision: str = "auto") -> list:
    """Run the job; the summaries, one per input, in the order of the inputs."""
    from apache_beam.io.filesystems import FileSystems

    from pipeline.job import _runner

    units = expand_inputs(inputs, sequence)
    for unit in units:
        _check_video(unit)
    info = resolve_model(model)
    model_precision(precision)   # an unknown value fails here, before the job starts
    if not _is_remote(output_dir):
        os.makedirs(output_dir, exist_ok=True)
    options = PipelineOptions(list(beam_args))
    runner, _ = _runner(options)
    with beam.Pipeline(runner=runner, options=options) as pipeline:
        build_pipeline(pipeline, units, info, output_dir, upsample=upsample,
                       redetect_every=redetect_every, batch_size=batch_size,
                       precision=precision)
    with FileSystems.open(FileSystems.join(output_dir, SUMMARY_FILE)) as written:
        summaries = json.loads(written.read())
    order = {u.name: i for i, u in enumerate(units)}
    return sorted(summaries, key=lambda s: order[s["input"]])


def _check_video(unit: Unit) -> None:
    """A local video OpenCV cannot open is the user's to fix before the job starts."""
    path = unit.paths[0]
    if unit.kind == "video" and not _is_remote(path) and not imageio.video_opens(path):
        raise UserError(f"{path}: {imageio.CANNOT_OPEN_VIDEO}")


def summary_line(summary: dict) -> str:
    line = (f"{summary['input']}: {summary['frames']} frames, {summary['faces']} faces, "
            f"{summary['frames_without_face']} frames without a face, "
            f"{summary['frames_per_s']} frames/s -> {summary['csv']}")
    if summary["unreadable"]:
        line += f" ({len(summary['unreadable'])} unreadable: {', '.join(summary['unreadable'][:3])})"
    return line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.analyze", description=__doc__.split("\n\n")[0],
        epilog="Beam's own flags (--runner, --direct_num_workers, --project, --region, "
               "--temp_location, ...) pass through.")
    parser.add_argument("--input", nargs="+", required=True,
                        help="images, videos, folders or globs (quote globs)")
    parser.add_argument("--model", required=True,
                        help="SavedModel version folder, serving/jaa_net (newest version), a "
                             "folder holding serving/jaa_net, a .keras file or a fold folder")
    parser.add_argument("--output_dir", required=True, help="where <input name>.csv goes")
    parser.add_argument("--sequence", action="store_true",
                        help="folders (and globs) of images are the frames of one video each")
    parser.add_argument("--upsample", type=int, default=0,
                        help="face detector upsampling: 0 finds faces from about 80 px, 1 from "
                             "about 40 px at four times the detection time")
    parser.add_argument("--redetect_every", type=int, default=REDETECT_EVERY,
                        help="video frames between full-frame face detections (1: every frame)")
    parser.add_argument("--batch_size", type=int, default=32,
                        help="largest batch of faces per model call (Beam batches up to it)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="the model's arithmetic: auto is bfloat16 on CPUs that compute in "
                             "it (Intel AMX, AVX512-BF16; about 3x faster, probabilities 0.003 "
                             "from float32's on average) and float32 elsewhere; on a worker, "
                             "its own CPU decides")
    return parser


_BEAM_FLAG_PREFIXES = ("--runner", "--direct", "--project", "--region", "--temp_location",
                       "--staging_location", "--setup_file", "--requirements_file",
                       "--extra_package", "--sdk_container_image", "--job_name",
                       "--num_workers", "--max_num_workers", "--machine_type",
                       "--worker_machine_type", "--service_account_email", "--network",
                       "--subnetwork", "--experiments", "--save_main_session")


def main(argv=None) -> list:
    parser = build_parser()
    args, beam_args = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    unknown = [a for a in beam_args
               if a.startswith("-") and not a.split("=")[0].startswith(_BEAM_FLAG_PREFIXES)]
    if unknown:
        parser.error(f"unknown option(s) {unknown}")
    if args.upsample < 0 or args.redetect_every < 1 or args.batch_size < 1:
        parser.error("--upsample must be >= 0, --redetect_every and --batch_size >= 1")
    try:
        summaries = analyze(args.input, args.model, args.output_dir, beam_args,
                            sequence=args.sequence, upsample=args.upsample,
                            redetect_every=args.redetect_every, batch_size=args.batch_size,
                            precision=args.precision)
    except UserError as error:
        raise SystemExit(f"pipeline.analyze: {error}") from None
    for summary in summaries:
        print(summary_line(summary))
    return summaries


if __name__ == "__main__":
    from components.startup import configure_logging, import_tensorflow_quietly
    configure_logging("INFO")   # its progress lines; Beam's INFO chatter stays hidden
    import_tensorflow_quietly()  # without TensorFlow's start-up notices (no CUDA driver, ...)
    main()
