"""The Export stage's contract, and how its output becomes a TF Serving version folder.

Inputs:
  model        models/<dataset>/fold{k}/ (model.keras) — the model to serve
  evaluation   eval/<dataset>/ (optional): its metrics go into the model card
  examples     examples/<dataset>/ (optional): the data's AU set is checked against the model's
Output:
  saved_model  serving/<model_name>/<version>/: saved_model.pb, variables/, assets.extra/
               (tf_serving_warmup_requests, model_card.md, jaa_net.json), _COMPLETE.json

Versions. TF Serving watches serving/<model_name>/ and loads the highest numbered folder as soon
as it appears, so a version folder must never be seen half-written: the stage writes into
serving/<model_name>/.staging-<version> (a name TF Serving ignores) and renames it into place
when complete. Without --version the next free number is used, unless the newest version was
exported from the same inputs with the same parameters: then nothing runs (`force` makes a new
version). An explicit version that exists with other content is refused unless `force`.
Every version in the folder must come from the same dataset: TF Serving would otherwise switch
clients to another AU set without notice. One export at a time: the model folder is locked
(serving/<model_name>/_LOCK, a name TF Serving ignores); a second export is refused naming the
first one's process id, and staging folders left by killed exports are removed.
"""
from __future__ import annotations

import logging
from typing import Callable

from components import artifact_kinds as kinds
from components.base import (COMPLETION_FILE, Artifact, ArtifactMismatchError, InputSpec,
                             Parameter, StageResult, StageSpec, UserError, files, folder_lock,
                             planned_cache_key, read_json, require_literal_path, run_stage)

_LOG = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "jaa_net"
STAGING_PREFIX = ".staging-"

EXPORT = StageSpec(
    name="export",
    description="SavedModel in the TF Serving layout with in-graph preprocessing, warm-up requests, model card",
    inputs=(InputSpec("model", help="trained model folder holding model.keras",
                      produced_by=kinds.MODEL, same=("dataset",)),
            InputSpec("evaluation", optional=True, help="eval/<dataset>/ (metrics for the model card)",
                      produced_by=kinds.EVALUATION, same=("dataset",)),
            InputSpec("examples", optional=True, help="examples/<dataset>/ (AU set check, data description)",
                      produced_by=kinds.EXAMPLES, same=("dataset",))),
    outputs=("saved_model",),
    parameters=(
        Parameter("dataset", str, help="dataset the model was trained on", identity=True),
        Parameter("model_name", str, DEFAULT_MODEL_NAME,
                  help="TF Serving model name (the folder the versions live in)"),
        Parameter("threshold", float, 0.5, help="au_present = au_probability >= threshold"),
        Parameter("warmup_batch_sizes", list, [1], help="batch sizes of the warm-up requests"),
        Parameter("verify", bool, True, cache=False,
                  help="reload the SavedModel and compare it with the Keras model"),
        Parameter("version", int, None, cache=False,
                  help="version number (set by run_export: the folder name)"),
    ),
    executor="components.export.executor:run_executor",
)


def version_folders(base) -> dict[int, str]:
    """The numbered children of a TF Serving model folder (a local folder or a URL)."""
    return {int(name): files.join(base, name) for name in files.listdir(base)
            if name.isdigit() and files.isdir(files.join(base, name))}


def _check_versions(versions: dict[int, str], dataset: str) -> None:
    for number in sorted(versions):
        artifact = Artifact(versions[number])
        if not artifact.is_complete():
            raise ArtifactMismatchError(
                f"{artifact.uri} is not an export of this pipeline (no {COMPLETION_FILE}); "
                "TF Serving would serve it beside ours: move it away or export into another folder")
        previous = artifact.record().get("identity", {}).get("dataset")
        if previous is not None and previous != dataset:
            model_folder = versions[number].rsplit("/", 1)[0]
            raise ArtifactMismatchError(
                f"{artifact.uri} holds an export of dataset {previous!r} (per {artifact.record_path}), "
                f"not {dataset!r}; TF Serving serves the highest version of a model folder, so "
                f"clients would silently get another AU set: export into another folder (e.g. "
                f"{model_folder}_{dataset}) or remove the old versions")


