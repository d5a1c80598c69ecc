"""The preprocessing job: raw BP4D / DISFA folders (or the built-in synthetic set) -> face-aligned
TFRecords per subject-exclusive part.

    python -m pipeline.job --dataset bp4d --data_dir /data/BP4D --output_dir examples/bp4d \\
        --runner=DirectRunner --direct_num_workers=2 --direct_running_mode=multi_processing

Output (`output_dir`):
    part{1,2,3}/examples-SSSSS-of-NNNNN.tfrecord.gz   GZIP TFRecords of schemas.example: the
                                                       coded frames of the part's subjects
    unlabelled/part{1,2,3}/frames-*.tfrecord.gz        the same records for the uncoded frames of
                                                       the part's subjects (every AU -1): BP4D
                                                       images beyond the coded rows, sequences
                                                       without codes, --unlabelled_dir subjects
                                                       named like the dataset's
    unlabelled/outside/frames-*.tfrecord.gz            --unlabelled_dir frames of subjects in no
                                                       part (written only with --unlabelled_dir)
    rejected/rejected-00000-of-00001.jsonl             one JSON line per frame set aside
    stats.json      counts and AU occurrence per part, its unlabelled frames and its records with a
                    flow target; AU loss weights per training split; sequences per landmark
                    pairing (pipeline.sources.bp4d: how each was decided)
    manifest.json   subjects per part, counts, every file written (stats.json included) with its
                    size, sha256 and record count; readers take the part files from this list
                    (pipeline.manifest.listed_files, listed_unlabelled_files)
    _COMPLETE.json  written last (components.base format): parameters, input fingerprint,
                    versions, counts, timings. A folder without it is incomplete.
Every record of a sequence whose frame t + flow_offset was also aligned carries the optical flow
to it (pipeline.flow, docs/data.md), coded and uncoded frames alike.

The output folder is prepared, cached and recorded by the stage framework (components.base), as
for every stage: the pipeline's preprocess stage and `python -m pipeline.job` are one path.
Re-running with the same parameters on the same input does nothing (unless a file the manifest
lists went missing or changed); `force` rebuilds; a complete local output stays, readable,
until its replacement (written in `_STAGING/`) is complete; what changed is logged first. The
output may be a URL (gs://...); its path must not contain * ? [ (Beam reads it as a pattern,
and deletes what it matches). After the Beam job the outputs are read back and frames in =
examples written + unlabelled frames written + frames rejected is checked, and the coded frames
read against the rows of the label files; a mismatch fails the job.

Logged at INFO (`--log_level`): one line per sequence or video with its frames written and
rejected, and the Beam counters at the end; the summary is printed as JSON.

--runner=DirectRunner (the default) runs Beam's in-process FnApiRunner directly: no download of a
runner binary, no fallback pause. --direct_num_workers N with --direct_running_mode
multi_processing runs N worker processes. --runner=DataflowRunner stages this repository as the
workers' package (--setup_file defaults to it).
"""
from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import io
import json
import logging
import os
import struct
import sys
import time
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import (PipelineOptions, SetupOptions,
                                                  StandardOptions, WorkerOptions)
from apache_beam.runners.runner import PipelineState

from components.base import COMPLETION_FILE, UserError, files, package_versions
from components.startup import LOG_LEVELS, configure_logging
from jaa_keras.au_weights import au_loss_weights
from pipeline.manifest import MANIFEST_FILE, STATS_FILE, damaged_files, listed_entries
from pipeline.options import PreprocessOptions, refuse_unknown_flags, synthetic_fields
from pipeline.sources import (DatasetLayoutError, bp4d, disfa, part_of, source, unknown_subjects,
                              unlabelled)
from pipeline.synthetic import SyntheticSpec, ensure
from pipeline.transforms import (DEFAULT_FLOW_OFFSET, DESTINATIONS, EXAMPLES_SUFFIX, NAMESPACE,
                                 OUTSIDE, REJECTED_DIR, REJECTED_SUFFIX, AlignFrames,
                                 EncodeExamples, ReadUnits, ReportUnits, Tally, WriteExamples,
                                 WriteRejected, destination)
from schemas.face import AU_SETS, PARTS, au_names

WORK_DIR = "_work"
_IN_PROCESS_RUNNERS = {"directrunner", "direct", "switchingdirectrunner", "fnapirunner"}
# An AU without a positive frame in a training split counts half an occurrence (see au_weights).
ZERO_RATE_POSITIVES = 0.5
# Named after the module also under `python -m`, where __name__ is "__main__" and its level
# would not be the one components.startup.configure_logging sets.
_LOG = logging.getLogger(__spec__.name if __spec__ else __name__)


