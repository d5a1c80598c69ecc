"""Which first learning rate can the paper's network start at? Its losses over the first steps.

    python -m benchmarks.bench_first_steps [--learning_rates 0.01,0.003,0.001] [--steps 40]
                                           [--local_merge sum|mean]
                                           [--feature_stack paper|caffe]
                                           [--output_dir artifacts/bench_first_steps]

For each learning rate, the paper configuration (c = 8, crop 176, d = 512, local branches summed
unless --local_merge mean, the paper's feature stacks unless --feature_stack caffe, Caffe
initialisation, the same initial weights for every rate) takes --steps steps of the paper
schedule's first phase (Nesterov, Caffe's bias multipliers, batch 9, lambda_align 0.5) on fold 1
of the default synthetic BP4D set, the same batches in the same order; every step's own losses
(not running means) are recorded. Writes first_steps.json (every step) and first_steps.md (the
largest AU softmax loss and the landmark error at the end, per rate) into --output_dir.

A first learning rate that is too large shows in the first few steps: the AU softmax loss, about
0.7-1.3 at initialisation, jumps by orders of magnitude, and the shared layers then lose what
the landmarks had learnt. That is cheap to see here and costs an epoch or a run to see in
bench_learning.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from benchmarks.bench_learning import add_network_flags, model_overrides, preprocess
from benchmarks.common import cpu_summary, number_list, output_folder, record_runs, write_table
from pipeline.synthetic import SyntheticSpec


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--output_dir", default="artifacts/bench_first_steps")
    p.add_argument("--learning_rates", type=number_list(float), default=[0.01, 0.003, 0.001])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--subjects", type=int, default=SyntheticSpec.subjects)
    p.add_argument("--tasks", type=int, default=SyntheticSpec.tasks)
    p.add_argument("--frames", type=int, default=SyntheticSpec.frames)
    add_network_flags(p)
    return p.parse_args(argv)


def first_steps(args, examples: Path, learning_rate: float):
    """The losses of each of the first --steps steps at `learning_rate` (one dict per step)."""
    import keras
    from components.train import input_pipeline as ip
    from components.train.schedule import build_schedule, optimizer_for
    from components.train.trainer import TrainingData, au_weights_for_fold
    from jaa_keras import build_jaanet
    from jaa_keras.config import preset
    from jaa_keras.losses import JaaNetLoss

    config = preset("bp4d", **model_overrides(args))
    keras.utils.set_random_seed(args.seed)
    model = build_jaanet(config)
    phase = build_schedule("paper", "bp4d", learning_rates=[learning_rate, 0.001, 0.001])[0]
    model.compile(optimizer=optimizer_for(phase),
                  objective=JaaNetLoss(config, au_weights_for_fold(examples, 1, config.aus),
                                       lambda_align=phase.lambda_align))
    data = TrainingData(examples, [2, 3], config, files=ip.part_files(examples, [2, 3]), pool=[],
                        batch_size=9, seed=args.seed, shuffle_buffer=4096, keep_best=False,
                        validation_buckets=10)
    steps = []

    class OneStep(keras.callbacks.Callback):   # fit's "epochs" are single steps: unaveraged logs
        def on_epoch_end(self, epoch, logs=None):
            steps.append({"learning_rate": learning_rate, "step": epoch + 1,
                          **{k: round(float(v), 4) for k, v in logs.items()
                             if k in ("loss", "au_softmax", "au_dice", "align", "f1",
                                      "landmark_error")}})
    batches = data.epochs(0, math.ceil(args.steps / data.steps_per_epoch))
    model.fit(batches, epochs=args.steps, steps_per_epoch=1, verbose=0, shuffle=False,
              callbacks=[OneStep()])
    return steps


def markdown(steps: list[dict], args) -> str:
    lines = [f"The paper configuration's first {args.steps} steps (local branches "
             f"{args.local_merge}, {args.feature_stack} feature stacks, the paper schedule's "
             f"first phase, batch 9, seed {args.seed}) "
             f"on fold 1 of the synthetic BP4D set ({args.subjects} x {args.tasks} x "
             f"{args.frames}); {cpu_summary()}.", "",
             "| first lr | AU softmax loss: step 1, largest (at step) | landmark error: step 1, "
             "last | first step with landmark error below 0.3 |", "|---|---|---|---|"]
    for rate in args.learning_rates:
        mine = [s for s in steps if s["learning_rate"] == rate]
        worst = max(mine, key=lambda s: s["au_softmax"])
        settled = next((s["step"] for s in mine if s["landmark_error"] < 0.3), None)
        lines.append(f"| {rate:g} | {mine[0]['au_softmax']:.2f}, {worst['au_softmax']:.1f} "
                     f"({worst['step']}) | {mine[0]['landmark_error']:.2f}, "
                     f"{mine[-1]['landmark_error']:.2f} | {settled or 'never'} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    root = output_folder(args.output_dir)
    examples = preprocess(args, root)
    steps = record_runs((step for rate in args.learning_rates
                         for step in first_steps(args, examples, rate)),
                        root / "first_steps.json")
    write_table(markdown(steps, args), root / "first_steps.md", root / "first_steps.json")
    return steps


if __name__ == "__main__":
    main()
