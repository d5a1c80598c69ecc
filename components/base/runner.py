"""Running a stage: inputs checked and locked, the cache consulted, output folders prepared, the
executor run, the completion record written last (the steps are listed in components/base)."""
from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from components.base import files
from components.base.artifact import (COMPLETION_FILE, STAGING_DIR, STARTED_FILE, SWAP_FILE,
                                      Artifact, cache_key_for, utc_now, write_completion_record)
from components.base.contract import InputSpec, StageSpec, load
from components.base.errors import (ArtifactMismatchError, IncompleteArtifactError,
                                    ParameterError, UserError, require_literal_path)
from components.base.locks import folder_lock

_LOG = logging.getLogger(__name__)


@dataclass
class StageResult:
    stage: str
    status: str                      # "ran" or "skipped"
    outputs: dict[str, Artifact]
    records: dict[str, dict] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def skipped(self) -> bool:
        return self.status == "skipped"

    @property
    def summary(self) -> dict:
        first = next(iter(self.records.values()), {})
        return first.get("summary") or {}


def run_stage(spec: StageSpec, *, inputs: Mapping[str, Any] | None = None,
              outputs: Mapping[str, Any], parameters: Mapping | None = None,
              force: bool = False, log: Callable[[str], None] | None = _LOG.info) -> StageResult:
    """Run `spec`'s executor unless its outputs are already complete for these inputs/parameters.
    `log` takes what the run says (what it skips, resumes, keeps or discards); None: nothing."""
    log = log or (lambda _msg: None)
    params, cached_params, identity, input_artifacts = _plan(spec, inputs, parameters)
    if set(outputs) != set(spec.outputs):
        raise ParameterError(f"stage {spec.name!r} writes outputs {list(spec.outputs)}, "
                             f"got {sorted(outputs)}")
    output_artifacts = {name: (v if isinstance(v, Artifact) else Artifact(v))
                        for name, v in outputs.items()}
    for artifact in output_artifacts.values():
        require_literal_path(artifact.uri, f"stage {spec.name!r}: output folder")
        _check_identity(spec, artifact, identity)  # before a lock file goes into a foreign folder

    with contextlib.ExitStack() as locks:
        fingerprints = _fingerprints(spec, params, identity, input_artifacts, locks, log)
        for artifact in output_artifacts.values():
            locks.enter_context(folder_lock(artifact.uri, log))
            _check_identity(spec, artifact, identity)  # again: another run may have written it
            finish_swap(artifact)  # of a run killed while moving its output into place
        run = _Run(spec, cache_key_for(spec.name, cached_params, fingerprints), params,
                   cached_params, identity, input_artifacts, fingerprints, force, log)
        return run.in_folders(output_artifacts)


def planned_cache_key(spec: StageSpec, *, inputs: Mapping[str, Any] | None = None,
                      parameters: Mapping | None = None) -> str:
    """The cache key run_stage gives these inputs and parameters: a stage that picks its output
    folder by what it holds (export's version folders) looks for the one with this key."""
    params, cached_params, identity, input_artifacts = _plan(spec, inputs, parameters)
    with contextlib.ExitStack() as locks:
        fingerprints = _fingerprints(spec, params, identity, input_artifacts, locks, None)
    return cache_key_for(spec.name, cached_params, fingerprints)


def _plan(spec: StageSpec, inputs: Mapping[str, Any] | None, parameters: Mapping | None):
    """(parameters, caching parameters, identity, input artifacts) as the contract reads them."""
    params = spec.resolve(parameters)
    cached_params = {p.name: params[p.name] for p in spec.parameters if p.cache}
    identity = {p.name: params[p.name] for p in spec.parameters if p.identity}
    inputs = dict(inputs or {})
    unknown = sorted(set(inputs) - {i.name for i in spec.inputs})
    if unknown:
        raise ParameterError(f"stage {spec.name!r} has no input(s) {unknown}")
    input_artifacts: dict[str, Artifact | None] = {}
    for ispec in spec.inputs:
        value = inputs.get(ispec.name)
        if value is None and not ispec.optional:
            raise ParameterError(f"stage {spec.name!r}: input {ispec.name!r} is required")
        artifact = None if value is None else value if isinstance(value, Artifact) \
            else Artifact(value)
        if artifact is not None:
            require_literal_path(artifact.uri, f"stage {spec.name!r}, input {ispec.name!r}:")
        input_artifacts[ispec.name] = artifact
    return params, cached_params, identity, input_artifacts


