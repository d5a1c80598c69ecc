"""Preprocessing speed: frames/s per core for align + encode alone, and for the whole Beam job.

    python -m benchmarks.bench_preprocess [--quick] [--subjects 9] [--tasks 4] [--frames 50]

1. align + encode alone, one thread (OpenCV limited to one thread): the docs/data.md warp,
   the JPEG encode and the tf.Example serialization of frames already in memory, on the synthetic
   frames (288 x 288) and on the same frames scaled to BP4D's 1040 x 1392 (the warp reads more
   memory there). Target: >= 150 frames/s per core.
2. the flow step alone, one thread: for a pair of aligned faces stored as JPEG (t and t + k),
   both decoded to grey, t + k registered onto t by the stable points, OpenCV's DIS flow (MEDIUM)
   between them and the area-average to 50 x 50
   (pipeline/flow.py): flow targets per second, i.e. frames/s of the step.
3. the whole job (read + decode + align + encode + flow + write + tally) on the in-process runner
   with one worker, from synthetic raw folders in BP4D's layout: the rate, and from two sizes the
   steady per-frame rate and the fixed overhead (pipeline construction, runner start, write
   finalisation); a profile names what dominates.
Medians over --repeats runs. Run it on an otherwise idle machine.
"""
import argparse
import cProfile
import json
import os
import pstats
import shutil
import statistics
import tempfile
import time

import cv2
import numpy as np

from pipeline import job
from pipeline.align import AlignmentError, align_face
from pipeline.flow import DIS_PRESET, flow_target, grey_face, registered
from pipeline.sources import bp4d
from pipeline.synthetic import SyntheticSpec, ensure
from schemas.example import encode_example

BP4D_SIZE = (1040, 1392)   # width, height of a BP4D frame


def _frames(raw, limit):
    """Usable frames (the planted bad ones left out), decoded, in memory."""
    frames = []
    for unit in bp4d.list_units(raw):
        for frame in bp4d.read_unit(unit):
            try:
                if frame.problem is None and align_face(frame.image, frame.landmarks):
                    frames.append(frame)
            except AlignmentError:
                pass
    return frames[:limit]


def _align_encode(frame, image, landmarks, timings):
    t0 = time.perf_counter()
    face = align_face(image, landmarks)
    t1 = time.perf_counter()
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(face.image, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, 95])
    t2 = time.perf_counter()
    encode_example(image_jpeg=jpeg.tobytes(), landmarks=face.landmarks, au=frame.au,
                   inter_ocular=face.inter_ocular, subject=frame.subject, task=frame.task,
                   frame=frame.frame)
    t3 = time.perf_counter()
    timings["align"] += t1 - t0
    timings["jpeg"] += t2 - t1
    timings["example"] += t3 - t2


def bench_align_encode(frames, scale_to=None, repeats=3):
    """(median frames/s, median seconds per frame of each step) on one thread."""
    inputs = []
    for f in frames:
        if scale_to is None:
            inputs.append((f, f.image, f.landmarks))
        else:
            sx, sy = scale_to[0] / f.image.shape[1], scale_to[1] / f.image.shape[0]
            inputs.append((f, cv2.resize(f.image, scale_to, interpolation=cv2.INTER_LINEAR),
                           f.landmarks * [sx, sy]))
    rates, steps = [], {"align": [], "jpeg": [], "example": []}
    for _ in range(repeats):
        timings = dict.fromkeys(steps, 0.0)
        t0 = time.perf_counter()
        for frame, image, landmarks in inputs:
            _align_encode(frame, image, landmarks, timings)
        rates.append(len(inputs) / (time.perf_counter() - t0))
        for step, seconds in timings.items():
            steps[step].append(seconds / len(inputs) * 1e3)
    return statistics.median(rates), {k: round(statistics.median(v), 3) for k, v in steps.items()}


def bench_decode(frames, scale_to=None, repeats=3):
    """Median ms to decode one raw JPEG (the reader's share of the job), optionally of the frame
    scaled to another size and re-encoded as the source would store it."""
    blobs = []
    for f in frames:
        image = f.image if scale_to is None else cv2.resize(f.image, scale_to)
        blobs.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for blob in blobs:
            cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
        times.append((time.perf_counter() - t0) / len(blobs) * 1e3)
    return round(statistics.median(times), 3)