class JobIntegrityError(RuntimeError):
    """The outputs do not add up to the frames read; the output is left incomplete."""


def run_preprocessing(dataset: str, data_dir: str, output_dir: str,
                      beam_args: list[str] | None = None, force: bool = False, *,
                      landmark_offset: int | None = None, video_offset: int | None = None,
                      jpeg_quality: int = 95, num_shards: int = 0, frame_reshuffle: str = "off",
                      synthetic: SyntheticSpec | None = None, unlabelled_dir: str | None = None,
                      flow_offset: int = DEFAULT_FLOW_OFFSET, log=_LOG.info) -> dict:
    """Preprocess one dataset into `output_dir` as the pipeline's preprocess stage does (the same
    contract, caching and completion record); returns the summary kept in _COMPLETE.json with
    "status": "ran" or "skipped".

    dataset      "synthetic", "bp4d" or "disfa"
    data_dir     the raw dataset; for "synthetic" where the generated raw set lives (reused when
                 its SYNTHETIC.json matches `synthetic`, default SyntheticSpec())
    output_dir   a local folder or a URL (gs://...)
    unlabelled_dir  extra face videos / image sequences without AU codes, a local folder
                 (pipeline.sources.unlabelled), or None
    flow_offset  the flow target of frame t leads to frame t + flow_offset
    beam_args    Beam's own flags (--runner, --direct_num_workers, --project, ...)
    Raises a UserError before any work when the input is not usable.
    """
    from components.base import run_stage
    from components.preprocess.component import PREPROCESS
    if not output_dir:
        raise UserError("output_dir is required")
    result = run_stage(PREPROCESS, outputs={"examples": output_dir}, force=force, log=log,
                       parameters={
                           "dataset": dataset, "data_dir": data_dir,
                           "beam_args": list(beam_args or []), "jpeg_quality": jpeg_quality,
                           "num_shards": num_shards, "landmark_offset": landmark_offset,
                           "video_offset": video_offset, "frame_reshuffle": frame_reshuffle,
                           "synthetic": dataclasses.asdict(synthetic) if synthetic else None,
                           "unlabelled_dir": unlabelled_dir, "flow_offset": flow_offset})
    return {**result.summary, "status": result.status}


def read_raw(params: dict) -> dict:
    """The preprocess stage's sources: the raw dataset folder checked (generated first for the
    synthetic set) and fingerprinted, and so is the --unlabelled_dir when given."""
    raw_format, data_dir, _ = _raw_input(params)
    reader = source(raw_format)
    reader.validate_root(data_dir)
    strangers = unknown_subjects(raw_format, {unit.subject for unit in reader.list_units(data_dir)})
    if strangers:
        raise DatasetLayoutError(
            f"{data_dir}: subject(s) {', '.join(strangers)} are in no official {raw_format} part "
            f"(docs/data.md); move them out of the folder to preprocess the rest")
    fingerprints = {"raw": _fingerprint(data_dir)}
    extra = _unlabelled_dir(params)
    if extra:
        unlabelled.validate_root(extra)
        fingerprints["unlabelled"] = _fingerprint(extra)
    return fingerprints


def _unlabelled_dir(params: dict) -> str | None:
    return os.path.abspath(params["unlabelled_dir"]) if params.get("unlabelled_dir") else None


