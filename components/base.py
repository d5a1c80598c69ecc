"""The stage framework: a contract per stage, artifact folders, completion records, caching.

Shaped like TFX's `component.py` + `executor.py` (without TFX): a `StageSpec` declares what a
stage reads, writes and takes as parameters; the executor that does the work is named apart from
it (a callable or a "module:function" string, so importing a contract never imports TensorFlow).

    SPEC = StageSpec(
        name="train",
        inputs=(InputSpec("examples"), InputSpec("init_from", optional=True)),
        outputs=("model",),
        parameters=(Parameter("dataset", str, identity=True),
                    Parameter("fold", int, 1),
                    Parameter("verbose", int, 1, cache=False)),
        executor="components.train.executor:run_executor",
    )
    result = run_stage(SPEC, inputs={"examples": "artifacts/examples/synthetic"},
                       outputs={"model": "artifacts/models/synthetic/fold1"},
                       parameters={"dataset": "synthetic"}, force=False)

An executor is `fn(inputs: dict[str, Artifact | None], outputs: dict[str, Artifact],
parameters: dict) -> dict | None`; what it returns (counts, headline metrics, timings of its
parts; JSON-serializable) goes into the completion record's "summary".

Artifact folders: a stage writes each output into its own folder and records completion LAST,
by writing `_COMPLETE.json` atomically (temp file + rename). A folder without that record is
incomplete and is never read as an input. The record holds the stage, its parameters, the input
fingerprints, the cache key (a hash of stage + caching parameters + input fingerprints), package
versions, the executor's summary and timings. The fingerprint of an artifact is the hash of its
completion record, so a stage that re-runs upstream invalidates everything downstream.

Running a stage (`run_stage`):
  1. parameters are resolved against the contract (defaults, types, unknown names rejected);
  2. every required input must be a complete artifact (else `IncompleteArtifactError`);
  3. every output complete with the same cache key and `force` not set -> skipped;
  4. otherwise each output folder is prepared: clear-then-write, except that a stage declared
     `resumable` keeps the folder's content when its `_STARTED.json` names the same cache key
     (a killed training run continues from its checkpoints); `_STARTED.json` is written;
  5. the executor runs; then `_COMPLETE.json` is written and `_STARTED.json` removed.

Safety: a folder is only ever cleared when it is empty, or is an artifact folder of this
framework (it holds `_COMPLETE.json` or `_STARTED.json`) whose identity parameters (e.g. the
dataset) match. Anything else is refused with a `UserError` naming the folder.

Errors a user can cause are `UserError`s: `run_pipeline.py` prints their message, no traceback.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import importlib
import importlib.metadata
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

COMPLETION_FILE = "_COMPLETE.json"
STARTED_FILE = "_STARTED.json"
RECORD_FORMAT = 1

# Packages whose versions go into every completion record (missing ones are skipped).
VERSIONED_PACKAGES = ("jaa-net-tf", "tensorflow", "keras", "apache-beam", "numpy")


# ----------------------------------------------------------------------------------------------
# Errors
class UserError(Exception):
    """An error the user can cause and fix; the CLI prints the message alone, no traceback."""


class IncompleteArtifactError(UserError):
    """An input folder is missing or has no completion record."""


class ArtifactMismatchError(UserError):
    """An output folder belongs to something else (another dataset, not an artifact at all)."""


class ParameterError(UserError):
    """A parameter is unknown, missing or of the wrong type."""


# ----------------------------------------------------------------------------------------------
# JSON helpers
def write_json_atomic(path: str | os.PathLike, value: Any) -> None:
    """Write JSON to `path` via a temp file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(value, f, indent=2, sort_keys=True, default=_json_default)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """Read JSON; a missing or unreadable file is a `UserError` naming it."""
    path = Path(path)
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{what} {path} is not valid JSON ({e}); delete it and re-run the stage "
                        "that writes it") from None


