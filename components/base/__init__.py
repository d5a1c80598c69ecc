"""The stage framework: a contract per stage, artifact folders, completion records, caching.

Shaped like TFX's `component.py` + `executor.py` (without TFX): a `StageSpec` declares what a
stage reads, writes and takes as parameters; the executor that does the work is named apart from
it (a callable or a "module:function" string, so importing a contract never imports TensorFlow).

    TRAIN = StageSpec(
        name="train",
        inputs=(InputSpec("examples", produced_by=("preprocess",), same=("dataset",)),
                InputSpec("init_from", optional=True, produced_by=("train", "import"))),
        outputs=("model",),
        parameters=(Parameter("dataset", str, identity=True),
                    Parameter("fold", int, 1, choices=(1, 2, 3)),
                    Parameter("seed", int, 0, rule=NON_NEGATIVE, flag=True),
                    Parameter("verbose", int, 1, cache=False)),
        executor="components.train.executor:run_executor",
    )
    result = run_stage(TRAIN, inputs={"examples": "artifacts/examples/synthetic"},
                       outputs={"model": "artifacts/models/synthetic/fold1"},
                       parameters={"dataset": "synthetic"}, force=False)

An executor is `fn(inputs: dict[str, Artifact | None], outputs: dict[str, Artifact],
parameters: dict) -> dict | None`; what it returns (counts, headline metrics, timings of its
parts; JSON-serializable) goes into the completion record's "summary".

Artifact folders (artifact.py): a stage writes each output into its own folder and records
completion LAST, by writing `_COMPLETE.json` atomically. A folder without that record is
incomplete and is never read as an input. Folders are local paths or URLs (gs://, ram://): the
framework's file I/O goes through files.py; locks (locks.py) exist on local disks only.

Modules: errors (what a user can fix), files (the file system layer), artifact (folders and
their records), locks, contract (StageSpec, InputSpec, Parameter and its Rule), runner
(run_stage), cli (command-line flags made from a contract's parameters marked `flag`).

Running a stage (`run_stage`):
  1. parameters are resolved against the contract (defaults, types, unknown names rejected);
     what the stage reads besides artifacts (a raw dataset folder) is checked and fingerprinted
     (`read_sources`);
  2. every required input must be a complete artifact (else `IncompleteArtifactError`), written
     by a stage of the kind the contract declares and for the same dataset (else
     `ArtifactMismatchError`);
  3. each output folder is locked (`_LOCK`, see `folder_lock`): a second run is refused;
  4. every output complete with the same cache key (and whole, per `verify_output`) and `force`
     not set -> skipped;
  5. otherwise a folder for the new output is chosen (`_Run.prepare`): a resumable stage's
     unfinished run with the same cache key is continued (a killed training run continues from
     its checkpoints); an existing output (complete, or a resumable stage's unfinished run) is
     kept and the new one built in `<folder>/_STAGING`; `_STARTED.json` is written there.
     Whatever gets discarded is named in the log first, with the parameters and inputs that
     changed;
  6. the executor runs; then `_COMPLETE.json` is written, `_STARTED.json` removed, and a staged
     output moved into the folder in place of the old one.

Safety: paths are data -- one with a wildcard character (* ? [) is refused, since Beam and
TensorFlow would read it as a pattern. A folder is only ever cleared when it is empty, or is an
artifact folder of this framework (it holds `_COMPLETE.json` or `_STARTED.json`) whose identity
parameters (e.g. the dataset) match; nothing outside it is touched. Anything else is refused
with a `UserError` naming the folder.

Errors a user can cause are `UserError`s: `run_pipeline.py` prints their message, no traceback.
"""
from components.base.artifact import (COMPLETION_FILE, LOCK_FILE, STAGING_DIR, STARTED_FILE,
                                      SWAP_FILE, Artifact, cache_key_for, package_versions,
                                      utc_now, write_completion_record)
from components.base.contract import InputSpec, Parameter, StageSpec
from components.base.errors import (ArtifactMismatchError, FolderBusyError,
                                    IncompleteArtifactError, ParameterError, UserError,
                                    require_literal_path)
from components.base.files import canonical_hash, read_json, write_json_atomic
from components.base.locks import folder_lock
from components.base.runner import (StageResult, finish_swap, parameter_changes,
                                    planned_cache_key, run_stage, swap_in_staged)

__all__ = [
    "COMPLETION_FILE", "LOCK_FILE", "STAGING_DIR", "STARTED_FILE", "SWAP_FILE", "Artifact",
    "cache_key_for", "package_versions", "utc_now", "write_completion_record",
    "InputSpec", "Parameter", "StageSpec",
    "ArtifactMismatchError", "FolderBusyError", "IncompleteArtifactError", "ParameterError",
    "UserError", "require_literal_path",
    "canonical_hash", "read_json", "write_json_atomic", "folder_lock",
    "StageResult", "finish_swap", "parameter_changes", "planned_cache_key", "run_stage",
    "swap_in_staged",
]