def write_examples(params: dict, output_dir: str) -> dict:
    """The preprocess stage's work: the Beam job writes `output_dir` (prepared and recorded by
    the stage framework); its outputs are read back and checked; returns the summary."""
    started = time.perf_counter()
    raw_format, data_dir, _ = _raw_input(params)
    units = source(raw_format).list_units(data_dir)
    expected_frames = _labelled_frames(raw_format, units)
    extra = _unlabelled_dir(params)
    units += unlabelled.list_units(extra) if extra else []
    read_options = _read_options(raw_format, params["landmark_offset"], params["video_offset"])
    options = PipelineOptions(params["beam_args"])
    runner, in_process = _runner(options)
    reshuffle = params["frame_reshuffle"] == "on" or (
        params["frame_reshuffle"] == "auto" and not in_process)
    pipeline = beam.Pipeline(runner=runner, options=options)
    build_pipeline(pipeline, units, raw_format, output_dir, read_options=read_options,
                   jpeg_quality=params["jpeg_quality"], num_shards=params["num_shards"],
                   reshuffle=reshuffle, flow_offset=params["flow_offset"], outside=bool(extra))
    result = pipeline.run()
    state = result.wait_until_finish()
    if state != PipelineState.DONE:
        raise JobIntegrityError(f"the Beam job ended in state {state}; {output_dir} is incomplete")
    beam_seconds = time.perf_counter() - started

    summary = _finish_output(output_dir, params["dataset"], units, read_options,
                             expected_frames, raw_format)
    summary["counters"] = _counters(result)
    _LOG.info("Beam counters: %s", ", ".join(f"{name} {value}"
                                             for name, value in summary["counters"].items()))
    summary["frame_reshuffle"] = {"option": params["frame_reshuffle"], "applied": reshuffle}
    summary["seconds"] = {"beam": round(beam_seconds, 3),
                          "total": round(time.perf_counter() - started, 3)}
    _LOG.info("%s: %d frames in, %d examples and %d unlabelled frames written, %d rejected",
              output_dir, summary["frames_in"], summary["examples_total"],
              summary["unlabelled_total"], summary["rejected_total"])
    return summary


def _raw_input(params: dict):
    """(raw format, absolute data_dir, synthetic spec or None); generates the synthetic set."""
    dataset, data_dir = params["dataset"], params["data_dir"]
    if not data_dir:
        raise ValueError("data_dir is required (for 'synthetic': where its raw data goes)")
    data_dir = os.path.abspath(data_dir)
    if dataset != "synthetic":
        return dataset, data_dir, None
    try:
        synthetic = SyntheticSpec(**(params["synthetic"] or {}))
    except (TypeError, ValueError) as e:
        raise UserError(f"synthetic dataset settings {params['synthetic']}: {e}") from None
    if synthetic.layout != "bp4d":
        raise ValueError("the 'synthetic' dataset uses the BP4D layout; for a DISFA-layout "
                         "synthetic set generate it with pipeline.synthetic and use 'disfa'")
    try:
        ensure(data_dir, synthetic)
    except FileExistsError as error:
        raise DatasetLayoutError(str(error)) from None
    return "bp4d", data_dir, synthetic


def build_pipeline(pipeline, units, raw_format: str, output_dir: str, *, read_options: dict,
                   jpeg_quality: int, num_shards: int, reshuffle: bool,
                   flow_offset: int = DEFAULT_FLOW_OFFSET, outside: bool = False) -> None:
    """The job's graph, top to bottom. `outside`: write unlabelled/outside/ (--unlabelled_dir)."""
    frames = (pipeline
              | "Units" >> beam.Create(units)
              | "ReadUnits" >> ReadUnits(read_options, reshuffle=reshuffle,
                                         num_aus=len(AU_SETS[raw_format])))
    aligned = frames | "AlignFrames" >> AlignFrames()
    encoded = aligned["aligned"] | "EncodeExamples" >> EncodeExamples(raw_format, jpeg_quality,
                                                                       flow_offset)
    examples = encoded["examples"]
    rejected = (aligned["rejected"], encoded["rejected"]) | "Rejected" >> beam.Flatten()
    _ = examples | "WriteExamples" >> WriteExamples(output_dir, num_shards, outside=outside)
    _ = rejected | "WriteRejected" >> WriteRejected(output_dir)
    _ = (examples, rejected) | "ReportUnits" >> ReportUnits()
    _ = ((frames, examples, rejected)
         | "Tally" >> Tally()
         | "WriteTally" >> beam.Map(lambda tally, path: files.write_json_atomic(path, tally),
                                    files.join(output_dir, WORK_DIR, "tally.json")))


# --------------------------------------------------------------------------------------------
# AU weights (docs/network.md)
def au_weights(positive, labelled) -> tuple[list[float], list[float], list[int]]:
    """(occurrence rates, loss weights, indices of AUs whose rate was floored).

    r_i = positives / labelled frames, w_i = (1/r_i) * n_au / sum_k (1/r_k). An AU with no
    positive frame (or no labelled one) would get an infinite weight; it counts
    ZERO_RATE_POSITIVES occurrences instead, i.e. the rarest rate the split could still show."""
    rates, floored = [], []
    for i, (pos, n) in enumerate(zip(positive, labelled)):
        if pos == 0 or n == 0:
            floored.append(i)
            pos = ZERO_RATE_POSITIVES
        rates.append(pos / max(n, 1))
    return rates, au_loss_weights(rates).tolist(), floored


