"""The train stage's contract: one model per fold (fold k tests on part k, trains on the others).

Inputs:  examples   the preprocess stage's folder (part{1,2,3}/, stats.json)
         init_from  optional: a trained model folder to seed from (DISFA from BP4D, docs/data.md)
Output:  model      models/<dataset>/fold<k>/: model.keras, checkpoints/, logs/, history.json
The executor is components/train/executor.py.
"""
from pathlib import Path

from components.base import InputSpec, Parameter, StageSpec
from components.train.schedule import SCHEDULES

TRAIN = StageSpec(
    name="train",
    description="train one JAA-Net per fold with the paper's (or the released) schedule",
    inputs=(InputSpec("examples", help="preprocessed TFRecords + stats.json"),
            InputSpec("init_from", optional=True, help="trained model folder to seed from")),
    outputs=("model",),
    parameters=(
        Parameter("dataset", str, help="synthetic, bp4d or disfa", identity=True),
        Parameter("fold", int, 1, choices=(1, 2, 3), help="test part; trains on the other two"),
        Parameter("schedule", str, "paper", choices=SCHEDULES,
                  help="paper: three phases with frozen modules; joint: the released schedule"),
        Parameter("preset", str, None, help="training preset: 'paper' (full network) or "
                  "'synthetic' (small network); default: 'synthetic' for the synthetic dataset"),
        Parameter("model_overrides", dict, {}, help="JaaNetConfig fields, e.g. width_unit"),
        Parameter("epochs", list, None, help="epochs per phase (one value: every phase)"),
        Parameter("learning_rates", list, None, help="initial lr per phase (one value: every)"),
        Parameter("batch_size", int, None, help="default: the preset's (9, the paper's)"),
        Parameter("momentum", float, 0.9),
        Parameter("weight_decay", float, 5e-4, help="Caffe's coupled L2 decay (schedule.py)"),
        Parameter("lr_decay", float, 0.3, help="lr factor every lr_decay_every epochs"),
        Parameter("lr_decay_every", int, None, help="default: the preset's (2, the paper's)"),
        Parameter("seed", int, 0, help="initial weights, data order and augmentation"),
        Parameter("shuffle_buffer", int, 4096),
        Parameter("validation_buckets", int, 10,
                  help="keep_best phases (joint): about 1 in N training subjects (at least 1) "
                       "held out to pick the best epoch"),
        Parameter("mixed_precision", bool, False, help="float16 (GPU) / bfloat16 (CPU) compute"),
        Parameter("keep_checkpoints", int, 2, cache=False),
        Parameter("verbose", int, 2, cache=False, help="Keras progress: 0 none, 1 bar, 2 line"),
    ),
    executor="components.train.executor:run_executor",
    resumable=True,
    describe_work="components.train.component:describe_work",
)


def describe_work(folder) -> str | None:
    """What a fold folder holds, said before it is discarded: the model, the epochs trained."""
    from components.train.trainer import latest_checkpoint

    parts = ["model.keras"] if (Path(folder) / "model.keras").is_file() else []
    last = latest_checkpoint(Path(folder) / "checkpoints")
    if last is not None:
        parts.append(f"checkpoints up to epoch {last[1]['global_epoch']}")
    return ", ".join(parts) or None