def run_export(*, model, output, dataset: str, evaluation=None, examples=None,
               version: int | None = None, force: bool = False,
               log: Callable[[str], None] | None = _LOG.info, **parameters) -> StageResult:
    """Export `model` (a models/<dataset>/fold{k} folder) as a new version under `output`
    (serving/<model_name>); returns the stage result, its output the version folder.

    The model folder is locked for the whole export, so two exports cannot pick the same
    version number; a staging folder left by a killed export is removed first."""
    base = files.normalise(output)
    require_literal_path(base, "export: serving folder")
    parameters = {"dataset": dataset, "model_name": files.name_of(base) or DEFAULT_MODEL_NAME,
                  **parameters}
    inputs = {"model": model, "evaluation": evaluation, "examples": examples}
    inputs = {k: v for k, v in inputs.items() if v is not None}
    key = planned_cache_key(EXPORT, inputs=inputs, parameters=parameters)
    with folder_lock(base, log):
        _remove_abandoned_staging(base, log or (lambda _msg: None))
        return _export_locked(base, key, inputs, parameters, dataset, version, force, log)


def _export_locked(base, key, inputs, parameters, dataset, version, force, log) -> StageResult:
    versions = version_folders(base)
    _check_versions(versions, dataset)
    if version is None:
        if versions and not force:
            newest = max(versions)
            if Artifact(versions[newest]).record().get("cache_key") == key:
                return run_stage(EXPORT, inputs=inputs, outputs={"saved_model": versions[newest]},
                                 parameters={**parameters, "version": newest}, log=log)
        version = max(versions, default=0) + 1
    else:
        if version < 1:
            raise UserError(f"export: version must be a positive integer, got {version}")
        if version in versions and not force:
            if Artifact(versions[version]).record().get("cache_key") == key:
                return run_stage(EXPORT, inputs=inputs, outputs={"saved_model": versions[version]},
                                 parameters={**parameters, "version": version}, log=log)
            raise UserError(f"{versions[version]} already holds another export; pass --force to "
                            f"replace it, or omit the version to publish {max(versions) + 1}")

    staging = files.join(base, f"{STAGING_PREFIX}{version}")
    result = run_stage(EXPORT, inputs=inputs, outputs={"saved_model": staging},
                       parameters={**parameters, "version": version}, force=force, log=log)
    final = files.join(base, str(version))
    if files.exists(final):  # only with force: a complete export of this pipeline (checked above)
        # Renamed aside first, so the version is missing for two renames, not a whole delete.
        replaced = files.join(base, f"{STAGING_PREFIX}{version}-replaced")
        files.replace(final, replaced)
        files.replace(staging, final)
        files.remove(replaced)
    else:
        files.replace(staging, final)
    if log:
        log(f"[export] published {final}")
    result.outputs["saved_model"] = Artifact(final)
    return result


def _remove_abandoned_staging(base: str, log: Callable[[str], None]) -> None:
    """Remove the staging folders of exports that were killed (none runs: we hold the lock).
    Only folders this stage wrote go: its started record, or nothing at all, inside."""
    for name in files.listdir(base):
        if not name.startswith(STAGING_PREFIX):
            continue
        folder = files.join(base, name)
        artifact = Artifact(folder)
        if not files.isdir(folder) or not (artifact.is_managed() or not artifact.holds_work()):
            log(f"[export] leaving {folder} alone: not a staging folder of this stage")
            continue
        started = artifact.started_record() or {}
        log(f"[export] removing {folder}, left by an export that did not finish "
            f"(started {started.get('started_at', 'at an unknown time')}, process id "
            f"{started.get('pid', 'unknown')})")
        files.remove(folder)


def best_fold(evaluation, folds) -> int:
    """The fold to serve: the one with the highest average F1 in eval/<dataset>/metrics.json
    (ties: the lowest number); the lowest of `folds` when there is no evaluation."""
    folds = sorted(int(k) for k in folds)
    if not folds:
        raise UserError("export: no trained model to export (train at least one fold first)")
    if evaluation is not None and Artifact(evaluation).is_complete():
        scores = read_json(files.join(evaluation, "metrics.json"), "evaluation metrics").get(
            "folds", {})
        ranked = [(-(scores[str(k)].get("mean_f1") or 0.0), k) for k in folds if str(k) in scores]
        if ranked:
            return min(ranked)[1]
    return folds[0]


def latest_export(output) -> str | None:
    """The newest complete version folder under serving/<model_name>, or None."""
    complete = {n: p for n, p in version_folders(output).items() if Artifact(p).is_complete()}
    return complete[max(complete)] if complete else None


def read_card_metadata(version_dir) -> dict:
    return read_json(files.join(version_dir, "assets.extra", "jaa_net.json"), "export metadata")
