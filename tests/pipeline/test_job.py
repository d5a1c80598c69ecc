"""The preprocessing job end to end on tiny synthetic raw folders, on Beam's in-process runner."""
import gzip
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import apache_beam as beam
import cv2
import numpy as np
import pytest
import tensorflow as tf
import tfrecord_lite
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions
from apache_beam.runners.portability import prism_runner
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from components.base import UserError
from pipeline import job
from pipeline.align import align_face, alignment_matrix, eye_centres
from pipeline.sources import DatasetLayoutError, bp4d, part_of
from pipeline.synthetic import REJECTED_PLANTS, SyntheticSpec, generate
from schemas.example import parse_examples
from schemas.face import AU_SETS
from tests._tiny_records import mean_face

REPO = Path(__file__).resolve().parents[2]

TINY = SyntheticSpec(subjects=3, tasks=2, frames=6, seed=2)
REASONS = {"no_landmarks": ("no landmarks", "landmark file missing"),
           "corrupt_jpeg": ("image unreadable",), "missing_image": ("image missing",),
           "degenerate_landmarks": ("alignment failed",)}


def _run(raw, out, *beam_args, dataset="synthetic", **kwargs):
    kwargs.setdefault("synthetic", TINY if dataset == "synthetic" else None)
    return job.run_preprocessing(dataset, str(raw), str(out), list(beam_args), **kwargs)


def _tfrecords(out, part=None):
    parts = [part] if part else (1, 2, 3)
    return sorted(str(p) for n in parts for p in (out / f"part{n}").glob("*.tfrecord.gz"))


def _unlabelled(out, folder):
    """The TFRecords of unlabelled/<folder> (part1 ... or outside)."""
    return sorted(str(p) for p in (out / "unlabelled" / folder).glob("frames-*.tfrecord.gz"))


def _rejected(out):
    return [json.loads(line) for path in sorted((out / "rejected").glob("*.jsonl"))
            for line in path.read_text().splitlines()]


def _parsed(files, num_aus):
    dataset = (tf.data.TFRecordDataset(files, compression_type="GZIP")
               .batch(16).map(lambda s: parse_examples(s, num_aus)))
    rows = []
    for batch in dataset:
        for i in range(len(batch["frame"])):
            rows.append({k: v[i].numpy() for k, v in batch.items()})
    return rows


def _mtimes(out):
    return {p: os.stat(p).st_mtime_ns for p in map(str, out.rglob("*")) if os.path.isfile(p)}


def _no_prism(*args, **kwargs):
    raise AssertionError("--runner=DirectRunner must not start Prism (it downloads a binary)")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("job")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(prism_runner.PrismRunner, "__init__", _no_prism)
        summary = _run(root / "raw", root / "examples", "--runner=DirectRunner")
    return root / "raw", root / "examples", summary


def test_totals_add_up_and_planted_frames_are_rejected_with_their_reason(built):
    raw, out, summary = built
    planted = json.loads((raw / "SYNTHETIC.json").read_text())["planted"]
    assert summary["status"] == "ran"
    assert summary["frames_in"] == TINY.subjects * TINY.tasks * TINY.frames
    assert summary["frames_in"] == summary["examples_total"] + summary["rejected_total"]
    rejected = {(r["subject"], r["task"], r["frame"]): r for r in _rejected(out)}
    expected = {(p["subject"], p["task"], p["frame"]): p["kind"] for p in planted
                if p["kind"] in REJECTED_PLANTS}
    assert set(rejected) == set(expected)
    for key, kind in expected.items():
        assert rejected[key]["reason"].startswith(REASONS[kind]), (kind, rejected[key]["reason"])
        assert rejected[key]["image_source"].startswith(str(raw))
    assert sum(summary["rejected_by_reason"].values()) == len(rejected)


