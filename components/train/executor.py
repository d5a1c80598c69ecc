"""The train stage's executor: resolves the model config and schedule, then trains one fold."""
from __future__ import annotations

import logging

from components.base import UserError
from components.train.presets import AUXILIARY_FIELDS, TRAINING_PRESETS
from components.train.schedule import build_schedule
from schemas.face import PARTS

_LOG = logging.getLogger(__name__)


def model_config_for(dataset: str, preset_name: str | None, overrides: dict, auxiliary=()):
    """The JaaNetConfig of a dataset under a training preset, with fields overridden and the
    heads of the `auxiliary` tasks (the train stage's parameter of that name)."""
    from jaa_keras import preset
    name = resolve_preset(dataset, preset_name)
    aus_preset = "disfa" if dataset == "disfa" else "bp4d"  # synthetic carries BP4D's AU set
    overrides = dict(overrides or {})
    if "auxiliary" in overrides:
        raise UserError("model settings: the auxiliary tasks are the train stage's parameter "
                        "auxiliary (--auxiliary), not a model override")
    for task, fields in AUXILIARY_FIELDS.items():
        unused = [field for field in fields if field in overrides and task not in auxiliary]
        if unused:
            raise UserError(f"model settings: {unused[0]} applies to the auxiliary task {task}, "
                            f"which this run does not train (add it: --auxiliary {task})")
    if auxiliary:
        overrides["auxiliary"] = tuple(auxiliary)
    try:
        return preset(aus_preset, **{**TRAINING_PRESETS[name]["model"], **overrides})
    except (TypeError, ValueError) as e:
        raise UserError(f"model settings {overrides}: {e}") from None


def resolve_preset(dataset: str, preset_name: str | None) -> str:
    name = preset_name or ("synthetic" if dataset == "synthetic" else "paper")
    if name not in TRAINING_PRESETS:
        raise UserError(f"unknown training preset {name!r}; choose one of {sorted(TRAINING_PRESETS)}")
    return name


def run_executor(inputs, outputs, params) -> dict:
    from components.train.trainer import au_weights_for_fold, train_fold

    dataset, fold = params["dataset"], params["fold"]
    if dataset == "disfa" and inputs.get("init_from") is None:
        _LOG.warning("[train] training DISFA from scratch. The paper always fine-tunes DISFA from "
                     "a trained BP4D model (region, alignment and global modules, and the "
                     "attention and local branches of shared AUs); without it expect lower F1. "
                     "Train BP4D first and pass --init_from artifacts/models/bp4d.")
    examples = inputs["examples"]
    train_parts = [p for p in PARTS if p != fold]
    preset_name = resolve_preset(dataset, params["preset"])
    preset = TRAINING_PRESETS[preset_name]
    config = model_config_for(dataset, preset_name, params["model_overrides"], params["auxiliary"])
    schedule = params["schedule"]
    phases = build_schedule(schedule, dataset,
                            epochs=params["epochs"] or preset["epochs"].get(schedule),
                            learning_rates=params["learning_rates"]
                            or preset["learning_rates"].get(schedule))
    batch_size = params["batch_size"] or preset["batch_size"]
    weights = au_weights_for_fold(examples.path, fold, config.aus)
    init = inputs.get("init_from")
    _LOG.info("[train] %s fold %d: parts %s, preset %s, schedule %s (%s), batch %d, crop %d, "
              "width unit %d", dataset, fold, train_parts, preset_name, schedule,
              ", ".join(f"{p.name} {p.epochs} ep @ {p.learning_rate:g}" for p in phases),
              batch_size, config.crop_size, config.width_unit)
    summary = train_fold(
        examples_dir=examples.path, output_dir=outputs["model"].path, model_config=config,
        phases=phases, au_weights=weights, train_parts=train_parts,
        batch_size=batch_size, momentum=params["momentum"], weight_decay=params["weight_decay"],
        lr_decay=params["lr_decay"], lr_decay_every=params["lr_decay_every"] or preset["lr_decay_every"],
        seed=params["seed"], shuffle_buffer=params["shuffle_buffer"],
        mixed_precision=params["mixed_precision"], keep_checkpoints=params["keep_checkpoints"],
        validation_buckets=params["validation_buckets"],
        auxiliary_ratio=params["auxiliary_ratio"], label_fraction=params["label_fraction"],
        init_model_path=None if init is None else init.path, verbose=params["verbose"])
    return {**summary, "dataset": dataset, "fold": fold, "preset": preset_name,
            "schedule": [p.__dict__ for p in phases], "batch_size": batch_size,
            "lr_decay_every": params["lr_decay_every"] or preset["lr_decay_every"],
            "au_weights": [round(float(w), 6) for w in weights]}
