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
versions, the executor's summary, a run id and timings. The fingerprint of an artifact is the
hash of what it is (stage, cache key, identity, summary, run id; not timings or versions), so a
stage that re-runs upstream invalidates everything downstream, and a touched timestamp does not.

Running a stage (`run_stage`):
  1. parameters are resolved against the contract (defaults, types, unknown names rejected);
  2. every required input must be a complete artifact (else `IncompleteArtifactError`);
  3. each output folder is locked (`_LOCK`, see `folder_lock`): a second run is refused;
  4. every output complete with the same cache key and `force` not set -> skipped;
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
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import fcntl
import hashlib
import importlib
import importlib.metadata
import json
import os
import platform
import secrets
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

COMPLETION_FILE = "_COMPLETE.json"
STARTED_FILE = "_STARTED.json"
LOCK_FILE = "_LOCK"            # held (flock) while a run writes the folder
STAGING_DIR = "_STAGING"       # where a new output is built while the previous one is kept
SWAP_FILE = "_SWAP.json"       # the plan of a staged output's move into place (crash recovery)
_FRAMEWORK_ENTRIES = {LOCK_FILE, STAGING_DIR, SWAP_FILE}
RECORD_FORMAT = 2  # 2: fingerprinted by FINGERPRINTED (1: by the whole record)
# The fields of a completion record that say what the artifact is (see Artifact.fingerprint).
FINGERPRINTED = ("stage", "cache_key", "identity", "summary", "run_id")
# Characters Beam's FileSystems.match/delete and its file sinks read as wildcards (and
# TensorFlow's file listing too); a path holding one cannot be passed to them as data.
GLOB_CHARACTERS = "*?["

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


class FolderBusyError(UserError):
    """Another process holds the folder's lock."""


def require_literal_path(path: str | os.PathLike, what: str = "output folder") -> None:
    """Refuse a path that the file APIs downstream would read as a wildcard pattern.

    Beam's file sinks use the output path both as a literal (the files they create) and as a
    pattern (the earlier shards they delete), so escaping cannot work: `exp*` would delete the
    shards of `exp1/` and `exp2/`. The path is refused instead, before anything is touched."""
    text = os.fspath(path)
    found = "".join(c for c in GLOB_CHARACTERS if c in text)
    if found:
        raise UserError(f"{what} {text!r} contains {' '.join(found)}, which Beam and TensorFlow "
                        "read as wildcards (it would match, and delete, files of other folders); "
                        "choose a path without * ? [ (rename the folder)")