def test_manifest_lists_every_file_with_its_checksum_and_the_record_is_written_last(built):
    raw, out, summary = built
    manifest = json.loads((out / "manifest.json").read_text())
    listed = {f["path"]: f for f in manifest["files"]}
    unlabelled = [p for n in (1, 2, 3) for p in _unlabelled(out, f"part{n}")]
    assert len(unlabelled) == 3 and not (out / "unlabelled" / "outside").exists()
    assert set(listed) == {os.path.relpath(p, out) for p in _tfrecords(out) + unlabelled} | {
        os.path.relpath(p, out) for p in map(str, (out / "rejected").glob("*.jsonl"))} | {
        "stats.json"}
    for path, entry in listed.items():
        data = (out / path).read_bytes()
        assert entry["bytes"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["subjects"] == {"1": ["F001"], "2": ["F003"], "3": ["F004"]}
    assert manifest["examples"] == summary["examples"] and manifest["versions"]["apache-beam"]
    record = json.loads((out / "_COMPLETE.json").read_text())
    assert record["stage"] == "preprocess"
    assert record["summary"]["frames_in"] == summary["frames_in"]
    newest_output = max(os.stat(p).st_mtime_ns for p in _mtimes(out) if "_COMPLETE" not in p)
    assert os.stat(out / "_COMPLETE.json").st_mtime_ns >= newest_output
    assert not (out / "_work").exists() and not (out / "_STARTED.json").exists()


def test_examples_read_back_with_tf_data_match_the_raw_frames(built):
    raw, out, summary = built
    raw_frames = {(f.subject, f.task, f.frame): f for unit in bp4d.list_units(raw)
                  for f in bp4d.read_unit(unit)}
    for part in (1, 2, 3):
        rows = _parsed(_tfrecords(out, part), len(AU_SETS["synthetic"]))
        assert len(rows) == summary["examples"][str(part)]
        for row in rows:
            key = (row["subject"].decode(), row["task"].decode(), int(row["frame"]))
            source = raw_frames[key]
            np.testing.assert_array_equal(row["au"], source.au)   # labels, -1 for code 9
            face = align_face(source.image, source.landmarks)
            points = row["landmarks"].reshape(49, 2)
            np.testing.assert_allclose(points, face.landmarks, atol=1e-4)
            left, right = eye_centres(points)
            assert abs(left[1] - right[1]) < 1e-3
            assert row["inter_ocular"] == pytest.approx(np.hypot(*(right - left)), rel=1e-5)
            assert row["image"].shape == (200, 200, 3)
            assert np.abs(row["image"].astype(int) - face.image).mean() < 3   # JPEG q95
    not_coded = [p for p in json.loads((raw / "SYNTHETIC.json").read_text())["planted"]
                 if p["kind"].startswith("not_coded")]
    assert any((raw_frames[(p["subject"], p["task"], p["frame"])].au == -1).any()
               for p in not_coded)


def _records_without_tensorflow(path):
    with gzip.open(path, "rb") as f:
        while header := f.read(12):
            (length,) = struct.unpack("<Q", header[:8])
            data = f.read(length)
            f.read(4)
            yield tfrecord_lite.decode_example(data)


def test_examples_read_back_with_tfrecord_lite_equal_tf_data(built):
    raw, out, summary = built
    files = _tfrecords(out)
    lite = [r for path in files for r in _records_without_tensorflow(path)]
    reference = {(r["subject"], r["task"], int(r["frame"])): r
                 for r in _parsed(files, len(AU_SETS["synthetic"]))}
    assert len(lite) == len(reference) == summary["examples_total"]
    for record in lite:
        key = (record["subject"][0], record["task"][0], int(record["frame"][0]))
        row = reference[key]
        np.testing.assert_array_equal(record["au"], row["au"])
        np.testing.assert_array_equal(record["landmarks"], row["landmarks"])
        assert record["inter_ocular"][0] == row["inter_ocular"]
        assert record["image"][0][:2] == b"\xff\xd8"   # JPEG bytes


def test_stats_weights_match_a_hand_computation_from_the_examples(built):
    raw, out, summary = built
    stats = json.loads((out / "stats.json").read_text())
    assert stats["aus"] == [f"AU{a:02d}" for a in AU_SETS["bp4d"]]
    labels = {p: np.array([r["au"] for r in _parsed(_tfrecords(out, p), 12)]) for p in (1, 2, 3)}
    for p, au in labels.items():
        assert stats["parts"][str(p)]["positive"] == (au == 1).sum(0).tolist()
        assert stats["parts"][str(p)]["unknown"] == (au == -1).sum(0).tolist()
    for test in (1, 2, 3):
        train = np.concatenate([labels[p] for p in (1, 2, 3) if p != test])
        positive, labelled = (train == 1).sum(0), (train >= 0).sum(0)
        rate = np.where(positive == 0, 0.5, positive) / labelled
        weights = (1 / rate) * 12 / (1 / rate).sum()
        split = stats["splits"][f"fold{test}"]
        assert split["train_parts"] == [p for p in (1, 2, 3) if p != test]
        np.testing.assert_allclose(split["weights"], weights, rtol=1e-6)
        assert sum(split["weights"]) == pytest.approx(12)


def test_au_weights_by_hand_and_a_zero_rate_gets_a_finite_documented_weight():
    rates, weights, floored = job.au_weights([1, 3], [4, 4])
    assert rates == [0.25, 0.75] and weights == pytest.approx([1.5, 0.5]) and floored == []
    rates, weights, floored = job.au_weights([0, 5, 2], [10, 10, 0])
    assert floored == [0, 2] and rates[0] == 0.05 and all(np.isfinite(weights))
    assert weights[0] > weights[1]


def test_the_job_writes_a_url_as_it_writes_a_local_folder(built):
    """An output that is not on the local disk (TensorFlow's in-memory file system, standing for
    gs://, which neither the framework nor Beam can reach by local paths) goes through the same
    stage: the same examples, a completion record, a manifest whose files check out, a skip when
    nothing changed, and TensorFlow reads the records back."""
    import tests._ram_filesystem  # noqa: F401  (makes ram:// a Beam file system)
    from components.base import Artifact, files
    raw, out, summary = built
    url = "ram://bucket/run one/examples"
    ran = _run(raw, url, "--runner=DirectRunner")
    assert ran["status"] == "ran" and ran["examples"] == summary["examples"]
    assert Artifact(url).record()["stage"] == "preprocess" and job.output_intact(url)
    assert sorted(files.listdir(url)) == sorted(p.name for p in out.iterdir()
                                                if not p.name.startswith("_LOCK"))
    again = _run(raw, url, "--runner=DirectRunner")
    assert again["status"] == "skipped"
    written = [files.join(url, f) for f in files.walk_files(url) if f.endswith(".tfrecord.gz")]
    assert len(_parsed(written, len(AU_SETS["bp4d"]))) == summary["examples_total"]


def test_rerun_is_a_noop_and_force_rebuilds(built, tmp_path):
    raw, out, summary = built
    before = _mtimes(out)
    argv = ["--dataset=synthetic", f"--data_dir={raw}", f"--output_dir={out}",
            "--synthetic_subjects=3", "--synthetic_tasks=2", "--synthetic_frames=6",
            "--synthetic_seed=2", "--runner=DirectRunner"]
    again = job.main(argv)
    assert again["status"] == "skipped" and again["examples"] == summary["examples"]
    assert _mtimes(out) == before
    forced = job.main(argv + ["--force"])
    assert forced["status"] == "ran" and forced["examples"] == summary["examples"]
    assert _mtimes(out)[str(out / "_COMPLETE.json")] > before[str(out / "_COMPLETE.json")]


def test_an_incomplete_output_is_rebuilt_and_a_foreign_folder_refused(built, tmp_path):
    raw, _, summary = built
    out = tmp_path / "examples"
    _run(raw, out)
    # As if the job had died at the end: the started record is there, the completion record not.
    (out / "_COMPLETE.json").rename(out / "_STARTED.json")
    (out / "part1" / "examples-00007-of-00009.tfrecord.gz").write_bytes(b"half a file")
    rebuilt = _run(raw, out)
    assert rebuilt["status"] == "ran" and rebuilt["examples"] == summary["examples"]
    assert not (out / "part1" / "examples-00007-of-00009.tfrecord.gz").exists()
    assert (out / "_COMPLETE.json").exists()
    # complete, but a file went missing, or changed at the same size (only the checksum tells)
    next(out.glob("part2/*.tfrecord.gz")).unlink()
    assert not job.output_intact(str(out))
    for damaged in (next(out.glob("part3/*.tfrecord.gz")), out / "stats.json"):
        data = damaged.read_bytes()
        damaged.write_bytes(data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 1])
                            + data[len(data) // 2 + 1:])
        assert not job.output_intact(str(out))
    assert _run(raw, out)["status"] == "ran" and _tfrecords(out, 2)
    assert job.output_intact(str(out))
    mine = tmp_path / "my_folder"
    mine.mkdir()
    (mine / "thesis.tex").write_text("keep")
    with pytest.raises(UserError, match="not written by this pipeline"):
        _run(raw, mine)
    assert (mine / "thesis.tex").read_text() == "keep"


def test_outputs_that_do_not_add_up_fail_loudly(built, tmp_path):
    raw, _, _ = built
    out = tmp_path / "examples"
    units = bp4d.list_units(raw)
    with beam.Pipeline(runner=job._runner(PipelineOptions([]))[0]) as pipeline:
        job.build_pipeline(pipeline, units, "bp4d", str(out), read_options={}, jpeg_quality=95,
                           num_shards=0, reshuffle=False)
    for path in (out / "rejected").glob("*.jsonl"):   # lose the rejected frames
        path.write_text("")
    with pytest.raises(job.JobIntegrityError, match="frames read but"):
        job._finish_output(str(out), "synthetic", units, {}, expected_frames=36)
    assert not (out / "_COMPLETE.json").exists()


def test_a_disfa_layout_synthetic_set(tmp_path, caplog):
    spec = SyntheticSpec(layout="disfa", subjects=3, frames=6, seed=4)
    record = generate(tmp_path / "raw", spec)
    with caplog.at_level("INFO", logger="pipeline.transforms"):
        summary = _run(tmp_path / "raw", tmp_path / "examples", dataset="disfa")
    assert summary["frames_in"] == 18 == summary["examples_total"] + summary["rejected_total"]
    rejected = {(r["subject"], r["frame"]) for r in _rejected(tmp_path / "examples")}
    assert rejected == {(p["subject"], p["frame"]) for p in record["planted"]
                        if p["kind"] in REJECTED_PLANTS}
    per_video = [r.getMessage() for r in caplog.records if r.name == "pipeline.transforms"]
    assert len(per_video) == 3 and all(re.fullmatch(r"SN\d{3}: 6 frames, \d written, "
                                                     r"\d rejected( \(.+\))?", line)
                                       for line in per_video), per_video
    rows = _parsed(_tfrecords(tmp_path / "examples"), len(AU_SETS["disfa"]))
    assert len(rows) == summary["examples_total"] and rows[0]["au"].shape == (8,)
    bad = [p for p in record["planted"] if p["kind"] == "bad_intensity"][0]
    row = [r for r in rows
           if r["subject"].decode() == bad["subject"] and r["frame"] == bad["frame"]]
    assert (row[0]["au"] == -1).sum() == 1
    stats = json.loads((tmp_path / "examples" / "stats.json").read_text())
    assert len(stats["splits"]["fold3"]["weights"]) == 8


def test_a_missing_root_or_another_layout_fails_before_the_job_starts(built, tmp_path):
    raw, _, _ = built
    with pytest.raises(UserError, match="is not a folder"):
        _run(tmp_path / "nowhere", tmp_path / "out1", dataset="bp4d")
    with pytest.raises(UserError, match="no DISFA labels"):
        _run(raw, tmp_path / "out2", dataset="disfa")
    assert not (tmp_path / "out1").exists() and not (tmp_path / "out2").exists()
    with pytest.raises(SystemExit, match="no DISFA labels"):
        job.main(["--dataset=disfa", f"--data_dir={raw}", f"--output_dir={tmp_path / 'out3'}"])


def test_direct_runner_means_the_in_process_runner():
    for flags in ([], ["--runner=DirectRunner"], ["--runner=FnApiRunner"]):
        runner, in_process = job._runner(PipelineOptions(flags))
        assert isinstance(runner, FnApiRunner) and in_process


def test_dataflow_runs_get_this_package_staged():
    options = PipelineOptions(["--runner=DataflowRunner", "--project=p", "--region=r",
                               "--temp_location=gs://bucket/tmp"])
    runner, in_process = job._runner(options)
    assert runner == "DataflowRunner" and not in_process
    setup_file = options.view_as(SetupOptions).setup_file
    assert os.path.basename(setup_file) in ("setup.py", "pyproject.toml")
    assert os.path.isfile(setup_file)
    kept = PipelineOptions(["--runner=DataflowRunner", "--setup_file=/x/setup.py"])
    job._runner(kept)
    assert kept.view_as(SetupOptions).setup_file == "/x/setup.py"


@pytest.mark.slow
def test_multiprocessing_workers_and_frame_reshuffle_give_the_same_examples(built, tmp_path):
    # As users start it: the command line in a fresh process. Beam's runner waits forever for a
    # worker process that has died, so a time limit turns such a hang into a failure.
    raw, out, summary = built
    examples = tmp_path / "examples"
    command = [sys.executable, "-m", "pipeline.job", "--dataset=synthetic", f"--data_dir={raw}",
               f"--output_dir={examples}", f"--synthetic_subjects={TINY.subjects}",
               f"--synthetic_tasks={TINY.tasks}", f"--synthetic_frames={TINY.frames}",
               f"--synthetic_seed={TINY.seed}", "--direct_num_workers=2",
               "--direct_running_mode=multi_processing", "--frame_reshuffle=on"]
    done = subprocess.run(command, cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    parallel = json.loads(done.stdout[re.search(r"^\{$", done.stdout, re.M).start():])
    assert parallel["examples"] == summary["examples"]
    keys = lambda o: sorted((r["subject"], r["task"], int(r["frame"]))  # noqa: E731
                            for r in _parsed(_tfrecords(o), 12))
    assert keys(examples) == keys(out)


def test_an_output_path_with_a_wildcard_is_refused_and_sibling_runs_keep_their_files(
        built, tmp_path):
    raw, out, _ = built
    for sibling in ("exp1", "exp2"):
        shutil.copytree(out, tmp_path / sibling)
    before = {s: _mtimes(tmp_path / s) for s in ("exp1", "exp2")}
    for pattern in ("exp*", "exp[12]"):
        with pytest.raises(UserError, match=rf"output folder '.*{re.escape(pattern)}' contains"):
            _run(raw, tmp_path / pattern)
        with pytest.raises(SystemExit, match=r"without \* \? \["):
            job.main(["--dataset=synthetic", f"--data_dir={raw}",
                      f"--output_dir={tmp_path / pattern}", "--synthetic_subjects=3",
                      "--synthetic_tasks=2", "--synthetic_frames=6", "--synthetic_seed=2"])
        assert not (tmp_path / pattern).exists()
    for sibling in ("exp1", "exp2"):
        assert _mtimes(tmp_path / sibling) == before[sibling]
        assert job.output_intact(str(tmp_path / sibling))


def test_spaces_quotes_unicode_and_brackets_in_the_data_path_and_spaces_in_the_output(
        built, tmp_path):
    raw, _, summary = built
    odd_raw = tmp_path / "raw data [v2] 'Zoë' \"x\""
    shutil.copytree(raw, odd_raw)
    out = tmp_path / "my runs 'ü'" / "examples"
    again = _run(odd_raw, out, num_shards=1)
    assert again["status"] == "ran" and again["examples"] == summary["examples"]
    assert len(_tfrecords(out)) == 3


def test_a_rebuild_says_what_changed_and_keeps_the_previous_output_until_it_is_complete(
        built, tmp_path, caplog):
    raw, out, summary = built
    copy = tmp_path / "examples"
    shutil.copytree(out, copy)
    before = _mtimes(copy)
    finished = json.loads((copy / "_COMPLETE.json").read_text())["timings"]["finished_at"]

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed while the job runs")
    with pytest.MonkeyPatch.context() as patch, caplog.at_level("INFO"):
        patch.setattr(job, "build_pipeline", killed)
        with pytest.raises(KeyboardInterrupt):
            _run(raw, copy, jpeg_quality=80)
    assert f"holds the complete output of {finished}" in caplog.text
    assert "jpeg_quality 95 -> 80" in caplog.text
    assert _mtimes(copy).items() >= before.items()           # the old output, untouched
    assert job.output_intact(str(copy)) and (copy / "_STAGING" / "_STARTED.json").exists()
    assert _run(raw, copy)["status"] == "skipped"            # and still the output for quality 95
    rebuilt = _run(raw, copy, jpeg_quality=80, num_shards=1)
    assert rebuilt["status"] == "ran" and rebuilt["examples"] == summary["examples"]
    record = json.loads((copy / "_COMPLETE.json").read_text())
    assert record["parameters"]["jpeg_quality"] == 80 and job.output_intact(str(copy))
    assert sorted(p.name for p in copy.iterdir()) == [
        "_COMPLETE.json", "manifest.json", "part1", "part2", "part3", "rejected", "stats.json",
        "unlabelled"]
    assert len(_tfrecords(copy)) == 3


def test_damaged_bp4d_rows_folders_and_faces_are_rejected_with_their_reason(tmp_path):
    """One job over raw folders written by the BP4D writer, then damaged as users' copies are:
    each frame that cannot be used is in rejected/ with its reason, the totals still add up, a
    symbolic link loop is no traceback, and stats.json counts how each sequence's landmarks were
    paired with its frames."""
    from tests._tiny_records import mean_face
    raw = tmp_path / "raw data"
    first = 100
    images = range(first - 2, first + 6)      # the tracker's span; coding starts 2 frames in
    coded = range(first, first + 5)
    rng = np.random.default_rng(0)
    face = {f: mean_face(rng, jitter=0.5) for f in images}
    picture = {f: np.full((200, 200, 3), 90 + f % 50, np.uint8) for f in images}
    codes = {f: {1: f % 2, 2: 1} for f in coded}
    squeezed = dict(face)                     # eyes 1.2 px apart: no face has that geometry
    squeezed[first + 1] = face[first + 1].copy()
    squeezed[first + 1][25:31] = squeezed[first + 1][19:25] + [1.2, 0]
    bp4d.write_sequence(raw, "F001", "T1", picture, squeezed, codes, landmark_entries="images")
    bp4d.write_sequence(raw, "F001", "T2", picture, face, codes)            # entries = coded rows
    bp4d.write_sequence(raw, "F003", "T1", {f: picture[f] for f in coded}, face, codes)
    bp4d.write_sequence(raw, "F003", "T2", picture, face, codes)
    label = raw / "AUCoding/AU_OCC/F001_T2.csv"
    lines = label.read_text().splitlines()
    label.write_text("\n".join(lines + [lines[-1]]) + "\n")                  # a duplicated row
    loop = raw / "Sequences_2D+3D/F003/T2"
    for image in loop.iterdir():
        image.unlink()
    loop.rmdir()
    os.symlink("T2", loop)                                                   # a symbolic link loop

    summary = _run(raw, tmp_path / "examples", dataset="bp4d")

    # F001 T1 has one landmark entry per image: its 3 images around the coded rows are uncoded
    assert summary["frames_in"] == 4 * len(coded) + 1 + 3
    assert summary["coded_frames_in"] == 4 * len(coded) + 1
    assert summary["unlabelled"] == {"1": 3, "2": 0, "3": 0, "outside": 0}
    assert summary["frames_in"] == summary["examples_total"] + summary["unlabelled_total"] + \
        summary["rejected_total"]
    reasons = {(r["subject"], r["task"], r["frame"], r["reason"].split(":")[0] + ":"
                + r["reason"].split(":")[1]) for r in _rejected(tmp_path / "examples")}
    assert reasons == {
        ("F001", "T1", first + 1, "alignment failed: implausible face"),
        ("F001", "T2", coded[-1], "duplicate frame row: frame 104 is coded again in " + str(label)),
        *{("F003", "T2", f, "image folder unreadable: Too many levels of symbolic links")
          for f in coded}}
    stats = json.loads((tmp_path / "examples" / "stats.json").read_text())
    assert stats["rejected"] == {"alignment failed": 1, "duplicate frame row": 1,
                                 "image folder unreadable": len(coded)}
    assert stats["landmark_pairing"] == {
        "first image": 1, "first coded frame": 2,
        "landmark_offset option (counts fit both spans)": 1}


def test_a_frame_that_breaks_alignment_unexpectedly_is_set_aside_and_the_rest_aligned():
    """An exception nobody foresaw on one frame (here OpenCV refusing an int64 image) rejects that
    frame with the exception and where it was raised; the job's other frames go on."""
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to
    from pipeline.sources.records import RawFrame
    from pipeline.transforms import AlignFrames
    from tests._tiny_records import mean_face

    def frame(number, image):
        return RawFrame("bp4d", "F001", "T1", number, image, mean_face() + 50, np.zeros(12, np.int64),
                        f"raw/{number}.jpg", "landmarks.mat")

    good = np.full((300, 300, 3), 128, np.uint8)
    with TestPipeline() as pipeline:
        outputs = (pipeline | beam.Create([frame(1, good), frame(2, good.astype(np.int64)),
                                           frame(3, good)])
                   | AlignFrames())
        assert_that(outputs["aligned"] | "Frames" >> beam.Map(lambda face: face.frame),
                    equal_to([1, 3]), label="aligned")
        assert_that(outputs["rejected"] | "Reasons" >> beam.Map(
            lambda r: (r.frame, r.category, "error" in r.reason and "align.py:" in r.reason)),
            equal_to([(2, "unexpected error", True)]), label="rejected")


def _claims_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The JPEG with its frame header (SOF0) claiming another size: its data no longer fits."""
    start = jpeg.index(b"\xff\xc0")   # marker, length (2 bytes), precision (1), height, width
    return (jpeg[:start + 5] + height.to_bytes(2, "big") + width.to_bytes(2, "big")
            + jpeg[start + 9:])


def test_a_frame_whose_decoder_fails_unexpectedly_is_rejected_and_the_job_finishes(
        tmp_path, caplog):
    """A JPEG whose header claims 65000 x 65000 pixels makes OpenCV's decoder raise (cv2.error:
    over its pixel limit), which the reader does not anticipate. That frame is in rejected/ with
    the exception named, the other frames become examples, and the totals add up; the job logs
    one line per sequence and its counters."""
    from tests._tiny_records import mean_face
    raw = tmp_path / "raw"
    frames = range(1, 5)
    picture = {f: np.full((200, 200, 3), 90 + 10 * f, np.uint8) for f in frames}
    codes = {f: {1: f % 2, 2: 1} for f in frames}
    rng = np.random.default_rng(1)
    for subject in ("F001", "F003"):
        bp4d.write_sequence(raw, subject, "T1", picture, {f: mean_face(rng) for f in frames}, codes)
    broken = raw / "Sequences_2D+3D" / "F003" / "T1" / bp4d.image_name("F003", 3)
    broken.write_bytes(_claims_size(broken.read_bytes(), 65000, 65000))

    with caplog.at_level("INFO"):
        summary = _run(raw, tmp_path / "examples", dataset="bp4d")

    assert summary["frames_in"] == 8 and summary["examples_total"] == 7
    assert summary["rejected_total"] == 1 and summary["rejected_by_reason"] == {
        "unexpected error": 1}
    (rejected,) = _rejected(tmp_path / "examples")
    assert (rejected["subject"], rejected["frame"], rejected["image_source"]) == (
        "F003", 3, str(broken))
    assert rejected["reason"].startswith("unexpected error: cv2.error: ")
    assert "CV_IO_MAX_IMAGE_PIXELS" in rejected["reason"] and "imageio.py:" in rejected["reason"]
    stats = json.loads((tmp_path / "examples" / "stats.json").read_text())
    assert stats["rejected"] == {"unexpected error": 1}
    progress = [r.getMessage() for r in caplog.records if r.name == "pipeline.transforms"]
    assert "F001 T1: 4 frames, 4 written, 0 rejected" in progress
    assert "F003 T1: 4 frames, 3 written, 1 rejected (unexpected error 1)" in progress
    counters = [r.getMessage() for r in caplog.records
                if r.name == "pipeline.job" and r.getMessage().startswith("Beam counters")]
    assert counters and "frames_read 8" in counters[0]


def test_a_frame_that_breaks_encoding_unexpectedly_is_rejected_with_its_files():
    """The encoder's step has the same guard: a face it cannot encode (here a float64 image,
    which OpenCV's colour conversion refuses) is rejected naming the exception and the frame's
    files; the other faces become examples."""
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to
    from pipeline.transforms import AlignedFrame, EncodeExamples
    from tests._tiny_records import mean_face

    def face(number, image):
        return AlignedFrame("bp4d", "F001", "T1", number, f"raw/{number}.jpg", "landmarks.mat#0",
                            np.zeros(12, np.int64), image, mean_face(), 60.0)

    good = np.full((200, 200, 3), 128, np.uint8)
    with TestPipeline() as pipeline:
        outputs = (pipeline | beam.Create([face(1, good), face(2, good.astype(np.float64))])
                   | EncodeExamples("bp4d"))
        assert_that(outputs["examples"] | "Parts" >> beam.Map(lambda e: (e.subject, e.part)),
                    equal_to([("F001", 1)]), label="examples")
        assert_that(outputs["rejected"] | "Reasons" >> beam.Map(
            lambda r: (r.frame, r.image_source, r.reason.startswith("unexpected error: cv2.error"),
                       "transforms.py:" in r.reason)),
            equal_to([(2, "raw/2.jpg", True, True)]), label="rejected")


def test_the_command_line_refuses_an_unknown_flag_before_any_work(tmp_path, capsys):
    """Beam only discards a flag it does not know; the job's command line names it instead."""
    with pytest.raises(SystemExit) as stopped:
        job.main([f"--data_dir={tmp_path / 'raw'}", f"--output_dir={tmp_path / 'out'}",
                  "--jpeg_qualty=80"])
    assert stopped.value.code == 2 and "unknown flag(s) --jpeg_qualty=80" in capsys.readouterr().err
    assert not (tmp_path / "raw").exists() and not (tmp_path / "out").exists()


# -- uncoded frames, --unlabelled_dir and flow targets (RTATL's auxiliary tasks) ---------------
FACE = mean_face() + 50
SCALE = alignment_matrix(FACE)[0, 0]   # raw to aligned pixels (the eyes are level)


def _face_frames(numbers):
    """{frame: RGB 300 x 300 of a real texture, moved f % 7 pixels right} and {frame: the same
    landmarks}."""
    from skimage import data
    texture = cv2.resize(data.astronaut()[20:330, 60:370], (300, 300))
    images = {f: cv2.warpAffine(texture, np.float32([[1, 0, f % 7], [0, 1, 0]]), (300, 300),
                                borderMode=cv2.BORDER_REFLECT) for f in numbers}
    return images, {f: FACE for f in numbers}


def _write_video(path, frames):
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (300, 300))
    for image in frames:
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    writer.release()


