"""The import stage's work: read the six module files, build the network they describe, copy
every tensor into it (components/import_release/mapping.py), save model.keras."""
from __future__ import annotations

import logging

from components.import_release.component import SOURCE
from components.import_release.mapping import (assign_release_weights, module_files, read_release,
                                               release_config)
from components.evaluate.model_io import MODEL_FILE

_LOG = logging.getLogger(__name__)


def run_executor(inputs, outputs, params) -> dict:
    from jaa_keras import build_jaanet

    dataset, epoch = params["dataset"], params["epoch"]
    modules = read_release(module_files(params["release_dir"], epoch))
    config = release_config(modules, dataset)
    model = build_jaanet(config)
    written = assign_release_weights(model, modules)
    model.save(outputs["model"].path / MODEL_FILE)
    _LOG.info("[import] %s epoch %d: %d tensors (%d values) -> %s fold %d",
              params["release_dir"], epoch, written["tensors"], written["values"], dataset,
              params["fold"])
    return {"dataset": dataset, "fold": params["fold"], "source": SOURCE,
            "release_dir": params["release_dir"], "epoch": epoch, **written,
            "model_config": config.to_dict()}