# ----------------------------------------------------------------------------------------------
# JSON helpers
def write_json_atomic(path: str | os.PathLike, value: Any) -> None:
    """Write JSON to `path` via a temp file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # os.open applies the umask to 0o666 (like any file Beam or Keras writes); mkstemp's 0o600
    # would leave completion records unreadable to the group.
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
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
# Locks: one writer per folder
_HELD_LOCKS: dict[str, list] = {}   # lock file -> [file descriptor, nesting depth] in this process


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, log: Callable[[str], None] | None = None, *,
                shared: bool = False):
    """Hold `<folder>/_LOCK` while the block runs: exclusively to write the folder, shared to
    read it (readers exclude writers, not each other). A conflicting holder -> FolderBusyError.

    flock(2) ties the lock to the open file, so the kernel releases it when its process dies: a
    lock file left by a killed run is simply taken over. A writer records its process id in the
    file for the message a second run gets. The last holder removes the file (still holding
    the lock; whoever opened the old file notices it is gone and tries again). Re-entrant
    within a process (a stage that runs the Beam job locks the folder the job locks too).
    A folder that cannot take a lock file (read-only) is read without one."""
    folder = Path(folder)
    if not shared:
        folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    key = os.path.abspath(path)
    if key in _HELD_LOCKS:
        _HELD_LOCKS[key][1] += 1
        try:
            yield
        finally:
            _HELD_LOCKS[key][1] -= 1
        return
    try:
        fd, previous = _acquire(path, shared)
    except OSError as error:
        if not shared:
            raise UserError(f"cannot write the lock file {path} ({error.strerror}); make "
                            f"{folder} writable or choose another folder") from None
        yield
        return
    if previous and log:
        log(f"taking over the lock {path} of a run that ended without releasing it "
            f"({_holder(previous)}; that process is gone)")
    _HELD_LOCKS[key] = [fd, 1]
    try:
        yield
    finally:
        del _HELD_LOCKS[key]
        try:
            if shared:  # the last reader out removes the file
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _is_current(path, fd):
                path.unlink()
        except BlockingIOError:
            pass
        finally:
            os.close(fd)


_BUSY_RETRIES, _BUSY_WAIT_S = 20, 0.05  # a holder may be just leaving: retry for a second


def _acquire(path: Path, shared: bool) -> tuple[int, str]:
    """(descriptor holding the lock on `path`, what a previous writer had written in it)."""
    attempts = 0
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            busy = _busy_message(path, fd)
            os.close(fd)
            attempts += 1
            if attempts > _BUSY_RETRIES:
                raise FolderBusyError(busy) from None
            time.sleep(_BUSY_WAIT_S)
            continue
        if _is_current(path, fd):  # not a file its holder removed while we were opening it
            break
        os.close(fd)
    previous = os.pread(fd, 4096, 0).decode(errors="replace")
    if shared:
        return fd, ""
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "started_at": _now(),
                              "command": " ".join(sys.argv)}).encode(), 0)
    return fd, previous


def _is_current(path: Path, fd: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _busy_message(path: Path, fd: int) -> str:
    readers = _reading_processes(fd)
    if readers:
        return (f"{path.parent} is being read by another run (process id "
                f"{', '.join(map(str, readers))}); wait for it to finish (or stop it) and run "
                "again, or write into another folder")
    return (f"{path.parent} is being written by another run "
            f"({_holder(os.pread(fd, 4096, 0).decode(errors='replace'))}); wait for it to "
            "finish (or stop it) and run again, or write into another folder")


def _reading_processes(fd: int) -> list[int]:
    """Process ids holding a shared flock on `fd`'s file, per /proc/locks (Linux; else [])."""
    inode = str(os.fstat(fd).st_ino)
    try:
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    pids = set()
    for fields in map(str.split, lines):  # e.g. "3: FLOCK  ADVISORY  READ 4242 00:2f:1234 0 EOF"
        if ("->" not in fields and len(fields) >= 6 and fields[1] == "FLOCK"
                and fields[3] == "READ" and fields[5].rsplit(":", 1)[-1] == inode):
            pids.add(int(fields[4]))
    return sorted(pids)


def _holder(text: str) -> str:
    try:
        holder = json.loads(text)
        return (f"process id {holder['pid']}, since {holder.get('started_at')}: "
                f"{holder.get('command') or '?'}")
    except (json.JSONDecodeError, KeyError, TypeError):
        return "process id not recorded yet"


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
        """What the artifact is: stage, cache key (parameters + input fingerprints), identity,
        the executor's summary (its counts and results) and the run that made it (a rerun is
        another artifact). Timings and package versions say when and with what it was made,
        not what it is, so they are left out: touching them does not make every stage
        downstream redo its work."""
        record = self.record()
        if record.get("format", 1) < 2:  # as records of format 1 were fingerprinted: whole
            return canonical_hash(record)
        return canonical_hash({k: record.get(k) for k in FINGERPRINTED})

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

    def holds_work(self) -> bool:
        """True when the folder holds an output or part of one (more than a started record)."""
        return self.path.is_dir() and any(
            child.name not in _FRAMEWORK_ENTRIES | {STARTED_FILE} for child in self.path.iterdir())


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
        "run_id": new_run_id(),
        "versions": package_versions(),
        "summary": dict(summary or {}),
        "timings": {"started_at": started_at, "finished_at": _now(),
                    "seconds": None if seconds is None else round(float(seconds), 3)},
    }
    write_json_atomic(Path(path) / COMPLETION_FILE, record)
    return record