def _write_landmarks_csv(path, landmarks):
    """pipeline.analyze's columns: frame (from 1), face_id, success, x_0..x_48, y_0..y_48."""
    header = ["frame", "face_id", "timestamp", "confidence", "success"] + [
        f"x_{i}" for i in range(49)] + [f"y_{i}" for i in range(49)]
    rows = [",".join(map(str, [f, 0, 0.0, 1.0, 1, *points[:, 0], *points[:, 1]]))
            for f, points in sorted(landmarks.items())]
    path.write_text("\n".join([",".join(header)] + rows) + "\n")


FLOW_OFFSET = 3   # not the default: the flag must reach the job


@pytest.fixture(scope="module")
def rtatl(tmp_path_factory):
    """A BP4D folder with coded rows, images beyond them and a sequence without codes, and an
    --unlabelled_dir with a video of a subject in no part and an image folder of a part-2
    subject, preprocessed from the command line."""
    root = tmp_path_factory.mktemp("rtatl")
    raw, extra = root / "raw", root / "unlabelled"
    images, points = _face_frames(range(10, 22))
    codes = {f: {1: f % 2, 2: 1} for f in range(12, 17)}
    # F001 (part 1): one landmark entry per image, so 10, 11 and 17-21 are uncoded frames
    bp4d.write_sequence(raw, "F001", "T1", images, points, codes, landmark_entries="images")
    # F003 (part 2): frame 15 has no landmarks, so frame 12 has no partner
    lost = {**points, 15: None}
    bp4d.write_sequence(raw, "F003", "T1", {f: images[f] for f in codes}, lost, codes)
    # F004 (part 3): a task folder without AU codes
    bp4d.write_sequence(raw, "F004", "T2", {f: images[f] for f in range(10, 14)}, points,
                        {f: {1: 0} for f in range(10, 14)}, landmark_entries="images")
    (raw / "AUCoding" / "AU_OCC" / "F004_T2.csv").unlink()
    # --unlabelled_dir: P01 (no part) a video, F003 (part 2) an image folder
    video, video_points = _face_frames(range(1, 7))
    _write_video(extra / "P01" / "talk.avi", [video[f] for f in sorted(video)])
    _write_landmarks_csv(extra / "P01" / "talk.csv", {f: p for f, p in video_points.items()
                                                      if f != 6})
    (extra / "F003" / "walk").mkdir(parents=True)
    for f in range(1, 5):
        bp4d.imageio.write_jpeg(extra / "F003" / "walk" / f"{f:02d}.jpg", video[f])
    _write_landmarks_csv(extra / "F003" / "walk.csv", {f: video_points[f] for f in range(1, 5)})
    out = root / "examples"
    summary = job.main(["--dataset=bp4d", f"--data_dir={raw}", f"--output_dir={out}",
                        f"--unlabelled_dir={extra}", f"--flow_offset={FLOW_OFFSET}",
                        "--runner=DirectRunner"])
    return out, summary