def _fingerprints(spec: StageSpec, params: dict, identity: dict, input_artifacts: dict,
                  locks: contextlib.ExitStack, log) -> dict[str, str]:
    """What the cache key covers besides parameters. What the stage reads besides artifacts (a
    raw dataset) is checked first; the input artifacts are then read under a shared lock (no
    run rewrites them meanwhile), each complete and of the kind the contract declares."""
    fingerprints = dict(load(spec.read_sources)(params)) if spec.read_sources else {}
    for ispec in spec.inputs:
        artifact = input_artifacts[ispec.name]
        if artifact is None:
            continue
        if files.isdir(artifact.uri):
            locks.enter_context(folder_lock(artifact.uri, log, shared=True))
        try:
            _check_input_kind(spec, ispec, artifact, identity)
            fingerprints[ispec.name] = artifact.fingerprint()
        except IncompleteArtifactError as e:
            raise IncompleteArtifactError(
                f"stage {spec.name!r}, input {ispec.name!r}: {e}") from None
    return fingerprints


def _check_input_kind(spec: StageSpec, ispec: InputSpec, artifact: Artifact,
                      identity: dict) -> None:
    """An input must come from a stage that writes its kind, made for the same identity."""
    record = artifact.record()
    if ispec.produced_by and record["stage"] not in ispec.produced_by:
        raise ArtifactMismatchError(
            f"stage {spec.name!r}, input {ispec.name!r}: {artifact.uri} is the output of the "
            f"{record['stage']} stage (per {artifact.record_path}), not of "
            f"{' or '.join(ispec.produced_by)}; give the folder that stage wrote")
    made_for = record.get("identity") or {}
    for name in ispec.same:
        if name in made_for and name in identity and made_for[name] != identity[name]:
            raise ArtifactMismatchError(
                f"stage {spec.name!r}, input {ispec.name!r}: {artifact.uri} holds the "
                f"{made_for[name]!r} {name} (per {artifact.record_path}), not {identity[name]!r}; "
                f"give the folder made for {identity[name]!r}")