def new_run_id() -> str:
    """Names one run's output: a rerun (--force) makes another artifact, whatever its summary."""
    return secrets.token_hex(8)


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
    # fn(folder) -> a few words on the work in an output folder (e.g. "checkpoints up to epoch
    # 3"), said before that work is discarded; a callable or a "module:function" string.
    describe_work: str | Callable | None = None

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
        return _load(self.executor)

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
def _load(target: str | Callable) -> Callable:
    if callable(target):
        return target
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def run_stage(spec: StageSpec, *, inputs: Mapping[str, Any] | None = None,
              outputs: Mapping[str, Any], parameters: Mapping | None = None,
              force: bool = False, log: Callable[[str], None] | None = print) -> StageResult:
    """Run `spec`'s executor unless its outputs are already complete for these inputs/parameters."""
    log = log or (lambda _msg: None)
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
            require_literal_path(artifact.path, f"stage {spec.name!r}, input {ispec.name!r}:")
        input_artifacts[ispec.name] = artifact
    if set(outputs) != set(spec.outputs):
        raise ParameterError(f"stage {spec.name!r} writes outputs {list(spec.outputs)}, "
                             f"got {sorted(outputs)}")
    output_artifacts = {name: (v if isinstance(v, Artifact) else Artifact(v))
                        for name, v in outputs.items()}
    for artifact in output_artifacts.values():
        require_literal_path(artifact.path, f"stage {spec.name!r}: output folder")
        _check_identity(spec, artifact, identity)  # before a lock file goes into a foreign folder

    with contextlib.ExitStack() as locks:
        # Inputs are read under a shared lock (no run rewrites them meanwhile); each required
        # one must be complete, and their fingerprints enter the cache key.
        fingerprints: dict[str, str] = {}
        for name, artifact in input_artifacts.items():
            if artifact is None:
                continue
            if artifact.path.is_dir():
                locks.enter_context(folder_lock(artifact.path, log, shared=True))
            try:
                fingerprints[name] = artifact.fingerprint()
            except IncompleteArtifactError as e:
                raise IncompleteArtifactError(f"stage {spec.name!r}, input {name!r}: {e}") from None
        for artifact in output_artifacts.values():
            locks.enter_context(folder_lock(artifact.path, log))
            _check_identity(spec, artifact, identity)  # again: another run may have written it
            finish_swap(artifact)  # of a run killed while moving its output into place
        run = _Run(spec, cache_key_for(spec.name, cached_params, fingerprints), params,
                   cached_params, identity, input_artifacts, fingerprints, force, log)
        return run.self_managed(output_artifacts) if spec.self_managed \
            else run.in_folders(output_artifacts)


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

    def self_managed(self, outputs: dict[str, Artifact]) -> StageResult:
        t0 = time.perf_counter()
        summary = self.spec.load_executor()(self.inputs, outputs,
                                            {**self.params, "_force": bool(self.force)}) or {}
        for artifact in outputs.values():
            artifact.require_complete()
        status = "skipped" if summary.get("status") == "skipped" else "ran"
        seconds = time.perf_counter() - t0
        self.log(f"[{self.spec.name}] " + ("up to date, skipped" if status == "skipped"
                                           else f"done in {seconds:.1f} s") + f" ({_where(outputs)})")
        return StageResult(self.spec.name, status, outputs,
                           {n: a.record() for n, a in outputs.items()}, seconds)

    def in_folders(self, outputs: dict[str, Artifact]) -> StageResult:
        # Cache hit: every output complete with the same key.
        if not self.force and all(a.is_complete() and a.record().get("cache_key") == self.key
                                  for a in outputs.values()):
            self.log(f"[{self.spec.name}] up to date, skipped ({_where(outputs)})")
            return StageResult(self.spec.name, "skipped", outputs,
                               {n: a.record() for n, a in outputs.items()})

        started_at = _now()
        work = {name: self.prepare(artifact, started_at) for name, artifact in outputs.items()}
        t0 = time.perf_counter()
        summary = self.spec.load_executor()(self.inputs, work, self.params) or {}
        seconds = time.perf_counter() - t0

        records = {}
        for name, artifact in outputs.items():
            records[name] = write_completion_record(
                work[name].path, stage=self.spec.name, parameters=self.cached_params,
                inputs=self.fingerprints, cache_key=self.key, identity=self.identity,
                summary=summary, started_at=started_at, seconds=seconds)
            (work[name].path / STARTED_FILE).unlink(missing_ok=True)
            if work[name].path != artifact.path:
                swap_in_staged(artifact, self.log)
        self.log(f"[{self.spec.name}] done in {seconds:.1f} s -> {_where(outputs)}")
        return StageResult(self.spec.name, "ran", outputs, records, seconds)

    def prepare(self, artifact: Artifact, started_at: str) -> Artifact:
        """The folder the executor writes this output into, and what happens to earlier work.

        An unfinished run with the same cache key is resumed (resumable stages). Otherwise the
        output in the folder -- complete, or an unfinished run of a resumable stage -- is kept
        where it is, and the new one is built in <folder>/_STAGING and moved into place once it
        is complete. Whatever is discarded is named first, with what changed."""
        name, staging = self.spec.name, Artifact(artifact.path / STAGING_DIR)
        if self.spec.resumable and not self.force:
            for candidate in (artifact, staging):
                started = candidate.started_record()
                if (not candidate.is_complete() and started
                        and started.get("cache_key") == self.key):
                    self.log(f"[{name}] resuming the unfinished run in {candidate.path} "
                             f"(started {started.get('started_at')})")
                    self._discard_staging(staging, unless=candidate)
                    return candidate
        current = (artifact.record() if artifact.is_complete() else artifact.started_record()) or {}
        keep = artifact.holds_work() and (artifact.is_complete() or self.spec.resumable)
        if keep:
            self.log(f"[{name}] {artifact.path} holds {self._work(artifact)}; "
                     f"{self._changes(current)}. It stays until the new output, built in "
                     f"{staging.path}, is complete, and is then replaced")
            work = staging
        else:
            if artifact.holds_work():
                self.log(f"[{name}] discarding {self._work(artifact)} in {artifact.path} "
                         f"({self._changes(current)})")
            _clear(artifact.path)
            work = artifact
        self._discard_staging(staging, unless=work)
        work.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(work.path / STARTED_FILE, {
            "stage": name, "cache_key": self.key, "parameters": self.cached_params,
            "identity": self.identity, "inputs": self.fingerprints, "started_at": started_at,
            "pid": os.getpid()})
        return work

    def _discard_staging(self, staging: Artifact, unless: Artifact) -> None:
        if staging.path == unless.path or not staging.path.exists():
            return
        if staging.holds_work():
            self.log(f"[{self.spec.name}] discarding {self._work(staging)} in {staging.path} "
                     f"({self._changes(staging.started_record() or {})})")
        shutil.rmtree(staging.path)

    def _work(self, artifact: Artifact) -> str:
        """E.g. "the complete output of 2026-11-30T12:00:00+00:00 (model.keras, ...)"."""
        if artifact.is_complete():
            finished = artifact.record().get("timings", {}).get("finished_at")
            what = f"the complete output of {finished}"
        else:
            what = (f"an unfinished run started "
                    f"{(artifact.started_record() or {}).get('started_at', 'at an unknown time')}")
        detail = _load(self.spec.describe_work)(artifact.path) if self.spec.describe_work else None
        return f"{what} ({detail})" if detail else what

    def _changes(self, previous: dict) -> str:
        """What differs between the run that made `previous` (a record) and this one."""
        changes = parameter_changes(previous.get("parameters") or {}, self.cached_params)
        old_inputs = previous.get("inputs") or {}
        for i in sorted(set(old_inputs) | set(self.fingerprints)):
            if i not in self.fingerprints:
                changes.append(f"input {i} no longer given")
            elif i not in old_inputs:
                changes.append(f"input {i} newly given ({self.inputs[i].path})")
            elif old_inputs[i] != self.fingerprints[i]:
                finished = self.inputs[i].record().get("timings", {}).get("finished_at")
                changes.append(f"input {i} ({self.inputs[i].path}) is another output now "
                               f"(completed {finished})")
        if changes:
            return "changed since: " + "; ".join(changes)
        if self.force and previous.get("cache_key") == self.key:
            return "--force given"
        return "made with an earlier version of the pipeline's caching"