def _records(files):
    dataset = (tf.data.TFRecordDataset(files, compression_type="GZIP")
               .batch(64).map(lambda s: parse_examples(s, 12, with_flow=True)))
    return [{k: v[i].numpy() for k, v in batch.items()} for batch in dataset
            for i in range(len(batch["frame"]))]


def _key(record):
    return record["subject"].decode(), record["task"].decode(), int(record["frame"])


def test_uncoded_frames_land_in_their_subjects_unlabelled_part_and_strangers_outside(rtatl):
    out, summary = rtatl
    assert summary["coded_frames_in"] == 10
    # F001 7 uncoded, F004 4, F003 walk 4; P01 6, one of them without landmarks
    assert summary["frames_in"] == 10 + 7 + 4 + 4 + 6
    assert summary["unlabelled"] == {"1": 7, "2": 4, "3": 4, "outside": 5}
    assert summary["examples"] == {"1": 5, "2": 4, "3": 0}
    assert summary["frames_in"] == summary["examples_total"] + summary["unlabelled_total"] + \
        summary["rejected_total"]
    assert {(r["subject"], r["frame"], r["reason"]) for r in _rejected(out)} == {
        ("F003", 15, "no landmarks"), ("P01", 6, "no landmarks")}
    assert summary["unlabelled_dir_subjects"] == {"1": [], "2": ["F003"], "3": [],
                                                  "outside": ["P01"]}
    seen = {}
    for folder in ("part1", "part2", "part3", "unlabelled/part1", "unlabelled/part2",
                   "unlabelled/part3", "unlabelled/outside"):
        files = sorted(map(str, (out / folder).glob("*.tfrecord.gz")))
        for record in _records(files):
            subject = record["subject"].decode()
            # a frame of a subject never lands in another part's folder
            part = folder.split("/")[-1]
            assert part == ("outside" if subject == "P01" else f"part{part_of('bp4d', subject)}")
            assert (record["au"] == -1).all() == folder.startswith("unlabelled")
            seen[_key(record)] = folder
    assert {k for k, folder in seen.items() if folder == "unlabelled/part1"} == {
        ("F001", "T1", f) for f in (10, 11, 17, 18, 19, 20, 21)}
    assert {k for k, folder in seen.items() if folder == "unlabelled/part2"} == {
        ("F003", "walk", f) for f in range(1, 5)}
    assert {k for k, folder in seen.items() if folder == "unlabelled/part3"} == {
        ("F004", "T2", f) for f in range(10, 14)}