def canonical_hash(value: Any) -> str:
    """sha256 of the canonical JSON form of `value`."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()


def _json_default(value):
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------------------------
# Artifacts
class Artifact:
    """A folder written by one stage; complete once its `_COMPLETE.json` exists."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self):
        return f"Artifact({str(self.path)!r}, complete={self.is_complete()})"

    def __truediv__(self, other) -> Path:
        return self.path / other

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    @property
    def record_path(self) -> Path:
        return self.path / COMPLETION_FILE

    def is_complete(self) -> bool:
        return self.record_path.is_file()

    def record(self) -> dict:
        """The completion record; `IncompleteArtifactError` naming the folder if there is none."""
        if not self.path.is_dir():
            raise IncompleteArtifactError(f"{self.path} does not exist")
        if not self.is_complete():
            raise IncompleteArtifactError(
                f"{self.path} is incomplete (no {COMPLETION_FILE}): the stage that writes it did "
                "not finish; run that stage again")
        record = read_json(self.record_path, "completion record")
        if not isinstance(record, dict) or "stage" not in record:
            raise IncompleteArtifactError(f"{self.record_path} is not a completion record")
        return record

    def require_complete(self) -> "Artifact":
        self.record()
        return self

    def fingerprint(self) -> str:
        return canonical_hash(self.record())

    @property
    def parameters(self) -> dict:
        return self.record().get("parameters", {})

    @property
    def summary(self) -> dict:
        return self.record().get("summary") or {}

    def started_record(self) -> dict | None:
        path = self.path / STARTED_FILE
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {}

    def is_managed(self) -> bool:
        """True when the folder was written by this framework (complete or started)."""
        return self.is_complete() or (self.path / STARTED_FILE).is_file()


def write_completion_record(path: str | os.PathLike, *, stage: str, parameters: Mapping,
                            inputs: Mapping[str, str] | None = None, cache_key: str | None = None,
                            identity: Mapping | None = None, summary: Mapping | None = None,
                            started_at: str | None = None, seconds: float | None = None) -> dict:
    """Write `<path>/_COMPLETE.json` (call it LAST, after every other file of the artifact).

    Usable on its own by code that writes an artifact outside `run_stage` (e.g. the Beam job).
    `inputs` maps input names to fingerprints.
    """
    record = {
        "format": RECORD_FORMAT,
        "stage": stage,
        "parameters": dict(parameters),
        "identity": dict(identity or {}),
        "inputs": dict(inputs or {}),
        "cache_key": cache_key or cache_key_for(stage, parameters, inputs or {}),
        "versions": package_versions(),
        "summary": dict(summary or {}),
        "timings": {"started_at": started_at, "finished_at": _now(),
                    "seconds": None if seconds is None else round(float(seconds), 3)},
    }
    write_json_atomic(Path(path) / COMPLETION_FILE, record)
    return record


def cache_key_for(stage: str, parameters: Mapping, input_fingerprints: Mapping[str, str]) -> str:
    return canonical_hash({"stage": stage, "parameters": dict(parameters),
                           "inputs": dict(input_fingerprints)})


# ----------------------------------------------------------------------------------------------
# The contract
_REQUIRED = object()


@dataclass(frozen=True)
class Parameter:
    """One execution parameter of a stage.

    type: int, float, str, bool, list or dict; a value of None is allowed when the default is None.
    cache: whether the value enters the cache key (False for e.g. verbosity or worker counts).
    identity: a value that names what the outputs are (the dataset): an existing output folder
      with another value is refused instead of being overwritten.
    """
    name: str
    type: type
    default: Any = _REQUIRED
    help: str = ""
    choices: tuple | None = None
    cache: bool = True
    identity: bool = False

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def coerce(self, value: Any, stage: str) -> Any:
        if value is None and self.default is None:
            return None
        try:
            if self.type is float and isinstance(value, (int, float)) and not isinstance(value, bool):
                value = float(value)
            elif self.type is list and isinstance(value, tuple):
                value = list(value)
            elif self.type is int and hasattr(value, "__index__") and not isinstance(value, bool):
                value = int(value)
            if not isinstance(value, self.type) or (self.type is int and isinstance(value, bool)):
                raise TypeError
        except TypeError:
            raise ParameterError(f"stage {stage!r}: parameter {self.name!r} must be "
                                 f"{self.type.__name__}, got {value!r}") from None
        if self.choices is not None and value not in self.choices:
            raise ParameterError(f"stage {stage!r}: parameter {self.name!r} must be one of "
                                 f"{list(self.choices)}, got {value!r}")
        return value