def parameter_changes(old: Mapping, new: Mapping) -> list[str]:
    """["epochs [6, 0, 0] -> [4, 0, 0]", ...] for the parameters whose values differ."""
    unset = "unset"
    return [f"{name} {old.get(name, unset)!r} -> {new.get(name, unset)!r}"
            for name in sorted(set(old) | set(new)) if old.get(name, unset) != new.get(name, unset)]


def _where(outputs: Mapping[str, Artifact]) -> str:
    return ", ".join(str(a.path) for a in outputs.values())


def _clear(folder: Path) -> None:
    """Empty an output folder of this framework, completion record first (from then on it reads
    as incomplete); the lock and the staging folder are left to their owners."""
    if not folder.exists():
        return
    (folder / COMPLETION_FILE).unlink(missing_ok=True)
    for child in folder.iterdir():
        if child.name not in _FRAMEWORK_ENTRIES:
            _remove(child)


def _remove(path: Path) -> None:
    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def swap_in_staged(artifact: Artifact, log: Callable[[str], None]) -> None:
    """Move the complete output in <folder>/_STAGING into <folder>, replacing what is there.

    The plan (the old and the new top-level names) is written first, to _SWAP.json, and every
    step can be redone, so a run killed half-way is finished by the next run (_finish_swap)."""
    folder, staging = artifact.path, artifact.path / STAGING_DIR
    previous = artifact.record().get("timings", {}).get("finished_at") \
        if artifact.is_complete() else None
    write_json_atomic(folder / SWAP_FILE, {
        "old": sorted(c.name for c in folder.iterdir() if c.name not in _FRAMEWORK_ENTRIES),
        "new": sorted(c.name for c in staging.iterdir())})
    finish_swap(artifact)
    log(f"replaced the previous output in {folder}"
        + (f" (completed {previous})" if previous else " (an unfinished run)"))