def _stats(dataset: str, tally: dict) -> dict:
    names = au_names(dataset)
    empty = {"examples": 0, "with_flow": 0, "subjects": [], "positive": [0] * len(names),
             "negative": [0] * len(names), "unknown": [0] * len(names)}
    records = {folder: tally["records"].get(folder, empty) for folder in DESTINATIONS}
    parts = {}
    for p in PARTS:
        coded, uncoded = records[destination(p, True)], records[destination(p, False)]
        # with_flow: the part's records (examples and unlabelled frames) with a flow target
        parts[str(p)] = {**coded, "unlabelled": uncoded["examples"],
                         "unlabelled_subjects": uncoded["subjects"],
                         "with_flow": coded["with_flow"] + uncoded["with_flow"]}
    outside = records[destination(None, False)]
    for part in parts.values():
        part["occurrence_rate"] = [pos / (pos + neg) if pos + neg else None
                                   for pos, neg in zip(part["positive"], part["negative"])]
    splits = {}
    for test in PARTS:
        train = [str(p) for p in PARTS if p != test]
        positive = [sum(parts[p]["positive"][i] for p in train) for i in range(len(names))]
        labelled = [positive[i] + sum(parts[p]["negative"][i] for p in train)
                    for i in range(len(names))]
        rates, weights, floored = au_weights(positive, labelled)
        splits[f"fold{test}"] = {
            "test_part": test, "train_parts": [int(p) for p in train],
            "train_examples": sum(parts[p]["examples"] for p in train),
            "occurrence_rate": rates, "weights": weights,
            "floored": [names[i] for i in floored]}
        if floored:
            _LOG.warning("fold%d: no positive training frame for %s; weight computed with %.1f "
                         "occurrence", test, ", ".join(names[i] for i in floored),
                         ZERO_RATE_POSITIVES)
    return {"dataset": dataset, "aus": names, "frames_in": tally["frames_in"],
            "coded_frames_in": tally["coded_in"], "rejected": tally["rejected"], "parts": parts,
            "outside": {"unlabelled": outside["examples"], "with_flow": outside["with_flow"],
                        "subjects": outside["subjects"]},
            "splits": splits,
            "landmark_pairing": tally["landmark_pairing"],
            "weight_rule": "w_i = (1/r_i) * n_au / sum_k (1/r_k), r_i = positive / labelled frames "
                           "of the two training parts (docs/network.md); an AU without a positive "
                           f"frame counts {ZERO_RATE_POSITIVES} (listed under 'floored')"}