def test_records_whose_frame_t_plus_k_was_aligned_carry_the_flow_to_it(rtatl):
    out, summary = rtatl
    records = _records(sorted(map(str, out.glob("**/*.tfrecord.gz"))))
    aligned = {_key(r) for r in records}
    with_flow = 0
    for record in records:
        subject, task, frame = _key(record)
        partner = (subject, task, frame + FLOW_OFFSET)
        assert bool(record["has_flow"]) == (partner in aligned), _key(record)
        if record["has_flow"]:
            with_flow += 1
            assert int(record["flow_to"]) == frame + FLOW_OFFSET
            # the texture moves a pixel a frame (mod 7) under the same landmarks: flow along x
            shift = ((frame + FLOW_OFFSET) % 7 - frame % 7) * SCALE
            inside = record["flow"][10:40, 10:40]
            np.testing.assert_allclose(np.median(inside, axis=(0, 1)), [shift, 0], atol=0.3)
    # coded frame 12 of F003 pairs with 15, which was rejected; coded 14 pairs with uncoded 17
    flows = {_key(r): bool(r["has_flow"]) for r in records}
    assert not flows[("F003", "T1", 12)] and flows[("F001", "T1", 14)]
    assert with_flow == summary["with_flow_total"]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["outside"] == {"unlabelled": 5, "with_flow": 2, "subjects": ["P01"]}
    assert [stats["parts"][p]["unlabelled"] for p in "123"] == [7, 4, 4]
    assert sum(stats["parts"][p]["with_flow"] for p in "123") + 2 == with_flow
    assert stats["coded_frames_in"] == 10


