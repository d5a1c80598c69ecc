"""Speed of `python -m pipeline.analyze` on a 640 x 480 video with one face and the paper-size model.

    python -m benchmarks.bench_analyze            # 150 frames, BP4D paper preset
    python -m benchmarks.bench_analyze --quick    # 30 frames, tiny network: checks the script runs
    python -m benchmarks.bench_analyze --precision float32   # (default: auto, as the command)

The video is scikit-image's astronaut photo moving and zooming over a grey 640 x 480 frame, written
as MJPEG AVI. Two measurements:
  split       one pass in this process, each step timed on its own: decode, face detection (only
              on the frames the tracker detects on), landmarks (the 68-point predictor), alignment,
              and the model at batch 32; per frame, and frames/s if the steps ran one after another
  end_to_end  the whole Beam job (DirectRunner, in process) on the same video, from the command's
              start to its CSV: frames / wall seconds, start-up (TensorFlow, model load) included
Target (issue 12): >= 8 frames/s end to end with one face on 2 cores.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline.analyze import PRECISIONS, model_precision


def write_video(path: Path, frames: int) -> None:
    import cv2
    from skimage import data

    photo = data.astronaut()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 480))
    for t in range(frames):
        phase = 2 * np.pi * t / 90
        scale = 0.9 + 0.2 * np.sin(phase)                   # the face 80-100 px wide
        matrix = np.array([[scale, 0, 140 + 60 * np.cos(phase)],
                           [0, scale, 40 + 20 * np.sin(2 * phase)]])
        frame = cv2.warpAffine(photo, matrix, (640, 480), borderValue=(120, 120, 120))
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def timed(method, totals: dict, name: str):
    """`method`, adding its run time to totals[name]."""
    def call(*args, **kwargs):
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            totals[name] = totals.get(name, 0.0) + time.perf_counter() - start
    return call


def split(video: Path, model_file: Path, batch: int, precision: str) -> dict:
    from pipeline.align import align_face
    from pipeline.analyze import ModelInfo, load_serving_function, video_frames
    from pipeline.tracking import FaceTracker

    tracker = FaceTracker()
    totals = {}
    tracker.detect_boxes = timed(tracker.detect_boxes, totals, "detect")
    tracker.landmarks68 = timed(tracker.landmarks68, totals, "landmarks")
    frames = video_frames(str(video))
    next(frames)
    faces, count, detected = [], 0, 0
    start = time.perf_counter()
    for _, _, image in frames:
        totals["decode"] = totals.get("decode", 0.0) + time.perf_counter() - start
        count += 1
        found = tracker.track(image)
        detected += any(f.detected for f in found)
        start = time.perf_counter()
        faces += [align_face(image, f.landmarks).image for f in found]
        totals["align"] = totals.get("align", 0.0) + time.perf_counter() - start
        start = time.perf_counter()

    serve = load_serving_function(ModelInfo(str(model_file), "keras", (), 0.5), precision)
    faces = np.stack(faces)
    serve(faces[:batch])   # warm-up: tracing
    start = time.perf_counter()
    for first in range(0, len(faces), batch):
        serve(faces[first:first + batch])
    totals["model"] = time.perf_counter() - start
    per_frame_ms = {k: round(1000 * v / count, 2) for k, v in totals.items()}
    return {"frames": count, "faces": len(faces), "frames_detected": detected,
            "per_frame_ms": per_frame_ms,
            "frames_per_s_sequential": round(1000 / sum(per_frame_ms.values()), 2)}


def end_to_end(video: Path, model_file: Path, out: Path, precision: str) -> dict:
    import subprocess

    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "pipeline.analyze", "--input", str(video),
                          "--model", str(model_file), "--output_dir", str(out),
                          "--precision", precision, "--runner=DirectRunner"],
                         capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    wall = time.perf_counter() - start
    if run.returncode:
        raise SystemExit(f"pipeline.analyze failed:\n{run.stderr[-3000:]}")
    summary = json.loads((out / "analyze_summary.json").read_text())[0]
    return {"command_wall_s": round(wall, 1), "summary_line": run.stdout.strip(),
            "frames_per_s_including_start": round(summary["frames"] / wall, 2)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="30 frames, tiny network")
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--precision", choices=PRECISIONS, default="auto")
    args = parser.parse_args(argv)
    frames = args.frames or (30 if args.quick else 150)

    import jaa_keras
    from benchmarks.bench_network import machine

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        video, model_file = folder / "face 640x480.avi", folder / "model.keras"
        write_video(video, frames)
        overrides = dict(width_unit=1, hidden_units=32) if args.quick else {}
        jaa_keras.build_jaanet("bp4d", **overrides).save(model_file)
        result = {"machine": machine(), "load_average": os.getloadavg(),
                  "precision": model_precision(args.precision),
                  "model": "tiny (--quick)" if args.quick else "BP4D paper preset",
                  "split": split(video, model_file, args.batch_size, args.precision),
                  "end_to_end": end_to_end(video, model_file, folder / "out", args.precision)}
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