# --------------------------------------------------------------------------------------------
# The output read back and checked
def _finish_output(output_dir: str, dataset: str, units, read_options: dict,
                   expected_frames: int, raw_format: str | None = None) -> dict:
    """Read the outputs back, check the totals, write stats.json and manifest.json."""
    tally = files.read_json(files.join(output_dir, WORK_DIR, "tally.json"), "the job's tally")
    listed, records = [], {}
    for relative in files.walk_files(output_dir):
        path = files.join(output_dir, relative)
        folder = relative.rsplit("/", 1)[0] if "/" in relative else ""
        if folder in DESTINATIONS and relative.endswith(EXAMPLES_SUFFIX):
            count = _count_records(path)
        elif folder == REJECTED_DIR and relative.endswith(REJECTED_SUFFIX):
            count = _count_lines(path)
        else:
            continue
        records[folder] = records.get(folder, 0) + count
        listed.append(_manifest_entry(output_dir, relative, count))
    examples = {str(p): records.get(destination(p, True), 0) for p in PARTS}
    uncoded = {str(p): records.get(destination(p, False), 0) for p in PARTS}
    uncoded[OUTSIDE] = records.get(destination(None, False), 0)
    rejected = records.get(REJECTED_DIR, 0)
    written = sum(examples.values()) + sum(uncoded.values())
    problems = []
    if tally["coded_in"] != expected_frames:
        problems.append(f"the label files list {expected_frames} frames but {tally['coded_in']} "
                        f"coded frames were read")
    if tally["frames_in"] != written + rejected:
        problems.append(f"{tally['frames_in']} frames read but {sum(examples.values())} examples "
                        f"written + {sum(uncoded.values())} unlabelled frames written + "
                        f"{rejected} rejected")
    for folder in DESTINATIONS:
        tallied = tally["records"].get(folder, {}).get("examples", 0)
        count = records.get(folder, 0)
        if tallied != count:
            problems.append(f"{folder}: {tallied} records encoded but {count} in its files")
    if sum(tally["rejected"].values()) != rejected:
        problems.append(f"{sum(tally['rejected'].values())} frames rejected but {rejected} lines "
                        f"in {REJECTED_DIR}/")
    if problems:
        raise JobIntegrityError(f"{output_dir} does not add up: {'; '.join(problems)}; the output "
                                f"is left incomplete (no {COMPLETION_FILE})")

    files.write_json_atomic(files.join(output_dir, STATS_FILE), _stats(dataset, tally))
    listed.append(_manifest_entry(output_dir, STATS_FILE, None))
    raw_format = raw_format or dataset
    dataset_units = [u for u in units if u.dataset != unlabelled.DATASET]
    subjects = {str(p): sorted({u.subject for u in dataset_units
                                if part_of(u.dataset, u.subject) == p}) for p in PARTS}
    summary = {"dataset": dataset, "frames_in": tally["frames_in"],
               "coded_frames_in": tally["coded_in"], "examples": examples,
               "examples_total": sum(examples.values()), "unlabelled": uncoded,
               "unlabelled_total": sum(uncoded.values()),
               "with_flow_total": sum(t.get("with_flow", 0) for t in tally["records"].values()),
               "rejected_total": rejected, "rejected_by_reason": tally["rejected"],
               "subjects": subjects}
    extra = sorted({u.subject for u in units if u.dataset == unlabelled.DATASET})
    if extra:   # --unlabelled_dir subjects: named like a dataset subject, or in no part
        strangers = set(unknown_subjects(raw_format, extra))
        summary["unlabelled_dir_subjects"] = {
            **{str(p): [s for s in extra if s not in strangers and part_of(raw_format, s) == p]
               for p in PARTS},
            OUTSIDE: sorted(strangers)}
    files.write_json_atomic(files.join(output_dir, MANIFEST_FILE), {
        **summary, "aus": au_names(dataset), "read_options": read_options, "files": listed,
        "versions": package_versions()})
    files.remove(files.join(output_dir, WORK_DIR))
    return summary


def _manifest_entry(output_dir: str, relative: str, records: int | None) -> dict:
    """A file of the output as manifest.json lists it (pipeline.manifest reads it back)."""
    path = files.join(output_dir, relative)
    return {"path": relative, "bytes": files.size(path), "sha256": files.sha256(path),
            "records": records}


def _labelled_frames(raw_format: str, units) -> int:
    """Read every label file once before the job: an unreadable one is a DatasetLayoutError
    naming it, and the count is what the readers must yield."""
    if raw_format == "bp4d":   # a sequence without AU codes has no label file
        return sum(len(bp4d.read_au_codes(unit.paths["labels"])[0]) for unit in units
                   if "labels" in unit.paths)
    return sum(len(disfa.read_labels(unit.paths["labels"], unit.subject)[0]) for unit in units)


def _counters(result) -> dict:
    """The job's Beam counters (committed values where the runner reports them)."""
    try:
        counters = result.metrics().query()["counters"]
    except (NotImplementedError, KeyError):
        return {}
    totals = {}
    for counter in counters:
        if counter.key.metric.namespace == NAMESPACE:
            value = counter.committed if counter.committed is not None else counter.attempted
            totals[counter.key.metric.name] = totals.get(counter.key.metric.name, 0) + value
    return dict(sorted(totals.items()))


def _read_options(raw_format: str, landmark_offset, video_offset) -> dict:
    options = {}
    if landmark_offset is not None:
        options["landmark_offset"] = landmark_offset
    if video_offset is not None:
        if raw_format != "disfa":
            raise ValueError("video_offset applies to DISFA only")
        options["video_offset"] = video_offset
    return options


def _runner(options: PipelineOptions):
    """(runner, in process?) for --runner; DirectRunner means the in-process FnApiRunner."""
    name = options.view_as(StandardOptions).runner or "DirectRunner"
    if name.lower() in _IN_PROCESS_RUNNERS:
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner
        _LOG.info("--runner=%s: running Beam's in-process FnApiRunner", name)
        return FnApiRunner(), True
    if name.lower() == "bundlebaseddirectrunner":
        return name, True
    if name.lower() in ("dataflowrunner", "dataflow"):
        _default_setup_file(options)
    return name, False


