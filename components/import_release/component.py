"""The import stage's contract: the authors' trained PyTorch model as our Train stage's artifact.

Input (not an artifact of this pipeline): a run folder of the authors' PyTorch-JAANet release
  (github.com/ZhiwenShao/PyTorch-JAANet, the ECCV "v1" model), holding per epoch N the six
  files its training scripts save: region_learning_N.pth, align_net_N.pth,
  local_attention_refine_N.pth, local_au_net_N.pth, global_au_feat_N.pth, au_net_N.pth.
Output: model   models/<dataset>/fold<k>/: model.keras, _COMPLETE.json -- what the Train stage
                writes, so Evaluate and Export read it unchanged. The release's run trained on
                two parts tests on the third: its `combine_1_2` run is our fold 3.
The files' sha256 sums are a parameter (filled in by `run_import`), so changed files re-import.
The executor is components/import_release/executor.py.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from components.base import Parameter, StageResult, StageSpec, run_stage
from components.base.files import sha256
from schemas.face import PARTS

_LOG = logging.getLogger(__name__)

SOURCE = "the authors' PyTorch-JAANet release (ECCV v1 model)"

IMPORT = StageSpec(
    name="import",
    description="turn a run folder of the authors' PyTorch release into a trained fold's model",
    inputs=(),
    outputs=("model",),
    parameters=(
        Parameter("dataset", str, choices=("bp4d", "disfa"), identity=True,
                  help="the dataset the run was trained on (sets the AU set)"),
        Parameter("fold", int, choices=PARTS, help="the part the run did not train on"),
        Parameter("release_dir", str, help="the release's run folder"),
        Parameter("epoch", int, help="which epoch's files to import"),
        Parameter("release_sha256", dict, help="file name -> sha256 of the six module files"),
    ),
    executor="components.import_release.executor:run_executor",
)


def run_import(*, release_dir, epoch: int, output, dataset: str, fold: int, force: bool = False,
               log: Callable[[str], None] | None = _LOG.info) -> StageResult:
    """Import epoch `epoch` of the run folder `release_dir` as fold `fold`'s model in `output`."""
    from components.import_release.mapping import module_files
    release_dir = Path(release_dir).resolve()
    release = module_files(release_dir, epoch)
    parameters = {"dataset": dataset, "fold": fold, "release_dir": str(release_dir),
                  "epoch": epoch, "release_sha256": {p.name: sha256(p) for p in release.values()}}
    return run_stage(IMPORT, outputs={"model": output}, parameters=parameters, force=force, log=log)


def release_provenance(parameters: dict) -> dict | None:
    """Where an imported model's weights came from, from its record's parameters (None for a
    model this pipeline trained)."""
    if "release_dir" not in parameters:
        return None
    return {"source": SOURCE, "release_dir": parameters["release_dir"],
            "epoch": parameters.get("epoch"), "files_sha256": parameters.get("release_sha256")}