def finish_swap(artifact: Artifact) -> None:
    folder, staging = artifact.path, artifact.path / STAGING_DIR
    plan_file = folder / SWAP_FILE
    if not plan_file.is_file():
        return
    plan = read_json(plan_file, "swap plan")
    if not (staging / COMPLETION_FILE).is_file() and not (folder / COMPLETION_FILE).is_file():
        raise UserError(f"{plan_file}: the output it moves into place is gone; remove "
                        f"{plan_file} and run the stage again")
    old, new = plan["old"], plan["new"]
    # An old name is deleted unless the new entry of that name was already moved in.
    for name in sorted(old, key=lambda n: n != COMPLETION_FILE):  # the record first
        if (name not in new or (staging / name).exists()) and (folder / name).exists():
            _remove(folder / name)
    for name in sorted(new, key=lambda n: n == COMPLETION_FILE):  # the record last
        if (staging / name).exists():
            os.replace(staging / name, folder / name)
    if staging.exists():
        shutil.rmtree(staging)
    plan_file.unlink()


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
        if not artifact.is_managed() and any(c.name not in _FRAMEWORK_ENTRIES
                                             for c in path.iterdir()):
            raise ArtifactMismatchError(
                f"{path} exists, is not empty and was not written by this pipeline (no "
                f"{COMPLETION_FILE} or {STARTED_FILE}); remove it or choose another output folder")
    for name, value in identity.items():
        if name in previous and previous[name] != value:
            raise ArtifactMismatchError(
                f"{path} holds {name} {previous[name]!r} (per {record_file}), not {value!r}; "
                "choose another output folder or remove it")
