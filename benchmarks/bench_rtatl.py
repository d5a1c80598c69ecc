"""Do RTATL's auxiliary tasks help? Held-out F1 with and without each, at scarce and full labels.

    python -m benchmarks.bench_rtatl [--fractions 0.1,1] [--seeds 0,1,2] [--epochs 16,1,3]
                                     [--output_dir artifacts/bench_rtatl]

The synthetic BP4D set with smooth sequences, uncoded frames after each sequence's coded ones and
unlabelled sequences (docs/auxiliary-tasks.md) is preprocessed once. Then, for every label
fraction, every seed and each of: no auxiliary task, RoI inpainting, optical flow, both, the
synthetic preset's network is trained on fold 1 (parts 2 and 3) through the train stage and
scored on the held-out part 1 (average F1 over the AUs, landmark mean error). An epoch covers
the frames that keep their codes, so at 10 % of the codes the first phase (the one that trains
the auxiliary tasks) has 10 times the epochs: every run takes about as many steps. Writes
rtatl.json (every run) and rtatl.md (mean +- standard deviation over the seeds, the table for
BENCHMARKS.md) into --output_dir. The stages are cached: a killed benchmark started again
redoes only the runs that did not finish.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from benchmarks.common import (
    cpu_summary, held_out_scores, number_list, output_folder, record_runs, write_table)

CONDITIONS = {"none": [], "inpainting": ["inpainting"], "flow": ["flow"],
              "both": ["inpainting", "flow"]}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--output_dir", default="artifacts/bench_rtatl")
    p.add_argument("--fractions", type=number_list(float), default=[0.1, 1.0],
                   help="label fractions (the share of coded training frames keeping codes)")
    p.add_argument("--seeds", type=number_list(int), default=[0, 1, 2])
    p.add_argument("--conditions", type=number_list(str), default=list(CONDITIONS),
                   help=f"which of {', '.join(CONDITIONS)}")
    p.add_argument("--epochs", type=number_list(int), default=None,
                   help="epochs per phase at 100 %% of the codes (default: the synthetic "
                        "preset's); the first phase's grow as 1 / label fraction, so that every "
                        "run takes about as many steps with the auxiliary tasks")
    p.add_argument("--subjects", type=int, default=36)
    p.add_argument("--tasks", type=int, default=4)
    p.add_argument("--frames", type=int, default=13, help="coded frames per sequence")
    p.add_argument("--uncoded_frames", type=int, default=6,
                   help="frames after each sequence's coded ones, without codes")
    p.add_argument("--unlabelled_tasks", type=int, default=1,
                   help="sequences per subject without an AU code file")
    args = p.parse_args(argv)
    unknown = set(args.conditions) - set(CONDITIONS)
    if unknown:
        p.error(f"unknown condition(s) {sorted(unknown)}; choose from {list(CONDITIONS)}")
    return args


def preprocess(args, root: Path) -> Path:
    from components.base import run_stage
    from components.preprocess.component import PREPROCESS
    examples = root / "examples"
    run_stage(PREPROCESS, outputs={"examples": examples}, parameters={
        "dataset": "synthetic", "data_dir": str((root / "raw").resolve()),
        "beam_args": ["--runner=DirectRunner"],
        "synthetic": {"subjects": args.subjects, "tasks": args.tasks, "frames": args.frames,
                      "smooth": True, "uncoded_frames": args.uncoded_frames,
                      "unlabelled_tasks": args.unlabelled_tasks}})
    return examples


def train_and_score(args, examples: Path, root: Path, condition: str, fraction: float,
                    seed: int) -> dict:
    from components.base import read_json, run_stage
    from components.evaluate.model_io import load_model
    from components.train.component import TRAIN
    folder = root / "models" / f"{condition}-labels{fraction:g}-seed{seed}"
    parameters = {"dataset": "synthetic", "fold": 1, "seed": seed, "verbose": 0,
                  "auxiliary": CONDITIONS[condition], "label_fraction": fraction}
    if args.epochs:
        first, *rest = args.epochs
        parameters["epochs"] = [round(first / fraction), *rest]
    started = time.perf_counter()
    result = run_stage(TRAIN, inputs={"examples": examples}, outputs={"model": folder},
                       parameters=parameters)
    scores = held_out_scores(load_model(folder), examples)
    summary = read_json(folder / "_COMPLETE.json", "train record")["summary"]
    return {"condition": condition, "label_fraction": fraction, "seed": seed,
            "mean_f1": scores["mean_f1"], "landmark_mean_error": scores["landmark_mean_error"],
            "train_seconds": summary["seconds"], "status": result.status,
            "wall_seconds": round(time.perf_counter() - started, 1)}


def markdown(runs: list[dict], args) -> str:
    fractions = sorted({r["label_fraction"] for r in runs})
    lines = [f"Held-out average F1 (fold 1, part 1), mean +- sample std over seeds "
             f"{', '.join(map(str, args.seeds))}; synthetic BP4D ({args.subjects} subjects x "
             f"{args.tasks} tasks x {args.frames} coded + {args.uncoded_frames} uncoded frames, "
             f"{args.unlabelled_tasks} unlabelled sequence(s) per subject), synthetic preset"
             f"{', epochs ' + ','.join(map(str, args.epochs)) + ' at 100 %' if args.epochs else ''}"
             f"; {cpu_summary()}.",
             "", "| auxiliary tasks | " + " | ".join(f"{f:.0%} labels" for f in fractions)
             + " | train s (median) |", "|---|" + "---|" * (len(fractions) + 1)]
    for condition in CONDITIONS:
        mine = [r for r in runs if r["condition"] == condition]
        if not mine:
            continue
        cells = []
        for fraction in fractions:
            f1 = [r["mean_f1"] for r in mine if r["label_fraction"] == fraction]
            spread = statistics.stdev(f1) if len(f1) > 1 else 0.0   # sample standard deviation
            cells.append(f"{statistics.mean(f1):.3f} +- {spread:.3f} (n={len(f1)})" if f1 else "-")
        seconds = statistics.median(r["train_seconds"] for r in mine)
        lines.append(f"| {condition} | " + " | ".join(cells) + f" | {seconds:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    root = output_folder(args.output_dir)
    examples = preprocess(args, root)
    runs = record_runs((train_and_score(args, examples, root, condition, fraction, seed)
                        # seed by seed: a benchmark cut short still compares like with like
                        for seed in args.seeds for fraction in args.fractions
                        for condition in args.conditions), root / "rtatl.json")
    write_table(markdown(runs, args), root / "rtatl.md", root / "rtatl.json")
    return runs


if __name__ == "__main__":
    main()