@dataclass(frozen=True)
class InputSpec:
    name: str
    optional: bool = False
    help: str = ""


@dataclass(frozen=True)
class StageSpec:
    """A stage's contract: its inputs, outputs and parameters, and which executor does the work."""
    name: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]
    parameters: tuple[Parameter, ...]
    executor: str | Callable
    description: str = ""
    resumable: bool = False  # keep a started-but-unfinished output folder (same cache key) on rerun
    # The executor manages its output folders itself (caching, clearing, the completion record in
    # this module's format; e.g. the Beam preprocessing job, which also runs on its own). It gets
    # the parameters plus "_force", returns its summary with "status": "ran" | "skipped", and
    # must leave every output complete.
    self_managed: bool = False

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    def defaults(self) -> dict:
        return {p.name: p.default for p in self.parameters if not p.required}

    def resolve(self, parameters: Mapping | None) -> dict:
        """Fill defaults, check types and choices, reject unknown names."""
        parameters = dict(parameters or {})
        known = {p.name for p in self.parameters}
        unknown = sorted(set(parameters) - known)
        if unknown:
            raise ParameterError(f"stage {self.name!r} has no parameter(s) {unknown}; "
                                 f"known: {sorted(known)}")
        resolved = {}
        for p in self.parameters:
            if p.name in parameters:
                resolved[p.name] = p.coerce(parameters[p.name], self.name)
            elif p.required:
                raise ParameterError(f"stage {self.name!r}: parameter {p.name!r} is required")
            else:
                resolved[p.name] = p.default
        return resolved

    def load_executor(self) -> Callable:
        if callable(self.executor):
            return self.executor
        module, _, attr = self.executor.partition(":")
        return getattr(importlib.import_module(module), attr)

    def describe(self) -> str:
        lines = [f"stage {self.name}: {self.description}".rstrip(": ")]
        for i in self.inputs:
            lines.append(f"  input  {i.name}{' (optional)' if i.optional else ''}  {i.help}".rstrip())
        for o in self.outputs:
            lines.append(f"  output {o}")
        for p in self.parameters:
            default = "required" if p.required else f"default {p.default!r}"
            lines.append(f"  param  {p.name}: {p.type.__name__} ({default})  {p.help}".rstrip())
        return "\n".join(lines)


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


