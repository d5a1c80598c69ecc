"""Does --mixed_precision cost F1? The default run's training in float32 and mixed, seed by seed.

    python -m benchmarks.bench_mixed_precision [--seeds 0,1,2] [--nudge_ulps 1,16384]
                                               [--no-one_thread]
                                               [--output_dir artifacts/bench_mixed_precision]

The default synthetic set is preprocessed once. For every seed, the synthetic preset's network is
trained on fold 1 (parts 2 and 3) through the train stage, and each model is scored on the
held-out part 1 in the precision it was trained in, as the evaluate stage scores it:
  float32   the default run;
  nudged<u> for each u of --nudge_ulps: the same float32 run, restarted after its first epoch with
            every weight moved by u units in the last place, up or down at random (1 ulp: 6e-8
            to 1.2e-7 of the weight; 16384 = 2^14: 1e-3 to 2e-3, a typical bfloat16 rounding
            error, as bfloat16's ulp is 2^16 float32 ulps): how far a perturbation of that size
            alone carries the result. The train stage resumes it as it resumes a killed run, so
            --nudge_ulps 0 gives exactly the float32 run's scores;
  one_thread the same float32 run with TensorFlow's intra-op pool at one thread (in a child
            process, as the pool is fixed when TensorFlow starts): the convolutions and matrix
            products split their sums differently, so every step rounds differently in the last
            bit, as float32 does on a machine with another number of cores (a rerun on the same
            machine repeats the float32 run bit for bit);
  mixed     `mixed_precision` (float16 on a GPU, bfloat16 on a CPU).
The seed fixes the initial weights and the batches, so each run differs from its float32 twin only
in its arithmetic; float32 alone spreads over a few hundredths between seeds, which is why the
comparison is paired. Writes mixed_precision.json (every run) and mixed_precision.md (the
differences from float32, their mean and standard error and their typical size; the table for
BENCHMARKS.md) into --output_dir. The stages are cached: a killed benchmark started again redoes
only the runs that did not finish, and a new --nudge_ulps value trains only its own runs.
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_learning import preprocess
from benchmarks.common import (
    cpu_summary, held_out_scores, number_list, output_folder, record_runs, write_table)
from pipeline.synthetic import SyntheticSpec

NUDGED_AFTER = 1   # the float32 run's epoch whose checkpoint a nudged run starts from
ONE_THREAD = {"TF_NUM_INTRAOP_THREADS": "1"}   # read by TensorFlow when it starts


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--output_dir", default="artifacts/bench_mixed_precision")
    p.add_argument("--seeds", type=number_list(int), default=[0, 1, 2])
    p.add_argument("--nudge_ulps", type=number_list(int), default=[1, 16384],
                   help="units in the last place each weight of a nudged run moves, one nudged "
                        "run per value (0: none)")
    p.add_argument("--one_thread", action=argparse.BooleanOptionalAction, default=True,
                   help="also train each seed's float32 run on one intra-op thread")
    p.add_argument("--subjects", type=int, default=SyntheticSpec.subjects)
    p.add_argument("--tasks", type=int, default=SyntheticSpec.tasks)
    p.add_argument("--frames", type=int, default=SyntheticSpec.frames)
    return p.parse_args(argv)


def run_names(args) -> list[str]:
    """Seed by seed in this order: float32 first, as the nudged runs start from its checkpoint."""
    return ["float32", *(f"nudged{ulps}" for ulps in args.nudge_ulps),
            *(["one_thread"] if args.one_thread else []), "mixed"]


def nudge_of(run: str) -> int | None:
    return int(run.removeprefix("nudged")) if run.startswith("nudged") else None


def train(examples: str, folder: str, run: str, seed: int) -> str:
    """The train stage's run `run` of `seed` into `folder`; its status ("ran" or "skipped")."""
    from components.base import run_stage
    from components.train.component import TRAIN
    return run_stage(TRAIN, inputs={"examples": Path(examples)}, outputs={"model": Path(folder)},
                     parameters={"dataset": "synthetic", "fold": 1, "seed": seed, "verbose": 0,
                                 "mixed_precision": run == "mixed",
                                 # the float32 run keeps the checkpoint nudged runs start from
                                 "keep_checkpoints": 100}).status


def train_and_score(examples: Path, root: Path, run: str, seed: int) -> dict:
    from components.base import read_json
    from components.evaluate.model_io import load_model
    folder = root / "models" / f"{run}-seed{seed}"
    if nudge_of(run) is not None and not folder.exists():
        nudged_restart(root / "models" / f"float32-seed{seed}", folder, nudge_of(run), seed)
    started = time.perf_counter()
    if run == "one_thread":
        call = f"from {__spec__.name} import train; print(train({str(examples)!r}, " \
               f"{str(folder)!r}, {run!r}, {seed}))"
        status = subprocess.run([sys.executable, "-c", call], env=os.environ | ONE_THREAD,
                                check=True, stdout=subprocess.PIPE, text=True).stdout.split()[-1]
    else:
        status = train(str(examples), str(folder), run, seed)
    scores = held_out_scores(load_model(folder), examples)
    summary = read_json(folder / "_COMPLETE.json", "train record")["summary"]
    return {"run": run, "seed": seed, "mean_f1": scores["mean_f1"],
            "landmark_mean_error": scores["landmark_mean_error"],
            "train_seconds": summary["seconds"], "epochs_trained": summary["epochs_run_now"],
            "status": status, "wall_seconds": round(time.perf_counter() - started, 1)}


