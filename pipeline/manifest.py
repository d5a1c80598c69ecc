"""manifest.json of a preprocessed dataset: the files the job wrote, and reading exactly those.

The preprocessing job (pipeline/job.py) lists every file it wrote (the TFRecords of each part and
of its unlabelled frames, the rejected log, stats.json) with its size in bytes and sha256. Readers take the TFRecords of a
part from that list, never from a listing of the folder, so a file dropped into a part folder
later is not read, and check each file's size and sha256 before reading it.

Cost of the check: sha256 ran at 0.2 to 0.85 GB/s on one core of a 2-core machine, the low end
with seven other jobs running (benchmarks/bench_checksum.py), so BP4D's examples (about 2 GB) take
3 to 12 s against the hours a fold trains or evaluates: every stage start checks what it reads.
Not covered by it: a file damaged after that check, while epochs run. TensorFlow then stops with
a DataLossError that names no file; `corrupt_record_error` turns it into one naming the file.

No Beam and no Keras here: the training and evaluation stages import this module.
"""
from __future__ import annotations

import json
import os
import re

from components.base import UserError, files

MANIFEST_FILE = "manifest.json"
STATS_FILE = "stats.json"


def listed_entries(examples_dir) -> list[dict]:
    """Every entry of the manifest: {"path" (relative, "/"-separated), "bytes", "sha256", ...}."""
    manifest_path = files.join(examples_dir, MANIFEST_FILE)
    try:
        listed = json.loads(files.read_bytes(manifest_path))["files"]
        return [entry for entry in listed if {"path", "bytes", "sha256"} <= set(entry)]
    except FileNotFoundError:
        raise UserError(f"{manifest_path} is missing: it lists the examples to read; run the "
                        "preprocess stage to write this folder") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"{manifest_path} lists no files ({type(error).__name__}: {error}); run "
                        "the preprocess stage again (--stages preprocess --force)") from None


def _part_entries(listed: list[dict], parts, examples_dir) -> list[dict]:
    """The entries of the TFRecords of `parts`, part by part, each part's sorted by path."""
    manifest_path = os.path.join(os.fspath(examples_dir), MANIFEST_FILE)
    entries = []
    for part in parts:
        found = [entry for entry in listed if entry["path"].startswith(f"part{part}/")]
        if not found:
            raise UserError(f"{manifest_path} lists no TFRecord files of part {part}; run the "
                            "preprocess stage first")
        entries.extend(sorted(found, key=lambda entry: entry["path"]))
    return entries


def listed_files(examples_dir, parts) -> list[str]:
    """Paths of the TFRecords of `parts` as the manifest lists them, each checked (size, sha256),
    together with stats.json when the manifest lists it; UserError naming any file that differs."""
    examples_dir = os.fspath(examples_dir)
    listed = listed_entries(examples_dir)
    entries = _part_entries(listed, parts, examples_dir)
    _verify(examples_dir, entries + [entry for entry in listed if entry["path"] == STATS_FILE])
    return [os.path.join(examples_dir, entry["path"]) for entry in entries]


def listed_unlabelled_files(examples_dir, parts) -> list[str]:
    """Paths of the uncoded frames' TFRecords of `parts` (unlabelled/part{p}/) and of the
    subjects in no part (unlabelled/outside/: no fold tests on them), as the manifest lists them,
    each checked like listed_files; [] for a folder preprocessed before they were written."""
    examples_dir = os.fspath(examples_dir)
    folders = [f"unlabelled/part{part}/" for part in parts] + ["unlabelled/outside/"]
    entries = [entry for folder in folders for entry in sorted(
        (e for e in listed_entries(examples_dir) if e["path"].startswith(folder)),
        key=lambda entry: entry["path"])]
    _verify(examples_dir, entries)
    return [os.path.join(examples_dir, entry["path"]) for entry in entries]


def _verify(examples_dir, entries) -> None:
    """UserError naming the files of `entries` that are missing or differ from the manifest."""
    damaged = damaged_files(examples_dir, entries)
    if damaged:
        missing = [path for path in damaged if not os.path.exists(path)]
        changed = [path for path in damaged if path not in missing]
        manifest_path = os.path.join(os.fspath(examples_dir), MANIFEST_FILE)
        problems = ([f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing"]
                    if missing else []) + \
            ([f"{', '.join(changed)} differ{'s' if len(changed) == 1 else ''} from "
              f"{manifest_path} (size or sha256)"] if changed else [])
        raise UserError(
            f"{'; '.join(problems)}: the file was changed, moved or damaged after preprocessing; "
            "restore it from a copy or run the preprocess stage again "
            "(--stages preprocess --force)")


def damaged_files(examples_dir, entries) -> list[str]:
    """Paths of the entries whose file is missing, of another size or another sha256 (a local
    folder or a URL)."""
    damaged = []
    for entry in entries:
        path = files.join(examples_dir, *entry["path"].split("/"))
        try:
            intact = (files.exists(path) and files.size(path) == entry["bytes"]
                      and files.sha256(path) == entry["sha256"])
        except OSError:   # unreadable
            intact = False
        if not intact:
            damaged.append(path)
    return damaged


def corrupt_record_error(examples_dir, files, error: Exception) -> Exception:
    """What to raise for TensorFlow's DataLossError (a corrupt record; it names no file) while
    reading `files`: a UserError naming those that no longer match the manifest, else `error`."""
    wanted = {os.path.relpath(os.fspath(f), os.fspath(examples_dir)).replace(os.sep, "/")
              for f in files}
    damaged = damaged_files(examples_dir, [entry for entry in listed_entries(examples_dir)
                                           if entry["path"] in wanted])
    if not damaged:
        return error
    # TensorFlow's own words, without the graph node it wraps them in ("{{function_node ...}}").
    reason = re.sub(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+\].*", "",
                    str(getattr(error, "message", error)).strip().splitlines()[-1])
    return UserError(
        f"reading the examples failed ({reason}): {', '.join(damaged)} changed after it was "
        "checked at the start of this run; restore it from a copy or run the preprocess stage "
        "again (--stages preprocess --force)")
