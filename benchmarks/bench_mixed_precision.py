"""Does --mixed_precision cost F1? The default run's training in float32 and mixed, seed by seed.

    python -m benchmarks.bench_mixed_precision [--seeds 0,1,2]
                                               [--output_dir artifacts/bench_mixed_precision]

The default synthetic set is preprocessed once. For every seed, the synthetic preset's network is
trained on fold 1 (parts 2 and 3) through the train stage twice, in float32 and with
`mixed_precision` (float16 on a GPU, bfloat16 on a CPU), and each model is scored on the held-out
part 1 in the precision it was trained in, as the evaluate stage scores it. The seed fixes the
initial weights and the batches, so each pair differs only in precision; float32 alone spreads
over a few hundredths between seeds, which is why the comparison is paired. Writes
mixed_precision.json (every run) and mixed_precision.md (the pairs, the mean paired difference
and its standard error; the table for BENCHMARKS.md) into --output_dir. The stages are cached: a
killed benchmark started again redoes only the runs that did not finish.
"""
from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

from benchmarks.bench_learning import preprocess
from benchmarks.common import (
    cpu_summary, held_out_scores, number_list, output_folder, record_runs, write_table)
from pipeline.synthetic import SyntheticSpec

PRECISIONS = {"float32": False, "mixed": True}   # name -> the train stage's mixed_precision


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--output_dir", default="artifacts/bench_mixed_precision")
    p.add_argument("--seeds", type=number_list(int), default=[0, 1, 2])
    p.add_argument("--subjects", type=int, default=SyntheticSpec.subjects)
    p.add_argument("--tasks", type=int, default=SyntheticSpec.tasks)
    p.add_argument("--frames", type=int, default=SyntheticSpec.frames)
    return p.parse_args(argv)


def train_and_score(examples: Path, root: Path, precision: str, seed: int) -> dict:
    from components.base import read_json, run_stage
    from components.evaluate.model_io import load_model
    from components.train.component import TRAIN
    folder = root / "models" / f"{precision}-seed{seed}"
    started = time.perf_counter()
    result = run_stage(TRAIN, inputs={"examples": examples}, outputs={"model": folder},
                       parameters={"dataset": "synthetic", "fold": 1, "seed": seed, "verbose": 0,
                                   "mixed_precision": PRECISIONS[precision]})
    scores = held_out_scores(load_model(folder), examples)
    summary = read_json(folder / "_COMPLETE.json", "train record")["summary"]
    return {"precision": precision, "seed": seed, "mean_f1": scores["mean_f1"],
            "landmark_mean_error": scores["landmark_mean_error"],
            "train_seconds": summary["seconds"], "status": result.status,
            "wall_seconds": round(time.perf_counter() - started, 1)}


def markdown(runs: list[dict], args) -> str:
    by_key = {(r["precision"], r["seed"]): r for r in runs}
    seeds = [s for s in args.seeds if all((p, s) in by_key for p in PRECISIONS)]
    lines = [f"Held-out average F1 / landmark mean error (fold 1, part 1), the default run's "
             f"training (synthetic preset; synthetic BP4D {args.subjects} subjects x {args.tasks} "
             f"tasks x {args.frames} frames); {cpu_summary()}.", "",
             "| seed | float32 | mixed precision | difference | train s float32 / mixed |",
             "|---|---|---|---|---|"]
    differences = []
    for seed in seeds:
        single, mixed = by_key["float32", seed], by_key["mixed", seed]
        differences.append(mixed["mean_f1"] - single["mean_f1"])
        lines.append(f"| {seed} | {single['mean_f1']:.3f} / {single['landmark_mean_error']:.3f} "
                     f"| {mixed['mean_f1']:.3f} / {mixed['landmark_mean_error']:.3f} "
                     f"| {differences[-1]:+.3f} "
                     f"| {single['train_seconds']:.0f} / {mixed['train_seconds']:.0f} |")
    if len(differences) > 1:
        error = statistics.stdev(differences) / math.sqrt(len(differences))
        lines += ["", f"Mean paired difference (mixed - float32) over {len(differences)} seeds: "
                      f"{statistics.mean(differences):+.3f}, standard error {error:.3f}."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    root = output_folder(args.output_dir)
    examples = preprocess(args, root)
    runs = record_runs((train_and_score(examples, root, precision, seed)
                        # pair by pair: a benchmark cut short still compares like with like
                        for seed in args.seeds for precision in PRECISIONS),
                       root / "mixed_precision.json")
    write_table(markdown(runs, args), root / "mixed_precision.md", root / "mixed_precision.json")
    return runs


if __name__ == "__main__":
    main()