def nudged_restart(float32_run: Path, folder: Path, ulps: int, seed: int):
    """`folder` as the train stage leaves a run killed after epoch NUDGED_AFTER: the float32 run's
    checkpoint of that epoch, every weight moved by `ulps` units in the last place in a random
    direction, and a started record with the float32 run's cache key (so the stage resumes it)."""
    from components.base import read_json, write_json_atomic
    from components.base.artifact import COMPLETION_FILE, STARTED_FILE
    from components.train.trainer import CHECKPOINT_WEIGHTS
    record = read_json(float32_run / COMPLETION_FILE, "train record")
    checkpoint = Path("checkpoints") / f"epoch-{NUDGED_AFTER:03d}"
    if not (float32_run / checkpoint).is_dir():
        raise SystemExit(f"{float32_run / checkpoint} is missing (a float32 run made before the "
                         f"nudged runs existed); delete {float32_run} to train it again")
    building = folder.with_name(f".{folder.name}")
    shutil.rmtree(building, ignore_errors=True)
    shutil.copytree(float32_run / checkpoint, building / checkpoint)
    directions = np.random.default_rng(seed)
    with np.load(building / checkpoint / CHECKPOINT_WEIGHTS) as saved:
        weights = {name: saved[name] for name in saved.files}
    for name, value in weights.items():
        if value.dtype.kind == "f":
            step = ulps * np.spacing(np.abs(value)) * directions.choice([-1, 1], value.shape)
            weights[name] = (value + step.astype(value.dtype)).astype(value.dtype)
    np.savez(building / checkpoint / CHECKPOINT_WEIGHTS, **weights)
    write_json_atomic(building / STARTED_FILE, {
        key: record[key] for key in ("stage", "cache_key", "parameters", "identity", "inputs")}
        | {"started_at": record["timings"]["started_at"]})
    building.rename(folder)


def markdown(runs: list[dict], args) -> str:
    by_key = {(r["run"], r["seed"]): r for r in runs}
    names = run_names(args)
    seeds = [s for s in args.seeds if all((run, s) in by_key for run in names)]
    label = {run: run if nudge_of(run) is None else f"float32 nudged {nudge_of(run)} ulp"
             for run in names} | {"one_thread": "float32 on 1 thread", "mixed": "mixed precision"}
    others = names[1:]
    lines = [f"Held-out average F1 / landmark mean error (fold 1, part 1), the default run's "
             f"training (synthetic preset; synthetic BP4D {args.subjects} subjects x {args.tasks} "
             f"tasks x {args.frames} frames); {cpu_summary()}. A nudged run is the float32 run "
             f"restarted after epoch {NUDGED_AFTER} with every weight moved by that many units in "
             f"the last place.", "",
             "| seed | " + " | ".join(label[run] for run in names) + " | "
             + " | ".join(f"{label[run]} - float32" for run in others)
             + " | train s float32 / mixed |",
             "|---|" + "---|" * (len(names) + len(others) + 1)]
    differences = {run: [] for run in others}
    for seed in seeds:
        single = by_key["float32", seed]
        for run in others:
            differences[run].append(by_key[run, seed]["mean_f1"] - single["mean_f1"])
        lines.append(f"| {seed} | " + " | ".join(
            f"{by_key[run, seed]['mean_f1']:.3f} / {by_key[run, seed]['landmark_mean_error']:.3f}"
            for run in names) + " | " + " | ".join(f"{differences[run][-1]:+.3f}" for run in others)
            + f" | {single['train_seconds']:.0f} / {by_key['mixed', seed]['train_seconds']:.0f} |")
    if len(seeds) > 1:
        lines.append("")
        for run, d in differences.items():
            lines.append(f"{label[run]} - float32 over {len(d)} seeds: mean "
                         f"{statistics.mean(d):+.3f}, standard error "
                         f"{statistics.stdev(d) / math.sqrt(len(d)):.3f}, root mean square "
                         f"{math.sqrt(statistics.mean(x * x for x in d)):.3f}, within 0.02 in "
                         f"{sum(abs(x) <= 0.02 for x in d)} of {len(d)}.")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    root = output_folder(args.output_dir)
    examples = preprocess(args, root)
    runs = record_runs((train_and_score(examples, root, run, seed)
                        # seed by seed: a benchmark cut short still compares like with like
                        for seed in args.seeds for run in run_names(args)),
                       root / "mixed_precision.json")
    write_table(markdown(runs, args), root / "mixed_precision.md", root / "mixed_precision.json")
    return runs


if __name__ == "__main__":
    main()
