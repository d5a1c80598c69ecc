"""Does the paper's network learn? The paper configuration trained on the synthetic BP4D set.

    python -m benchmarks.bench_learning [--subjects 36] [--tasks 4] [--frames 13]
                                        [--epochs 8,2,2] [--learning_rates 0.01,0.001,0.001]
                                        [--lr_decay_every 2] [--local_merge sum|mean]
                                        [--feature_stack paper|caffe] [--feature_probe]
                                        [--output_dir artifacts/bench_learning]

The paper's network (c = 8, crop 176, d = 512, local branches summed, the authors' Caffe
initialisation) with the paper's schedule (three phases, Nesterov SGD, lr 0.01 x 0.3 every 2
epochs, batch 9) is trained on fold 1 of the synthetic BP4D set (parts 2 and 3) through the train
stage, keeping every epoch's checkpoint; each epoch is then scored on the held-out part 1
(centre crops): average F1, per-AU F1, landmark mean error, and the training images/s. Writes
into --output_dir: learning.json, learning.md (the table for BENCHMARKS.md) and
learning_curve.png. The stages are cached: running it again only redoes what changed.

--epochs / --learning_rates / --lr_decay_every change the schedule's lengths and rates (the table
says which were used): the paper's are set in epochs of BP4D's ~97 k training faces, about 10,800
steps of 9, where an epoch of the synthetic set is ~140 steps. At the paper's first rate, 0.01,
the summed AU head blows up within a few steps on this set (bench_first_steps) and, held there,
comes back only slowly (BENCHMARKS.md, "Holding the paper's first rate"); the run that
reaches the issue's targets (held-out F1 0.811, landmark error 0.044; BENCHMARKS.md) is
--epochs 8,1,4 --learning_rates 0.003,0.001,0.001 --lr_decay_every 4, about 1 h 50 min on 2 cores.

--feature_probe adds, per epoch, the held-out F1 of a linear probe of the features the AU head
reads (a ridge fit on every third training face): how much AU information the features hold,
whatever the head makes of it. It tells a head that has stopped answering from features that
have stopped learning.

--width_unit / --crop_size / --hidden_units shrink the network for a quick check of the script
itself; the figures of interest are at the paper's size (the default).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from benchmarks.common import (centre_crops, cpu_summary, held_out_scores, number_list,
                               output_folder, write_table)
from pipeline.synthetic import SyntheticSpec


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--output_dir", default="artifacts/bench_learning")
    # The default synthetic set: with fewer subjects the held-out people are too unlike the
    # training ones (docs/data.md, "The synthetic set").
    p.add_argument("--subjects", type=int, default=SyntheticSpec.subjects,
                   help="synthetic subjects (3 to 41)")
    p.add_argument("--tasks", type=int, default=SyntheticSpec.tasks,
                   help="synthetic tasks per subject (1 to 8)")
    p.add_argument("--frames", type=int, default=SyntheticSpec.frames,
                   help="frames per synthetic task")
    p.add_argument("--epochs", type=number_list(int), default=None,
                   help="epochs per phase of the paper schedule (default 8,2,2)")
    p.add_argument("--learning_rates", type=number_list(float), default=None,
                   help="first learning rate of each phase (default 0.01,0.001,0.001)")
    p.add_argument("--lr_decay_every", type=int, default=None,
                   help="epochs between the x 0.3 learning-rate steps (default 2)")
    p.add_argument("--batch_size", type=int, default=9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--feature_probe", action="store_true",
                   help="also score a linear probe of the AU head's inputs at every epoch")
    add_network_flags(p)
    return p.parse_args(argv)


def add_network_flags(p: argparse.ArgumentParser):
    """The flags model_overrides reads: the local branches' merge, the feature stacks' layout,
    and shrinking for checks."""
    from jaa_keras.config import FEATURE_STACKS, LOCAL_MERGES
    p.add_argument("--local_merge", choices=LOCAL_MERGES, default="sum",
                   help="how the local AU branches merge: the paper's sum (default) or the "
                        "PyTorch release's mean")
    p.add_argument("--feature_stack", choices=FEATURE_STACKS, default="paper",
                   help="the feature stacks' layout: the paper's text (default; 5x5 outputs) "
                        "or the Caffe release's (first convolution of stride 2; 3x3 outputs)")
    for name in ("width_unit", "crop_size", "hidden_units"):
        p.add_argument(f"--{name}", type=int, default=None, help="shrink the network (checks)")


def model_overrides(args) -> dict:
    """The paper configuration, plus the network flags given. Fields this code's JaaNetConfig
    lacks (an older checkout) are left out rather than refused."""
    from jaa_keras.config import JaaNetConfig
    fields = {f.name for f in dataclasses.fields(JaaNetConfig)}
    wanted = {"local_merge": args.local_merge, "feature_stack": args.feature_stack,
              "initialization": "caffe",
              **{k: getattr(args, k) for k in ("width_unit", "crop_size", "hidden_units")
                 if getattr(args, k) is not None}}
    return {k: v for k, v in wanted.items() if k in fields}


def preprocess(args, root: Path) -> Path:
    from components.base import run_stage
    from components.preprocess.component import PREPROCESS
    examples = root / "examples"
    run_stage(PREPROCESS, outputs={"examples": examples}, parameters={
        "dataset": "synthetic", "data_dir": str((root / "raw").resolve()),
        "beam_args": ["--runner=DirectRunner"],
        "synthetic": {"subjects": args.subjects, "tasks": args.tasks, "frames": args.frames}})
    return examples


def train(args, examples: Path, root: Path) -> Path:
    from components.base import run_stage
    from components.train.component import TRAIN
    from components.train.schedule import build_schedule
    epochs = args.epochs or [p.epochs for p in build_schedule("paper", "bp4d")]
    folder = root / "model"
    run_stage(TRAIN, inputs={"examples": examples}, outputs={"model": folder}, parameters={
        "dataset": "synthetic", "fold": 1, "preset": "paper", "schedule": "paper",
        "model_overrides": model_overrides(args), "epochs": epochs,
        "batch_size": args.batch_size, "seed": args.seed, "keep_checkpoints": sum(epochs),
        "verbose": 2,
        **{k: getattr(args, k) for k in ("learning_rates", "lr_decay_every")
           if getattr(args, k) is not None}})
    return folder


def score_epochs(examples: Path, folder: Path, probe: bool) -> tuple[list[dict], object]:
    """Every epoch's checkpoint scored on the held-out part 1, merged with its history entry
    (with `probe`, also feature_probe_f1's); and the trained network's JaaNetConfig."""
    from components.base import read_json
    from components.train.trainer import load_checkpoint_weights
    from jaa_keras import JaaNetConfig, build_jaanet
    summary = read_json(folder / "_COMPLETE.json", "train record")["summary"]
    config = JaaNetConfig.from_dict(summary["model_config"])
    model = build_jaanet(config)
    rows = []
    for entry in read_json(folder / "history.json", "training history"):
        load_checkpoint_weights(model, folder / "checkpoints" / f"epoch-{entry['epoch']:03d}")
        scores = held_out_scores(model, examples)
        rows.append({"epoch": entry["epoch"], "phase": entry["phase"],
                     "learning_rate": entry["learning_rate"],
                     "train_images_per_s": entry["images_per_s"], "mean_f1": scores["mean_f1"],
                     "f1": {f"AU{a:02d}": round(f, 4) for a, f in zip(config.aus, scores["au_f1"])},
                     "landmark_mean_error": scores["landmark_mean_error"]})
        if probe:
            rows[-1]["probe_f1"] = feature_probe_f1(model, examples)
    return rows, config


# On features standardised over the training faces. 10 and 1,000 ranked the checkpoints of two
# runs (first lr 0.01 and 0.003, epochs 1 and 4) in the same order.
PROBE_RIDGE = 100.0


def feature_probe_f1(model, examples: Path) -> float:
    """Held-out (part 1) average F1 of a ridge regression from the AU head's inputs to each AU's
    label (+1 present, -1 absent; present where the score is > 0), fitted on every third training
    face of fold 1 (parts 2 and 3, centre crops)."""
    import numpy as np
    from jaa_keras.metrics import au_detection_scores
    from schemas.example import UNKNOWN_LABEL
    train_x, train_y = _head_inputs(model, examples, [2, 3], every=3)
    test_x, test_y = _head_inputs(model, examples, [1])
    mean, spread = train_x.mean(axis=0), train_x.std(axis=0) + 1e-6
    train_x, test_x = (train_x - mean) / spread, (test_x - mean) / spread
    targets = np.where(train_y == 1, 1.0, -1.0) * (train_y != UNKNOWN_LABEL)
    offset = targets.mean(axis=0)
    # The dual form: a few hundred faces against thousands of features.
    dual = np.linalg.solve(train_x @ train_x.T + PROBE_RIDGE * np.eye(len(train_x)),
                           targets - offset)
    scores = test_x @ (train_x.T @ dual) + offset
    return float(au_detection_scores(test_y, (scores > 0).astype(np.float32))["mean_f1"])


def _head_inputs(model, examples: Path, parts, every: int = 1):
    """(the AU head's inputs flattened (N, features) float64, AU labels (N, n_au)) of `parts`."""
    import numpy as np
    faces = centre_crops(model, examples, parts)
    if every > 1:
        faces = faces.unbatch().shard(every, 0).batch(32)
    inputs, labels = [], []
    for images, y in faces:
        inputs.append(np.asarray(model.au_head_inputs(images), np.float64).reshape(len(images), -1))
        labels.append(np.asarray(y["au"]))
    return np.concatenate(inputs), np.concatenate(labels)


def markdown(rows, config, args) -> str:
    aus = list(rows[0]["f1"]) if rows else []
    probed = bool(rows) and "probe_f1" in rows[0]
    lines = [f"Paper configuration (c = {config.width_unit}, crop {config.crop_size}, "
             f"d = {config.hidden_units}, local {config.local_merge}, {config.feature_stack} "
             f"stacks, {config.initialization} init), paper schedule{_changes(args)}, "
             f"synthetic BP4D ({args.subjects} subjects x {args.tasks} tasks x {args.frames} "
             f"frames), fold 1 (test part 1); "
             f"{cpu_summary()}.", "",
             "| epoch | phase | lr | train img/s | avg F1 | "
             + ("feature probe F1 | " if probed else "") + "landmark error | "
             + " | ".join(aus) + " |",
             "|" + "---|" * (6 + probed + len(aus))]
    for r in rows:
        lines.append(f"| {r['epoch']} | {r['phase']} | {r['learning_rate']:.3g} | "
                     f"{r['train_images_per_s']:.2f} | {r['mean_f1']:.3f} | "
                     + (f"{r['probe_f1']:.3f} | " if probed else "")
                     + f"{r['landmark_mean_error']:.4f} | "
                     + " | ".join(f"{r['f1'][a]:.2f}" for a in aus) + " |")
    return "\n".join(lines) + "\n"


def _changes(args) -> str:
    """The schedule flags given, as the table's header names them."""
    given = [f"{name} {','.join(f'{v:g}' for v in value) if isinstance(value, list) else value}"
             for name in ("epochs", "learning_rates", "lr_decay_every")
             if (value := getattr(args, name)) is not None]
    return f" ({'; '.join(given)})" if given else ""


def plot(rows, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    epochs = [r["epoch"] for r in rows]
    fig, left = plt.subplots(figsize=(7, 4))
    left.plot(epochs, [r["mean_f1"] for r in rows], "o-", color="tab:blue", label="average F1")
    if rows and "probe_f1" in rows[0]:
        left.plot(epochs, [r["probe_f1"] for r in rows], "^:", color="tab:blue",
                  label="feature probe F1")
        left.legend(loc="center right")
    left.set_xlabel("epoch")
    left.set_ylabel("held-out average F1", color="tab:blue")
    left.set_ylim(0, 1)
    right = left.twinx()
    right.plot(epochs, [r["landmark_mean_error"] for r in rows], "s--", color="tab:red")
    right.set_ylabel("landmark mean error (inter-ocular)", color="tab:red")
    left.set_title("JAA-Net, paper configuration, synthetic BP4D fold 1")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    root = output_folder(args.output_dir)
    examples = preprocess(args, root)
    folder = train(args, examples, root)
    rows, config = score_epochs(examples, folder, args.feature_probe)
    (root / "learning.json").write_text(json.dumps(rows, indent=2))
    table = markdown(rows, config, args)
    plot(rows, root / "learning_curve.png")
    write_table(table, root / "learning.md", root / "learning.json", root / "learning_curve.png")
    return rows


if __name__ == "__main__":
    main()