def test_the_manifest_lists_the_unlabelled_files_and_readers_get_them_by_part(rtatl, tmp_path):
    from pipeline.manifest import listed_files, listed_unlabelled_files
    out, summary = rtatl
    manifest = json.loads((out / "manifest.json").read_text())
    listed = {f["path"]: f for f in manifest["files"]}
    for path in map(str, out.glob("unlabelled/*/*.tfrecord.gz")):
        entry = listed[os.path.relpath(path, out)]
        data = open(path, "rb").read()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["records"] == len(_records([path]))
    got = listed_unlabelled_files(out, [1, 3])
    assert [os.path.relpath(p, out).split("/")[1] for p in got] == ["part1", "part3", "outside"]
    assert all(p.endswith(".tfrecord.gz") for p in got)
    assert all("unlabelled" not in p for p in listed_files(out, [1, 2, 3]))
    # a folder preprocessed before the unlabelled files existed: none, and no error
    from tests._tiny_records import write_tiny_dataset
    old = write_tiny_dataset(tmp_path / "old", per_part=2)
    assert listed_unlabelled_files(old, [1, 2]) == [] and len(listed_files(old, [1, 2])) == 2
    # a listed unlabelled file that changed is named, as for the parts
    damaged = got[0]
    with open(damaged, "ab") as f:
        f.write(b"x")
    with pytest.raises(UserError, match="differs from"):
        listed_unlabelled_files(out, [1])
    with open(damaged, "rb+") as f:
        f.truncate(os.path.getsize(damaged) - 1)


