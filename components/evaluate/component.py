"""The Evaluate stage's contract: what it reads, writes and takes (the work is in executor.py).

Inputs:
  examples      the preprocessed dataset (examples/<dataset>/: the part{1,2,3}/ files its
                manifest.json lists, stats.json)
  model_fold1..model_fold3 (each optional, at least one): models/<dataset>/fold{k}/ holding
                model.keras; fold k's model is tested on part k (it was trained on the other two)
Output:
  evaluation    eval/<dataset>/: metrics.json, report.md, attention_fold{k}.png,
                predictions_fold{k}.csv (optional), _COMPLETE.json
"""
from __future__ import annotations

import logging
from typing import Callable, Mapping

from components import artifact_kinds as kinds
from components.base import InputSpec, Parameter, StageResult, StageSpec, UserError, run_stage
from schemas.face import DATASETS, PARTS

_LOG = logging.getLogger(__name__)

FOLDS = PARTS  # fold k tests on part k

EVALUATE = StageSpec(
    name="evaluate",
    description="per-AU F1 / accuracy and landmark error per fold and over the folds; report and figures",
    inputs=(InputSpec("examples", help="preprocessed dataset: the part files manifest.json lists + stats.json",
                      produced_by=kinds.EXAMPLES, same=("dataset",)),)
    + tuple(InputSpec(f"model_fold{k}", optional=True, produced_by=kinds.MODEL,
                      help=f"trained model folder (model.keras) tested on part {k}") for k in FOLDS),
    outputs=("evaluation",),
    parameters=(
        Parameter("dataset", str, choices=DATASETS, identity=True,
                  help="the dataset evaluated: names the outputs"),
        Parameter("threshold", float, 0.5, help="an AU is present when P >= threshold"),
        Parameter("failure_threshold", float, 0.1,
                  help="a face's landmarks fail when the normalised mean error is above this"),
        Parameter("figure_samples", int, 2, help="sample faces per fold in the attention figure (0: none)"),
        Parameter("predictions_csv", bool, True,
                  help="write predictions_fold{k}.csv: AU01.. (0/1), AU01_probability.., x_0.., y_0.."),
        Parameter("batch_size", int, 32, help="inference batch size", cache=False),
    ),
    executor="components.evaluate.executor:run_executor",
)


def run_evaluate(*, examples, models: Mapping[int, object], output, dataset: str,
                 force: bool = False, log: Callable[[str], None] | None = _LOG.info,
                 **parameters) -> StageResult:
    """Run (or skip) the stage: `models` maps fold numbers to model folders, e.g. {1: "models/bp4d/fold1"}."""
    unknown = sorted(set(models) - set(FOLDS))
    if unknown:
        raise UserError(f"evaluate: folds must be among {list(FOLDS)}, got {unknown}")
    if not models:
        raise UserError("evaluate: no model to evaluate (train at least one fold first)")
    inputs = {"examples": examples, **{f"model_fold{k}": path for k, path in models.items()}}
    return run_stage(EVALUATE, inputs=inputs, outputs={"evaluation": output},
                     parameters={"dataset": dataset, **parameters}, force=force, log=log)