# ----------------------------------------------------------------------------------------------
# Running a stage
def run_stage(spec: StageSpec, *, inputs: Mapping[str, Any] | None = None,
              outputs: Mapping[str, Any], parameters: Mapping | None = None,
              force: bool = False, log: Callable[[str], None] | None = print) -> StageResult:
    """Run `spec`'s executor unless its outputs are already complete for these inputs/parameters."""
    log = log or (lambda _msg: None)
    params = spec.resolve(parameters)
    cached_params = {p.name: params[p.name] for p in spec.parameters if p.cache}
    identity = {p.name: params[p.name] for p in spec.parameters if p.identity}

    # Inputs: each required one must be complete; fingerprints enter the cache key.
    inputs = dict(inputs or {})
    unknown = sorted(set(inputs) - {i.name for i in spec.inputs})
    if unknown:
        raise ParameterError(f"stage {spec.name!r} has no input(s) {unknown}")
    input_artifacts: dict[str, Artifact | None] = {}
    fingerprints: dict[str, str] = {}
    for ispec in spec.inputs:
        value = inputs.get(ispec.name)
        if value is None:
            if not ispec.optional:
                raise ParameterError(f"stage {spec.name!r}: input {ispec.name!r} is required")
            input_artifacts[ispec.name] = None
            continue
        artifact = value if isinstance(value, Artifact) else Artifact(value)
        try:
            artifact.require_complete()
        except IncompleteArtifactError as e:
            raise IncompleteArtifactError(f"stage {spec.name!r}, input {ispec.name!r}: {e}") from None
        input_artifacts[ispec.name] = artifact
        fingerprints[ispec.name] = artifact.fingerprint()

    if set(outputs) != set(spec.outputs):
        raise ParameterError(f"stage {spec.name!r} writes outputs {list(spec.outputs)}, "
                             f"got {sorted(outputs)}")
    output_artifacts = {name: (v if isinstance(v, Artifact) else Artifact(v))
                        for name, v in outputs.items()}
    key = cache_key_for(spec.name, cached_params, fingerprints)

    for name, artifact in output_artifacts.items():
        _check_identity(spec, artifact, identity)

    if spec.self_managed:
        t0 = time.perf_counter()
        summary = spec.load_executor()(input_artifacts, output_artifacts,
                                       {**params, "_force": bool(force)}) or {}
        for artifact in output_artifacts.values():
            artifact.require_complete()
        status = "skipped" if summary.get("status") == "skipped" else "ran"
        seconds = time.perf_counter() - t0
        where = ", ".join(str(a.path) for a in output_artifacts.values())
        log(f"[{spec.name}] " + ("up to date, skipped" if status == "skipped"
                                 else f"done in {seconds:.1f} s") + f" ({where})")
        return StageResult(spec.name, status, output_artifacts,
                           {n: a.record() for n, a in output_artifacts.items()}, seconds)

    # Cache hit: every output complete with the same key.
    if not force and all(a.is_complete() and a.record().get("cache_key") == key
                         for a in output_artifacts.values()):
        log(f"[{spec.name}] up to date, skipped ({', '.join(str(a.path) for a in output_artifacts.values())})")
        return StageResult(spec.name, "skipped", output_artifacts,
                           {n: a.record() for n, a in output_artifacts.items()})

    started_at = _now()
    for artifact in output_artifacts.values():
        _prepare_output(spec, artifact, key, force, cached_params, identity, started_at, log)

    t0 = time.perf_counter()
    summary = spec.load_executor()(input_artifacts, output_artifacts, params) or {}
    seconds = time.perf_counter() - t0

    records = {}
    for name, artifact in output_artifacts.items():
        records[name] = write_completion_record(
            artifact.path, stage=spec.name, parameters=cached_params, inputs=fingerprints,
            cache_key=key, identity=identity, summary=summary, started_at=started_at,
            seconds=seconds)
        (artifact.path / STARTED_FILE).unlink(missing_ok=True)
    log(f"[{spec.name}] done in {seconds:.1f} s -> "
        f"{', '.join(str(a.path) for a in output_artifacts.values())}")
    return StageResult(spec.name, "ran", output_artifacts, records, seconds)


def _check_identity(spec: StageSpec, artifact: Artifact, identity: dict) -> None:
    """Refuse an output folder that holds something else."""
    path = artifact.path
    if not path.exists():
        return
    if not path.is_dir():
        raise ArtifactMismatchError(f"{path} exists and is not a folder; choose another output folder")
    if artifact.is_complete():
        record_file = artifact.record_path
        record = read_json(record_file, "completion record")
        previous = record.get("identity", {}) if isinstance(record, dict) else {}
    else:
        record_file = path / STARTED_FILE
        previous = (artifact.started_record() or {}).get("identity", {})
        if not artifact.is_managed() and any(path.iterdir()):
            raise ArtifactMismatchError(
                f"{path} exists, is not empty and was not written by this pipeline (no "
                f"{COMPLETION_FILE} or {STARTED_FILE}); remove it or choose another output folder")
    for name, value in identity.items():
        if name in previous and previous[name] != value:
            raise ArtifactMismatchError(
                f"{path} holds {name} {previous[name]!r} (per {record_file}), not {value!r}; "
                "choose another output folder or remove it")


def _prepare_output(spec, artifact, key, force, params, identity, started_at, log):
    path = artifact.path
    started = artifact.started_record()
    resume = (spec.resumable and not force and not artifact.is_complete()
              and started is not None and started.get("cache_key") == key)
    if resume:
        log(f"[{spec.name}] resuming the unfinished run in {path}")
    elif path.exists():
        # Drop the completion record first: from here on the folder reads as incomplete.
        artifact.record_path.unlink(missing_ok=True)
        for child in path.iterdir():
            if child.name == STARTED_FILE:
                continue
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    path.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path / STARTED_FILE, {
        "stage": spec.name, "cache_key": key, "parameters": params, "identity": identity,
        "started_at": started_at, "pid": os.getpid()})