def test_the_new_parameters_reach_the_job_from_both_command_lines(rtatl, tmp_path):
    import run_pipeline
    from components.preprocess.component import PREPROCESS
    out, _ = rtatl
    parameters = json.loads((out / "_COMPLETE.json").read_text())["parameters"]
    assert parameters["flow_offset"] == FLOW_OFFSET
    assert parameters["unlabelled_dir"].endswith("unlabelled")
    args = run_pipeline.parse(["--dataset=bp4d", f"--data_dir={tmp_path}",
                               f"--unlabelled_dir={tmp_path / 'x'}", "--flow_offset=4"])
    assert args.preprocessing["flow_offset"] == 4
    assert args.preprocessing["unlabelled_dir"] == str(tmp_path / "x")
    assert PREPROCESS.resolve({"dataset": "bp4d", "data_dir": "d", **args.preprocessing})
    with pytest.raises(SystemExit):
        run_pipeline.parse(["--flow_offset=0"])
    assert "flow_offset" not in run_pipeline.parse([]).preprocessing   # the stage's default


def test_a_changed_unlabelled_dir_reruns_the_job(rtatl, tmp_path):
    out, _ = rtatl
    params = json.loads((out / "_COMPLETE.json").read_text())["parameters"]
    extra = tmp_path / "extra"
    shutil.copytree(params["unlabelled_dir"], extra)
    params["unlabelled_dir"] = str(extra)
    before = job.read_raw(params)
    assert set(before) == {"raw", "unlabelled"}
    (extra / "P01" / "talk.csv").touch()
    os.utime(extra / "P01" / "talk.csv", ns=(1, 1))
    assert job.read_raw(params)["unlabelled"] != before["unlabelled"]
    with pytest.raises(DatasetLayoutError, match="holds no sequence"):
        job.read_raw({**params, "unlabelled_dir": str(tmp_path / "extra" / "P01")})
