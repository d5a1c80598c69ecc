"""Artifacts: folders written by one stage, complete once their completion record exists.

The record (`_COMPLETE.json`, written last) holds the stage, its parameters, the input
fingerprints, the cache key (a hash of stage + caching parameters + input fingerprints), package
versions, the executor's summary, a run id and timings. The fingerprint of an artifact is the
hash of what it is (stage, cache key, identity, summary, run id; not timings or versions), so a
stage that re-runs upstream invalidates everything downstream, and a touched timestamp does not.
"""
from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import secrets
from pathlib import Path
from typing import Mapping

from components.base import files
from components.base.errors import IncompleteArtifactError, UserError

COMPLETION_FILE = "_COMPLETE.json"
STARTED_FILE = "_STARTED.json"
LOCK_FILE = "_LOCK"            # held (flock) while a run writes the folder
STAGING_DIR = "_STAGING"       # where a new output is built while the previous one is kept
SWAP_FILE = "_SWAP.json"       # the plan of a staged output's move into place (crash recovery)
FRAMEWORK_ENTRIES = frozenset({LOCK_FILE, STAGING_DIR, SWAP_FILE})
RECORD_FORMAT = 2  # 2: fingerprinted by FINGERPRINTED (1: by the whole record)
# The fields of a completion record that say what the artifact is (see Artifact.fingerprint).
FINGERPRINTED = ("stage", "cache_key", "identity", "summary", "run_id")
# Packages whose versions go into every completion record (missing ones are skipped).
VERSIONED_PACKAGES = ("jaa-net-tf", "tensorflow", "keras", "apache-beam", "numpy")


def utc_now() -> str:
    """The time of day for records and logs: UTC, to the second."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class Artifact:
    """A folder written by one stage: a local path or a URL (gs://..., ram://...)."""

    def __init__(self, location: str | os.PathLike):
        self.uri = files.normalise(location) if files.is_remote(location) else os.fspath(location)

    def __repr__(self):
        return f"Artifact({self.uri!r}, complete={self.is_complete()})"

    def __fspath__(self) -> str:
        return self.uri

    def __eq__(self, other):
        return isinstance(other, Artifact) and self.uri == other.uri

    def __hash__(self):
        return hash(self.uri)

    @property
    def is_remote(self) -> bool:
        return files.is_remote(self.uri)

    @property
    def path(self) -> Path:
        """The folder as a local Path, for executors that write with local-file APIs."""
        if self.is_remote:
            raise UserError(f"{self.uri}: this stage writes and reads local folders only; give "
                            "it a local path (the preprocess stage also takes a URL)")
        return Path(self.uri)

    def join(self, *names: str) -> str:
        return files.join(self.uri, *names)

    def __truediv__(self, name) -> Path:
        return self.path / name

    @property
    def record_path(self) -> str:
        return self.join(COMPLETION_FILE)

    def is_complete(self) -> bool:
        return files.exists(self.record_path)

    def record(self) -> dict:
        """The completion record; `IncompleteArtifactError` naming the folder if there is none."""
        if not files.isdir(self.uri):
            raise IncompleteArtifactError(f"{self.uri} does not exist")
        if not self.is_complete():
            raise IncompleteArtifactError(
                f"{self.uri} is incomplete (no {COMPLETION_FILE}): the stage that writes it did "
                "not finish; run that stage again")
        record = files.read_json(self.record_path, "completion record")
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
            return files.canonical_hash(record)
        return files.canonical_hash({k: record.get(k) for k in FINGERPRINTED})

    @property
    def parameters(self) -> dict:
        return self.record().get("parameters", {})

    @property
    def summary(self) -> dict:
        return self.record().get("summary") or {}

    def started_record(self) -> dict | None:
        path = self.join(STARTED_FILE)
        if not files.exists(path):
            return None
        try:
            return files.read_json(path)
        except UserError:
            return {}

    def is_managed(self) -> bool:
        """True when the folder was written by this framework (complete or started)."""
        return self.is_complete() or files.exists(self.join(STARTED_FILE))

    def entries(self) -> list[str]:
        """The names in the folder, less the framework's own lock, staging and swap entries."""
        return [n for n in files.listdir(self.uri) if n not in FRAMEWORK_ENTRIES]

    def holds_work(self) -> bool:
        """True when the folder holds an output or part of one (more than a started record)."""
        return any(name != STARTED_FILE for name in self.entries())


def write_completion_record(path: str | os.PathLike, *, stage: str, parameters: Mapping,
                            inputs: Mapping[str, str] | None = None, cache_key: str | None = None,
                            identity: Mapping | None = None, summary: Mapping | None = None,
                            started_at: str | None = None, seconds: float | None = None) -> dict:
    """Write `<path>/_COMPLETE.json` (call it LAST, after every other file of the artifact).

    `inputs` maps input names to fingerprints."""
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
        "timings": {"started_at": started_at, "finished_at": utc_now(),
                    "seconds": None if seconds is None else round(float(seconds), 3)},
    }
    files.write_json_atomic(files.join(path, COMPLETION_FILE), record)
    return record


def new_run_id() -> str:
    """Names one run's output: a rerun (--force) makes another artifact, whatever its summary."""
    return secrets.token_hex(8)


def cache_key_for(stage: str, parameters: Mapping, input_fingerprints: Mapping[str, str]) -> str:
    return files.canonical_hash({"stage": stage, "parameters": dict(parameters),
                                 "inputs": dict(input_fingerprints)})


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions
