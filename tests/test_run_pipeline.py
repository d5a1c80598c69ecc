"""run_pipeline.py end to end on a tiny synthetic set and a tiny network; every flag reaching its
stage; each stage alone in a fresh process; bad input."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import run_pipeline
from components.base import STAGING_DIR
from components.startup import configure_logging
from tests._cli import assert_refused
from tests._processes import kill_once_exists

REPO = Path(__file__).resolve().parents[1]


def _synthetic(field, value):
    return lambda record, folder: record["parameters"]["synthetic"][field] == value


# The preprocessing flags, each set away from the stage's default, and how the preprocess stage's
# completion record (and output folder) shows the value it used.
PREPROCESSING = {
    "--jpeg_quality": ("80", lambda record, folder: record["parameters"]["jpeg_quality"] == 80),
    "--num_shards": ("2", lambda record, folder: record["parameters"]["num_shards"] == 2
                     and len(list(folder.glob("part1/*.tfrecord.gz"))) == 2),
    "--landmark_offset": ("0", lambda record, folder: record["parameters"]["landmark_offset"]
                          == 0 and json.loads((folder / "manifest.json").read_text())[
                              "read_options"] == {"landmark_offset": 0}),
    "--frame_reshuffle": ("on", lambda record, folder: record["summary"]["frame_reshuffle"]
                          == {"option": "on", "applied": True}),
    "--synthetic_subjects": ("3", _synthetic("subjects", 3)),
    "--synthetic_tasks": ("2", _synthetic("tasks", 2)),
    "--synthetic_frames": ("4", _synthetic("frames", 4)),
    "--synthetic_seed": ("1", _synthetic("seed", 1)),
    "--synthetic_uncoded_frames": ("1", _synthetic("uncoded_frames", 1)),
    "--flow_offset": ("3", lambda record, folder: record["parameters"]["flow_offset"] == 3),
}
PREPROCESSING_ARGS = [part for flag, (value, _) in PREPROCESSING.items() for part in (flag, value)]
TINY = ["--width_unit", "1", "--crop_size", "32", "--hidden_units", "16", "--batch_size", "8",
        "--epochs", "1,0,0", "--verbose", "0", "--runner=DirectRunner"]


def test_flags_and_beam_pass_through():
    args = run_pipeline.parse(["--folds", "1,3", "--epochs", "8,2,2", "--learning_rates", "0.01",
                               "--runner=DirectRunner", "--direct_num_workers=2",
                               "--direct_running_mode", "multi_processing"])
    assert args.folds == [1, 3] and args.epochs == [8, 2, 2] and args.learning_rates == [0.01]
    assert args.beam_args == ["--runner=DirectRunner", "--direct_num_workers=2",
                              "--direct_running_mode", "multi_processing"]
    assert args.dataset == "synthetic" and args.stages == list(run_pipeline.STAGES)
    assert args.export_fold == 1 and args.preprocessing == {"synthetic": None}
    assert run_pipeline.parse(["--dataset", "bp4d", "--data_dir", "/x"]).folds == [1, 2, 3]
    assert run_pipeline.parse(["--epochs", "0,2,2"]).epochs == [0, 2, 2]  # a phase may be skipped
    args = run_pipeline.parse(["--jpeg_quality", "10", "--landmark_offset=-1", "--synthetic_frames",
                               "3", "--frame_reshuffle", "auto"])
    assert args.beam_args == [] and args.preprocessing == {
        "jpeg_quality": 10, "landmark_offset": -1, "frame_reshuffle": "auto",
        "synthetic": {"frames": 3}}
    # The network's fields go to the train stage's model overrides.
    args = run_pipeline.parse(["--local_merge", "mean", "--initialization", "pytorch",
                               "--width_unit", "2", "--feature_stack", "caffe"])
    assert run_pipeline.train_parameters(args, 1)["model_overrides"] == {
        "width_unit": 2, "local_merge": "mean", "initialization": "pytorch",
        "feature_stack": "caffe"}


# Each refused command line, and words its one parser error must carry.
REFUSED = {
    "misspelt flag": (["--outptu_dir", "x"], "unknown flag(s) --outptu_dir"),
    "misspelt flag 2": (["--epohcs", "3"], "unknown flag(s) --epohcs"),
    "single dash": (["-x"], "unknown flag(s) -x"),
    "stray argument": (["train"], "unexpected argument(s) train"),
    "bad Beam value": (["--direct_num_workers=two"], "--direct_num_workers: invalid int"),
    "no epochs": (["--epochs", "0"], "--epochs: 0 trains no phase"),
    "no epochs in any phase": (["--epochs", "0,0,0"], "--epochs: 0,0,0 trains no phase"),
    "negative epochs": (["--epochs=-1"], "--epochs: -1 is not an integer >= 0"),
    "empty epochs": (["--epochs", ","], "--epochs: ',' lists no value"),
    "zero batch": (["--batch_size", "0"], "--batch_size: 0 is not a positive integer"),
    "zero lr step": (["--lr_decay_every", "0"], "--lr_decay_every: 0 is not a positive integer"),
    "fold 0 exported": (["--export_fold", "0"], "--export_fold: 0 is not a fold number"),
    "untrained fold exported": (["--folds", "1,2", "--export_fold", "3"],
                                "--export_fold 3 is not among --folds 1,2"),
    "fold 4": (["--folds", "1,4"], "--folds: 4 is not a fold number"),
    "negative seed": (["--seed", "-1"], "--seed: -1 is not an integer >= 0"),
    "no stage": (["--stages", ""], "--stages names no stage"),
    "unknown stage": (["--stages", "train,deploy"], "unknown stage(s) ['deploy']"),
    "unknown merge": (["--local_merge", "max"], "--local_merge: invalid choice: 'max'"),
    "negative lr": (["--learning_rates=-0.5"], "--learning_rates: -0.5 is not a finite number > 0"),
    "nan lr": (["--learning_rates", "0.01,nan"], "--learning_rates: nan is not a finite"),
    "zero width": (["--width_unit", "0"], "--width_unit: 0 is not a positive integer"),
    "zero hidden": (["--hidden_units", "0"], "--hidden_units: 0 is not a positive integer"),
    "crop not /16": (["--crop_size", "40"], "--crop_size: 40 is not a multiple of 16"),
    "crop > face": (["--crop_size", "208"], "--crop_size: 208 is not a multiple of 16 from 16 to"),
    "jpeg 0": (["--jpeg_quality", "0"], "--jpeg_quality: 0 is not a JPEG quality from 1 to 100"),
    "jpeg 101": (["--jpeg_quality", "101"], "--jpeg_quality: 101 is not a JPEG quality"),
    "negative shards": (["--num_shards=-1"], "--num_shards: -1 is not an integer >= 0"),
    "lr decay 0": (["--lr_decay", "0"], "--lr_decay: 0 is not a factor in (0, 1]"),
    "lr decay > 1": (["--lr_decay", "1.5"], "--lr_decay: 1.5 is not a factor in (0, 1]"),
    "momentum 1": (["--momentum", "1"], "--momentum: 1 is not a number in [0, 1)"),
    "negative decay": (["--weight_decay=-1e-4"], "--weight_decay: -1e-4 is not a finite number"),
    "infinite decay": (["--weight_decay", "inf"], "--weight_decay: inf is not a finite number"),
    "verbose 3": (["--verbose", "3"], "--verbose: invalid choice: 3"),
    "too few subjects": (["--synthetic_subjects", "2"], "needs 3 to"),
    "synthetic flag, real data": (["--dataset", "bp4d", "--data_dir", "/x",
                                   "--synthetic_frames", "3"],
                                  "--synthetic_frames applies to --dataset synthetic only"),
    "no data_dir": (["--dataset", "bp4d"], "--data_dir is required"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_bad_flags_are_one_parser_error(case, capsys):
    assert_refused(*REFUSED[case], capsys)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("artifacts")
    assert run_pipeline.main(["--output_dir", str(out), *TINY, *PREPROCESSING_ARGS]) == 0
    return out


@pytest.mark.slow
def test_end_to_end_writes_every_stage(tiny_run, capsys, caplog):
    out = tiny_run
    for folder in ("examples/synthetic", "models/synthetic/fold1", "eval/synthetic",
                   "serving/jaa_net/1"):
        assert (out / folder / "_COMPLETE.json").is_file(), folder
    assert (out / "models/synthetic/fold1/model.keras").is_file()
    metrics = json.loads((out / "eval/synthetic/metrics.json").read_text())
    assert set(metrics["folds"]) == {"1"}
    record = json.loads((out / "models/synthetic/fold1/_COMPLETE.json").read_text())
    assert record["parameters"]["model_overrides"] == {"width_unit": 1, "crop_size": 32,
                                                       "hidden_units": 16}
    # Same command again: every stage is skipped.
    capsys.readouterr()
    with caplog.at_level("INFO"):
        assert run_pipeline.main(["--output_dir", str(out), *TINY, *PREPROCESSING_ARGS]) == 0
    for stage in ("preprocess", "train", "evaluate", "export"):
        assert f"[{stage}] up to date, skipped" in caplog.text, stage
    assert "held-out mean over folds [1]: average F1" in capsys.readouterr().out
    # --log_level WARNING keeps the stages' notes back; the summary is still printed.
    caplog.clear()
    try:
        with caplog.at_level("INFO"):
            assert run_pipeline.main(["--output_dir", str(out), *TINY, *PREPROCESSING_ARGS,
                                      "--log_level", "WARNING"]) == 0
    finally:
        configure_logging("INFO")  # as the next command line of this process would set it
    assert "up to date" not in caplog.text
    assert "evaluate    skipped" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("flag", PREPROCESSING)
def test_each_preprocessing_flag_reaches_the_stage(tiny_run, flag):
    examples = tiny_run / "examples" / "synthetic"
    record = json.loads((examples / "_COMPLETE.json").read_text())
    assert PREPROCESSING[flag][1](record, examples), (record["parameters"], record["summary"])


@pytest.mark.slow
def test_video_offset_reaches_the_preprocessing_job(tiny_run, tmp_path, capsys):
    """--video_offset is DISFA's: on the BP4D-layout synthetic set the job itself refuses it."""
    argv = ["--output_dir", str(tmp_path), "--data_dir", str(tiny_run / "raw" / "synthetic"),
            *TINY, *PREPROCESSING_ARGS, "--stages", "preprocess", "--video_offset", "0"]
    assert run_pipeline.main(argv) == 2
    assert "video_offset applies to DISFA only" in capsys.readouterr().err


def _alone(out, *flags):
    """run_pipeline.py in a fresh process on what an earlier run left in `out`, as users run it:
    (what it printed, what it logged)."""
    done = subprocess.run([sys.executable, str(REPO / "run_pipeline.py"), "--output_dir", str(out),
                           *TINY, *flags], cwd=out, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, done.stderr


@pytest.mark.slow
def test_every_stage_writes_a_folder_that_is_not_on_the_local_disk(tiny_run):
    """--output_dir a URL: TensorFlow's in-memory file system stands for a bucket (gs://), so
    neither the framework nor Beam nor Keras can reach it by a local path. Preprocess writes it
    through Beam; train, evaluate and export work in local folders copied from and to it."""
    import tensorflow as tf

    import tests._ram_filesystem  # noqa: F401  (makes ram:// a Beam file system)
    from components.base import Artifact, files
    url = "ram://bucket/a run"
    argv = ["--output_dir", url, "--data_dir", str(tiny_run / "raw" / "synthetic"), *TINY,
            *PREPROCESSING_ARGS]
    assert run_pipeline.main(argv) == 0
    for stage, folder in (("preprocess", "examples/synthetic"), ("train", "models/synthetic/fold1"),
                          ("evaluate", "eval/synthetic"), ("export", "serving/jaa_net/1")):
        assert Artifact(files.join(url, folder)).record()["stage"] == stage
    assert files.isfile(files.join(url, "models/synthetic/fold1/model.keras"))
    assert files.isfile(files.join(url, "eval/synthetic/report.md"))
    assert files.listdir(files.join(url, "serving/jaa_net")) == ["1"]
    served = tf.saved_model.load(files.join(url, "serving/jaa_net/1"))
    assert "serving_default" in served.signatures
    # The same command again finds every stage complete there.
    assert all(result.skipped for result in _results(run_pipeline.run(run_pipeline.parse(argv))))


def _results(run):
    results = run["results"]
    return [results["preprocess"], *results["train"].values(), results["evaluate"],
            results["export"]]


@pytest.mark.slow
def test_each_stage_alone_in_a_fresh_process(tiny_run, tmp_path):
    """Train on examples an earlier preprocess left; evaluate and export the model that training
    process wrote (classes registered by the loader, not by whatever the process built before)."""
    out = tmp_path / "earlier run"
    shutil.copytree(tiny_run / "examples", out / "examples")
    assert "[train] done" in _alone(out, "--stages", "train")[1]
    logged = _alone(out, "--stages", "evaluate,export")[1]
    assert "[evaluate] done" in logged and "[export] done" in logged
    assert (out / "eval/synthetic/_COMPLETE.json").is_file()
    assert (out / "serving/jaa_net/1/_COMPLETE.json").is_file()


@pytest.mark.slow
def test_user_errors_are_one_message_without_traceback(tiny_run, tmp_path, capsys):
    out = tmp_path / "a"
    shutil.copytree(tiny_run / "examples", out / "examples")
    shutil.copytree(tiny_run / "models", out / "models")
    base = ["--output_dir", str(out), *TINY]

    def error_of(argv):
        capsys.readouterr()
        assert run_pipeline.main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.startswith("error: ")
        return err

    # Missing stats.
    (out / "examples/synthetic/stats.json").rename(out / "stats.json.bak")
    assert "stats.json is missing" in error_of([*base, "--stages", "train", "--force"])
    (out / "stats.json.bak").rename(out / "examples/synthetic/stats.json")
    # Examples folder of another dataset.
    shutil.copytree(out / "examples/synthetic", out / "examples/bp4d")
    err = error_of([*base, "--dataset", "bp4d", "--stages", "train"])
    assert "holds the 'synthetic' dataset" in err and "examples/bp4d" in err
    # A corrupt checkpoint of an unfinished run.
    fold = out / "models/synthetic/fold1"
    # Another run than the complete one in the fold folder, killed after its first epoch (of
    # many, so that it cannot end first).
    changed = [*base, "--seed", "1", "--epochs", "20,0,0"]
    staging = fold / STAGING_DIR
    kill_once_exists(staging / "checkpoints" / "epoch-001" / "state.json",
                     [sys.executable, str(REPO / "run_pipeline.py"), *changed, "--stages", "train"],
                     cwd=out)
    # The complete model stays in the fold folder; the unfinished run is built in _STAGING.
    assert (fold / "model.keras").is_file() and not (staging / "model.keras").exists()
    ckpt = sorted((staging / "checkpoints").iterdir())[-1]
    (ckpt / "weights.npz").write_bytes(b"garbage")
    err = error_of([*changed, "--stages", "train"])
    assert "weights.npz cannot be read" in err and str(ckpt) in err
    # --init_from a folder without a model.
    assert "--init_from" in error_of([*base, "--stages", "train", "--force", "--init_from",
                                      str(tmp_path / "nothing")])