@dataclass
class _Run:
    """One run of a stage, with its outputs locked."""
    spec: StageSpec
    key: str
    params: dict
    cached_params: dict
    identity: dict
    inputs: dict
    fingerprints: dict
    force: bool
    log: Callable[[str], None]

    def in_folders(self, outputs: dict[str, Artifact]) -> StageResult:
        if not self.force and all(self._up_to_date(a) for a in outputs.values()):
            self.log(f"[{self.spec.name}] up to date, skipped ({_where(outputs)})")
            return StageResult(self.spec.name, "skipped", outputs,
                               {n: a.record() for n, a in outputs.items()})

        started_at = utc_now()
        work = {name: self.prepare(artifact, started_at) for name, artifact in outputs.items()}
        t0 = time.perf_counter()
        with _local_copies(self.spec, self.inputs, work, self.log) as (inputs, outputs_here):
            summary = self.spec.load_executor()(inputs, outputs_here, self.params) or {}
        seconds = time.perf_counter() - t0

        records = {}
        for name, artifact in outputs.items():
            records[name] = write_completion_record(
                work[name].uri, stage=self.spec.name, parameters=self.cached_params,
                inputs=self.fingerprints, cache_key=self.key, identity=self.identity,
                summary=summary, started_at=started_at, seconds=seconds)
            files.remove(work[name].join(STARTED_FILE))
            if work[name] != artifact:
                swap_in_staged(artifact, self.log)
        self.log(f"[{self.spec.name}] done in {seconds:.1f} s -> {_where(outputs)}")
        return StageResult(self.spec.name, "ran", outputs, records, seconds)

    def _up_to_date(self, artifact: Artifact) -> bool:
        """Complete with the same cache key, and whole where the contract can tell."""
        if not artifact.is_complete() or artifact.record().get("cache_key") != self.key:
            return False
        return not self.spec.verify_output or load(self.spec.verify_output)(artifact)

    def prepare(self, artifact: Artifact, started_at: str) -> Artifact:
        """The folder the executor writes this output into, and what happens to earlier work.

        An unfinished run with the same cache key is resumed (resumable stages). Otherwise the
        output in the folder -- complete, or an unfinished run of a resumable stage -- is kept
        where it is, and the new one is built in <folder>/_STAGING and moved into place once it
        is complete. Whatever is discarded is named first, with what changed."""
        name, staging = self.spec.name, Artifact(artifact.join(STAGING_DIR))
        if self.spec.resumable and not self.force:
            for candidate in (artifact, staging):
                started = candidate.started_record()
                if (not candidate.is_complete() and started
                        and started.get("cache_key") == self.key):
                    self.log(f"[{name}] resuming the unfinished run in {candidate.uri} "
                             f"(started {started.get('started_at')})")
                    self._discard_staging(staging, unless=candidate)
                    return candidate
        current = (artifact.record() if artifact.is_complete() else artifact.started_record()) or {}
        keep = artifact.holds_work() and (artifact.is_complete() or self.spec.resumable)
        if keep:
            self.log(f"[{name}] {artifact.uri} holds {self._work(artifact)}; "
                     f"{self._changes(current)}. It stays until the new output, built in "
                     f"{staging.uri}, is complete, and is then replaced")
            work = staging
        else:
            if artifact.holds_work():
                self.log(f"[{name}] discarding {self._work(artifact)} in {artifact.uri} "
                         f"({self._changes(current)})")
            _clear(artifact)
            work = artifact
        self._discard_staging(staging, unless=work)
        files.makedirs(work.uri)
        files.write_json_atomic(work.join(STARTED_FILE), {
            "stage": name, "cache_key": self.key, "parameters": self.cached_params,
            "identity": self.identity, "inputs": self.fingerprints, "started_at": started_at,
            "pid": os.getpid()})
        return work

    def _discard_staging(self, staging: Artifact, unless: Artifact) -> None:
        if staging == unless or not files.exists(staging.uri):
            return
        if staging.holds_work():
            self.log(f"[{self.spec.name}] discarding {self._work(staging)} in {staging.uri} "
                     f"({self._changes(staging.started_record() or {})})")
        files.remove(staging.uri)

    def _work(self, artifact: Artifact) -> str:
        """E.g. "the complete output of 2026-11-30T12:00:00+00:00 (model.keras, ...)"."""
        if artifact.is_complete():
            finished = artifact.record().get("timings", {}).get("finished_at")
            what = f"the complete output of {finished}"
        else:
            what = (f"an unfinished run started "
                    f"{(artifact.started_record() or {}).get('started_at', 'at an unknown time')}")
        describe = load(self.spec.describe_work)
        detail = describe(artifact.path) if describe and not artifact.is_remote else None
        return f"{what} ({detail})" if detail else what

    def _changes(self, previous: dict) -> str:
        """What differs between the run that made `previous` (a record) and this one."""
        changes = parameter_changes(previous.get("parameters") or {}, self.cached_params)
        old_inputs = previous.get("inputs") or {}
        for i in sorted(set(old_inputs) | set(self.fingerprints)):
            artifact = self.inputs.get(i)
            if i not in self.fingerprints:
                changes.append(f"input {i} no longer given")
            elif i not in old_inputs:
                changes.append(f"input {i} newly given" + (f" ({artifact.uri})" if artifact else ""))
            elif old_inputs[i] != self.fingerprints[i]:
                if artifact is None:  # a source read_sources fingerprinted
                    changes.append(f"the files of input {i} changed")
                    continue
                finished = artifact.record().get("timings", {}).get("finished_at")
                changes.append(f"input {i} ({artifact.uri}) is another output now "
                               f"(completed {finished})")
        if changes:
            return "changed since: " + "; ".join(changes)
        if previous.get("cache_key") == self.key:
            return "--force given" if self.force else "same parameters and inputs, but files " \
                "of it are missing or changed"
        return "made with an earlier version of the pipeline's caching"


@contextlib.contextmanager
def _local_copies(spec: StageSpec, inputs: dict, outputs: dict, log):
    """The executor's view of its folders. An executor that is not `url_aware` gets local
    folders: a URL input is copied into a local working folder, and a URL output is written
    there and copied up when the executor is done (its completion record is written after)."""
    remote = [a for a in (*inputs.values(), *outputs.values()) if a is not None and a.is_remote]
    if spec.url_aware or not remote:
        yield inputs, outputs
        return
    with tempfile.TemporaryDirectory(prefix=f"jaa-{spec.name}-") as scratch:
        def here(name: str, artifact: Artifact | None, download: bool) -> Artifact | None:
            if artifact is None or not artifact.is_remote:
                return artifact
            local = Artifact(os.path.join(scratch, name))
            if download:
                log(f"[{spec.name}] copying {artifact.uri} to a local working folder")
                files.copy_tree(artifact.uri, local.uri)
            files.makedirs(local.uri)
            return local
        local_inputs = {n: here(f"in-{n}", a, True) for n, a in inputs.items()}
        local_outputs = {n: here(f"out-{n}", a, False) for n, a in outputs.items()}
        yield local_inputs, local_outputs
        for name, artifact in outputs.items():
            if artifact.is_remote:
                files.copy_tree(local_outputs[name].uri, artifact.uri)