def bench_flow(frames, offset=2, repeats=3):
    """Median flow targets per second on one thread: consecutive usable frames aligned and stored
    as JPEG (q95), paired t -> t + offset in their order."""
    faces = []
    for f in frames:
        face = align_face(f.image, f.landmarks)
        faces.append((cv2.imencode(".jpg", cv2.cvtColor(face.image, cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes(), face.landmarks))
    pairs = list(zip(faces, faces[offset:]))
    dis = cv2.DISOpticalFlow_create(DIS_PRESET)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for (jpeg_from, landmarks_from), (jpeg_to, landmarks_to) in pairs:
            later = registered(grey_face(jpeg_to), landmarks_to, landmarks_from)
            flow_target(grey_face(jpeg_from), later, dis)
        rates.append(len(pairs) / (time.perf_counter() - t0))
    return statistics.median(rates)


def bench_job(raw, spec, work, repeats):
    """(frames, median seconds of the Beam part) of the whole job, in process, one worker."""
    seconds = []
    for r in range(repeats):
        out = os.path.join(work, f"examples{r}")
        summary = job.run_preprocessing("synthetic", raw, out, ["--runner=DirectRunner"],
                                        synthetic=spec)
        seconds.append(summary["seconds"]["beam"])
        shutil.rmtree(out)
    return summary["frames_in"], statistics.median(seconds)


# What the job spends its time on: cumulative seconds of these functions (file, function name).
_PROFILE_PARTS = {
    "read: decode raw JPEG": ("imageio.py", "read_jpeg"),
    "read: landmarks and labels": ("matlab.py", "read_v73_struct_field"),
    "align (warp)": ("align.py", "align_face"),
    "flow: DIS + average": ("flow.py", "flow_target"),
    "encode: JPEG": ("~", "<imencode>"),
    "encode: tf.Example": ("example.py", "encode_example"),
    "write: GZIP TFRecords": ("tfrecordio.py", "write_record"),
}


def profile_job(raw, spec, work):
    """Shares of the in-process job's wall time, by part (cProfile, cumulative per function)."""
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    job.run_preprocessing("synthetic", raw, os.path.join(work, "profiled"),
                          ["--runner=DirectRunner"], synthetic=spec)
    profiler.disable()
    total = time.perf_counter() - t0
    stats = pstats.Stats(profiler).stats
    shares = {}
    for part, (file_name, function) in _PROFILE_PARTS.items():
        seconds = sum(v[3] for k, v in stats.items()
                      if os.path.basename(k[0]) == file_name and k[2] == function)
        shares[part] = round(seconds / total, 3)
    shares["everything else (Beam, pipeline construction, bookkeeping)"] = round(
        1 - sum(shares.values()), 3)
    return {"seconds": round(total, 2), "shares": shares}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    parser.add_argument("--subjects", type=int, default=9)
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work_dir", default=None, help="scratch folder (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.quick:
        args.subjects, args.tasks, args.frames, args.repeats = 3, 2, 30, 1
    cv2.setNumThreads(1)   # per core
    spec = SyntheticSpec(subjects=args.subjects, tasks=args.tasks, frames=args.frames)
    third = SyntheticSpec(subjects=args.subjects, tasks=args.tasks, frames=max(2, args.frames // 3))
    work = args.work_dir or tempfile.mkdtemp(prefix="bench_preprocess_")
    raw = os.path.join(work, "raw")
    wall, cpu = time.perf_counter(), time.process_time()
    ensure(raw, spec)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    frames = _frames(raw, 600)
    small, small_steps = bench_align_encode(frames, repeats=args.repeats)
    large, large_steps = bench_align_encode(frames[:200], BP4D_SIZE, repeats=args.repeats)
    # job time = fixed overhead + frames / steady rate; two sizes give both
    ensure(os.path.join(work, "raw_third"), third)
    n1, t1 = bench_job(os.path.join(work, "raw_third"), third, work, args.repeats)
    n2, t2 = bench_job(raw, spec, work, args.repeats)
    steady = (n2 - n1) / (t2 - t1)
    result = {
        "frames": n2,
        "synthetic_generation": {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                                 "cpu_ms_per_frame": round(cpu / n2 * 1e3, 2)},
        "align_encode_frames_per_s_per_core": {"288x288": round(small, 1),
                                               "1040x1392": round(large, 1)},
        "align_encode_ms_per_step": {"288x288": small_steps, "1040x1392": large_steps},
        "flow_targets_per_s_per_core": round(bench_flow(frames[:200], repeats=args.repeats), 1),
        "raw_jpeg_decode_ms": {"288x288": bench_decode(frames[:200], None, args.repeats),
                               "1040x1392": bench_decode(frames[:50], BP4D_SIZE, args.repeats)},
        "job_in_process_1_worker": {"frames_per_s": round(n2 / t2, 1),
                                    "steady_frames_per_s": round(steady, 1),
                                    "fixed_overhead_s": round(t1 - n1 / steady, 2)},
        "job_profile": profile_job(raw, spec, work),
        "cpu_count": os.cpu_count(), "load_average": [round(v, 2) for v in os.getloadavg()],
    }
    print(json.dumps(result, indent=2))
    if args.work_dir is None:
        shutil.rmtree(work)
    return result


if __name__ == "__main__":
    main()
