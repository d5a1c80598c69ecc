"""run_pipeline.py end to end on a tiny synthetic set and a tiny network; skipping; bad input."""
import json
import shutil

import pytest

import run_pipeline

TINY = ["--width_unit", "1", "--crop_size", "32", "--hidden_units", "16", "--batch_size", "8",
        "--epochs", "1,0,0", "--synthetic_subjects", "3", "--synthetic_frames", "4",
        "--verbose", "0", "--runner=DirectRunner"]


def test_flags_and_beam_pass_through():
    args = run_pipeline.parse(["--folds", "1,3", "--epochs", "8,2,2", "--learning_rates", "0.01",
                               "--runner=DirectRunner", "--direct_num_workers=2"])
    assert args.folds == [1, 3] and args.epochs == [8, 2, 2] and args.learning_rates == [0.01]
    assert args.beam_args == ["--runner=DirectRunner", "--direct_num_workers=2"]
    assert args.dataset == "synthetic" and args.stages == list(run_pipeline.STAGES)
    assert run_pipeline.parse(["--dataset", "bp4d", "--data_dir", "/x"]).folds == [1, 2, 3]
    with pytest.raises(SystemExit):
        run_pipeline.parse(["--stages", "train,deploy"])
    with pytest.raises(SystemExit):
        run_pipeline.parse(["--dataset", "bp4d"])  # no --data_dir


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("artifacts")
    assert run_pipeline.main(["--output_dir", str(out), *TINY]) == 0
    return out


@pytest.mark.slow
def test_end_to_end_writes_every_stage(tiny_run, capsys):
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
    assert run_pipeline.main(["--output_dir", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    for stage in ("preprocess", "train", "evaluate", "export"):
        assert f"[{stage}] up to date, skipped" in printed, stage
    assert "held-out mean over folds [1]: average F1" in printed


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
    with pytest.raises(KeyboardInterrupt):  # an unfinished run (as if killed after epoch 1)
        _stop_after_one_epoch(base)
    ckpt = sorted((fold / "checkpoints").iterdir())[-1]
    (ckpt / "model.weights.h5").write_bytes(b"garbage")
    err = error_of([*base, "--stages", "train"])
    assert "model.weights.h5 cannot be read" in err and str(ckpt) in err
    # --init_from a folder without a model.
    assert "--init_from" in error_of([*base, "--stages", "train", "--force", "--init_from",
                                      str(tmp_path / "nothing")])


def _stop_after_one_epoch(base):
    from components.base import run_stage
    from components.train.component import TRAIN
    args = run_pipeline.parse([*base, "--stages", "train"])
    lay = run_pipeline.Layout(args.output_dir, args.dataset)
    params = run_pipeline.train_parameters(args, 1)
    run_stage(TRAIN, inputs={"examples": lay.examples}, outputs={"model": lay.fold(1)},
              parameters={**params, "stop_after_epochs": 1}, force=True, log=None)