def parameter_changes(old: Mapping, new: Mapping) -> list[str]:
    """["epochs [6, 0, 0] -> [4, 0, 0]", ...] for the parameters whose values differ."""
    unset = "unset"
    return [f"{name} {old.get(name, unset)!r} -> {new.get(name, unset)!r}"
            for name in sorted(set(old) | set(new)) if old.get(name, unset) != new.get(name, unset)]


def _where(outputs: Mapping[str, Artifact]) -> str:
    return ", ".join(a.uri for a in outputs.values())


def _clear(artifact: Artifact) -> None:
    """Empty an output folder of this framework, completion record first (from then on it reads
    as incomplete); the lock and the staging folder are left to their owners."""
    files.remove(artifact.record_path)
    for name in artifact.entries():
        files.remove(artifact.join(name))


def swap_in_staged(artifact: Artifact, log: Callable[[str], None]) -> None:
    """Move the complete output in <folder>/_STAGING into <folder>, replacing what is there.

    The plan (the old and the new top-level names) is written first, to _SWAP.json, and every
    step can be redone, so a run killed half-way is finished by the next run (finish_swap)."""
    staging = Artifact(artifact.join(STAGING_DIR))
    previous = artifact.record().get("timings", {}).get("finished_at") \
        if artifact.is_complete() else None
    files.write_json_atomic(artifact.join(SWAP_FILE), {
        "old": artifact.entries(), "new": files.listdir(staging.uri)})
    finish_swap(artifact)
    log(f"replaced the previous output in {artifact.uri}"
        + (f" (completed {previous})" if previous else " (an unfinished run)"))


def finish_swap(artifact: Artifact) -> None:
    staging = Artifact(artifact.join(STAGING_DIR))
    plan_file = artifact.join(SWAP_FILE)
    if not files.exists(plan_file):
        return
    plan = files.read_json(plan_file, "swap plan")
    if not staging.is_complete() and not artifact.is_complete():
        raise UserError(f"{plan_file}: the output it moves into place is gone; remove "
                        f"{plan_file} and run the stage again")
    old, new = plan["old"], plan["new"]
    # An old name is deleted unless the new entry of that name was already moved in.
    for name in sorted(old, key=lambda n: n != COMPLETION_FILE):  # the record first
        if name not in new or files.exists(staging.join(name)):
            files.remove(artifact.join(name))
    for name in sorted(new, key=lambda n: n == COMPLETION_FILE):  # the record last
        if files.exists(staging.join(name)):
            files.replace(staging.join(name), artifact.join(name))
    files.remove(staging.uri)
    files.remove(plan_file)


def _check_identity(spec: StageSpec, artifact: Artifact, identity: dict) -> None:
    """Refuse an output folder that holds something else."""
    if not files.exists(artifact.uri):
        return
    if not files.isdir(artifact.uri):
        raise ArtifactMismatchError(f"{artifact.uri} exists and is not a folder; choose another "
                                    "output folder")
    if artifact.is_complete():
        record_file = artifact.record_path
        record = files.read_json(record_file, "completion record")
    else:
        record_file = artifact.join(STARTED_FILE)
        record = artifact.started_record() or {}
        if not artifact.is_managed() and artifact.entries():
            raise ArtifactMismatchError(
                f"{artifact.uri} exists, is not empty and was not written by this pipeline (no "
                f"{COMPLETION_FILE} or {STARTED_FILE}); remove it or choose another output "
                "folder")
    record = record if isinstance(record, dict) else {}
    if record.get("stage") not in (None, spec.name):  # e.g. a trained model, hours of work
        raise ArtifactMismatchError(
            f"{artifact.uri} holds the output of the {record['stage']} stage (per "
            f"{record_file}); the {spec.name} stage would replace it: choose another output "
            "folder, or move it away")
    previous = record.get("identity", {})
    for name, value in identity.items():
        if name in previous and previous[name] != value:
            raise ArtifactMismatchError(
                f"{artifact.uri} holds {name} {previous[name]!r} (per {record_file}), not "
                f"{value!r}; choose another output folder or remove it")