def _default_setup_file(options: PipelineOptions) -> None:
    """Dataflow workers need this package: stage the repository unless told otherwise."""
    setup = options.view_as(SetupOptions)
    container = options.view_as(WorkerOptions).sdk_container_image
    if setup.setup_file or setup.extra_packages or container:
        return
    repo = Path(__file__).resolve().parents[1]
    for name in ("setup.py", "pyproject.toml"):
        if (repo / name).is_file():
            setup.setup_file = str(repo / name)
            _LOG.info("staging %s for the Dataflow workers (--setup_file)", setup.setup_file)
            return


# --------------------------------------------------------------------------------------------
# Reading the output and the input
def output_intact(folder: str | os.PathLike) -> bool:
    """Every file the manifest lists is there with its size and sha256 (before skipping a run;
    hashing costs seconds per GB, against the hours a rebuild takes)."""
    folder = os.fspath(folder)
    try:
        changed = damaged_files(folder, listed_entries(folder))
    except UserError:   # no manifest, or one that lists nothing
        return False
    if changed:
        _LOG.warning("%s has a completion record but %s of its manifest %s missing or changed; "
                     "rebuilding", folder, ", ".join(changed[:5]),
                     "is" if len(changed) == 1 else "are")
    return not changed


def _count_records(path: str) -> int:
    """Records in a GZIP TFRecord file (framing: uint64 length, 4-byte CRC, data, 4-byte CRC)."""
    count = 0
    with gzip.open(io.BytesIO(files.read_bytes(path))) as f:
        while header := f.read(12):
            if len(header) != 12:
                raise JobIntegrityError(f"{path}: truncated TFRecord header after {count} records")
            (length,) = struct.unpack("<Q", header[:8])
            if len(f.read(length + 4)) != length + 4:
                raise JobIntegrityError(f"{path}: truncated TFRecord after {count} records")
            count += 1
    return count


def _count_lines(path: str) -> int:
    return sum(1 for line in files.read_bytes(path).splitlines() if line.strip())


def _fingerprint(folder: str) -> str:
    """Hash of every file's relative path, size and modification time under `folder`."""
    digest = hashlib.sha256()
    for directory, subfolders, names in os.walk(folder):
        subfolders.sort()
        for name in sorted(names):
            path = os.path.join(directory, name)
            try:
                stat = os.stat(path)
            except OSError:   # a dangling or looping link: the readers report it; hash the link
                stat = os.lstat(path)
            relative = os.path.relpath(path, folder)
            digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    # The command line's own flag, not a job parameter (run_pipeline.py takes PreprocessOptions).
    own_flags = argparse.ArgumentParser(
        prog="python -m pipeline.job", add_help=False, allow_abbrev=False,
        usage="python -m pipeline.job --data_dir DIR --output_dir DIR [flags] (--help lists them)")
    own_flags.add_argument("--log_level", choices=LOG_LEVELS, default="INFO",
                              help="INFO adds a line per sequence or video done, the runner and "
                                   "the Beam counters to the warnings")
    if {"-h", "--help"} & set(argv):
        parser = argparse.ArgumentParser(
            prog="python -m pipeline.job", description=__doc__.split("\n\n")[0],
            parents=[own_flags],
            epilog="Beam's own flags (--runner, --direct_num_workers, --direct_running_mode, "
                   "--project, --region, --temp_location, --setup_file, ...) pass through.")
        PreprocessOptions._add_argparse_args(parser)
        parser.print_help()
        raise SystemExit(0)
    logged, argv = own_flags.parse_known_args(argv)
    refuse_unknown_flags(own_flags, argv)
    configure_logging(logged.log_level)
    options = PipelineOptions(argv).view_as(PreprocessOptions)
    if not options.output_dir or not options.data_dir:
        raise SystemExit("pipeline.job: --data_dir and --output_dir are required")
    synthetic = SyntheticSpec(**synthetic_fields(options.get_all_options())) \
        if options.dataset == "synthetic" else None
    try:
        return run_preprocessing(
            options.dataset, options.data_dir, options.output_dir, argv, force=options.force,
            landmark_offset=options.landmark_offset, video_offset=options.video_offset,
            jpeg_quality=options.jpeg_quality, num_shards=options.num_shards,
            frame_reshuffle=options.frame_reshuffle, synthetic=synthetic,
            unlabelled_dir=options.unlabelled_dir, flow_offset=options.flow_offset)
    except UserError as error:
        raise SystemExit(f"pipeline.job: {error}") from None


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
