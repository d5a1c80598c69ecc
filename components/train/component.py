"""The train stage's contract: one model per fold (fold k tests on part k, trains on the others).

Inputs:  examples   the preprocess stage's folder (part{1,2,3}/, stats.json)
         init_from  optional: a trained model folder to seed from (DISFA from BP4D, docs/data.md)
Output:  model      models/<dataset>/fold<k>/: model.keras, checkpoints/, logs/, history.json
The executor is components/train/executor.py.
"""
from pathlib import Path

from components import artifact_kinds as kinds
from components.base import InputSpec, Parameter, StageSpec
from components.base.contract import (NON_NEGATIVE, NON_NEGATIVE_REAL, POSITIVE, POSITIVE_REAL,
                                      Rule)
from components.train.presets import SCHEDULES, TRAINING_PRESETS
from jaa_keras.config import AUXILIARY_TASKS
from schemas.face import DATASETS, PARTS

TRAIN = StageSpec(
    name="train",
    description="train one JAA-Net per fold with the paper's (or the released) schedule",
    inputs=(InputSpec("examples", help="preprocessed TFRecords + stats.json",
                      produced_by=kinds.EXAMPLES, same=("dataset",)),
            InputSpec("init_from", optional=True, help="trained model folder to seed from",
                      produced_by=kinds.MODEL)),
    outputs=("model",),
    parameters=(
        Parameter("dataset", str, choices=DATASETS, identity=True),
        Parameter("fold", int, 1, choices=PARTS, help="test part; trains on the other two"),
        Parameter("schedule", str, "paper", choices=SCHEDULES, flag=True,
                  help="paper: three phases with frozen modules; joint: the released schedule"),
        Parameter("preset", str, None, choices=tuple(TRAINING_PRESETS), flag=True,
                  help="training preset (network size, batch, epochs): paper (the full network) "
                       "or synthetic (a small one); default: synthetic for the synthetic "
                       "dataset, else paper"),
        Parameter("model_overrides", dict, {}, help="JaaNetConfig fields, e.g. width_unit"),
        Parameter("epochs", list, None, item=int, rule=NON_NEGATIVE, flag=True,
                  whole=Rule(lambda v: max(v) > 0, "trains no phase: give one a positive count"),
                  help="epochs per phase, e.g. 8,2,2 (one value: every phase; 0 skips a phase); "
                       "default: the preset's"),
        Parameter("learning_rates", list, None, item=float, rule=POSITIVE_REAL, flag=True,
                  help="initial learning rate per phase, e.g. 0.01,0.001,0.001 (one value: "
                       "every phase); default: the preset's"),
        Parameter("batch_size", int, None, rule=POSITIVE, flag=True,
                  help="default: the preset's (9, the paper's)"),
        Parameter("momentum", float, 0.9, flag=True,
                  rule=Rule(lambda v: 0 <= v < 1, "a number in [0, 1)")),
        Parameter("weight_decay", float, 5e-4, rule=NON_NEGATIVE_REAL, flag=True,
                  help="Caffe's coupled L2 decay (schedule.py)"),
        Parameter("lr_decay", float, 0.3, flag=True,
                  rule=Rule(lambda v: 0 < v <= 1, "a factor in (0, 1]"),
                  help="lr factor every lr_decay_every epochs"),
        Parameter("lr_decay_every", int, None, rule=POSITIVE, flag=True,
                  help="epochs between lr decays; default: the preset's (2, the paper's)"),
        Parameter("seed", int, 0, rule=NON_NEGATIVE, flag=True,
                  help="initial weights, data order and augmentation"),
        Parameter("shuffle_buffer", int, 4096, rule=POSITIVE),
        Parameter("validation_buckets", int, 10, rule=POSITIVE,
                  help="keep_best phases (joint): about 1 in N training subjects (at least 1) "
                       "held out to pick the best epoch"),
        Parameter("auxiliary", list, [], item=str, flag=True,
                  rule=Rule(lambda v: v in AUXILIARY_TASKS,
                            f"an auxiliary task ({', '.join(AUXILIARY_TASKS)})"),
                  whole=Rule(lambda v: len(set(v)) == len(v), "names a task twice"),
                  help="RTATL's self-supervised tasks, trained beside the AU loss on the training "
                       "parts' frames and their unlabelled ones, e.g. inpainting,flow; their "
                       "heads are not exported (default: none)"),
        Parameter("auxiliary_ratio", float, 1.0, rule=POSITIVE_REAL, flag=True,
                  help="with --auxiliary: auxiliary faces per labelled face in a training step "
                       "(rounded, at least one a step)"),
        Parameter("label_fraction", float, 1.0, flag=True,
                  rule=Rule(lambda v: 0 < v <= 1, "a fraction in (0, 1]"),
                  help="keep the AU codes of this fraction of the training parts' coded frames "
                       "(picked by a hash of seed, subject, task and frame); the others leave "
                       "the labelled stream (with --auxiliary they still serve its tasks)"),
        Parameter("mixed_precision", bool, False, flag=True,
                  help="float16 (GPU) / bfloat16 (CPU, where it is slower than float32) "
                       "compute, float32 heads"),
        Parameter("keep_checkpoints", int, 2, cache=False, rule=POSITIVE),
        Parameter("verbose", int, 2, cache=False, choices=(0, 1, 2), flag=True,
                  help="Keras progress: 0 none, 1 bar, 2 one line per epoch (a terminal: 1)"),
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
